"""Signal propagation at initialization: does the signal vanish, explode or stay healthy?

A deep MLP (``depth`` hidden layers of ``width`` units and one activation) is initialized with
each scheme to compare, a batch of real digits goes forward, the cross-entropy gradient goes
back, and at every layer we record the std of the activations and of the back-propagated
gradient - measured by fastinit's own kernels - beside what theory predicts:

* forward, the mean-field recursion (Poole et al. 2016; for linear units it is Glorot & Bengio's
  Var[a_l] = n_{l-1} Var[W_l] Var[a_{l-1}]): the pre-activation variance is
  q_l = n_{l-1} Var[W_l] E[phi(z)^2] + Var[b_l], z ~ N(0, q_{l-1}), with the Gaussian expectation taken by
  Gauss-Hermite quadrature, so saturating units (tanh, sigmoid) are predicted too;
* backward, Var[g_{l-1}] = n_l Var[W_l] E[phi'(z_l)^2] Var[g_l] (Glorot & Bengio eq. 7, He et al.
  eq. 13), started from the measured gradient at the top.

Defaults show the two classic cases: a 10-layer tanh network with the "standard" init against
Xavier's, and a 30-layer ReLU network with Xavier against He's.
"""
import math
import textwrap

import numpy as np

from . import presets

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")

CLASSIC = [
    dict(activation="tanh", depth=10, inits=("standard", "xavier_uniform")),
    dict(activation="relu", depth=30, inits=("xavier_normal", "he_normal")),
]


def _phi(name):
    if name == "tanh":
        return np.tanh, lambda z: 1.0 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = lambda z: 1.0 / (1.0 + np.exp(-z))
        return s, lambda z: s(z) * (1.0 - s(z))
    if name == "relu":
        return lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return (lambda z: np.where(z > 0, z, 0.01 * z),
                lambda z: np.where(z > 0, 1.0, 0.01))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


# an even node count: no node at 0, where the ReLU derivative jumps
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(100)
_GH_W = _GH_W / _GH_W.sum()


def _gauss(f, q):
    """E[f(z)] for z ~ N(0, q) (probabilists' Gauss-Hermite, 100 nodes)."""
    return float(np.sum(_GH_W * f(math.sqrt(max(q, 0.0)) * _GH_X)))


def predict(init, activation, widths, input_second_moment, top_grad_var, batch_norm=False):
    """Predicted per-layer activation std and gradient std for a (widths[0] -> ... ) MLP.

    ``widths`` = [n_0, n_1, ..., n_L] (input, then each hidden layer). Returns two lists of
    length L: activation std after each hidden layer, gradient std at each hidden layer's
    output (d loss / d a_l). With ``batch_norm`` every pre-activation is renormalised to unit
    variance, and the backward divides by the pre-normalisation variance.
    """
    f, df = _phi(activation)
    q, raw = [], []
    m2 = input_second_moment
    acts = []
    for l in range(1, len(widths)):
        var_w = presets.weight_variance(init, widths[l - 1], widths[l])
        ql = widths[l - 1] * var_w * m2 + presets.bias_variance(init, widths[l - 1])
        raw.append(ql)
        if batch_norm:
            ql = 1.0
        q.append(ql)
        mean = _gauss(f, ql)
        m2 = _gauss(lambda z: f(z) ** 2, ql)
        acts.append(math.sqrt(max(m2 - mean * mean, 0.0)))
    grads = [0.0] * len(q)
    g = top_grad_var
    for l in range(len(q) - 1, -1, -1):
        grads[l] = math.sqrt(max(g, 0.0))
        if l > 0:  # through W_{l+1} (widths[l] -> widths[l+1]) and phi'(z_{l+1})
            var_w = presets.weight_variance(init, widths[l], widths[l + 1])
            g = widths[l + 1] * var_w * _gauss(lambda z: df(z) ** 2, q[l]) * g
            if batch_norm:
                g /= max(raw[l], 1e-300)
    return acts, grads


def _bins(activation):
    """Histogram edges for the activations: tanh and sigmoid cover their whole range; ReLU's
    positive part spans decades as a signal vanishes, so its edges are logarithmic (10 per
    decade, 1e-8 to 30); leaky ReLU's reach a little below 0."""
    if activation == "tanh":
        return np.linspace(-1.0, 1.0, 51)
    if activation == "sigmoid":
        return np.linspace(0.0, 1.0, 51)
    if activation == "relu":
        return np.logspace(-8, 1.5, 96)
    return np.linspace(-0.5, 2.0, 51)


