"""Why 3x3 kernels win: a stack of 3x3 convolutions against one 5x5 or 7x7 of the same
receptive field - parameters, multiply-adds, activation memory, and measured time on our own
kernels (and PyTorch's, when installed). ``fastinit kernels`` prints what :func:`compare`
returns; ``fastinit kernels --shrink H`` prints :func:`shrink`.

The arithmetic (Simonyan & Zisserman 2015, sec. 2.3): n stacked k x k stride-1 convolutions see
a (1 + n(k - 1)) square, so two 3x3 see 5x5 and three see 7x7. With C channels in and out, one
K x K layer has K^2 C^2 weights; the 3x3 stack has n * 9 C^2 (2*9 = 18 < 25, 3*9 = 27 < 49),
and as many fewer multiply-adds per output pixel, at the cost of n - 1 extra activation maps
(which also buy n - 1 extra nonlinearities).
"""
import dataclasses
import json
import math

import numpy as np

from .timing import median as _timeit


@dataclasses.dataclass
class ConvPlan:
    """One way to cover a receptive field: ``layers`` stacked k x k convolutions."""

    name: str
    kernel: int
    layers: int
    channels: int
    channels_mid: int
    batch: int
    size: int
    bias: bool = True

    @property
    def receptive_field(self):
        return 1 + self.layers * (self.kernel - 1)

    def layer_channels(self):
        """[(C_in, C_out)] of each layer."""
        c, m, n = self.channels, self.channels_mid, self.layers
        if n == 1:
            return [(c, c)]
        return [(c, m)] + [(m, m)] * (n - 2) + [(m, c)]

    @property
    def weights(self):
        """Kernel weights only (no bias): 2 * 9 C^2 = 73,728 against 25 C^2 = 102,400 at C=64."""
        k2 = self.kernel * self.kernel
        return sum(ci * co * k2 for ci, co in self.layer_channels())

    @property
    def params(self):
        k2 = self.kernel * self.kernel
        return sum(ci * co * k2 + (co if self.bias else 0) for ci, co in self.layer_channels())

    @property
    def params_formula(self):
        k2 = self.kernel * self.kernel
        if self.layers == 1:
            return f"{k2}*C^2 (+C bias)"
        if self.channels_mid == self.channels:
            return f"{self.layers}*{k2}*C^2 (+{self.layers}C bias)"
        return f"{k2}*(2*C*M + {self.layers - 2}*M^2) (+ bias), M = {self.channels_mid}"

    @property
    def macs(self):
        """Multiply-adds of the forward pass ("same" padding keeps H x W)."""
        hw = self.size * self.size
        k2 = self.kernel * self.kernel
        return sum(self.batch * hw * co * ci * k2 for ci, co in self.layer_channels())

    def activation_bytes(self, itemsize=4):
        """Bytes of the maps kept for backward: the input of every layer plus the output."""
        hw = self.size * self.size * self.batch
        maps = [self.channels] + [co for _, co in self.layer_channels()]
        return sum(c * hw for c in maps) * itemsize

    def as_dict(self, itemsize=4):
        return dict(name=self.name, kernel=self.kernel, layers=self.layers,
                    receptive_field=self.receptive_field, weights=self.weights, params=self.params,
                    params_formula=self.params_formula, macs=self.macs,
                    activation_bytes=self.activation_bytes(itemsize))


def plans(batch=8, channels=64, size=56, channels_mid=None):
    """The four contenders: 5x5 vs two 3x3, 7x7 vs three 3x3."""
    m = channels if channels_mid is None else channels_mid
    kw = dict(channels=channels, channels_mid=m, batch=batch, size=size)
    return [ConvPlan("one 5x5", 5, 1, **kw), ConvPlan("two 3x3", 3, 2, **kw),
            ConvPlan("one 7x7", 7, 1, **kw), ConvPlan("three 3x3", 3, 3, **kw)]


# ---- shrinking an input with unpadded convolutions ----------------------------------------

