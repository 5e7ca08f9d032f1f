"""Activations forward and backward on 16 M float32 (64 MB), beside PyTorch and the copy bound.

    pytest --benchmark benchmarks/bench_activations.py   # pytest-benchmark groups
    python benchmarks/bench_activations.py [rounds [threads]]   # the ratio table, in one run

A forward reads x and writes y: one copy of x. A backward reads dy and x and writes dx: 1.5
copies. The copy bandwidth is measured in the same run (np.copyto, and a Numba parallel copy);
the bound uses the faster. fastinit is timed with ``out=`` (a reused output: the kernel) and
as is (a fresh 64 MB output per call, whose page faults PyTorch pays too).
"""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi
from fastinit import backends

sys.path.insert(0, __file__.rsplit("/", 1)[0])
# the same probes and the same ratio-table driver
from bench_batchnorm import command_line, parallel_copy, rounds_against_copy  # noqa: E402

N = 1 << 24
THREADS = 2
FAST = [b for b, why in backends.available().items() if why is None and b != "numpy"]

# name, fastinit kwargs, torch forward, torch backward (dy, x) -> dx
ACTS = [
    ("relu", {}, torch.relu, lambda g, x: torch.ops.aten.threshold_backward(g, x, 0.0)),
    ("leaky_relu", {"negative_slope": 0.01}, lambda x: F.leaky_relu(x, 0.01),
     lambda g, x: torch.ops.aten.leaky_relu_backward(g, x, 0.01, False)),
    ("elu", {}, F.elu, lambda g, x: torch.ops.aten.elu_backward(g, 1.0, 1.0, 1.0, False, x)),
    ("tanh", {}, torch.tanh, lambda g, x: torch.ops.aten.tanh_backward(g, torch.tanh(x))),
    ("sigmoid", {}, torch.sigmoid,
     lambda g, x: torch.ops.aten.sigmoid_backward(g, torch.sigmoid(x))),
    ("gelu", {}, F.gelu, lambda g, x: torch.ops.aten.gelu_backward(g, x)),
    ("gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh"),
     lambda g, x: torch.ops.aten.gelu_backward(g, x, approximate="tanh")),
    ("identity", {}, lambda x: x.clone(), lambda g, x: g.clone()),
]


def label(name, kw):
    return name + ("(tanh)" if kw.get("approximate") == "tanh" else "")


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return (3.0 * rng.standard_normal(n, dtype=np.float32),
            rng.standard_normal(n, dtype=np.float32))


def check(backend):
    x, dy = data(1 << 16, seed=1)
    for name, kw, _, _ in ACTS:
        f, b = getattr(fi, name), getattr(fi, name + "_backward")
        np.testing.assert_allclose(f(x, backend=backend, **kw), f(x, backend="numpy", **kw),
                                   rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(b(dy, x, backend=backend, **kw),
                                   b(dy, x, backend="numpy", **kw), rtol=2e-6, atol=2e-6)


def fastinit_fns(backend, name, kw, x, dy, reuse):
    f, b = getattr(fi, name), getattr(fi, name + "_backward")
    out = np.empty_like(x) if reuse else None
    return (lambda: f(x, out=out, backend=backend, **kw),
            lambda: b(dy, x, out=out, backend=backend, **kw))


def torch_fns(tf, tb, x, dy):
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    return (lambda: tf(tx)), (lambda: tb(tdy, tx))


# ---- pytest-benchmark ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arrays():
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    for b in FAST:
        check(b)
    return data()


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("act", ACTS, ids=[label(a[0], a[1]) for a in ACTS])
@pytest.mark.parametrize("lib", ["torch"] + FAST)
def test_activation(benchmark, arrays, lib, act, direction):
    x, dy = arrays
    name, kw, tf, tb = act
    if lib == "torch":
        fns = torch_fns(tf, tb, x, dy)
    else:
        fns = fastinit_fns(lib, name, kw, x, dy, reuse=False)
    benchmark.group = f"{label(name, kw)} {direction} {N} float32"
    benchmark.extra_info.update(backend=lib, n=N, threads=THREADS)
    benchmark(fns[0] if direction == "forward" else fns[1])


# ---- the ratio table ----------------------------------------------------------------------------

def main(rounds=5):
    fi.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    for b in FAST:
        check(b)
    x, dy = data()
    y = np.empty_like(x)
    parallel_copy(y, x)
    cases = {"copy np.copyto": lambda: np.copyto(y, x),
             "copy numba parallel": lambda: parallel_copy(y, x)}
    for name, kw, tf, tb in ACTS:
        lab = label(name, kw)
        cases[f"{lab} forward torch"], cases[f"{lab} backward torch"] = torch_fns(tf, tb, x, dy)
        for b in FAST:
            for reuse in (True, False):
                tag = f"{b}{' out=' if reuse else ''}"
                f, bw = fastinit_fns(b, name, kw, x, dy, reuse)
                cases[f"{lab} forward {tag}"], cases[f"{lab} backward {tag}"] = f, bw
    med, rat = rounds_against_copy(
        cases, rounds, lambda name: name.startswith("copy") or name.endswith("torch"))
    copy = min(med["copy np.copyto"], med["copy numba parallel"])
    print(f"activations on {N:,} float32 ({4 * N / 1e6:.0f} MB), {THREADS} threads, medians of "
          f"{rounds} rounds; copy: np.copyto {med['copy np.copyto']:.2f} ms, numba parallel "
          f"{med['copy numba parallel']:.2f} ms; bound: forward = 1 copy, backward = 1.5 copies "
          "(xbound: median over rounds of time / that round's bound)")
    tags = [f"{b}{s}" for b in FAST for s in (" out=", "")]
    print(f"{'activation':22s} {'torch ms':>9s} " + " ".join(f"{t + ' ms':>12s} {'xbound':>6s}"
                                                              for t in tags))
    for name, kw, _, _ in ACTS:
        lab = label(name, kw)
        for direction in ("forward", "backward"):
            row = f"{lab + ' ' + direction:22s} {med[f'{lab} {direction} torch']:9.2f} "
            for t in tags:
                key = f"{lab} {direction} {t}"
                row += f"{med[key]:12.2f} {rat[key]:6.2f} "
            print(row)
    return med


if __name__ == "__main__":
    args = command_line(__doc__, rounds=5)
    THREADS = args.threads
    main(args.rounds)
