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
import textwrap

import numpy as np

from . import timing


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
        """The parameter count in C (channels) and M (channels between the stacked layers)."""
        k2 = self.kernel * self.kernel
        n = self.layers
        if n == 1:
            return f"{k2}C^2 + C"
        if self.channels_mid == self.channels:
            return f"{n}*{k2}C^2 + {n}C"
        inner = f"2CM + {n - 2}M^2" if n > 2 else "2CM"
        if n == 3:
            inner = "2CM + M^2"
        return f"{k2}({inner}) + {n - 1}M + C"

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
                f"({size} - 1)/{kernel - 1}"
                + ("" if exact else " (not an integer: stops above 1)"))
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



PHASES = ("forward", "forward_backward")
#: How every ratio in the result reads (text and JSON alike).
CONVENTION = ("every ratio is the 3x3 stack's value divided by the big kernel's: below 1 the "
              "stack needs less (a time ratio below 1: the stack is faster)")


def compare(batch=8, channels=64, size=56, channels_mid=None, relu=False, backends=None,
            dtype=np.float32, budget=30.0, precision=0.03, torch_too=True, progress=None, seed=0,
            verdict_backend=None):
    """Measure the four contenders; returns a dict of records (see ``fastinit kernels --json``).

    ``backends``: fastinit backends to time (default: every available one but the NumPy
    reference, which is the oracle, not a contender). Timing follows
    :func:`fastinit.lab.timing.measure`: alternating rounds, each pair (3x3 stack, big kernel)
    on the same library and pass timed back to back, until the verdict backend's time ratios
    have 95% intervals within ``precision`` or ``budget`` seconds have passed.
    ``progress(round, seconds, widest)`` is called after each round. ``verdict_backend``: the
    backend the verdict speaks for (default: fastinit's default backend when it is among
    ``backends``, else the first of them).
    """
    import fastinit as fi

    for name, v in (("batch", batch), ("channels", channels), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if channels_mid is not None and (isinstance(channels_mid, bool)
                                     or not isinstance(channels_mid, int) or channels_mid < 1):
        raise ValueError(f"channels_mid must be a positive integer, got {channels_mid!r}")
    if backends is None:
        backends = [n for n, why in fi.backends.available().items() if why is None and n != "numpy"]
    backends = list(backends)
    for b in backends:
        why = fi.backends.available().get(b, "unknown backend")
        if why is not None:
            raise ValueError(f"backend {b!r} cannot be timed: {why}")
    if not backends:
        raise ValueError("no fastinit backend to time (numba and c are both unavailable)")
    if verdict_backend is None:
        default = fi.backends.current()
        verdict_backend = default if default in backends else backends[0]
    contenders = plans(batch, channels, size, channels_mid)
    itemsize = np.dtype(dtype).itemsize
    records = [p.as_dict(itemsize) for p in contenders]
    libs = list(backends)
    if torch_too:
        try:
            import torch
        except ImportError:
            pass
        else:
            torch.set_num_threads(fi.get_num_threads())
            libs.append("torch")
    fns = {}
    for plan in contenders:
        for lib in libs:
            if lib == "torch":
                fwd, fb = _torch_fns(plan, dtype, relu, seed)
            else:
                fwd, fb = _stack_fns(plan, lib, dtype, relu, seed)
            fns[(lib, plan.name, "forward")] = fwd
            fns[(lib, plan.name, "forward_backward")] = fb
    couples = ((records[1], records[0]), (records[3], records[2]))   # (stack, big)
    wanted = [((lib, s["name"], ph), (lib, b["name"], ph))
              for s, b in couples for lib in libs for ph in PHASES]
    # the verdict's backend decides when the intervals are tight enough; the other libraries
    # are timed in the same rounds and shown with the intervals they reach
    deciding = [p for p in wanted if p[0][0] == verdict_backend]
    m = timing.measure(fns, wanted, budget=budget, precision=precision, progress=progress,
                       decide=deciding)
    for rec in records:
        rec["time"] = {lib: {f"{ph}_s": m.median((lib, rec["name"], ph)) for ph in PHASES}
                       for lib in libs}
    pairs = []
    for stack, big in couples:
        time_ratio = {}
        for lib in libs:
            time_ratio[lib] = {}
            for ph in PHASES:
                r, lo, hi = m.ratios[((lib, stack["name"], ph), (lib, big["name"], ph))]
                time_ratio[lib][ph] = dict(ratio=r, low=lo, high=hi,
                                           words=timing.in_words(r, lo, hi))
        pairs.append(dict(stack=stack["name"], big=big["name"],
                          params_ratio=stack["params"] / big["params"],
                          macs_ratio=stack["macs"] / big["macs"],
                          activation_ratio=stack["activation_bytes"] / big["activation_bytes"],
                          time_ratio=time_ratio))
    result = dict(config=dict(batch=batch, channels=channels, size=size,
                              channels_mid=channels if channels_mid is None else channels_mid,
                              relu=relu, dtype=np.dtype(dtype).name, budget_s=budget,
                              precision=precision, threads=fi.get_num_threads()),
                  convention=CONVENTION, records=records, pairs=pairs, libraries=libs,
                  verdict_backend=verdict_backend, measurement=m.as_dict(),
                  warnings=list(m.warnings))
    result["verdict"] = verdict(result)
    return result


def _times_fewer(ratio):
    return f"{1 / ratio:.2f}x fewer" if ratio < 1 else f"{ratio:.2f}x more"


def verdict(result):
    """The verdict in plain words, for one backend (``result['verdict_backend']``). Time is
    judged only on a machine that was not busy, and only as far as the intervals allow."""
    lib = result["verdict_backend"]
    busy = result["measurement"]["busy"]
    parts = []
    for pair in result["pairs"]:
        t = pair["time_ratio"][lib]
        same = abs(pair["params_ratio"] - pair["macs_ratio"]) < 0.005
        cost = (f"{_times_fewer(pair['params_ratio'])} parameters and multiply-adds" if same else
                f"{_times_fewer(pair['params_ratio'])} parameters, "
                f"{_times_fewer(pair['macs_ratio'])} multiply-adds")
        speed = ("" if busy else f"; forward {t['forward']['words']}, forward+backward "
                                 f"{t['forward_backward']['words']}")
        parts.append(f"{pair['stack']} see what {pair['big']} sees with {cost} and keep "
                     f"{pair['activation_ratio']:.2f}x the activation memory{speed}")
    text = f"on {lib}: " + "; ".join(parts) + "."
    if busy:
        text += (" Time: no verdict, the machine was busy (see the warning); run again when it "
                 "is idle.")
    return text


def _fmt_bytes(n):
    return f"{n / 2 ** 20:.1f} MiB"


def _table(header, rows, right=()):
    """Columns as wide as their widest cell; columns named in ``right`` right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out = []
    for r in [header] + rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return out


def _lib_label(lib):
    return "torch" if lib == "torch" else lib


def format_table(result):
    """The comparison as text (what ``fastinit kernels`` prints)."""
    cfg = result["config"]
    mid = cfg["channels_mid"] != cfg["channels"]
    lines = [f"input N={cfg['batch']} C={cfg['channels']} {cfg['size']}x{cfg['size']}, "
             f"{cfg['dtype']}, 'same' padding, stride 1, {cfg['threads']} threads"
             + (", ReLU between the 3x3s" if cfg["relu"] else "")
             + (f", M={cfg['channels_mid']} channels between the 3x3s" if mid else ""), ""]
    rows = [[r["name"], f"{r['receptive_field']}x{r['receptive_field']}", f"{r['params']:,d}",
             r["params_formula"], f"{r['macs'] / 1e9:.2f}", _fmt_bytes(r["activation_bytes"])]
            for r in result["records"]]
    lines += _table(["", "RF", "params", "params formula", "GMACs", "act. mem"], rows,
                    right={1, 2, 4, 5})
    lines.append("")
    libs = result["libraries"]
    head = [""] + [f"{_lib_label(l)} {ph}" for l in libs for ph in ("fwd", "f+b")]
    rows = [[r["name"]] + [f"{r['time'][l][f'{ph}_s'] * 1e3:.1f} ms" for l in libs
                           for ph in PHASES] for r in result["records"]]
    lines += _table(head, rows, right=set(range(1, len(head))))
    lines.append("")
    m = result["measurement"]
    lines.append(f"time ratio, 3x3 stack / big kernel: median of {m['rounds']} alternating "
                 f"rounds ({m['seconds']:.0f} s) and its 95% interval")
    head = ["", ""] + [_lib_label(l) for l in libs]
    rows = []
    for p in result["pairs"]:
        for ph, short in zip(PHASES, ("fwd", "f+b")):
            row = [f"{p['stack']} / {p['big']}" if ph == "forward" else "", short]
            for lib in libs:
                t = p["time_ratio"][lib][ph]
                hi = "inf" if math.isinf(t["high"]) else f"{t['high']:.2f}"
                row.append(f"{t['ratio']:.2f} ({t['low']:.2f}-{hi})")
            rows.append(row)
    lines += _table(head, rows, right=set(range(2, len(head))))
    for p in result["pairs"]:
        lines.append(f"{p['stack']} / {p['big']}: params {p['params_ratio']:.2f}, MACs "
                     f"{p['macs_ratio']:.2f}, activation memory {p['activation_ratio']:.2f}")
    legend = ("legend: RF = receptive field (the input square one output sees); params = "
              "weights + biases, C = channels" + (", M = channels between the 3x3s" if mid else "")
              + "; GMACs = billions of multiply-adds in a forward pass; act. mem = activation "
              "maps kept for backward (the input and every layer's output); fwd = forward pass, "
              "f+b = forward + backward (dx and dw), median time; torch = PyTorch CPU. "
              "Ratios: below 1 the 3x3 stack needs less.")
    lines += [""] + _wrap(legend)
    for w in result["warnings"]:
        lines += _wrap(f"warning: {w}")
    lines += _wrap("verdict " + result["verdict"])
    return "\n".join(lines)


def _wrap(text, width=100):
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)


def to_json(result):
    return json.dumps(timing.json_safe(result), indent=2, sort_keys=True)


BIG_COLOR, STACK_COLOR = "#c0504d", "#4f81bd"


def plot(result, path):
    """Six panels a reader can take in at once: parameters, multiply-adds, activation memory,
    forward and forward+backward time per library (big kernel and 3x3 stack side by side), and
    the time ratios with their 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.patches import Patch

    recs = result["records"]
    cfg = result["config"]
    libs = result["libraries"]
    groups = [f"{recs[1]['name']}\nvs {recs[0]['name']}",
              f"{recs[3]['name']}\nvs {recs[2]['name']}"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.2))
    x = np.arange(2)
    wd = 0.36

    def pairs_bar(ax, values, title, ylabel):
        big = [values[0], values[2]]
        stack = [values[1], values[3]]
        ax.bar(x - wd / 2, big, wd, color=BIG_COLOR)
        ax.bar(x + wd / 2, stack, wd, color=STACK_COLOR)
        ax.set_xticks(x, groups, fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)

    pairs_bar(axes[0, 0], [r["params"] / 1e3 for r in recs], "parameters", "thousands")
    pairs_bar(axes[0, 1], [r["macs"] / 1e9 for r in recs], "multiply-adds, forward",
              "billions (GMACs)")
    pairs_bar(axes[0, 2], [r["activation_bytes"] / 2 ** 20 for r in recs],
              "activation memory kept for backward", "MiB")
    for ax, ph, title in ((axes[1, 0], "forward", "forward time"),
                          (axes[1, 1], "forward_backward", "forward + backward time")):
        xl = np.arange(len(libs))
        for j, (i_big, i_stack) in enumerate(((0, 1), (2, 3))):
            off = (j - 0.5) * 0.42
            ax.bar(xl + off - 0.1, [recs[i_big]["time"][l][f"{ph}_s"] * 1e3 for l in libs], 0.2,
                   color=BIG_COLOR)
            ax.bar(xl + off + 0.1, [recs[i_stack]["time"][l][f"{ph}_s"] * 1e3 for l in libs],
                   0.2, color=STACK_COLOR)
        ax.set_xticks(xl, [f"{_lib_label(l)}\n5x5 | 7x7" for l in libs], fontsize=9)
        ax.set_title(title + " (median)", fontsize=10)
        ax.set_ylabel("ms", fontsize=9)
    ax = axes[1, 2]
    labels, vals, los, his, colors = [], [], [], [], []
    for p in result["pairs"]:
        for lib in libs:
            for ph, short in (("forward", "fwd"), ("forward_backward", "f+b")):
                t = p["time_ratio"][lib][ph]
                # an unknown bound (0 or inf: too few rounds) is drawn as a factor of 2
                lo = t["low"] if t["low"] > 0 else t["ratio"] / 2
                hi = t["high"] if math.isfinite(t["high"]) else 2 * t["ratio"]
                labels.append(f"{p['stack']} / {p['big'].split()[-1]}, {_lib_label(lib)}, "
                              f"{short}")
                vals.append(t["ratio"])
                los.append(t["ratio"] - lo)
                his.append(hi - t["ratio"])
                colors.append(STACK_COLOR if lib == result["verdict_backend"] else "0.55")
    y = np.arange(len(vals))[::-1]
    for yi, v, lo, hi, c in zip(y, vals, los, his, colors):
        ax.errorbar([v], [yi], xerr=[[lo], [hi]], fmt="o", color=c, ms=4, capsize=2)
    ax.axvline(1.0, color="0.4", lw=1, ls="--")
    ax.set_xscale("log")   # 2x faster and 2x slower lie equally far from 1
    lows = [v - d for v, d in zip(vals, los)]
    highs = [v + d for v, d in zip(vals, his)]
    lo_x, hi_x = min(min(lows) / 1.2, 0.4), max(max(highs) * 1.2, 2.5)
    ax.set_xlim(lo_x, hi_x)
    exps = [e for e in range(-10, 11) if lo_x <= 2.0 ** e <= hi_x]
    step = max(-(-len(exps) // 5), 1)        # at most ~5 labels, 1 always among them
    ax.set_xticks([2.0 ** e for e in exps if e % step == 0])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if v >= 1 else f"1/{1 / v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y, labels, fontsize=7)
    for tick, c in zip(ax.get_yticklabels(), colors):
        tick.set_color("black" if c == STACK_COLOR else "0.4")
    ax.set_xlabel("3x3 stack time / big kernel time\n(left of 1: the stack is faster)", fontsize=9)
    ax.set_title(f"time ratio, 95% interval (verdict: {result['verdict_backend']})",
                 fontsize=10)
    if result["measurement"].get("busy"):
        share = result["measurement"].get("others_cpu_share") or 0
        fig.text(0.5, 0.935, f"the machine was busy while timing (other processes used "
                             f"{share:.0%} of the CPUs): the times describe a loaded machine",
                 ha="center", color="#b22222", fontsize=9)
    fig.legend(handles=[Patch(color=BIG_COLOR, label="one big kernel (5x5 or 7x7)"),
                        Patch(color=STACK_COLOR, label="stack of 3x3 (same receptive field)")],
               loc="lower center", ncol=2, fontsize=9, frameon=False)
    mid = (f", M={cfg['channels_mid']} channels between the 3x3s"
           if cfg["channels_mid"] != cfg["channels"] else "")
    fig.suptitle(f"3x3 stacks vs one large kernel: N={cfg['batch']} C={cfg['channels']} "
                 f"{cfg['size']}x{cfg['size']} {cfg['dtype']}{mid}"
                 + (", ReLU between" if cfg["relu"] else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95 if result["measurement"].get("busy") else 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
