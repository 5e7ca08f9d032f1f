"""Training with each initialization: what the init does to learning, on real digits.

``run()`` trains the same network (an MLP, or a small CNN: 3x3 conv, batch norm, pooling) on
scikit-learn's handwritten digits once per initialization, from one seed, and records loss and
accuracy per epoch; ``toy()`` trains a small MLP on a 2-D set (moons, circles, spirals, xor) and
draws its decision boundary, as in the deeplearning.ai notes on initialization.
Same seed, same numbers.
"""
import math
import textwrap
import time

import numpy as np

from . import presets

DEFAULT_INITS = ("zeros", "too_small", "xavier_normal", "he_normal", "too_large", "normal",
                 "torch_default")

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")

#: the settings one run may vary (every other one is shared by all runs of an experiment)
RUN_KEYS = ("init", "activation", "depth", "width", "batch_norm", "clip_norm", "clip_value")

#: The classic experiments over training, each the defaults of one ``fastinit train`` option
#: (an option given on the command line wins over its experiment's default). Settings chosen
#: so the published effect shows on the digits within a minute on 2 cores:
#:
#: * depth (He et al. 2015): plain ReLU MLPs of 10, 20 and 30 hidden layers, Xavier against He;
#:   a small learning rate, since a 30-layer net at lr 0.05 diverges with either init;
#: * probe (Glorot & Bengio 2010): a 4 x 128 sigmoid net with the "standard" init, whose top
#:   hidden layer is driven to saturation near 0 within 60 steps, against tanh with Xavier's;
#: * clip: the deep linear net of the exploding-gradient example (10 x 64, identity activations,
#:   weights 1.5 I): the gradient grows as 1.5^L, so unclipped SGD blows up within a few steps
#:   on every build and seed (the growth is structural, not rounding), while either clipping
#:   trains it;
#: * batch_norm: 6 x 64 ReLU nets with inits too small or too large to train, with and without
#:   batch norm before every activation.
EXPERIMENTS = {
    "depth": dict(inits=("xavier_normal", "he_normal"), depth=(10, 20, 30), width=64, lr=0.002,
                  epochs=30),
    "probe": dict(runs=[dict(init="standard", activation="sigmoid"),
                        dict(init="xavier_uniform", activation="tanh")],
                  depth=4, width=128, lr=0.1, epochs=10, probe_every=5),
    "clip": dict(inits=("identity_1.5",), activation="linear", depth=10, width=64, lr=0.01,
                 epochs=10, clip_norm=(None, 1.0), clip_value=(0.01,)),
    "batch_norm": dict(inits=("too_small", "too_large", "normal"), batch_norm=(False, True),
                       depth=6, width=64, lr=0.02, epochs=20),
}

#: Glorot & Bengio's 2nd and 98th percentiles, the outer lines of the dynamics figure
PERCENTILES = (2.0, 98.0)


def _activation(name):
    from .. import nn

    table = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
             "leaky_relu": nn.LeakyReLU, "linear": nn.Identity}
    if name not in table:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return table[name]


def build(model, init, seed, activation="relu", hidden=(128, 128), batch_norm=False, n_in=64,
          image_size=8):
    """The network of one run: ``model`` "mlp" (``hidden`` units per hidden layer, a batch norm
    before every activation with ``batch_norm``) or "cnn" (two 3x3 conv + batch norm + pool
    blocks on ``image_size`` x ``image_size`` images); 10 outputs."""
    from .. import nn

    act = _activation(activation)
    spec = presets.spec(init)
    if model == "mlp":
        layers, n = [], n_in
        for h in hidden:
            layers.append(nn.Linear(n, h, init=spec))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(act())
            n = h
        layers.append(nn.Linear(n, 10, init=spec))
        return nn.Sequential(*layers, seed=seed, input_grad=False)
    if model == "cnn":
        side = image_size // 2 // 2
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, init=spec), nn.BatchNorm2d(16), act(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, init=spec), nn.BatchNorm2d(32), act(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * side * side, 10, init=spec),
            seed=seed, input_grad=False)
    raise ValueError(f"model must be 'mlp' or 'cnn', got {model!r}")


def _accuracy(net, x, y, batch=512):
    net.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    net.train()
    return correct / len(x)


def _bar(total, desc, status):
    """A tqdm bar on a terminal; None on a pipe or a log (tqdm's carriage-return updates would
    flood it), when tqdm is missing or when progress is off."""
    if status is None or not status.enabled or not status.tty:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the lab extra; without it, one line per init
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="epoch", file=status.stream)


