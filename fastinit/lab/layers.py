"""The layer-shape sweep: every distinct conv and linear layer of a few real networks, forward,
dx and dw (+db), each beside PyTorch CPU (``fastinit bench layers``, benchmarks/bench_layers.py).

Networks (float32; batch as given):

* LeNet-5 on 1x28x28 (batch 64): conv 5x5 1->6 pad 2, conv 5x5 6->16, fc 400-120-84-10.
* The cs231n three-layer convnet on 3x32x32 (batch 50): conv 7x7 3->32 pad 3, 2x2 pool,
  affine 8192->100, affine 100->10.
* A VGG-style CIFAR net on 3x32x32 (batch 64): 3x3 convs 3-64-64 | 128-128 | 256-256 with a 2x2
  pool after each pair, fc 4096->256->10 (:data:`VGG_CIFAR`, also trained in bench_nn.py).
* ResNet-18 and ResNet-50 (torchvision's v1.5: the stride on the 3x3) at 224x224 (batch 8):
  the 7x7/2 stem, every 3x3 (strided ones too), every 1x1 bottleneck and projection, the fc.
* MobileNet-v1 at 224x224 (batch 8): the 3x3/2 stem, every depthwise 3x3 and pointwise 1x1.
* One grouped layer (ResNeXt-50 32x4d: 3x3 128->128, 32 groups, 56x56) and one dilated layer
  (3x3, dilation 2, 256->256 on 28x28, as in DeepLab's last stages), batch 8.

A layer met twice (the same shapes in two networks) is measured once, under its first name.
Rows: ``fwd`` (y = conv(x, w) + b), ``dx`` and ``dw`` (dw and db in one call), as autograd
would ask for them. Every row is checked against PyTorch on the whole batch and against the NumPy
reference on the first image, then timed beside PyTorch in alternating rounds
(:mod:`fastinit.lab.timing`); the ratio is PyTorch's time over ours, per round, and a row
reports the median and the range of its rounds.
"""
import collections
import math
import platform

import numpy as np

from . import timing

__all__ = ["LAYERS", "VGG_CIFAR", "run", "format_table", "markdown_table"]

#: A conv layer: batch N, input C x H x W, K filters of R x S, stride, padding, dilation, groups
Conv = collections.namedtuple("Conv", "net name N C H W K R S stride pad dilation groups")
#: A linear layer: batch N, fin -> fout
Linear = collections.namedtuple("Linear", "net name N fin fout")


def _conv(net, name, N, C, H, K, R, stride=1, pad=None, dilation=1, groups=1):
    pad = dilation * (R // 2) if pad is None else pad
    return Conv(net, name, N, C, H, H, K, R, R, stride, pad, dilation, groups)


#: The VGG-style CIFAR net: (in, out) of each 3x3 conv, "M" for a 2x2 max pool
VGG_CIFAR = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), "M"]


def _vgg():
    out, size, n = [], 32, 64
    for item in VGG_CIFAR:
        if item == "M":
            size //= 2
        else:
            out.append(_conv("vgg", f"3x3 {item[0]}->{item[1]} @{size}", n, item[0], size,
                             item[1], 3))
    out += [Linear("vgg", "fc 4096->256", n, 4096, 256), Linear("vgg", "fc 256->10", n, 256, 10)]
    return out


