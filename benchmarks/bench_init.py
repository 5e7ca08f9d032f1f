"""Random-stream fill rate: a 4096x4096 float32 tensor of normal, uniform and truncated normal
samples, fastinit's Stream on each backend beside numpy's Generator and torch.nn.init.

    python benchmarks/bench_init.py               # ratio table (2 threads)
    python benchmarks/bench_init.py --threads 1   # one thread
    pytest --benchmark benchmarks/bench_init.py   # pytest-benchmark groups

Every library fills a preallocated array in place (fastinit ``Stream.normal(out=...)``, numpy
``Generator.standard_normal(out=...)``, torch's in-place initializers), so the numbers are
generation rates, not page faults; one extra row allocates (``Stream.normal(shape)`` beside
``standard_normal(shape)`` and ``torch.randn``). Peers: normal vs numpy ``standard_normal`` and
torch ``kaiming_normal_``; uniform vs numpy ``random`` and torch ``xavier_uniform_``; truncated
normal on [-2, 2] vs torch ``trunc_normal_`` (numpy has none).

The table is measured in one process, libraries alternating within each round with a short
pause between them. Each entry is the median over rounds of the best time of a few calls;
ratios are medians of the per-round ratios (peer time / fastinit time: > 1 means fastinit is
faster). Before timing, every fastinit backend is checked bit for bit against the reference.
"""
import argparse
import statistics
import time

import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit.lab.timing import best as _best
from fastinit.rng import Stream

FAST = [name for name, why in fi.backends.available().items() if why is None and name != "numpy"]
SHAPE = (4096, 4096)
# (distribution, peer library, what the target asks: peer time / fastinit time >= this)
TARGETS = [("normal", "numpy", 10.0), ("normal", "torch", 4.0), ("uniform", "torch", 3.0),
           ("truncated normal", "torch", 30.0)]


def cases(shape=SHAPE):
    """{distribution: {library: fill()}}: each fill() writes a fresh sample into its own buffer."""
    gen = np.random.default_rng(0)
    bufs = {lib: np.empty(shape, np.float32) for lib in ["numpy"] + FAST}
    tensor = torch.empty(shape)
    streams = {be: Stream(0) for be in FAST}
    out = {
        "normal": {"numpy": lambda: gen.standard_normal(out=bufs["numpy"], dtype=np.float32),
                   "torch": lambda: torch.nn.init.kaiming_normal_(tensor)},
        "uniform": {"numpy": lambda: gen.random(out=bufs["numpy"], dtype=np.float32),
                    "torch": lambda: torch.nn.init.xavier_uniform_(tensor)},
        "truncated normal": {"torch": lambda: torch.nn.init.trunc_normal_(tensor, a=-2.0, b=2.0)},
        "normal, allocating": {"numpy": lambda: gen.standard_normal(shape, dtype=np.float32),
                               "torch": lambda: torch.randn(shape)},
    }
    for be in FAST:
        s, buf = streams[be], bufs[be]
        out["normal"][be] = lambda s=s, buf=buf, be=be: s.normal(out=buf, backend=be)
        out["uniform"][be] = lambda s=s, buf=buf, be=be: s.uniform(low=-0.01, high=0.01, out=buf,
                                                                   backend=be)
        out["truncated normal"][be] = lambda s=s, buf=buf, be=be: s.trunc_normal(
            a_std=-2.0, b_std=2.0, out=buf, backend=be)
        out["normal, allocating"][be] = lambda s=s, be=be: s.normal(shape, backend=be)
    return out


def check(n=300_001):
    """Every fast backend gives the reference's bits (the three float32 samplers)."""
    for be in FAST:
        for draw in (lambda s, b: s.normal(n, backend=b), lambda s, b: s.uniform(n, backend=b),
                     lambda s, b: s.trunc_normal(n, a_std=-2.0, b_std=2.0, backend=b)):
            got, want = draw(Stream(7), be), draw(Stream(7), "numpy")
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), be


def measure(fns, rounds, pause=0.1):
    """{lib: [seconds per round]}: libraries alternate within each round."""
    for fn in fns.values():
        fn()
    times = {lib: [] for lib in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for lib in order:
            times[lib].append(_best(fns[lib], 1 if _slow(fns[lib]) else 3))
            time.sleep(pause)
    return times


_SLOW = {}


def _slow(fn):
    """True for fills over 0.3 s (torch's trunc_normal_): one call per round is enough."""
    if fn not in _SLOW:
        _SLOW[fn] = _best(fn, 1) > 0.3
    return _SLOW[fn]


def table(threads=2, rounds=7):
    fi.set_num_threads(threads)
    torch.set_num_threads(threads)
    check()
    n = SHAPE[0] * SHAPE[1]
    libs = ["numpy", "torch"] + FAST
    c_path = fi._c.cpu_features() or "n/a"
    print(f"{threads} thread(s), {SHAPE[0]}x{SHAPE[1]} float32, M samples/s (median of {rounds}"
          f" rounds); C build: {c_path}; numpy's Generator is single-threaded")
    print(f"{'distribution':22s}" + "".join(f"{lib:>9s}" for lib in libs) + "   ratios "
          "(peer time / fastinit time)")
    all_times = {}
    for dist, fns in cases().items():
        times = measure(fns, rounds)
        all_times[dist] = times
        rates = "".join(f"{n / statistics.median(times[lib]) / 1e6:9.0f}" if lib in times
                        else f"{'-':>9s}" for lib in libs)
        ratios = []
        for be in FAST:
            for peer in ("numpy", "torch"):
                if peer in times:
                    r = statistics.median(p / f for p, f in zip(times[peer], times[be]))
                    ratios.append(f"{be}/{peer} {r:5.1f}x")
        print(f"{dist:22s}{rates}   " + ", ".join(ratios), flush=True)
    print("\ntargets (at 2 threads):")
    for dist, peer, want in TARGETS:
        times = all_times[dist]
        for be in FAST:
            r = statistics.median(p / f for p, f in zip(times[peer], times[be]))
            verdict = "met" if r >= want else "MISSED"
            print(f"  {dist:18s} {be:6s} vs {peer:6s}: {r:6.1f}x (target >= {want:g}x) {verdict}")


# ---- pytest-benchmark ---------------------------------------------------------------------------

LIBS = ["numpy", "torch"] + FAST
DISTS = ["normal", "uniform", "truncated normal", "normal, allocating"]


@pytest.fixture(scope="module")
def fills():
    fi.set_num_threads(min(2, fi.get_num_threads()))
    torch.set_num_threads(2)
    check()
    return cases()


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dist", DISTS)
def test_fill_rate(benchmark, fills, dist, lib):
    if lib not in fills[dist]:
        pytest.skip(f"{lib} has no {dist} sampler")
    benchmark.group = f"rng {dist} {SHAPE[0]}x{SHAPE[1]} float32"
    benchmark.extra_info.update(backend=lib, shape=SHAPE, samples=SHAPE[0] * SHAPE[1])
    time.sleep(0.1)
    if dist == "truncated normal" and lib == "torch":
        benchmark.pedantic(fills[dist][lib], rounds=3, iterations=1)
    else:
        benchmark(fills[dist][lib])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    table(args.threads, args.rounds)