def _grad_norm(params):
    """The global L2 norm of every gradient (what clip_grad_norm_ measures), in float64."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(np.square(p.grad, dtype=np.float64).sum())
    return math.sqrt(total)


def distinct_units(net, rtol=1e-5):
    """For each parametrised layer but the last (the hidden layers): how many of its units
    (a Linear's rows, a Conv2d's filters, each with its bias) differ from every other. Two units
    are the same when every weight agrees within ``rtol`` of the layer's largest weight: a
    network whose units started equal computes them with the same arithmetic, but a kernel may
    sum a unit's products in another order, so they can differ in the last bits. None for a
    layer whose weights are not finite."""
    counts = []
    layers = [m for m in net.modules() if hasattr(m, "reset_parameters")]
    for m in layers[:-1]:
        w = np.asarray(m.weight.data, np.float64).reshape(m.weight.shape[0], -1)
        if m.bias is not None:
            w = np.concatenate([w, np.asarray(m.bias.data, np.float64)[:, None]], axis=1)
        if not np.isfinite(w).all():      # a diverged net: NaN equals nothing, no count
            counts.append(None)
            continue
        tol = rtol * max(float(np.abs(w).max()), 1e-30)
        groups = []
        for row in w:
            if not any(np.all(np.abs(row - g) <= tol) for g in groups):
                groups.append(row)
        counts.append(len(groups))
    return counts


class _Dynamics:
    """Per-layer statistics of the activation layers on a fixed batch, recorded every ``every``
    steps of a training run (Glorot & Bengio 2010 recorded theirs on 300 fixed test examples)."""

    def __init__(self, net, x, every):
        from .. import nn

        self.net, self.x, self.every = net, x, every
        acts = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity)
        self.names = [m._name for m in net.modules() if isinstance(m, acts)]
        self.probe = nn.Probe(net, histograms=False, percentiles=PERCENTILES).detach()

    def record(self, step):
        self.probe.step = step
        self.probe.attach()
        self.net.eval()
        self.net(self.x)
        self.net.train()
        self.probe.detach()

    def result(self):
        by_step = {}
        for r in self.probe.records:
            if r["layer"] in self.names:
                by_step.setdefault(r["step"], {})[r["layer"]] = r
        steps = sorted(by_step)
        out = dict(steps=steps, layers=self.names, examples=len(self.x))
        for key in ("mean", "std"):
            out[key] = [[by_step[s][n][key] for n in self.names] for s in steps]
        for i, q in enumerate(PERCENTILES):
            out[f"p{q:g}"] = [[by_step[s][n]["percentiles"][i] for n in self.names]
                              for s in steps]
        first = by_step[steps[0]][self.names[0]] if steps else {}
        kind = "saturated" if "saturated" in first else "zeros" if "zeros" in first else None
        out["saturation_kind"] = kind
        out["saturated"] = ([[by_step[s][n][kind] for n in self.names] for s in steps]
                            if kind else None)
        return out


def fit(net, data, epochs, batch, lr, momentum, seed, target=None, clip_norm=None,
        clip_value=None, probe_every=None, probe_size=300, progress=None):
    """SGD on ``data`` = (x_train, y_train, x_test, y_test); returns the history dict.

    The history has the mean loss and the test accuracy of every epoch, the training accuracy
    after the last (``train_acc``), and the loss and the gradient norm (before
    any clipping) of every step; with ``probe_every`` = k, ``dynamics``: each activation layer's
    mean, std, 2nd and 98th percentiles and saturated (tanh, sigmoid) or zero (ReLU) fraction on
    the first ``probe_size`` test examples, before the first step and after every k-th. A step
    whose loss is not finite ends the training (``diverged``)."""
    from .. import nn
    from ..rng import Stream

    xtr, ytr, xte, yte = data
    crit = nn.SoftmaxCrossEntropy()
    params = net.parameters()
    opt = nn.SGD(params, lr=lr, momentum=momentum, clip_norm=clip_norm, clip_value=clip_value)
    order_stream = Stream(seed).child(1)
    hist = dict(loss=[], train_acc=None, test_acc=[], epochs_to_target=None, diverged=False,
                step_loss=[], grad_norm=[], diverged_at_step=None)
    dyn = None if probe_every is None else _Dynamics(net, xte[:probe_size], probe_every)
    t0 = time.perf_counter()
    steps = 0.0
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        keys = order_stream.uniform(len(xtr), dtype=np.float64)
        order = np.argsort(keys, kind="stable")
        total, count = 0.0, 0
        for i in range(0, len(order), batch):
            if dyn is not None and len(hist["step_loss"]) % dyn.every == 0:
                t_probe = time.perf_counter()
                dyn.record(len(hist["step_loss"]))
                t_epoch += time.perf_counter() - t_probe     # probing is not training time
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = crit(net(xtr[idx]), ytr[idx])
            net.backward(crit.backward())
            hist["grad_norm"].append(_grad_norm(params))
            hist["step_loss"].append(loss)
            total += loss * len(idx)
            count += len(idx)
            if not math.isfinite(loss):
                hist["diverged"] = True
                hist["diverged_at_step"] = len(hist["step_loss"])
                break
            opt.step()
        steps += time.perf_counter() - t_epoch
        mean_loss = total / count
        hist["loss"].append(mean_loss)
        hist["test_acc"].append(_accuracy(net, xte, yte))
        if target is not None and hist["epochs_to_target"] is None and \
                hist["test_acc"][-1] >= target:
            hist["epochs_to_target"] = epoch + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{mean_loss:.3g}", test=f"{hist['test_acc'][-1]:.3f}")
        if hist["diverged"]:
            break
    # the training set's accuracy once, at the end: each epoch it would cost three times the
    # test set's pass (1,347 digits against 450), and only the last one is reported
    hist["train_acc"] = _accuracy(net, xtr, ytr)
    if dyn is not None:
        if not hist["diverged"] and len(hist["step_loss"]) % dyn.every:
            dyn.record(len(hist["step_loss"]))          # the state training ended in
        hist["dynamics"] = dyn.result()
    hist["seconds"] = time.perf_counter() - t0
    hist["train_seconds"] = steps
    return hist


def load(data="digits", data_dir=None, seed=0, image=False):
    """(x_train, y_train, x_test, y_test): the digits (split from ``seed``) or MNIST from
    ``data_dir``."""
    from .. import nn

    if data == "digits":
        return nn.data.digits(seed=seed, image=image)
    if data == "mnist":
        if data_dir is None:
            raise ValueError("data_dir: MNIST is read from a folder of IDX files; name it")
        return nn.data.mnist(data_dir, image=image)
    raise ValueError(f"data must be 'digits' or 'mnist', got {data!r}")


def _hidden(r):
    return (r["width"],) * (2 if r["depth"] is None else r["depth"])


def _label(r, varying):
    """A run's name from what sets it apart from the other runs of its experiment."""
    parts = []
    for key in RUN_KEYS:
        if key not in varying or key == "clip_value":
            continue
        if key == "init":
            parts.append(r["init"])
        elif key == "activation":
            parts.append(r["activation"])
        elif key == "depth":
            parts.append(f"{len(_hidden(r))} layers")
        elif key == "width":
            parts.append(f"width {r['width']}")
        elif key == "batch_norm":
            parts.append("batch norm" if r["batch_norm"] else "no batch norm")
        elif key == "clip_norm":
            parts.append(f"clip norm {r['clip_norm']:g}" if r["clip_norm"] is not None else
                         f"clip value {r['clip_value']:g}" if r["clip_value"] is not None else
                         "no clipping")
    return ", ".join(parts) or r["init"]