def _resnet():
    n, out = 8, [_conv("resnet18", "stem 7x7/2 3->64 @224", 8, 3, 224, 64, 7, 2)]
    # ResNet-18: per stage (channels, input size); the first block of stages 2-4 has a 3x3/2
    # and a 1x1/2 projection
    for cin, cout, size in ((64, 64, 56), (64, 128, 56), (128, 256, 28), (256, 512, 14)):
        if cin == cout:
            out.append(_conv("resnet18", f"3x3 {cout} @{size}", n, cin, size, cout, 3))
            continue
        half = size // 2
        out += [_conv("resnet18", f"3x3/2 {cin}->{cout} @{size}", n, cin, size, cout, 3, 2),
                _conv("resnet18", f"3x3 {cout} @{half}", n, cout, half, cout, 3),
                _conv("resnet18", f"1x1/2 {cin}->{cout} @{size}", n, cin, size, cout, 1, 2, 0)]
    out.append(Linear("resnet18", "fc 512->1000", n, 512, 1000))
    # ResNet-50 (v1.5): per stage (width, in channels of the first block, input size, stride)
    for width, cin, size, stride in ((64, 64, 56, 1), (128, 256, 56, 2), (256, 512, 28, 2),
                                     (512, 1024, 14, 2)):
        cout, half = 4 * width, size // stride
        layers = [(f"1x1 {cin}->{width} @{size}", cin, size, width, 1, 1, 0),
                  (f"3x3{'/2' if stride > 1 else ''} {width} @{size}", width, size, width, 3,
                   stride, 1),
                  (f"1x1 {width}->{cout} @{half}", width, half, cout, 1, 1, 0),
                  (f"1x1{'/2' if stride > 1 else ''} {cin}->{cout} @{size}", cin, size, cout,
                   1, stride, 0),
                  (f"1x1 {cout}->{width} @{half}", cout, half, width, 1, 1, 0),
                  (f"3x3 {width} @{half}", width, half, width, 3, 1, 1)]
        out += [_conv("resnet50", name, n, c, s, k, r, st, p) for name, c, s, k, r, st, p in layers]
    out.append(Linear("resnet50", "fc 2048->1000", n, 2048, 1000))
    return out


def _mobilenet():
    n, size = 8, 112
    out = [_conv("mobilenet", "stem 3x3/2 3->32 @224", n, 3, 224, 32, 3, 2)]
    for cin, cout, stride in ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
                              (256, 256, 1), (256, 512, 2), (512, 512, 1), (512, 1024, 2),
                              (1024, 1024, 1)):
        dw = "dw 3x3" + ("/2" if stride > 1 else "")
        out.append(_conv("mobilenet", f"{dw} {cin} @{size}", n, cin, size, cin, 3, stride,
                         groups=cin))
        size //= stride
        out.append(_conv("mobilenet", f"pw {cin}->{cout} @{size}", n, cin, size, cout, 1, pad=0))
    out.append(Linear("mobilenet", "fc 1024->1000", n, 1024, 1000))
    return out


def _all_layers():
    layers = [_conv("lenet5", "5x5 1->6 @28", 64, 1, 28, 6, 5, pad=2),
              _conv("lenet5", "5x5 6->16 @14", 64, 6, 14, 16, 5, pad=0),
              Linear("lenet5", "fc 400->120", 64, 400, 120),
              Linear("lenet5", "fc 120->84", 64, 120, 84),
              Linear("lenet5", "fc 84->10", 64, 84, 10),
              _conv("cs231n", "7x7 3->32 @32", 50, 3, 32, 32, 7, pad=3),
              Linear("cs231n", "fc 8192->100", 50, 8192, 100),
              Linear("cs231n", "fc 100->10", 50, 100, 10)]
    layers += _vgg() + _resnet() + _mobilenet()
    layers += [_conv("resnext50", "3x3 128 g32 @56", 8, 128, 56, 128, 3, groups=32),
               _conv("dilated", "3x3 d2 256 @28", 8, 256, 28, 256, 3, dilation=2)]
    seen, out = set(), []
    for layer in layers:
        key = tuple(layer[2:])
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out


#: Every distinct layer, in network order
LAYERS = _all_layers()
KINDS = ("fwd", "dx", "dw")


def describe(layer):
    if isinstance(layer, Linear):
        return f"N{layer.N} {layer.fin}->{layer.fout}"
    extra = "".join([f" s{layer.stride}" if layer.stride > 1 else "",
                     f" d{layer.dilation}" if layer.dilation > 1 else "",
                     f" g{layer.groups}" if layer.groups > 1 else ""])
    return (f"N{layer.N} {layer.C}x{layer.H}x{layer.W} {layer.R}x{layer.S} K{layer.K} "
            f"p{layer.pad}{extra}")