def shrink(size, kernel=3, stride=1, pool=1):
    """Sizes of an H x H input after each unpadded k x k convolution (stride ``stride``), each
    followed by a ``pool`` x ``pool`` max pool (stride ``pool``) when ``pool`` > 1, until it
    cannot shrink further. Returns the list of sizes, starting with ``size``.

    Stride 1, no pooling: each step removes k - 1, so H reaches 1 after (H - 1) / (k - 1) steps
    (199 -> 197 -> ... -> 1 in 99 steps of 3x3).
    """
    for name, v in (("size", size), ("kernel", kernel), ("stride", stride), ("pool", pool)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    sizes = [size]
    h = size
    while h >= kernel:
        h = (h - kernel) // stride + 1
        if pool > 1:
            if h < pool:
                sizes.append(h)
                break
            h = h // pool
        sizes.append(h)
        if h == 1 or (kernel == 1 and stride == 1 and pool == 1):
            break
    return sizes


def shrink_formula(size, kernel, stride=1, pool=1):
    if stride == 1 and pool == 1:
        exact = (size - 1) % (kernel - 1) == 0 if kernel > 1 else False
        return (f"out = H - (k - 1) per step; steps to 1x1 = (H - 1)/(k - 1) = "
                f"({size} - 1)/{kernel - 1}" + ("" if exact else " (not an integer: stops above 1)"))
    return (f"out = floor((H - k)/s) + 1 = floor((H - {kernel})/{stride}) + 1"
            + (f", then floor(out/{pool}) for the {pool}x{pool} pool" if pool > 1 else ""))


# ---- measurement ---------------------------------------------------------------------------

def _stack_fns(plan, backend, dtype, relu, seed):
    """forward() and forward+backward() closures for ``plan`` on a fastinit backend."""
    import fastinit as fi

    rng = fi.rng.Stream(seed)
    x = rng.normal((plan.batch, plan.channels, plan.size, plan.size), dtype=dtype)
    ws = [fi.init.kaiming_normal((co, ci, plan.kernel, plan.kernel), rng=rng, dtype=dtype)
          for ci, co in plan.layer_channels()]
    bs = [np.zeros(w.shape[0], dtype) for w in ws]

    def forward():
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            y = fi.conv2d(acts[-1], w, b, padding="same", backend=backend)
            if relu and i < len(ws) - 1:
                y = fi.relu(y, backend=backend)
            acts.append(y)
        return acts

    def backward():
        acts = forward()
        dy = acts[-1]
        for i in range(len(ws) - 1, -1, -1):
            if relu and i < len(ws) - 1:
                dy = fi.relu_backward(dy, acts[i + 1], backend=backend)
            dy, _, _ = fi.conv2d_backward(dy, acts[i], ws[i], padding="same", backend=backend)

    return forward, backward


def _torch_fns(plan, dtype, relu, seed):
    import torch
    import torch.nn.functional as F

    tdt = torch.float32 if dtype == np.float32 else torch.float64
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(plan.batch, plan.channels, plan.size, plan.size, dtype=tdt, generator=g)
    ws = [torch.randn(co, ci, plan.kernel, plan.kernel, dtype=tdt, generator=g)
          .mul_(math.sqrt(2.0 / (ci * plan.kernel ** 2))).requires_grad_()
          for ci, co in plan.layer_channels()]
    bs = [torch.zeros(w.shape[0], dtype=tdt, requires_grad=True) for w in ws]
    xg = x.clone().requires_grad_()

    def run(inp):
        y = inp
        for i, (w, b) in enumerate(zip(ws, bs)):
            y = F.conv2d(y, w, b, padding="same")
            if relu and i < len(ws) - 1:
                y = F.relu(y)
        return y

    def forward():
        with torch.no_grad():
            return run(x)

    def backward():
        y = run(xg)
        y.backward(y.detach())

    return forward, backward


def compare(batch=8, channels=64, size=56, channels_mid=None, relu=False, backends=None,
            dtype=np.float32, repeat=3, torch_too=True, progress=None, seed=0):
    """Measure the four contenders; returns a dict of records (see ``fastinit kernels --json``).

    ``backends``: fastinit backends to time (default: every available one but the NumPy
    reference, which is the oracle, not a contender). ``progress``: a callable taking a message,
    called before each measurement.
    """
    import fastinit as fi

    if backends is None:
        backends = [n for n, why in fi.backends.available().items() if why is None and n != "numpy"]
    contenders = plans(batch, channels, size, channels_mid)
    itemsize = np.dtype(dtype).itemsize
    records = [p.as_dict(itemsize) for p in contenders]
    libs = list(backends)
    if torch_too:
        try:
            import torch  # noqa: F401
            libs.append("torch")
        except ImportError:
            pass
    for rec, plan in zip(records, contenders):
        rec["time"] = {}
        for lib in libs:
            if progress:
                progress(f"{plan.name} on {lib}")
            if lib == "torch":
                fwd, bwd = _torch_fns(plan, dtype, relu, seed)
            else:
                fwd, bwd = _stack_fns(plan, lib, dtype, relu, seed)
            rec["time"][lib] = {"forward_s": _timeit(fwd, repeat),
                                "forward_backward_s": _timeit(bwd, repeat)}
    pairs = []
    for big, stack in ((records[0], records[1]), (records[2], records[3])):
        pair = dict(big=big["name"], stack=stack["name"],
                    params_ratio=big["params"] / stack["params"],
                    macs_ratio=big["macs"] / stack["macs"],
                    activation_ratio=big["activation_bytes"] / stack["activation_bytes"],
                    time_ratio={lib: big["time"][lib]["forward_s"] / stack["time"][lib]["forward_s"]
                                for lib in libs})
        pairs.append(pair)
    return dict(config=dict(batch=batch, channels=channels, size=size,
                            channels_mid=channels if channels_mid is None else channels_mid,
                            relu=relu, dtype=np.dtype(dtype).name, repeat=repeat),
                records=records, pairs=pairs, libraries=libs)


def verdict(result):
    """One line drawn from the numbers: what the stack saves, and what it costs."""
    parts = []
    for pair in result["pairs"]:
        times = dict(pair["time_ratio"])
        torch_ratio = times.pop("torch", None)
        speed = ""
        if times:
            lib, best = max(times.items(), key=lambda kv: kv[1])
            speed = (f", forward {best:.2f}x faster ({lib})" if best >= 1
                     else f", forward {1 / best:.2f}x slower ({lib})")
        if torch_ratio is not None:
            speed += f" [torch: {torch_ratio:.2f}x]"
        parts.append(f"{pair['stack']} see what {pair['big']} sees with {pair['params_ratio']:.2f}x "
                     f"fewer weights and multiply-adds{speed}, for "
                     f"{1 / pair['activation_ratio']:.1f}x the activation memory")
    return "; ".join(parts)


def _fmt_bytes(n):
    return f"{n / 2 ** 20:.1f} MiB"


def format_table(result):
    """The comparison as text (what ``fastinit kernels`` prints)."""
    cfg = result["config"]
    lines = [f"input N={cfg['batch']} C={cfg['channels']} {cfg['size']}x{cfg['size']}, "
             f"{cfg['dtype']}, 'same' padding, stride 1"
             + (f", ReLU between 3x3s" if cfg["relu"] else "")
             + (f", mid channels {cfg['channels_mid']}" if cfg["channels_mid"] != cfg["channels"]
                else "")]
    head = f"{'':10s} {'RF':>4s} {'params':>10s}  {'formula':24s} {'GMACs':>7s} {'act.mem':>10s}"
    for lib in result["libraries"]:
        head += f" {lib + ' fwd':>11s} {lib + ' f+b':>11s}"
    lines.append(head)
    for rec in result["records"]:
        row = (f"{rec['name']:10s} {rec['receptive_field']:>2d}x{rec['receptive_field']:<1d} "
               f"{rec['params']:>10,d}  {rec['params_formula']:24s} {rec['macs'] / 1e9:7.2f} "
               f"{_fmt_bytes(rec['activation_bytes']):>10s}")
        for lib in result["libraries"]:
            t = rec["time"][lib]
            row += f" {t['forward_s'] * 1e3:9.1f}ms {t['forward_backward_s'] * 1e3:9.1f}ms"
        lines.append(row)
    for pair in result["pairs"]:
        ratios = ", ".join(f"{lib} {r:.2f}x" for lib, r in pair["time_ratio"].items())
        lines.append(f"{pair['stack']} vs {pair['big']}: weights and MACs / {pair['params_ratio']:.2f}"
                     f", activation memory x {1 / pair['activation_ratio']:.2f}, forward time "
                     f"saving {ratios}")
    lines.append("verdict: " + verdict(result))
    return "\n".join(lines)


def to_json(result):
    return json.dumps(result, indent=2, sort_keys=True)


def plot(result, path):
    """Bar charts of parameters, multiply-adds and forward time for the four contenders."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result["records"]
    names = [r["name"] for r in recs]
    colors = ["#c0504d", "#4f81bd", "#c0504d", "#4f81bd"]
    panels = [("parameters", [r["params"] for r in recs]),
              ("GMACs (forward)", [r["macs"] / 1e9 for r in recs]),
              ("activation memory (MiB)", [r["activation_bytes"] / 2 ** 20 for r in recs])]
    for lib in result["libraries"]:
        panels.append((f"{lib} forward+backward (ms)",
                       [r["time"][lib]["forward_backward_s"] * 1e3 for r in recs]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, values) in zip(np.atleast_1d(axes), panels):
        ax.bar(names, values, color=colors)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    cfg = result["config"]
    fig.suptitle(f"3x3 stacks vs one large kernel, N={cfg['batch']} C={cfg['channels']} "
                 f"{cfg['size']}x{cfg['size']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