def plan(inits=DEFAULT_INITS, activation="relu", depth=None, width=128, batch_norm=False,
         clip_norm=None, clip_value=None):
    """The runs of an experiment: every init crossed with every value of the options given as
    a tuple or list (``depth=(10, 20, 30)``, ``activation=("sigmoid", "tanh")``,
    ``batch_norm=(False, True)``); ``clip_norm`` and ``clip_value`` given as tuples are run
    side by side (a ``None`` in them: a run without that clipping). Returns a list of dicts
    for :func:`run`."""
    def values(v):
        return list(v) if isinstance(v, (tuple, list)) else [v]

    clips = ([dict(clip_norm=c, clip_value=None) for c in values(clip_norm)]
             + [dict(clip_norm=None, clip_value=c) for c in values(clip_value) if c is not None])
    if len(clips) > 1:   # a None in either list is the same run without clipping: keep one
        seen, unique = set(), []
        for c in clips:
            key = (c["clip_norm"], c["clip_value"])
            if key not in seen:
                seen.add(key)
                unique.append(c)
        clips = unique
    runs = []
    for act in values(activation):
        for d in values(depth):
            for w in values(width):
                for bn in values(batch_norm):
                    for c in clips:
                        for init in inits:
                            runs.append(dict(init=init, activation=act, depth=d, width=w,
                                             batch_norm=bool(bn), **c))
    return runs


