"""Training with each initialization: what the init does to learning, on real digits.

``run()`` trains the same network (an MLP, or a small CNN: 3x3 conv, batch norm, pooling) on
scikit-learn's handwritten digits once per initialization, from one seed, and records loss and
accuracy per epoch; ``toy()`` trains a small MLP on a 2-D set (moons, circles, spirals, xor) and
draws its decision boundary, as in the deeplearning.ai notes on initialization.
Same seed, same numbers.
"""
import textwrap
import time

import numpy as np

from . import presets

DEFAULT_INITS = ("zeros", "too_small", "xavier_normal", "he_normal", "too_large", "normal",
                 "torch_default")


def build(model, init, seed, activation="relu", hidden=(128, 128)):
    from .. import nn

    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
           "leaky_relu": nn.LeakyReLU}[activation]
    spec = presets.spec(init)
    if model == "mlp":
        layers, n = [], 64
        for h in hidden:
            layers += [nn.Linear(n, h, init=spec), act()]
            n = h
        layers.append(nn.Linear(n, 10, init=spec))
        return nn.Sequential(*layers, seed=seed, input_grad=False)
    if model == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, init=spec), nn.BatchNorm2d(16), act(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, init=spec), nn.BatchNorm2d(32), act(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 2 * 2, 10, init=spec), seed=seed,
            input_grad=False)
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


def fit(net, data, epochs, batch, lr, momentum, seed, target=None, clip_norm=None,
        progress=None):
    """SGD on ``data`` = (x_train, y_train, x_test, y_test); returns the history dict."""
    from .. import nn
    from ..rng import Stream

    xtr, ytr, xte, yte = data
    crit = nn.SoftmaxCrossEntropy()
    opt = nn.SGD(net.parameters(), lr=lr, momentum=momentum, clip_norm=clip_norm)
    order_stream = Stream(seed).child(1)
    hist = dict(loss=[], train_acc=[], test_acc=[], epochs_to_target=None, diverged=False)
    t0 = time.perf_counter()
    steps = 0.0
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        keys = order_stream.uniform(len(xtr), dtype=np.float64)
        order = np.argsort(keys, kind="stable")
        total, count = 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = crit(net(xtr[idx]), ytr[idx])
            net.backward(crit.backward())
            opt.step()
            total += loss * len(idx)
            count += len(idx)
        steps += time.perf_counter() - t_epoch
        mean_loss = total / count
        hist["loss"].append(mean_loss)
        hist["train_acc"].append(_accuracy(net, xtr, ytr))
        hist["test_acc"].append(_accuracy(net, xte, yte))
        if target is not None and hist["epochs_to_target"] is None and \
                hist["test_acc"][-1] >= target:
            hist["epochs_to_target"] = epoch + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{mean_loss:.3g}", test=f"{hist['test_acc'][-1]:.3f}")
        if not np.isfinite(mean_loss):
            hist["diverged"] = True
            break
    hist["seconds"] = time.perf_counter() - t0
    hist["train_seconds"] = steps
    return hist