def build(depth, width, activation, init, seed, n_in=64, n_out=10, batch_norm=False):
    from .. import nn

    act = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU,
           "leaky_relu": nn.LeakyReLU}[activation]
    layers = []
    n = n_in
    for _ in range(depth):
        layers.append(nn.Linear(n, width, init=presets.spec(init)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        n = width
    layers.append(nn.Linear(n, n_out, init=presets.spec(init)))
    return nn.Sequential(*layers, seed=seed)


def run(depth=10, width=256, activation="tanh", inits=("standard", "xavier_uniform"),
        batch_norm=False, batch=512, seed=0):
    """Measure one network per init; returns a dict of per-layer records."""
    from .. import nn

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    for name, v in (("depth", depth), ("width", width), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    xtr, ytr, _, _ = nn.data.digits(seed=seed)
    x = xtr[:batch]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)  # standardised inputs, as Glorot & Bengio feed
    y = ytr[:batch]
    out = dict(config=dict(depth=depth, width=width, activation=activation, batch_norm=batch_norm,
                           batch=int(len(x)), seed=seed), runs=[])
    for init in inits:
        presets.spec(init)
        net = build(depth, width, activation, init, seed, batch_norm=batch_norm)
        probe = nn.Probe(net, bins=_bins(activation))
        crit = nn.SoftmaxCrossEntropy()
        loss = crit(net(x), y)
        net.backward(crit.backward())
        probe.detach()
        act_layers = [r for r in probe.records if r["phase"] == "forward"
                      and r["layer"].split(":")[1].lower().startswith(activation.replace("_", ""))]
        grad_layers = [r for r in probe.records if r["phase"] == "backward"
                       and r["layer"].split(":")[1].lower().startswith(activation.replace("_", ""))]
        grad_layers = sorted(grad_layers, key=lambda r: int(r["layer"].split(":")[0]))
        # gradient w.r.t. each hidden activation = what flows *into* the activation's backward
        # from above, i.e. the output gradient of the next Linear's backward
        lin_back = {int(r["layer"].split(":")[0]): r for r in probe.records
                    if r["phase"] == "backward"}
        measured_grad = []
        for r in act_layers:
            idx = int(r["layer"].split(":")[0])
            measured_grad.append(lin_back[idx + 1]["grad_std"])
        widths = [x.shape[1]] + [width] * depth
        m2 = float(np.mean(x.astype(np.float64) ** 2))
        pred_act, pred_grad = predict(init, activation, widths, m2, measured_grad[-1] ** 2,
                                      batch_norm)
        out["runs"].append(dict(
            init=init, description=presets.INITS[init][0], loss=loss,
            activation_std=[r["std"] for r in act_layers], predicted_activation_std=pred_act,
            gradient_std=measured_grad, predicted_gradient_std=pred_grad,
            saturated=[r.get("saturated", r.get("dead")) for r in act_layers],
            zeros=[r.get("zeros") for r in act_layers],
            act_hist=[r["hist"].tolist() for r in act_layers],
            act_outside=[r["below"] + r["above"] for r in act_layers],
            grad_hist=[lin_back[int(r["layer"].split(":")[0]) + 1]["hist"].tolist()
                       for r in act_layers],
            grad_outside=[lin_back[int(r["layer"].split(":")[0]) + 1]["below"]
                          + lin_back[int(r["layer"].split(":")[0]) + 1]["above"]
                          for r in act_layers],
            bins=probe.bins.tolist(), grad_bins=probe.grad_bins.tolist()))
    return out


def format_table(result):
    cfg = result["config"]
    lines = [f"{cfg['depth']}-layer {cfg['activation']} MLP, width {cfg['width']}, "
             f"batch {cfg['batch']} digits" + (", batch norm" if cfg["batch_norm"] else "")]
    relu_like = cfg["activation"] in ("relu", "leaky_relu")
    sat = "dead" if relu_like else "saturated"
    for run in result["runs"]:
        lines.append(f"\n{run['init']}: {run['description']}  (initial loss {run['loss']:.3f})")
        lines.append(f"{'layer':>5s} {'act std':>10s} {'predicted':>10s} {'grad std':>10s} "
                     f"{'predicted':>10s} {sat:>9s}")
        for i in range(len(run["activation_std"])):
            lines.append(f"{i + 1:5d} {run['activation_std'][i]:10.3g} "
                         f"{run['predicted_activation_std'][i]:10.3g} "
                         f"{run['gradient_std'][i]:10.3g} {run['predicted_gradient_std'][i]:10.3g} "
                         f"{run['saturated'][i] if run['saturated'][i] is not None else 0:9.1%}")
        a = run["activation_std"]
        g = run["gradient_std"]
        lines.append(f"  activation std first -> last layer: x{a[-1] / max(a[0], 1e-30):.3g}; "
                     f"gradient std last -> first: x{g[0] / max(g[-1], 1e-30):.3g}")
    what = ("dead = units that are 0 for every input of the batch" if relu_like else
            "saturated = outputs with |tanh| > 0.97" if cfg["activation"] == "tanh" else
            "saturated = outputs below 0.03 or above 0.97")
    lines.append("")
    lines += textwrap.wrap(f"act std: std of each hidden layer's output over the batch; grad std: "
                           f"std of d loss / d output; predicted: the variance recursion's "
                           f"value; {what}", 100, subsequent_indent="  ")
    runs = result["runs"]
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            if relu_like and runs[i]["saturated"] == runs[j]["saturated"]:
                lines += textwrap.wrap(
                    f"{runs[i]['init']} and {runs[j]['init']} have the same dead units: from one "
                    f"seed both draw the same numbers, each layer scaled by its own constant "
                    f"(zero biases), and relu(c*z) = c*relu(z) for c > 0, so the same units are "
                    f"0; only the scale differs", 100, subsequent_indent="  ")
    return "\n".join(lines)


def plot(results, path):
    """One row per (experiment, init), in the manner of Glorot & Bengio's figures 6 and 7:
    the distribution of each hidden layer's activations and of its back-propagated gradient (one
    curve per layer, coloured by depth), and each layer's measured std beside the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.cm import ScalarMappable

    rows = [(res, run) for res in results for run in res["runs"]]
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 3.3 * len(rows)), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1, 1, 1.05]))
    cmap = plt.get_cmap("viridis")
    for (res, run), ax in zip(rows, axes):
        cfg = res["config"]
        n = len(run["act_hist"])
        norm = Normalize(1, max(n, 2))
        relu = cfg["activation"] == "relu"
        name = f"{cfg['depth']}-layer {cfg['activation']}, {run['init']}"
        bins = np.asarray(run["bins"])
        for i, h in enumerate(run["act_hist"]):
            h = np.asarray(h, float)
            total = max(h.sum() / max(1.0 - run["act_outside"][i], 1e-12), 1.0)
            ax[0].stairs(h / total, bins, color=cmap(norm(i + 1)), lw=1)
        if relu:
            ax[0].set_xscale("log")
            zeros = [z for z in run["zeros"] if z is not None]
            ax[0].set_xlabel("activation value (positive outputs; log scale)", fontsize=8)
            ax[0].set_ylabel("fraction of positive\noutputs per bin", fontsize=8)
            note = f"exactly 0 (not drawn): {min(zeros):.0%}-{max(zeros):.0%} of outputs"
        else:
            ax[0].set_xlabel("activation value", fontsize=8)
            ax[0].set_ylabel("fraction of outputs\nper bin", fontsize=8)
            note = ""
        out = max(run["act_outside"])
        if out >= 0.0005:
            note += ("; " if note else "") + f"outside the axis (not drawn): up to {out:.1%}"
        if note:
            ax[0].text(0.02, 0.97, note, transform=ax[0].transAxes, fontsize=7, va="top")
        ax[0].set_ylim(0, ax[0].get_ylim()[1] * 1.15)   # room for the note
        ax[0].set_title(f"{name}: activations", fontsize=9)
        gb = np.asarray(run["grad_bins"])
        for i, h in enumerate(run["grad_hist"]):
            h = np.asarray(h, float)
            total = max(h.sum() / max(1.0 - run["grad_outside"][i], 1e-12), 1.0)
            ax[1].stairs(h / total, gb, color=cmap(norm(i + 1)), lw=1)
        ax[1].set_ylim(0, ax[1].get_ylim()[1] * 1.15)
        ax[1].set_title(f"{name}: back-propagated gradients", fontsize=9)
        ax[1].set_xlabel("gradient / its std in that layer", fontsize=8)
        ax[1].set_ylabel("fraction of values\nper bin", fontsize=8)
        gout = max(run["grad_outside"])
        ax[1].text(0.02, 0.97, f"beyond +-{gb[-1]:g} std (not drawn): up to {gout:.1%}",
                   transform=ax[1].transAxes, fontsize=7, va="top")
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax[1], pad=0.02, fraction=0.05)
        bar.set_label("layer", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        layers = np.arange(1, n + 1)
        a = ax[2]
        a.semilogy(layers, run["predicted_activation_std"], "-", color="C0", lw=2, alpha=0.45,
                   label="activation std, predicted")
        a.semilogy(layers, run["activation_std"], "o", color="C0", ms=3.5,
                   label="activation std, measured")
        a.semilogy(layers, run["predicted_gradient_std"], "-", color="C3", lw=2, alpha=0.45,
                   label="gradient std, predicted")
        a.semilogy(layers, run["gradient_std"], "s", color="C3", ms=3.5,
                   label="gradient std, measured")
        a.set_title("std per layer: measured (markers) and predicted (lines)", fontsize=9)
        a.set_xlabel("hidden layer", fontsize=8)
        a.set_ylabel("std (log scale)", fontsize=8)
        a.legend(fontsize=7, loc="best", framealpha=0.85)
        for x in ax:
            x.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
