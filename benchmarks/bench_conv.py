"""conv2d forward and backward (dx + dw) beside PyTorch CPU (torch.nn.functional.conv2d, NCHW).

    python benchmarks/bench_conv.py                 # the ratio table (alternating, medians)
    python benchmarks/bench_conv.py --reps 9 --threads 2 --dtype float32 --shapes 3x3,5x5
    pytest --benchmark benchmarks/bench_conv.py     # pytest-benchmark groups

Shapes: a ResNet stage (N32 C64 56x56 K64, "same" padding) at 3x3, 5x5 and 7x7; N64 C32 32x32
K32 3x3; a first layer (N8 C3 224x224 K64 3x3); a depthwise 3x3 (N32 C64 56x56, groups 64);
the two layers of the teaching CNN (``fastinit train --model cnn``: N64 C1 8x8 K16 and N64 C16
4x4 K32, 3x3; microseconds, so the per-call overhead counts as much as the kernel).
Targets (2 threads, float32): 3x3 forward >= 2.0x torch, 3x3 backward >= 1.5x, 5x5 forward
>= 1.2x, 7x7 forward >= 1.0x, no shape below 0.8x.

Method: every result is first checked against PyTorch (and the NumPy reference on one image);
then each fastinit backend and torch run alternately, with a short pause between, ``reps``
times; the ratio torch_time / fastinit_time of each pair is kept and the table reports the
medians (the machine is shared: only ratios measured side by side mean anything). The backward
of torch is ``aten.convolution_backward`` with output_mask (dx, dw), what autograd runs.
Each fastinit backend is measured in a process of its own (with torch beside it): once Numba's
thread pool exists in a process, torch's own kernels there ran up to 2x slower (3x3: 35.9 vs
17.6 ms), which would flatter every ratio after it. The pause between calls is 5 ms: on this
VM, pauses of 20-50 ms let the kernel's proactive reclaim (kdamond) take idle buffers back, and
both libraries then paid page faults at random (N64 C32 32x32: 2 ms calls became 14 ms).
The two CNN shapes take microseconds: they run 20x the pairs with no pause (after 5 ms idle,
both libraries' threads sleep and a call pays their wake-up, tens of microseconds).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi
from fastinit.ops import conv as conv_ops

#: name -> (N, C, H, K, kernel, groups); "same" padding, stride 1
SHAPES = {
    "3x3": (32, 64, 56, 64, 3, 1),
    "5x5": (32, 64, 56, 64, 5, 1),
    "7x7": (32, 64, 56, 64, 7, 1),
    "3x3-small": (64, 32, 32, 32, 3, 1),
    "3x3-first": (8, 3, 224, 64, 3, 1),
    "3x3-depthwise": (32, 64, 56, 64, 3, 64),
    "cnn-conv1": (64, 1, 8, 16, 3, 1),
    "cnn-conv2": (64, 16, 4, 32, 3, 1),
}
BACKENDS = [b for b in ("c", "numba") if fi.backends.available()[b] is None]


def make(shape, dtype=np.float32, seed=0):
    N, C, H, K, k, g = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    w = (rng.standard_normal((K, C // g, k, k)) * np.sqrt(2.0 / (C // g * k * k))).astype(dtype)
    dy = rng.standard_normal((N, K, H, H)).astype(dtype)
    return x, w, dy


class Case:
    """The callables of one shape: fastinit forward/backward per backend and torch's."""

    def __init__(self, shape, dtype=np.float32):
        self.shape = shape
        N, C, H, K, k, g = shape
        self.g, self.pad = g, k // 2
        self.x, self.w, self.dy = make(shape, dtype)
        self.tx, self.tw, self.tdy = (torch.from_numpy(a) for a in (self.x, self.w, self.dy))
        self.flops = 2 * N * K * (C // g) * k * k * H * H

    def fi_forward(self, backend):
        return fi.conv2d(self.x, self.w, padding="same", groups=self.g, backend=backend)

    def fi_backward(self, backend):
        return fi.conv2d_backward(self.dy, self.x, self.w, padding="same", groups=self.g,
                                  need=("dx", "dw"), backend=backend)

    def torch_forward(self):
        with torch.no_grad():
            return F.conv2d(self.tx, self.tw, padding="same", groups=self.g)

    def torch_backward(self):
        p = self.pad
        return torch.ops.aten.convolution_backward(
            self.tdy, self.tx, self.tw, None, [1, 1], [p, p], [1, 1], False, [0, 0], self.g,
            [True, True, False])

    def check(self, backend):
        """fastinit against torch (full shape) and the NumPy reference (first image)."""
        tol = 1e-4 if self.x.dtype == np.float32 else 1e-10
        y = self.fi_forward(backend)
        yt = self.torch_forward().numpy()
        assert np.abs(y - yt).max() <= tol * np.abs(yt).max(), "forward differs from torch"
        dx, dw, _ = self.fi_backward(backend)
        dxt, dwt, _ = self.torch_backward()
        assert np.abs(dx - dxt.numpy()).max() <= tol * np.abs(dxt.numpy()).max(), "dx differs"
        assert np.abs(dw - dwt.numpy()).max() <= tol * np.abs(dwt.numpy()).max(), "dw differs"
        y1 = fi.conv2d(self.x[:1], self.w, padding="same", groups=self.g, backend="numpy")
        assert np.abs(y[:1] - y1).max() <= tol * np.abs(y1).max(), "forward differs from numpy"


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ratios(case, backend, reps=7, pause=0.005):
    """(median fastinit s, median torch s, median of the pairs' torch/fastinit, ratio of the
    best times) for forward and backward."""
    out = {}
    for kind in ("forward", "backward"):
        mine = lambda: getattr(case, "fi_" + kind)(backend)  # noqa: E731
        theirs = getattr(case, "torch_" + kind)
        mine(), theirs()  # warm: JIT, oneDNN primitives, scratch buffers
        a, b, r = [], [], []
        for i in range(reps):
            order = (mine, theirs) if i % 2 == 0 else (theirs, mine)
            t = {}
            for fn in order:
                time.sleep(pause)
                t[fn] = _time(fn)
            a.append(t[mine])
            b.append(t[theirs])
            r.append(t[theirs] / t[mine])
        out[kind] = (statistics.median(a), statistics.median(b), statistics.median(r),
                     min(b) / min(a))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--in-process", action="store_true",
                    help="measure every backend in this process (default: one process each)")
    args = ap.parse_args(argv)
    backends = args.backends.split(",")
    if len(backends) > 1 and not args.in_process:
        header = True
        for backend in backends:
            cmd = [sys.executable, os.path.abspath(__file__), "--reps", str(args.reps),
                   "--threads", str(args.threads), "--dtype", args.dtype, "--shapes",
                   args.shapes, "--backends", backend]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            lines = out.splitlines()
            print("\n".join(lines if header else lines[2:]), flush=True)
            header = False
        return
    torch.set_num_threads(args.threads)
    fi.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    print(f"conv2d vs torch {torch.__version__} ({args.threads} threads, {dtype}, medians of "
          f"{args.reps} alternating pairs; ratio = median of the pairs' torch time / fastinit "
          "time, best = ratio of the best times)")
    print(f"{'shape':14s} {'backend':7s} {'fwd ms':>7s} {'torch':>7s} {'ratio':>6s} {'best':>5s}"
          f"   {'bwd ms':>7s} {'torch':>7s} {'ratio':>6s} {'best':>5s}  kernel (forward)")
    for name in args.shapes.split(","):
        case = Case(SHAPES[name], dtype)
        for backend in backends:
            case.check(backend)
            tiny = case.flops < 1e8   # microsecond calls: no pause (a 5 ms pause let the
            # threads fall asleep, and every call then paid their wake-up), many more pairs
            res = ratios(case, backend, args.reps * 20 if tiny else args.reps,
                         0.0 if tiny else 0.005)
            (fa, fb, fr, fm), (ba, bb, br, bm) = res["forward"], res["backward"]
            how = conv_ops.plan(case.x, case.w, padding="same", groups=case.g, backend=backend)
            print(f"{name:14s} {backend:7s} {fa * 1e3:7.3f} {fb * 1e3:7.3f} {fr:6.2f} {fm:5.2f}   "
                  f"{ba * 1e3:7.3f} {bb * 1e3:7.3f} {br:6.2f} {bm:5.2f}  "
                  f"{how.path}", flush=True)


# ---- pytest-benchmark -------------------------------------------------------------------------
_cases = {}


def _case(name):
    if name not in _cases:
        torch.set_num_threads(2)
        fi.set_num_threads(2)
        _cases[name] = Case(SHAPES[name])
    return _cases[name]


@pytest.mark.parametrize("who", BACKENDS + ["torch"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv2d_forward(benchmark, name, who):
    case = _case(name)
    benchmark.group = f"conv2d forward {name} {case.shape}"
    benchmark.extra_info.update(backend=who, shape=case.shape, gflop=case.flops / 1e9)
    if who == "torch":
        benchmark(case.torch_forward)
    else:
        case.check(who)
        benchmark(case.fi_forward, who)


@pytest.mark.parametrize("who", BACKENDS + ["torch"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv2d_backward(benchmark, name, who):
    case = _case(name)
    benchmark.group = f"conv2d backward (dx+dw) {name} {case.shape}"
    benchmark.extra_info.update(backend=who, shape=case.shape, gflop=2 * case.flops / 1e9)
    if who == "torch":
        benchmark(case.torch_backward)
    else:
        case.check(who)
        benchmark(case.fi_backward, who)


if __name__ == "__main__":
    main()
