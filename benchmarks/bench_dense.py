"""Dense benchmarks: sgemm/dgemm and the linear layer, fastinit's own GEMM (numba, c) beside
numpy (OpenBLAS) and torch, at 1 and 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_dense.py   # ratio table
    python benchmarks/bench_dense.py --quick          # fewer sizes and rounds
    pytest --benchmark benchmarks/bench_dense.py      # pytest-benchmark groups

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the run (they pin OpenBLAS to its Haswell
kernels, which is not the numpy a user gets). Thread counts are matched: fastinit
(``fi.set_num_threads``), OpenBLAS (threadpoolctl) and torch (``torch.set_num_threads``).

The table is measured in one process, libraries alternating within each round, with a pause
between libraries: an OpenBLAS that just ran keeps its idle threads spinning for 0.1-0.2 s, and
any two-thread kernel started in that window (torch's as much as fastinit's) ran 15-20x slower
here (512^2 sgemm: 15 instead of 330 GFLOP/s), so the pause is 0.3 s. Each entry is the median
over rounds of the best time of a few calls; ratios are medians of the per-round ratios
(numpy time / library time, so > 1 means faster than numpy).
"""
import argparse
import statistics
import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import fastinit as fi
from fastinit.lab.timing import best as _best

FAST = [name for name, why in fi.backends.available().items() if why is None and name != "numpy"]
SQUARE = [64, 128, 256, 512, 1024, 2048]
LINEAR = [(64, 784, 256), (64, 256, 10), (1024, 784, 256), (1024, 256, 10)]


# ---- the cases: each returns {library: callable}, the flop count and a correctness check -----

def gemm_case(n, dtype, seed=0):
    r = np.random.default_rng(seed)
    a = r.standard_normal((n, n)).astype(dtype)
    b = r.standard_normal((n, n)).astype(dtype)
    outs = {lib: np.empty((n, n), dtype) for lib in ["numpy", "torch"] + FAST}
    ta, tb, tout = (torch.from_numpy(v) for v in (a, b, outs["torch"]))
    fns = {"numpy": lambda: np.matmul(a, b, out=outs["numpy"]),
           "torch": lambda: torch.matmul(ta, tb, out=tout)}
    for be in FAST:
        fns[be] = (lambda be=be: fi.matmul(a, b, out=outs[be], backend=be))

    def check():
        want = a.astype(np.float64) @ b.astype(np.float64)
        tol = (2e-5 if dtype == np.float32 else 1e-12) * np.sqrt(n) * np.abs(want).max()
        for lib, fn in fns.items():
            fn()
            err = np.abs(outs[lib] - want).max()
            assert err <= tol, f"{lib}: error {err} > {tol}"

    return fns, 2.0 * n ** 3, check


def linear_case(batch, fin, fout, direction, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((batch, fin)).astype(np.float32)
    w = (r.standard_normal((fout, fin)) / np.sqrt(fin)).astype(np.float32)
    b = r.standard_normal(fout).astype(np.float32)
    dy = r.standard_normal((batch, fout)).astype(np.float32)
    tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))
    if direction == "forward":
        fns = {"numpy": lambda: x @ w.T + b,
               "torch": lambda: torch.nn.functional.linear(tx, tw, tb)}
        for be in FAST:
            fns[be] = (lambda be=be: fi.linear(x, w, b, backend=be))
        flops = 2.0 * batch * fin * fout
    else:
        # what autograd runs for linear: two products and a column sum
        fns = {"numpy": lambda: (dy @ w, dy.T @ x, dy.sum(0)),
               "torch": lambda: (tdy.mm(tw), tdy.t().mm(tx), tdy.sum(0))}
        for be in FAST:
            fns[be] = (lambda be=be: fi.linear_backward(dy, x, w, backend=be))
        flops = 4.0 * batch * fin * fout

    def check():
        want = fi.linear(x, w, b, backend="numpy") if direction == "forward" else \
            fi.linear_backward(dy, x, w, backend="numpy")
        for lib, fn in fns.items():
            got = fn()
            got = got if isinstance(got, tuple) else (got,)
            want_t = want if isinstance(want, tuple) else (want,)
            for g, h in zip(got, want_t):
                g = g.numpy() if isinstance(g, torch.Tensor) else g
                np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-4 * np.abs(h).max(),
                                           err_msg=lib)

    return fns, flops, check


