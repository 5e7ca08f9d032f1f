"""Batch norm training forward and backward, float32 NCHW 64x64x56x56, beside PyTorch and the
time to move the same bytes at the measured copy bandwidth.

    pytest --benchmark benchmarks/bench_batchnorm.py      # pytest-benchmark groups
    python benchmarks/bench_batchnorm.py [rounds [threads]]   # the ratio table, in one run

Bytes moved: forward reads x and writes y (a copy of x: the bound is the copy time of x);
backward reads dy and x and writes dx (1.5 copies). The copy bandwidth is measured in the same
run, by ``np.copyto`` (one thread) and a Numba parallel copy (two threads); the bound uses the
faster. On a shared machine the table waits for idle CPUs before each group of timings
(``wait_idle``; FASTINIT_BENCH_NO_WAIT=1 turns that off) and reports each case's time over its
own round's bound, so a busy neighbour moves both together. fastinit is timed twice: through
the public API as is (a fresh 51 MB output per call, whose page faults PyTorch pays too) and
with ``out=`` (a reused output: the kernel itself).
"""
import argparse
import statistics
import time

import numpy as np
import pytest
import torch
from numba import prange

import fastinit as fi
from fastinit import backends
from fastinit._config import pjit
from fastinit.lab.timing import median as _time

SHAPE = (64, 64, 56, 56)
CHECK_SHAPE = (8, 16, 28, 28)
THREADS = 2
FAST = [b for b, why in backends.available().items() if why is None and b != "numpy"]


@pjit
def parallel_copy(dst, src):
    """dst[:] = src in 64 fixed blocks over the threads (the Numba copy-bandwidth probe)."""
    n = src.shape[0]
    per = (n + 63) // 64
    for b in prange(64):
        lo = b * per
        hi = min(n, lo + per)
        d = dst[lo:hi]
        s = src[lo:hi]
        for i in range(hi - lo):
            d[i] = s[i]