def _check_run(r):
    presets.spec(r["init"])
    _activation(r["activation"])
    d, w = r["depth"], r["width"]
    if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
        raise ValueError(f"depth must be a positive integer (hidden layers), got {d!r}")
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise ValueError(f"width must be a positive integer, got {w!r}")
    for name in ("clip_norm", "clip_value"):
        v = r[name]
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")


def run(model="mlp", inits=DEFAULT_INITS, epochs=20, batch=64, lr=0.05, momentum=0.9,
        target=0.95, seed=0, activation="relu", progress=True, runs=None, depth=None,
        width=128, batch_norm=False, clip_norm=None, clip_value=None, probe_every=None,
        data="digits", data_dir=None):
    """Train ``model`` on the digits (or MNIST) once per run; returns {config, runs}.

    The runs are every init crossed with the options given as tuples (see :func:`plan`), or
    ``runs``, a list of dicts with keys among :data:`RUN_KEYS`. Each run is named by what sets
    it apart (``label``). ``depth``: hidden layers of ``width`` units (default: 2 of 128);
    ``probe_every`` = k records the activation layers' statistics every k steps (``fit``).

    One untimed epoch on a throwaway network of each activation (and with batch norm, if some
    run has it) runs first, so the kernels are compiled (or loaded from Numba's cache) before
    any run is timed: each run's ``train_seconds`` (the SGD steps) and ``seconds`` (with the
    per-epoch accuracy passes) exclude compilation. ``progress``: a
    :class:`fastinit.lab.progress.Status`, True (a new one on stderr) or False."""
    from .progress import Status

    for name, v in (("epochs", epochs), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if probe_every is not None and (isinstance(probe_every, bool) or
                                    not isinstance(probe_every, int) or probe_every < 1):
        raise ValueError(f"probe_every must be a positive integer, got {probe_every!r}")
    if runs is None:
        runs = plan(inits, activation, depth, width, batch_norm, clip_norm, clip_value)
    else:   # a setting a run leaves out is the argument's, when that is one value
        given = dict(activation=activation, depth=depth, width=width, batch_norm=batch_norm,
                     clip_norm=clip_norm, clip_value=clip_value)
        defaults = dict(init=None, activation="relu", depth=None, width=128, batch_norm=False,
                        clip_norm=None, clip_value=None)
        defaults.update({k: v for k, v in given.items() if not isinstance(v, (tuple, list))})
        runs = [dict(defaults, **r) for r in runs]
    if not runs:
        raise ValueError("runs is empty: name at least one init")
    for r in runs:
        unknown = set(r) - set(RUN_KEYS)
        if unknown:
            raise ValueError(f"runs: unknown setting(s) {sorted(unknown)}; a run may set "
                             f"{', '.join(RUN_KEYS)}")
        _check_run(r)
        if model == "cnn" and (r["depth"] is not None or r["batch_norm"]):
            raise ValueError("depth and batch_norm are for model 'mlp' (the cnn has its own "
                             "layers and batch norm)")
    varying = {k for k in RUN_KEYS if len({(r[k] if k != "clip_norm" else
                                            (r["clip_norm"], r["clip_value"])) for r in runs}) > 1}
    if "clip_value" in varying:
        varying.add("clip_norm")     # one label part speaks for both clippings
    status = progress if isinstance(progress, Status) else Status(enabled=bool(progress))
    image = model == "cnn"
    dataset = load(data, data_dir, seed, image)
    n_in = int(np.prod(dataset[0].shape[1:]))
    size = dataset[0].shape[-1]
    with np.errstate(all="ignore"):   # warm-up: compile before anything is timed
        for act, bn in dict.fromkeys((r["activation"], r["batch_norm"]) for r in runs):
            net = build(model, runs[0]["init"], seed, act, (runs[0]["width"],) * 2, bn, n_in,
                        size)
            fit(net, dataset, 1, batch, lr, momentum, seed)
    out = []
    for r in runs:
        label = _label(r, varying)
        net = build(model, r["init"], seed, r["activation"], _hidden(r), r["batch_norm"], n_in,
                    size)
        bar = _bar(epochs, f"{model} {label}", status)
        with np.errstate(all="ignore"):
            hist = fit(net, dataset, epochs, batch, lr, momentum, seed, target,
                       clip_norm=r["clip_norm"], clip_value=r["clip_value"],
                       probe_every=probe_every, progress=bar)
        if bar is not None:
            bar.close()
        else:
            status.line(f"  {model} {label}: {len(hist['loss'])} epochs in "
                        f"{hist['train_seconds']:.2f} s, test accuracy {hist['test_acc'][-1]:.1%}")
        out.append(dict(label=label, description=presets.INITS[r["init"]][0], **r,
                        hidden=list(_hidden(r)) if model == "mlp" else None,
                        distinct_units=distinct_units(net), **hist))
    return dict(config=dict(model=model, epochs=epochs, batch=batch, lr=lr, momentum=momentum,
                            target=target, seed=seed, data=data, n_in=n_in,
                            n_train=len(dataset[0]), n_test=len(dataset[2]),
                            probe_every=probe_every, varying=sorted(varying),
                            **{k: runs[0][k] for k in RUN_KEYS if k not in varying}),
                runs=out)


def describe(cfg, runs):
    """The experiment in words: the network, the data and the training settings all runs share."""
    varying = set(cfg["varying"])
    data = ("the digits" if cfg["data"] == "digits" else "MNIST")
    if cfg["model"] == "mlp":
        if "depth" in varying or "width" in varying:
            net = f"MLP {cfg['n_in']}-(hidden layers, see each run)-10"
        else:
            h = runs[0]["hidden"]
            middle = "-".join(map(str, h)) if len(h) <= 4 else f"({len(h)} x {h[0]})"
            net = f"MLP {cfg['n_in']}-{middle}-10"
    else:
        net = "CNN"
    parts = [f"{net} on {data} ({cfg['n_train']} train / {cfg['n_test']} test)"]
    if "activation" not in varying:
        parts.append(cfg["activation"])
    if cfg["model"] == "mlp" and "batch_norm" not in varying and cfg["batch_norm"]:
        parts.append("batch norm before every activation")
    if "clip_norm" not in varying:
        if cfg.get("clip_norm") is not None:
            parts.append(f"gradients clipped to norm {cfg['clip_norm']:g}")
        if cfg.get("clip_value") is not None:
            parts.append(f"gradients clipped to +-{cfg['clip_value']:g}")
    parts.append(f"SGD lr {cfg['lr']} momentum {cfg['momentum']}, batch {cfg['batch']}, "
                 f"{cfg['epochs']} epochs, seed {cfg['seed']}")
    return ", ".join(parts)


def _units(counts, widths):
    """Distinct units per hidden layer, in few words."""
    if not counts:
        return "-"
    if None in counts:
        return "weights not finite (diverged)"
    if all(c == w for c, w in zip(counts, widths)):
        return "all distinct"
    if len(set(counts)) == 1 and len(set(widths)) == 1:
        return f"{counts[0]} of {widths[0]} in every layer"
    return ", ".join(f"{c}/{w}" for c, w in zip(counts, widths))


def format_table(result):
    cfg = result["config"]
    runs = result["runs"]
    target = format(cfg["target"], ".0%")
    width = max([15] + [len(r["label"]) for r in runs])
    lines = textwrap.wrap(describe(cfg, runs), 100, subsequent_indent="  ")
    lines.append(f"{'run' if cfg['varying'] != ['init'] else 'init':{width}s} {'loss':>9s} "
                 f"{'train acc':>9s} {'test acc':>9s} {'epochs to ' + target:>16s} {'time':>7s}")
    for r in runs:
        ett = "never" if r["epochs_to_target"] is None else str(r["epochs_to_target"])
        loss = r["loss"][-1]
        lines.append(f"{r['label']:{width}s} {loss:9.4g} {r['train_acc']:9.1%} "
                     f"{r['test_acc'][-1]:9.1%} {ett:>16s} {r['train_seconds']:6.2f}s"
                     + (f"  (diverged at step {r['diverged_at_step']})" if r["diverged"] else ""))
    lines += textwrap.wrap(f"loss: mean cross-entropy over the last epoch; acc: accuracy after "
                           f"the last epoch; epochs to {target}: first epoch with test accuracy "
                           f">= {target}; time: the SGD steps of all epochs (compilation "
                           f"excluded)", 100, subsequent_indent="  ")
    if cfg["model"] == "mlp":
        lines.append("distinct units per hidden layer after training (units whose weights "
                     "differ from every other unit's):")
        for r in runs:
            lines.append(f"  {r['label']:{width}s} {_units(r['distinct_units'], r['hidden'])}")
    if any("clip_norm" in cfg["varying"] or r["clip_norm"] or r["clip_value"] for r in runs):
        lines.append("gradient norm per step (before clipping): first, largest, last")
        for r in runs:
            g = np.asarray(r["grad_norm"], float)
            finite = g[np.isfinite(g)]
            big = f"{finite.max():.3g}" if finite.size else "-"
            lines.append(f"  {r['label']:{width}s} {g[0]:.3g}, {big}, {g[-1]:.3g}")
    if cfg.get("probe_every"):
        lines.append(f"activations every {cfg['probe_every']} steps, on the first "
                     f"{runs[0]['dynamics']['examples']} test examples: mean of each hidden layer, first -> last "
                     f"record")
        for r in runs:
            d = r["dynamics"]
            first, last = d["mean"][0], d["mean"][-1]
            lines.append(f"  {r['label']:{width}s} " + "  ".join(
                f"L{i + 1} {a:.2f}->{b:.2f}" for i, (a, b) in enumerate(zip(first, last))))
    return "\n".join(lines)


STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "v"), ("-", "D"), ("--", "x"),
          ("-.", "P"), (":", "*")]