def run(model="mlp", inits=DEFAULT_INITS, epochs=20, batch=64, lr=0.05, momentum=0.9,
        target=0.95, seed=0, activation="relu", progress=True):
    """Train ``model`` on the digits once per init; returns {config, runs}.

    One untimed epoch on a throwaway network runs first, so the kernels are compiled (or loaded
    from Numba's cache) before any init is timed: each run's ``train_seconds`` (the SGD steps)
    and ``seconds`` (with the per-epoch accuracy passes) exclude compilation. ``progress``: a
    :class:`fastinit.lab.progress.Status`, True (a new one on stderr) or False."""
    from .. import nn
    from .progress import Status

    for name, v in (("epochs", epochs), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    for init in inits:
        presets.spec(init)
    status = progress if isinstance(progress, Status) else Status(enabled=bool(progress))
    data = nn.data.digits(seed=seed, image=(model == "cnn"))
    with np.errstate(all="ignore"):   # warm-up: compile before anything is timed
        fit(build(model, inits[0], seed, activation), data, 1, batch, lr, momentum, seed)
    runs = []
    for init in inits:
        net = build(model, init, seed, activation)
        bar = _bar(epochs, f"{model} {init}", status)
        with np.errstate(all="ignore"):
            hist = fit(net, data, epochs, batch, lr, momentum, seed, target, progress=bar)
        if bar is not None:
            bar.close()
        else:
            status.line(f"  {model} {init}: {len(hist['loss'])} epochs in "
                        f"{hist['train_seconds']:.2f} s, test accuracy {hist['test_acc'][-1]:.1%}")
        runs.append(dict(init=init, description=presets.INITS[init][0], **hist))
    return dict(config=dict(model=model, epochs=epochs, batch=batch, lr=lr, momentum=momentum,
                            target=target, seed=seed, activation=activation,
                            n_train=len(data[0]), n_test=len(data[2])), runs=runs)


def format_table(result):
    cfg = result["config"]
    target = format(cfg["target"], ".0%")
    lines = [f"{cfg['model'].upper()} on the digits ({cfg['n_train']} train / {cfg['n_test']} "
             f"test), {cfg['activation']}, SGD lr {cfg['lr']} momentum {cfg['momentum']}, "
             f"batch {cfg['batch']}, {cfg['epochs']} epochs, seed {cfg['seed']}",
             f"{'init':15s} {'loss':>9s} {'train acc':>9s} {'test acc':>9s} "
             f"{'epochs to ' + target:>16s} {'time':>7s}"]
    for r in result["runs"]:
        ett = "never" if r["epochs_to_target"] is None else str(r["epochs_to_target"])
        loss = r["loss"][-1]
        lines.append(f"{r['init']:15s} {loss:9.4g} {r['train_acc'][-1]:9.1%} "
                     f"{r['test_acc'][-1]:9.1%} {ett:>16s} {r['train_seconds']:6.2f}s"
                     + (f"  (diverged at epoch {len(r['loss'])})" if r["diverged"] else ""))
    lines += textwrap.wrap(f"loss: mean cross-entropy over the last epoch; acc: accuracy after "
                           f"the last epoch; epochs to {target}: first epoch with test accuracy "
                           f">= {target}; time: the SGD steps of all epochs (compilation "
                           f"excluded)", 100, subsequent_indent="  ")
    return "\n".join(lines)


STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "v"), ("-", "D"), ("--", "x"),
          ("-.", "P"), (":", "*")]


def plot(result, path):
    """Training loss and test accuracy per epoch, one line per init (each with its own line
    style and marker, so lines that coincide - zeros and too_large at chance - stay visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cfg = result["config"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.4))
    for k, r in enumerate(result["runs"]):
        ls, mk = STYLES[k % len(STYLES)]
        ep = np.arange(1, len(r["loss"]) + 1)
        every = max(len(ep) // 8, 1)   # markers staggered per init: coinciding lines show both
        style = dict(ls=ls, marker=mk, ms=5, markevery=(k % every, every), lw=1.4,
                     color=f"C{k % 10}", mfc="none")
        a.plot(ep, r["loss"], **style)
        b.plot(ep, 100 * np.asarray(r["test_acc"]), **style,
               label=f"{r['init']} ({100 * r['test_acc'][-1]:.1f}%)")
    a.set_yscale("log")
    a.set_title("training loss (mean cross-entropy of the epoch)", fontsize=10)
    a.set_ylabel("loss (log scale)")
    b.set_title("test accuracy after each epoch", fontsize=10)
    b.set_ylabel("test accuracy (%)")
    b.set_ylim(0, 100)
    b.axhline(10, color="0.6", lw=0.8, ls=":")
    b.text(1, 11, "chance (10 classes)", fontsize=7, color="0.4")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    b.legend(title="init (final test accuracy)", fontsize=8, title_fontsize=8,
             loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(f"{cfg['model'].upper()} on the digits ({cfg['activation']}, SGD lr {cfg['lr']} "
                 f"momentum {cfg['momentum']}, batch {cfg['batch']}, seed {cfg['seed']}): "
                 f"one network per initialization", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


def plot_toy(result, path):
    """The decision regions of each network over the 2-D plane, with the training points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    x, y = result["data"]
    runs = result["runs"]
    cfg = result["config"]
    colors = ["#3b6fb6", "#d1495b"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.7), squeeze=False)
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
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25,
                                 label="shaded: the class the network predicts there"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    sizes = "-".join(str(h) for h in (2, *cfg["hidden"], 2))
    fig.suptitle(f"{cfg['kind']} ({cfg['n']} points, seed {cfg['seed']}): a {sizes} ReLU MLP "
                 f"after {cfg['epochs']} full-batch epochs, one per initialization", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