class Case:
    """Arrays and the callables of one layer's three rows, for fastinit and for PyTorch."""

    def __init__(self, layer, torch, seed=0):
        self.layer, self.torch = layer, torch
        r = np.random.default_rng(seed)
        f32 = np.float32
        if isinstance(layer, Linear):
            self.x = r.standard_normal((layer.N, layer.fin)).astype(f32)
            self.w = (r.standard_normal((layer.fout, layer.fin)) / math.sqrt(layer.fin)).astype(f32)
            self.b = r.standard_normal(layer.fout).astype(f32)
            self.dy = r.standard_normal((layer.N, layer.fout)).astype(f32)
            self.macs = layer.N * layer.fin * layer.fout
        else:
            L = layer
            self.x = r.standard_normal((L.N, L.C, L.H, L.W)).astype(f32)
            fan = L.C // L.groups * L.R * L.S
            self.w = (r.standard_normal((L.K, L.C // L.groups, L.R, L.S)) /
                      math.sqrt(fan)).astype(f32)
            self.b = r.standard_normal(L.K).astype(f32)
            self.args = dict(stride=L.stride, padding=L.pad, dilation=L.dilation,
                             groups=L.groups)
            import fastinit as fi
            shape = fi.conv2d_output_shape(self.x.shape, self.w.shape, **self.args)
            self.dy = r.standard_normal(shape).astype(f32)
            self.macs = int(np.prod(shape)) * fan
        self.t = {k: torch.from_numpy(v) for k, v in
                  dict(x=self.x, w=self.w, b=self.b, dy=self.dy).items()}

    # ---- fastinit ----
    def ours(self, kind, backend, x=None, dy=None):
        import fastinit as fi
        x = self.x if x is None else x
        dy = self.dy if dy is None else dy
        if isinstance(self.layer, Linear):
            if kind == "fwd":
                return (fi.linear(x, self.w, self.b, backend=backend),)
            need = ("dx",) if kind == "dx" else ("dw", "db")
            out = fi.linear_backward(dy, x, self.w, backend=backend, need=need)
        else:
            if kind == "fwd":
                return (fi.conv2d(x, self.w, self.b, backend=backend, **self.args),)
            need = ("dx",) if kind == "dx" else ("dw", "db")
            out = fi.conv2d_backward(dy, x, self.w, need=need, backend=backend, **self.args)
        return tuple(a for a in out if a is not None)

    # ---- PyTorch: what autograd runs for each gradient ----
    def theirs(self, kind):
        torch, t = self.torch, self.t
        with torch.no_grad():
            if isinstance(self.layer, Linear):
                if kind == "fwd":
                    return (torch.nn.functional.linear(t["x"], t["w"], t["b"]),)
                if kind == "dx":
                    return (t["dy"].mm(t["w"]),)
                return (t["dy"].t().mm(t["x"]), t["dy"].sum(0))
            L = self.layer
            if kind == "fwd":
                return (torch.nn.functional.conv2d(t["x"], t["w"], t["b"], L.stride, L.pad,
                                                   L.dilation, L.groups),)
            mask = [True, False, False] if kind == "dx" else [False, True, True]
            out = torch.ops.aten.convolution_backward(
                t["dy"], t["x"], t["w"], [L.K], [L.stride] * 2, [L.pad] * 2, [L.dilation] * 2,
                False, [0, 0], L.groups, mask)
            return tuple(a for a, m in zip(out, mask) if m)

    def check(self, kind, backend):
        """Ours against PyTorch (the whole batch) and the NumPy reference (the first image);
        raises AssertionError with the row and the error when they differ."""
        mine = self.ours(kind, backend)
        ref_t = [a.numpy() for a in self.theirs(kind)]
        x1, dy1 = self.x[:1], self.dy[:1]
        ref_np = self.ours(kind, "numpy", x1, dy1)
        one = self.ours(kind, backend, x1, dy1)
        for name, got, want in [("torch", mine, ref_t), ("numpy reference", one, ref_np)]:
            for a, b in zip(got, want):
                scale = max(float(np.abs(b).max()), 1e-30)
                err = float(np.abs(a - b).max()) / scale
                if not err <= 2e-4:
                    raise AssertionError(f"{self.layer.net} {self.layer.name} {kind} on "
                                         f"{backend}: max error {err:.2e} of max |{name}|")


def run(backend, layers=None, rounds=7, progress=None):
    """Check and time every row on ``backend``; returns {machine, backend, rows}."""
    import torch

    import fastinit as fi
    threads = fi.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    for layer in LAYERS if layers is None else layers:
        case = Case(layer, torch)
        for kind in KINDS:
            if progress:
                progress(f"{layer.net} {layer.name} {kind}")
            case.check(kind, backend)
            times = timing.paired({"ours": lambda: case.ours(kind, backend),
                                   "torch": lambda: case.theirs(kind)}, rounds=rounds)
            med, lo, hi = timing.ratio_summary(times["torch"], times["ours"])
            plan = _plan(case, kind, backend)
            rows.append(dict(net=layer.net, layer=layer.name, shape=describe(layer), kind=kind,
                             ours_ms=1e3 * sorted(times["ours"])[len(times["ours"]) // 2],
                             torch_ms=1e3 * sorted(times["torch"])[len(times["torch"]) // 2],
                             ratio=med, ratio_low=lo, ratio_high=hi, macs=case.macs,
                             plan=plan))
    return dict(machine=dict(python=platform.python_version(), processor=platform.processor(),
                             threads=threads, torch=torch.__version__),
                backend=backend, rows=rows)


def _plan(case, kind, backend):
    """The path the planner chose for a conv row ('' for linear rows)."""
    if isinstance(case.layer, Linear):
        return ""
    from ..ops import conv as conv_ops
    which = {"fwd": "forward", "dx": "backward_data", "dw": "backward_weights"}[kind]
    p = conv_ops.plan(case.x, case.w, kind=which, backend=backend, **case.args)
    return p.path + "".join(f" {k}={v}" for k, v in p.blocking.items())


def summary(result):
    ratios = [r["ratio"] for r in result["rows"]]
    worst = min(result["rows"], key=lambda r: r["ratio"])
    return dict(geomean=timing.geomean(ratios), worst=worst,
                below_1=sum(r < 1.0 for r in ratios), rows=len(ratios))


def format_table(result):
    lines = [f"layer sweep, backend {result['backend']}, {result['machine']['threads']} threads, "
             f"float32; ratio = torch time / ours (median of alternating rounds, [range])",
             f"{'net':10s} {'layer':26s} {'shape':34s} {'row':3s} {'ours ms':>9s} "
             f"{'torch ms':>9s} {'ratio':>6s} {'range':>13s}  path"]
    for r in result["rows"]:
        lines.append(f"{r['net']:10s} {r['layer']:26s} {r['shape']:34s} {r['kind']:3s} "
                     f"{r['ours_ms']:9.3f} {r['torch_ms']:9.3f} {r['ratio']:6.2f} "
                     f"[{r['ratio_low']:4.2f}-{r['ratio_high']:4.2f}]  {r['plan'][:60]}")
    s = summary(result)
    w = s["worst"]
    lines.append(f"geometric mean {s['geomean']:.2f}x over {s['rows']} rows; worst "
                 f"{w['ratio']:.2f}x ({w['net']} {w['layer']} {w['kind']}); "
                 f"{s['below_1']} rows below 1.0x")
    return "\n".join(lines)


def markdown_table(results):
    """One markdown table of the rows of several runs (one column of ratios per backend)."""
    backends = [r["backend"] for r in results]
    head = ("| net | layer | shape | row | " + " | ".join(f"{b} ms | torch ms | ratio"
                                                       for b in backends) + " |")
    lines = [head, "|" + "---|" * (4 + 3 * len(backends))]
    for i, r in enumerate(results[0]["rows"]):
        cells = []
        for res in results:
            q = res["rows"][i]
            cells.append(f"{q['ours_ms']:.3f} | {q['torch_ms']:.3f} | {q['ratio']:.2f}")
        lines.append(f"| {r['net']} | {r['layer']} | {r['shape']} | {r['kind']} | " +
                     " | ".join(cells) + " |")
    foot = []
    for res in results:
        s = summary(res)
        w = s["worst"]
        foot.append(f"{res['backend']}: geometric mean {s['geomean']:.2f}x, worst "
                    f"{w['ratio']:.2f}x ({w['net']} {w['layer']} {w['kind']}), "
                    f"{s['below_1']} of {s['rows']} rows below 1.0x")
    return "\n".join(lines) + "\n\n" + "; ".join(foot) + "\n"