def command_line(doc, rounds, threads=2):
    """The arguments of ``python bench_x.py [rounds [threads]]`` (a script's ratio table)."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rounds", nargs="?", type=int, default=rounds,
                   help=f"timing rounds (default: {rounds})")
    p.add_argument("threads", nargs="?", type=int, default=threads,
                   help=f"threads of fastinit and PyTorch (default: {threads})")
    return p.parse_args()


def _cpu_times():
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:]]
    return v[3] + v[4], sum(v)


def wait_idle(limit=30.0, dt=0.25, idle=0.9):
    """On a shared machine: wait (at most ``limit`` s) until the CPUs were idle for ``dt`` s.

    Linux only (reads /proc/stat); elsewhere, and with FASTINIT_BENCH_NO_WAIT=1, returns at once.
    Returns True when the machine was found idle.
    """
    import os
    if os.environ.get("FASTINIT_BENCH_NO_WAIT") or not os.path.exists("/proc/stat"):
        return True
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        i0, t0 = _cpu_times()
        time.sleep(dt)
        i1, t1 = _cpu_times()
        if (i1 - i0) / max(1, t1 - t0) >= idle:
            return True
    return False


def rounds_against_copy(cases, rounds, quiet_before):
    """Time ``cases`` ({name: fn}, "copy np.copyto" and "copy numba parallel" among them) in
    ``rounds`` rounds: ({name: median ms}, {name: median over rounds of time / that round's
    bound}). The bound is the round's faster copy, 1.5 copies for a name with "backward" in it;
    the ratio to it cancels the noise of one round. Before each case ``quiet_before(name)``
    picks, it waits for idle CPUs (other jobs share the cores: time in the quiet gaps)."""
    times = {k: [] for k in cases}
    ratios = {k: [] for k in cases}
    for _ in range(rounds):
        got = {}
        for name, fn in cases.items():
            if quiet_before(name):
                wait_idle()
            got[name] = _time(fn)
        copy = min(got["copy np.copyto"], got["copy numba parallel"])
        for name, t in got.items():
            times[name].append(t)
            ratios[name].append(t / ((1.5 if "backward" in name else 1.0) * copy))
    return ({k: statistics.median(v) * 1e3 for k, v in times.items()},
            {k: statistics.median(v) for k, v in ratios.items()})


def data(shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    return x, dy, gamma, beta


def check(backend):
    """The backend agrees with the reference (and PyTorch) before anything is timed."""
    x, dy, gamma, beta = data(CHECK_SHAPE, seed=1)
    rm, rv = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, backend=backend)
    y0, s0 = fi.batch_norm(x, gamma, beta, backend="numpy")
    np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-5)
    dx, dg, db = fi.batch_norm_backward(dy, x, gamma, s, backend=backend)
    dx0, dg0, db0 = fi.batch_norm_backward(dy, x, gamma, s0, backend="numpy")
    np.testing.assert_allclose(dx, dx0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dg, dg0, rtol=1e-4, atol=1e-3)


def torch_setup(x, dy, gamma, beta):
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    tw, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
    rm, rv = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    _, mean, invstd = torch.native_batch_norm(tx, tw, tb, rm, rv, True, 0.1, 1e-5)

    def forward():
        return torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, training=True)

    def backward():  # what autograd calls for F.batch_norm in training
        return torch.ops.aten.native_batch_norm_backward(tdy, tx, tw, rm, rv, mean, invstd, True,
                                                         1e-5, [True, True, True])

    return forward, backward


def fastinit_setup(backend, x, dy, gamma, beta, reuse):
    rm, rv = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    _, saved = fi.batch_norm(x, gamma, beta, backend=backend)
    out = np.empty_like(x) if reuse else None

    def forward():
        return fi.batch_norm(x, gamma, beta, rm, rv, out=out, backend=backend)

    def backward():
        return fi.batch_norm_backward(dy, x, gamma, saved, out=out, backend=backend)

    return forward, backward


# ---- pytest-benchmark ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arrays():
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    return data()


LIBS = ["torch", "numpy"] + FAST


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("lib", LIBS)
def test_batchnorm(benchmark, arrays, lib, direction):
    x, dy, gamma, beta = arrays
    if lib == "torch":
        fns = torch_setup(x, dy, gamma, beta)
    else:
        check(lib)
        fns = fastinit_setup(lib, x, dy, gamma, beta, reuse=False)
    fn = fns[0] if direction == "forward" else fns[1]
    benchmark.group = f"batchnorm {direction} {'x'.join(map(str, SHAPE))} float32"
    benchmark.extra_info.update(backend=lib, shape=SHAPE, threads=THREADS)
    if lib == "numpy":
        benchmark.pedantic(fn, rounds=2, iterations=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("lib", ["np.copyto", "numba parallel copy"])
def test_copy_bandwidth(benchmark, arrays, lib):
    x = arrays[0]
    y = np.empty_like(x)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    if lib == "np.copyto":
        fn = lambda: np.copyto(y, x)  # noqa: E731
    else:
        fn = lambda: parallel_copy(flat_y, flat_x)  # noqa: E731
    benchmark.group = f"batchnorm forward {'x'.join(map(str, SHAPE))} float32"
    benchmark.extra_info.update(backend=lib, shape=SHAPE, bytes=2 * x.nbytes)
    benchmark(fn)


# ---- the ratio table ----------------------------------------------------------------------------

def main(rounds=7):
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    x, dy, gamma, beta = data()
    for b in FAST:
        check(b)
    y = np.empty_like(x)
    fx, fy = x.reshape(-1), y.reshape(-1)
    parallel_copy(fy, fx)
    cases = {"copy np.copyto": lambda: np.copyto(y, x),
             "copy numba parallel": lambda: parallel_copy(fy, fx)}
    tf, tb = torch_setup(x, dy, gamma, beta)
    cases["torch forward"], cases["torch backward"] = tf, tb
    for b in FAST:
        for reuse in (False, True):
            f, bw = fastinit_setup(b, x, dy, gamma, beta, reuse)
            tag = f"{b}{' out=' if reuse else ''}"
            cases[f"{tag} forward"], cases[f"{tag} backward"] = f, bw
    med, rat = rounds_against_copy(
        cases, rounds, lambda name: name.startswith("copy") or name.endswith("forward"))
    copy = min(med["copy np.copyto"], med["copy numba parallel"])
    bound = {"forward": copy, "backward": 1.5 * copy}
    print(f"batch norm training, float32 {'x'.join(map(str, SHAPE))}, {THREADS} threads, "
          f"median of {rounds} rounds (each the median of 5 calls)")
    print(f"copy of x ({x.nbytes / 1e6:.1f} MB): np.copyto {med['copy np.copyto']:.2f} ms, "
          f"numba parallel {med['copy numba parallel']:.2f} ms "
          f"-> {2 * x.nbytes / copy / 1e6:.1f} GB/s moved")
    print("x bound: median over rounds of (time / that round's bound); bound = the faster copy "
          "(forward), 1.5 copies (backward)")
    print(f"{'case':24s} {'ms':>8s} {'bound ms':>9s} {'x bound':>8s} {'torch/this':>11s}")
    for direction in ("forward", "backward"):
        t_torch = med[f"torch {direction}"]
        for name in [k for k in med if k.endswith(direction)]:
            t = med[name]
            print(f"{name:24s} {t:8.2f} {bound[direction]:9.2f} {rat[name]:8.2f} "
                  f"{t_torch / t:11.2f}")
    return med


if __name__ == "__main__":
    args = command_line(__doc__, rounds=7)
    THREADS = args.threads
    main(args.rounds)
