"""Regenerate the README's command outputs and the pictures in docs/ from real runs.

    python docs/generate.py                 # every cheap part: machine, shrink, signal, train,
                                            # moons, kernels (about a minute once compiled)
    python docs/generate.py train kernels   # only these parts
    python docs/generate.py warmup          # also time a cold Numba compile (minutes; it uses
                                            # a fresh, temporary NUMBA_CACHE_DIR)

Each part runs the `fastinit` command exactly as the README shows it, in a subprocess, and
writes its output between the README's ``<!-- readme_PART:begin -->`` and
``<!-- readme_PART:end -->`` markers (pictures go to docs/PART.png). The long benchmarks
(`benchmarks/`, the README's Performance section) are not run here.
"""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")

#: part -> the command as the README shows it (``fastinit`` is run as ``python -m fastinit``)
COMMANDS = {
    "shrink": "fastinit kernels --shrink 199",
    "signal": "fastinit signal --plot docs/signal.png",
    "train": "fastinit train --plot docs/train.png",
    "moons": "fastinit train --toy moons --plot docs/moons.png",
    "kernels": "fastinit kernels --plot docs/kernels.png",
}
CHEAP = ("machine",) + tuple(COMMANDS)
PARTS = CHEAP + ("warmup",)


def machine():
    """One line naming the machine the outputs were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import fastinit as fi
    from fastinit import _c

    try:
        import llvmlite.binding as llvm
        cpu += f" (LLVM: {llvm.get_host_cpu_name()})"
    except Exception:
        pass
    if _c.lib is not None:
        cpu += f", C kernels' vector path {_c.cpu_features()}"
    versions = []
    for dist in ("numpy", "numba", "torch"):
        try:
            from importlib.metadata import version
            versions.append(f"{dist} {version(dist)}")
        except Exception:
            pass
    return (f"{cpu}, {os.cpu_count()} CPUs, {fi.get_num_threads()} threads, "
            f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
            + ", ".join(versions) + f"; generated {datetime.date.today().isoformat()}")


LOAD = []   # other processes' share of the CPUs during each run (fastinit.lab.timing.CpuWatch)


def run(command, env=None):
    """Run a README command; returns (stdout, seconds, stderr)."""
    from fastinit.lab.timing import CpuWatch

    argv = [sys.executable, "-m", "fastinit"] + command.split()[1:]
    watch = CpuWatch().start()     # the child is reaped before stop(): it never counts
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    LOAD.append(watch.stop())
    if proc.returncode != 0:
        raise SystemExit(f"`{command}` failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.rstrip("\n"), seconds, proc.stderr


def _load():
    share = LOAD[-1] if LOAD else None
    return ("" if share is None else
            f", while other processes used {share:.0%} of its CPUs")


def block(command, out, seconds, note=""):
    took = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
    return (f"```\n$ {command}\n{out}\n```\n\n_{note}`{command.split(' --plot')[0]}` took "
            f"{took} s on the machine named below{_load()}._")


def signal_excerpt(out):
    """The per-network headers, each run's description and summary, and the closing notes."""
    keep, follow = [], False
    for line in out.splitlines():
        if follow and line.startswith("  ") and line.strip():
            keep.append(line)          # a wrapped note goes on
            continue
        follow = False
        if (re.match(r"^\d+-layer", line) or re.match(r"^\w+: ", line)
                or line.startswith("  activation std first") or " have the same dead units" in line
                or line.startswith("act std:")):
            keep.append(line)
            follow = not line.startswith("  ")
    return "\n".join(keep)


def part(name):
    if name == "machine":
        return machine()
    if name == "warmup":
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            _, _, log = run("fastinit kernels --budget 1 --no-torch --json", env)
        m = re.search(r"compiled (\d+) Numba kernels in (\d+) s", log)
        first = (f"the first `fastinit kernels` compiled {m.group(1)} kernels in {m.group(2)} s "
                 f"before measuring" if m else "the first `fastinit kernels` compiled nothing")
        first += _load()
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            _, cold, _ = run("fastinit warmup", env)
            cold_load = _load()
            _, warm, _ = run("fastinit warmup", env)
        return (f"On an empty Numba cache, on the machine named below: {first}; `fastinit "
                f"warmup` took {cold:.0f} s ({cold / 60:.1f} min){cold_load}, and {warm:.0f} s "
                f"again with the cache filled.")
    command = COMMANDS[name]
    out, seconds, log = run(command)
    for line in log.splitlines():     # say when a part compiled or met a busy machine
        if line.startswith(("compiled ", "note:")):
            print(f"  {name}: {line}", file=sys.stderr)
    if name == "signal":
        return block(command, signal_excerpt(out), seconds,
                     "An excerpt (the summary lines; the command prints every layer). ")
    return block(command, out, seconds)


def write(parts):
    for name in parts:
        begin, end = f"<!-- readme_{name}:begin -->", f"<!-- readme_{name}:end -->"
        with open(README) as f:
            if begin not in f.read():
                raise SystemExit(f"README.md has no {begin} ... {end} section")
        print(f"generating {name} ...", file=sys.stderr, flush=True)
        body = f"{begin}\n{part(name)}\n{end}"
        with open(README) as f:        # read again: the README may have changed meanwhile
            text = f.read()
        if end not in text:
            raise SystemExit(f"README.md has no {end} marker")
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: body, text, flags=re.S)
        with open(README, "w") as f:   # after each part, so a failure keeps the others
            f.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", metavar="PART",
                    help=f"parts to regenerate (default: {' '.join(CHEAP)}; also: warmup)")
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {' '.join(PARTS)}")
    write(args.parts or CHEAP)


if __name__ == "__main__":
    main()