# ---- the ratio table (what the numbers in reports come from) --------------------------------

def measure(fns, flops, rounds, pause=0.3):
    """{lib: median seconds}, {lib: median ratio numpy_time / lib_time}."""
    for fn in fns.values():
        fn()
    one = min(_best(fn, 2) for fn in fns.values())
    calls = int(min(200, max(3, 0.02 / max(one, 1e-7))))
    times = {lib: [] for lib in fns}
    for _ in range(rounds):
        for lib, fn in fns.items():
            times[lib].append(_best(fn, calls))
            time.sleep(pause)
    med = {lib: statistics.median(v) for lib, v in times.items()}
    ratio = {lib: statistics.median(n / t for n, t in zip(times["numpy"], v))
             for lib, v in times.items()}
    return med, ratio


def set_threads(n):
    fi.set_num_threads(n)
    torch.set_num_threads(n)
    return threadpool_limits(n)


def table(threads=(1, 2), square=SQUARE, linear=LINEAR, rounds=7, dtypes=(np.float32, np.float64),
          only=""):
    from threadpoolctl import threadpool_info
    blas = [(i["internal_api"], i.get("architecture"), i["version"]) for i in threadpool_info()]
    print(f"numpy BLAS: {blas}; fastinit C path: "
          f"{fi._c.cpu_features() or 'n/a'}")
    libs = ["numpy", "torch"] + FAST
    head = "".join(f"{lib:>8s}" for lib in libs) + "  " + "".join(f"{lib + '/np':>10s}" for lib in FAST)
    for th in threads:
        with set_threads(th):
            print(f"\n== {th} thread(s): GFLOP/s (median of {rounds} rounds) ==")
            print(f"{'case':28s}{head}")
            cases = []
            for dt in dtypes:
                name = "sgemm" if dt == np.float32 else "dgemm"
                cases += [(f"{name} n={n}", lambda n=n, dt=dt: gemm_case(n, dt)) for n in square]
            for direction in ("forward", "backward"):
                cases += [(f"linear {direction[:3]} {b}x{i}->{o}",
                           lambda b=b, i=i, o=o, d=direction: linear_case(b, i, o, d))
                          for b, i, o in linear]
            for label, make in cases:
                if only not in label:
                    continue
                fns, flops, check = make()
                check()
                med, ratio = measure(fns, flops, rounds)
                print(f"{label:28s}" + "".join(f"{flops / med[lib] / 1e9:8.1f}" for lib in libs)
                      + "  " + "".join(f"{ratio[lib]:10.2f}" for lib in FAST), flush=True)


# ---- pytest-benchmark ---------------------------------------------------------------------------

LIBS = ["numpy", "torch"] + FAST


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("n", SQUARE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["sgemm", "dgemm"])
def test_gemm(benchmark, dtype, n, lib):
    fns, flops, check = gemm_case(n, dtype)
    check()
    benchmark.group = f"dense {'sgemm' if dtype == np.float32 else 'dgemm'} n={n}"
    benchmark.extra_info.update(backend=lib, shape=(n, n, n), gflop=flops / 1e9)
    time.sleep(0.3)
    benchmark(fns[lib])


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("shape", LINEAR, ids=lambda s: f"{s[0]}x{s[1]}->{s[2]}")
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_linear(benchmark, direction, shape, lib):
    fns, flops, check = linear_case(*shape, direction)
    check()
    benchmark.group = f"dense linear {direction} {shape[0]}x{shape[1]}->{shape[2]}"
    benchmark.extra_info.update(backend=lib, shape=shape, gflop=flops / 1e9)
    time.sleep(0.3)
    benchmark(fns[lib])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="run only cases whose label contains this")
    args = parser.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))
    if args.quick:
        table(threads, square=[128, 512, 1024], linear=LINEAR[:2], rounds=3, dtypes=(np.float32,),
              only=args.only)
    else:
        table(threads, rounds=args.rounds, only=args.only)
