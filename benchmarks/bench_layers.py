"""The layer-shape sweep (fastinit.lab.layers): every distinct conv and linear layer of LeNet-5,
the cs231n convnet, a VGG-style CIFAR net, ResNet-18/50, MobileNet-v1, a grouped and a dilated
layer; forward, dx and dw(+db) rows, each checked, then timed beside PyTorch CPU.

    python benchmarks/bench_layers.py                  # both fast backends, one process each
    python benchmarks/bench_layers.py --backend c --rounds 9 --only resnet50
    python benchmarks/bench_layers.py --readme         # also write the table into README.md
    pytest --benchmark benchmarks/bench_layers.py      # pytest-benchmark groups, one per row

Targets (2 threads, float32): C backend no row below 1.0x and a geometric mean >= 1.8x; Numba
backend no row below 0.85x and a geometric mean >= 1.5x. Each backend is measured in a process
of its own with torch beside it (a second OpenMP runtime in the process slows the first).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import pytest

import fastinit as fi
from fastinit.lab import layers as sweep

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, os.pardir, "README.md")
BEGIN, END = "<!-- bench_layers:begin -->", "<!-- bench_layers:end -->"
BACKENDS = [b for b in ("c", "numba") if fi.backends.available()[b] is None]


def _select(only):
    if not only:
        return sweep.LAYERS
    keys = only.split(",")
    return [L for L in sweep.LAYERS if any(k in L.net or k in L.name for k in keys)]


def write_readme(results, path=README):
    """Replace the text between the bench_layers markers of the README with the table."""
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} section")
    body = (f"{BEGIN}\n`python benchmarks/bench_layers.py --readme` on "
            f"{results[0]['machine']['processor'] or 'this machine'}, "
            f"{results[0]['machine']['threads']} threads, torch "
            f"{results[0]['machine']['torch']}; ratio = torch time / ours, median of "
            f"alternating rounds:\n\n" + sweep.markdown_table(results) + END)
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: body, text, flags=re.S)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default=",".join(BACKENDS), help="comma-separated")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per row (7)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both libraries (2)")
    ap.add_argument("--only", default="", help="comma-separated net or layer name parts")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = ap.parse_args(argv)
    backends = args.backend.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        ap.error(f"--backend: {','.join(unknown)} not available here (choose from "
                 f"{','.join(BACKENDS)})")
    if args.rounds < 1 or args.threads < 1:
        ap.error("--rounds and --threads must be at least 1")
    if not _select(args.only):
        ap.error(f"--only {args.only!r} matches no layer (net names: "
                 f"{', '.join(sorted({L.net for L in sweep.LAYERS}))})")
    if len(backends) > 1 or args.readme:
        results = []
        for be in backends:
            cmd = [sys.executable, os.path.abspath(__file__), "--backend", be, "--rounds",
                   str(args.rounds), "--threads", str(args.threads), "--only", args.only,
                   "--json"]
            res = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                            check=True).stdout)
            results.append(res)
            if not args.json:
                print(sweep.format_table(res), flush=True)
        if args.json:
            print(json.dumps(results))
        if args.readme:
            write_readme(results)
        return
    fi.set_num_threads(args.threads)
    progress = None if args.json else (lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    res = sweep.run(backends[0], _select(args.only), rounds=args.rounds, progress=progress)
    print(json.dumps(res) if args.json else sweep.format_table(res))


# ---- pytest-benchmark -------------------------------------------------------------------------
_cases = {}


def _case(i):
    import torch
    if i not in _cases:
        torch.set_num_threads(2)
        fi.set_num_threads(2)
        _cases[i] = sweep.Case(sweep.LAYERS[i], torch)
    return _cases[i]


@pytest.mark.parametrize("who", BACKENDS + ["torch"])
@pytest.mark.parametrize("kind", sweep.KINDS)
@pytest.mark.parametrize("i", range(len(sweep.LAYERS)),
                         ids=[f"{L.net}-{L.name}".replace(" ", "_") for L in sweep.LAYERS])
def test_layer(benchmark, i, kind, who):
    case = _case(i)
    layer = sweep.LAYERS[i]
    benchmark.group = f"layer {layer.net} {layer.name} {kind} ({sweep.describe(layer)})"
    benchmark.extra_info.update(backend=who, macs=case.macs)
    if who == "torch":
        benchmark(case.theirs, kind)
    else:
        case.check(kind, who)
        benchmark(case.ours, kind, who)


if __name__ == "__main__":
    main()
