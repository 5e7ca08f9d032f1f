"""clip_grad_norm_ over the parameter shapes of ResNet-18 (62 arrays, 11,689,512 float32),
beside torch.nn.utils.clip_grad_norm_ and the two-pass bandwidth bound.

    pytest --benchmark benchmarks/bench_clip.py          # pytest-benchmark groups
    python benchmarks/bench_clip.py [rounds [threads]]   # the ratio table, in one run

Every timed call clips (max_norm is half the norm), so both passes run: the norm reads every
gradient once, the scale pass reads and writes it once: 3 x 46.8 MB moved, i.e. 1.5 copies of
the gradients; the copy bandwidth is measured in the same run. Before each call the gradients
are restored from a pristine copy and the cache is flushed (neither is timed).
"""
import math
import statistics
import sys
import time

import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit import backends

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_batchnorm import command_line, parallel_copy, wait_idle  # noqa: E402 (same probes)

THREADS = 2
FAST = [b for b, why in backends.available().items() if why is None and b != "numpy"]


def resnet18_shapes():
    """Parameter shapes of torchvision's resnet18 (conv weights OIHW, bn weight and bias, fc)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            shapes += [(cout, cin, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if stage > 0 and block == 0:
                shapes += [(cout, cin, 1, 1), (cout,), (cout,)]
            cin = cout
    shapes += [(1000, 512), (1000,)]
    assert len(shapes) == 62 and sum(math.prod(s) for s in shapes) == 11_689_512
    return shapes


def grads(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(1e-3 * rng.standard_normal(s)).astype(dtype) for s in resnet18_shapes()]


_FLUSH = np.ones(1 << 24, np.float32)  # 64 MB, twice the L3


def restore(dst, src):
    for d, s in zip(dst, src):
        np.copyto(d, s)
    _FLUSH.sum()


def check(backend):
    g = grads(1)
    a, b = [x.copy() for x in g], [x.copy() for x in g]
    for p in (2.0, math.inf):
        ta = fi.clip_grad_norm_(a, 0.1, p, backend=backend)
        tb = fi.clip_grad_norm_(b, 0.1, p, backend="numpy")
        assert ta == pytest.approx(tb, rel=1e-9)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def cases(pristine):
    total = fi.clip_grad_norm_([g.copy() for g in pristine], 1e30, backend="numpy")
    max_norm = 0.5 * total
    out = {}
    for b in FAST:
        work = [g.copy() for g in pristine]
        out[b] = (lambda b=b, work=work: fi.clip_grad_norm_(work, max_norm, backend=b), work)
    tparams = [torch.zeros(s) for s in resnet18_shapes()]
    for p, g in zip(tparams, pristine):
        p.grad = torch.from_numpy(g.copy())
    twork = [p.grad.numpy() for p in tparams]
    out["torch"] = (lambda: torch.nn.utils.clip_grad_norm_(tparams, max_norm), twork)
    return out


# ---- pytest-benchmark ---------------------------------------------------------------------------

@pytest.mark.parametrize("lib", ["torch", "numpy"] + FAST)
def test_clip_grad_norm_resnet18(benchmark, lib):
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    pristine = grads()
    if lib == "numpy":
        work = [g.copy() for g in pristine]
        total = fi.clip_grad_norm_([g.copy() for g in pristine], 1e30, backend="numpy")
        fn = lambda: fi.clip_grad_norm_(work, 0.5 * total, backend="numpy")  # noqa: E731
    else:
        if lib != "torch":
            check(lib)
        fn, work = cases(pristine)[lib]
    benchmark.group = "clip_grad_norm_ resnet18 float32 (62 arrays, 11.7 M)"
    benchmark.extra_info.update(backend=lib, arrays=62, elements=11_689_512, threads=THREADS)
    benchmark.pedantic(fn, setup=lambda: restore(work, pristine), rounds=10 if lib != "numpy"
                       else 3, iterations=1)


# ---- the ratio table ----------------------------------------------------------------------------

def main(rounds=9):
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    pristine = grads()
    for b in FAST:
        check(b)
    nbytes = sum(g.nbytes for g in pristine)
    flat = np.concatenate([g.reshape(-1) for g in pristine])
    flat2 = np.empty_like(flat)
    parallel_copy(flat2, flat)
    runs = cases(pristine)
    copies = {"copy np.copyto": lambda: np.copyto(flat2, flat),
              "copy numba parallel": lambda: parallel_copy(flat2, flat)}
    times = {k: [] for k in list(copies) + list(runs)}
    ratios = {k: [] for k in runs}  # time / that round's bound
    for _ in range(rounds):
        got = {}
        wait_idle()
        for name, fn in copies.items():
            fn()
            _FLUSH.sum()
            t0 = time.perf_counter()
            fn()
            got[name] = time.perf_counter() - t0
        for name, (fn, work) in runs.items():
            wait_idle()
            ts = []
            for _ in range(3):
                restore(work, pristine)
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            got[name] = statistics.median(ts)
        copy = min(got["copy np.copyto"], got["copy numba parallel"])
        for name, t in got.items():
            times[name].append(t)
            if name in ratios:
                ratios[name].append(t / (1.5 * copy))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rat = {k: statistics.median(v) for k, v in ratios.items()}
    copy = min(med["copy np.copyto"], med["copy numba parallel"])
    bound = 1.5 * copy
    print(f"clip_grad_norm_ (norm 2, clipping) over ResNet-18 parameter shapes: 62 arrays, "
          f"{flat.size:,} float32 ({nbytes / 1e6:.1f} MB), {THREADS} threads, medians of "
          f"{rounds} rounds")
    print(f"copy of the gradients: np.copyto {med['copy np.copyto']:.2f} ms, numba parallel "
          f"{med['copy numba parallel']:.2f} ms; two-pass bound = 1.5 copies = {bound:.2f} ms")
    print(f"{'case':10s} {'ms':>8s} {'x bound':>8s} {'torch/this':>11s}")
    for name in runs:
        print(f"{name:10s} {med[name]:8.2f} {rat[name]:8.2f} {med['torch'] / med[name]:11.2f}")
    # torch's time moves between runs (about 3 ms and 5-6 ms clusters were seen on a shared
    # host): show each library's spread over the rounds beside the medians
    print("spread over rounds (min / median / max ms): " + "; ".join(
        f"{name} {min(times[name]) * 1e3:.2f} / {med[name]:.2f} / {max(times[name]) * 1e3:.2f}"
        for name in runs))
    return med


if __name__ == "__main__":
    args = command_line(__doc__, rounds=9)
    THREADS = args.threads
    main(args.rounds)