def _figure(*args, **kw):
    """A figure that pyplot does not manage: saved to a file by the command, shown inline by a
    notebook when returned (and never shown twice, nor switched to another backend)."""
    from matplotlib.figure import Figure

    fig = Figure(*args, **kw)
    return fig


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _run_styles(runs, varying):
    """(colour, line style, marker) per run: one colour per init and one line style per other
    setting when both vary, else one colour and style per run."""
    others = varying - {"init"}
    inits = list(dict.fromkeys(r["init"] for r in runs))
    variants = list(dict.fromkeys(_label(r, others) for r in runs))
    out = []
    for k, r in enumerate(runs):
        if "init" in varying and others:
            c, v = inits.index(r["init"]), variants.index(_label(r, others))
        else:
            c = v = k
        ls, mk = STYLES[v % len(STYLES)]
        out.append((f"C{c % 10}", ls, mk))
    return out


def plot(result, path=None):
    """Training loss and test accuracy per epoch, one line per run (each with its own line
    style and marker, so lines that coincide - zeros and too_large at chance - stay visible);
    with clipping, first the gradient norm of every step. Returns the matplotlib Figure (a
    notebook shows it); ``path``: also save it there."""
    from matplotlib.ticker import MaxNLocator

    cfg = result["config"]
    runs = result["runs"]
    varying = set(cfg["varying"])
    clipping = "clip_norm" in varying or any(r["clip_norm"] or r["clip_value"] for r in runs)
    fig = _figure(figsize=(17 if clipping else 12, 4.6))
    axes = fig.subplots(1, 3 if clipping else 2)
    a, b = axes[-2:]
    styles = _run_styles(runs, varying)
    for k, (r, (color, ls, mk)) in enumerate(zip(runs, styles)):
        ep = np.arange(1, len(r["loss"]) + 1)
        every = max(len(ep) // 8, 1)   # markers staggered per run: coinciding lines show both
        style = dict(ls=ls, marker=mk, ms=5, markevery=(k % every, every), lw=1.4,
                     color=color, mfc="none")
        loss = np.asarray(r["loss"], float)
        ok = np.isfinite(loss)
        a.plot(ep[ok], loss[ok], **style)
        if r["diverged"]:
            note = f"{r['label']}: diverged (loss not finite at step {r['diverged_at_step']})"
            a.plot([], [], ls="", marker="x", color=color, label=note)
        b.plot(ep, 100 * np.asarray(r["test_acc"]), **style,
               label=f"{r['label']} ({100 * r['test_acc'][-1]:.1f}%)")
        if clipping:
            g = np.asarray(r["grad_norm"], float)
            steps = np.arange(1, len(g) + 1)
            fin = np.isfinite(g)
            axes[0].plot(steps[fin], g[fin], ls=ls, lw=1.0, color=color, alpha=0.85,
                         label=r["label"])
            if r["diverged"]:
                last = np.flatnonzero(fin)
                if last.size:
                    axes[0].plot(steps[last[-1]], g[last[-1]], "x", color=color, ms=10, mew=2)
                    # beside the cross, on the side with room (early: right of it)
                    early = steps[last[-1]] < 0.5 * max(len(q["grad_norm"]) for q in runs)
                    axes[0].annotate(f"{r['label']}: diverged\n(loss not finite at step "
                                     f"{len(g)})", (steps[last[-1]], g[last[-1]]),
                                     textcoords="offset points", xytext=(10 if early else -10, -6),
                                     ha="left" if early else "right", va="top", fontsize=8,
                                     color=color)
    if clipping:
        g0 = axes[0]
        g0.set_yscale("log")
        for norm in sorted({r["clip_norm"] for r in runs if r["clip_norm"]}):
            g0.axhline(norm, color="0.3", lw=0.8, ls=":",
                       label=f"norm {norm:g}: clip-norm scales larger gradients down to it")
        g0.set_title("gradient norm of every step, before clipping", fontsize=10)
        g0.set_xlabel("training step (one minibatch)")
        g0.set_ylabel("global L2 norm of all gradients (log scale)")
        g0.grid(alpha=0.3)
        g0.legend(fontsize=7, loc="lower left", framealpha=0.9)   # the top keeps a divergence note
    a.set_yscale("log")
    a.set_title("training loss (mean cross-entropy of the epoch)", fontsize=10)
    a.set_ylabel("loss (log scale)")
    if any(r["diverged"] for r in runs):
        a.legend(fontsize=7, loc="lower left", frameon=False, handlelength=1)
    b.set_title("test accuracy after each epoch", fontsize=10)
    b.set_ylabel("test accuracy (%)")
    b.set_ylim(0, 100)
    b.axhline(10, color="0.6", lw=0.8, ls=":")
    b.text(1, 11, "chance (10 classes)", fontsize=7, color="0.4")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    b.legend(title="run (final test accuracy)", fontsize=8, title_fontsize=8,
             loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    what = "one network per " + ("initialization" if varying <= {"init"} else
                                 " and ".join(_VARY_WORDS[k] for k in RUN_KEYS
                                             if k in varying and k in _VARY_WORDS))
    fig.suptitle(textwrap.fill(f"{describe(cfg, runs)}: {what}", 150), fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


#: the words for what varies between runs (clip_norm speaks for both clippings)
_VARY_WORDS = dict(init="initialization", activation="activation", depth="depth",
                   width="width", batch_norm="batch norm or none", clip_norm="clipping")


def plot_dynamics(result, path=None):
    """Glorot & Bengio's figures of training dynamics: for each run (one row), the mean of
    every hidden layer's activations over training with its 2nd-98th percentile band, their
    std, and the training loss. Returns the Figure; ``path``: also save it there."""
    import matplotlib
    from matplotlib.colors import Normalize
    from matplotlib.ticker import NullFormatter

    runs = [r for r in result["runs"] if r.get("dynamics")]
    if not runs:
        raise ValueError("result has no dynamics: train with probe_every (fastinit train --probe)")
    cfg = result["config"]
    fig = _figure(figsize=(15, 3.3 * len(runs) + 0.9), layout="constrained")
    axes = fig.subplots(len(runs), 3, squeeze=False)
    cmap = matplotlib.colormaps["viridis"]
    for r, ax in zip(runs, axes):
        d = r["dynamics"]
        steps = np.asarray(d["steps"])
        mean, std = np.asarray(d["mean"]), np.asarray(d["std"])
        lo, hi = np.asarray(d["p2"]), np.asarray(d["p98"])
        n = mean.shape[1]
        norm = Normalize(1, max(n, 2))
        for i in range(n):
            c = cmap(norm(i + 1) * 0.9)
            name = f"layer {i + 1}" + (" (bottom)" if i == 0 else " (top)" if i == n - 1 else "")
            ax[0].plot(steps, mean[:, i], color=c, lw=1.8)
            ax[0].fill_between(steps, lo[:, i], hi[:, i], color=c, alpha=0.12, lw=0)
            ax[1].plot(steps, std[:, i], color=c, lw=1.6, label=name)
        act = r["activation"]
        ax[0].set_title(f"{r['label']}: activations per hidden layer\n"
                        f"line: mean; band: 2nd to 98th percentile", fontsize=9)
        ax[0].set_ylabel(f"{act} output")
        if act == "sigmoid":
            ax[0].set_ylim(-0.02, 1.02)
        elif act == "tanh":
            ax[0].set_ylim(-1.02, 1.02)
        ax[0].axhline(0, color="0.6", lw=0.6)
        ax[1].set_title(f"{r['label']}: spread per hidden layer\n"
                        f"std of the activations over units and examples", fontsize=9)
        ax[1].set_ylabel(f"std of the {act} output")
        ax[1].set_ylim(bottom=0)
        ax[1].legend(fontsize=7, title="hidden layer", title_fontsize=7, loc="best",
                     framealpha=0.85)
        loss = np.asarray(r["step_loss"], float)
        ax[2].plot(np.arange(1, len(loss) + 1), loss, color="0.35", lw=0.6)
        fin = loss[np.isfinite(loss) & (loss > 0)]
        logy = fin.size and fin.max() > 10 * fin.min()   # a log axis only over a decade or more
        if logy:
            ax[2].set_yscale("log")
            ax[2].yaxis.set_minor_formatter(NullFormatter())
        ax[2].set_title(f"{r['label']}: training loss of each step\n"
                        f"final test accuracy {100 * r['test_acc'][-1]:.1f}%", fontsize=9)
        ax[2].set_ylabel("cross-entropy" + (" (log scale)" if logy else ""))
        for x in ax:
            x.set_xlabel("training step (one minibatch)", fontsize=8)
            x.grid(alpha=0.3)
            x.tick_params(labelsize=7)
    fig.suptitle(textwrap.fill(f"{describe(cfg, runs)}: activations recorded every "
                               f"{cfg['probe_every']} steps on {d['examples']} fixed test "
                               f"examples (as Glorot & Bengio 2010, figures 2-4)", 150),
                 fontsize=10)
    return _finish(fig, path)


def toy(kind="moons", inits=("zeros", "too_large", "he_normal"), epochs=300, lr=0.1,
        hidden=(16, 16), seed=0, n=400):
    """A small ReLU MLP on a 2-D set per init; returns {config, runs} with final accuracy."""
    from .. import nn

    x, y = nn.data.toy(kind, n=n, seed=seed)
    runs = []
    for init in inits:
        spec = presets.spec(init)
        layers, m = [], 2
        for h in hidden:
            layers += [nn.Linear(m, h, init=spec), nn.ReLU()]
            m = h
        layers.append(nn.Linear(m, 2, init=spec))
        net = nn.Sequential(*layers, seed=seed)
        with np.errstate(all="ignore"):
            hist = fit(net, (x, y, x, y), epochs, len(x), lr, 0.9, seed)
        runs.append(dict(init=init, net=net, accuracy=hist["test_acc"][-1], loss=hist["loss"][-1]))
    return dict(config=dict(kind=kind, n=n, seed=seed, epochs=epochs, hidden=tuple(hidden)),
                data=(x, y), runs=runs)


def plot_toy(result, path=None):
    """The decision regions of each network over the 2-D plane, with the training points.
    Returns the Figure; ``path``: also save it there."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    x, y = result["data"]
    runs = result["runs"]
    cfg = result["config"]
    colors = ["#3b6fb6", "#d1495b"]
    fig = _figure(figsize=(4.2 * len(runs), 3.7))
    axes = fig.subplots(1, len(runs), squeeze=False)
    lo, hi = x.min(0) - 0.3, x.max(0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(x.dtype)
    for ax, r in zip(axes[0], runs):
        net = r["net"].eval()
        with np.errstate(all="ignore"):
            z = net(grid).argmax(1).reshape(gx.shape)
        ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], alpha=0.25, cmap=ListedColormap(colors))
        for c in (0, 1):
            ax.scatter(x[y == c, 0], x[y == c, 1], s=7, color=colors[c])
        ax.set_title(f"{r['init']}: training accuracy {r['accuracy']:.0%}", fontsize=10)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_aspect("equal", adjustable="box")
    handles = [Line2D([], [], ls="", marker="o", color=colors[c], label=f"class {c}")
               for c in (0, 1)]
    handles.append(Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25,
                                 label="shaded: the class the network predicts there"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    sizes = "-".join(str(h) for h in (2, *cfg["hidden"], 2))
    fig.suptitle(f"{cfg['kind']} ({cfg['n']} points, seed {cfg['seed']}): a {sizes} ReLU MLP "
                 f"after {cfg['epochs']} full-batch epochs, one per initialization", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _finish(fig, path)
