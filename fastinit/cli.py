"""The fastinit command (also python -m fastinit).

  fastinit info      versions, backends (and why one is missing), CPU features, threads, cache
  fastinit warmup    compile every Numba kernel ahead, with progress, and say how long it took
  fastinit kernels   a stack of 3x3 convolutions against one 5x5 or 7x7 (--shrink H too)
  fastinit signal    signal propagation at initialization through a deep network
  fastinit train     train on the digits (or a 2-D toy set) with each initialization
  fastinit bench     a performance dashboard: each op beside NumPy and PyTorch

Every numeric option is checked when the command line is read: a mistake is an error that
names the option (exit status 2) before any work starts, and so are an output path that cannot
be written and an optional package that is missing. A closed pipe (``fastinit info | head``)
ends the command quietly.
"""
import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import textwrap
import time

LAB_HINT = 'pip install "fastinit[lab]"'


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _fastinit_version():
    try:
        return importlib.metadata.version("fastinit")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare tree
        return "unknown"


# ---- argument types: each raises ArgumentTypeError, which argparse words as
# "argument --flag: <message>" and exits with status 2 ------------------------------------

def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def positive_int(text):
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def nonnegative_int(text):
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return v


def positive_float(text):
    v = _float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def fraction(text):
    """A number in [0, 1)."""
    v = _float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return v


def percent(text):
    """A percentage in (0, 100), returned as a fraction."""
    v = _float(text)
    if not 0 < v < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage between 0 and 100, got {text!r}")
    return v / 100.0


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _names(text, what, known, unknown="unknown {what} {name!r}; choose from {known}"):
    """The comma-separated names in ``text``, at least one, each one of ``known``."""
    names = _csv(text)
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one {what}")
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(
                unknown.format(what=what, name=name, known=", ".join(known)))
    return names


def init_list(text):
    from fastinit.lab import presets

    return tuple(_names(text, "initialization", presets.INITS))


def depth_list(text):
    """Hidden-layer counts, comma-separated: "10,20,30" -> (10, 20, 30)."""
    parts = _csv(text)
    if not parts:
        raise argparse.ArgumentTypeError("must name at least one depth, e.g. 10,20,30")
    return tuple(positive_int(p) for p in parts)


def activation_list(text):
    from fastinit.lab import train

    return tuple(_names(text, "activation", train.ACTIVATIONS))


def backend_list(text):
    return _names(text, "backend", ("numba", "c"),
                  unknown="backends to time are numba and c, got {name!r}")


def plot_path(text):
    """An image path whose folder exists and is writable; its suffix a format we can write."""
    path = os.path.abspath(os.path.expanduser(text))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name such as "
                                         f"{os.path.join(text, 'plot.png')!r}")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text!r} (permission denied)")
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in ("png", "pdf", "svg", "jpg", "jpeg"):
        raise argparse.ArgumentTypeError(f"{text!r}: the file name must end in .png, .pdf, "
                                         f".svg or .jpg")
    return text


# ---- help text -----------------------------------------------------------------------------

class _Formatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already speaks of its default,
    or the option is a flag or has no default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or action.nargs == 0
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def _missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


PACKAGES = {"matplotlib": "matplotlib", "sklearn": "scikit-learn", "torch": "torch"}


def _require(parser, why, *modules):
    """A usage error naming what is missing and how to install it, before any work."""
    missing = [PACKAGES.get(m, m) for m in _missing(*modules)]
    if missing:
        parser.error(f"{why} needs {' and '.join(missing)}, which is not installed: "
                     f"{LAB_HINT} (or pip install {' '.join(missing)})")


def _status(args):
    from fastinit.lab.progress import Status

    return Status(enabled=not getattr(args, "quiet", False))


def _compiling(status):
    from fastinit.lab.progress import CompileWatch

    return CompileWatch(status)


# ---- commands ------------------------------------------------------------------------------

def cmd_info(args):
    import numba

    import fastinit as fi
    from fastinit import _c, _config

    print(f"fastinit {fi.__version__}  (python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()})")
    print("versions: " + ", ".join(f"{d} {_version(d)}" for d in
                                    ("numpy", "numba", "llvmlite", "cffi", "torch")))
    print("backends:")
    for name, why in fi.backends.available().items():
        print(f"  {name:6s} {'available' if why is None else 'unavailable: ' + why}")
    print(f"  default (backend=None): {fi.backends.current()}")
    try:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        cpu = llvm.get_host_cpu_name()
        wanted = [f for f in ("avx2", "fma", "avx512f") if feats.get(f)]
        print(f"cpu: {cpu}; features used: {', '.join(wanted) or 'none'} (Numba targets the host)")
    except Exception as exc:  # pragma: no cover - informational only
        print(f"cpu: unknown ({exc})")
    if _c.lib is not None:
        print(f"C kernels: vector path {_c.cpu_features()}, {_c.lib.fi_get_num_threads()} threads")
    print(f"threads: {fi.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} "
          f"(fastinit.set_num_threads / FASTINIT_NUM_THREADS); Numba threading layer priority "
          f"{numba.config.THREADING_LAYER_PRIORITY}")
    print(f"numba cache: {_config.cache_dir()}")
    lab = _missing("matplotlib", "sklearn", "tqdm")
    print("lab extra (plots, digits, progress bars): "
          + ("installed" if not lab else f"missing {', '.join(lab)}: {LAB_HINT}"))
    return 0


def cmd_warmup(args):
    from fastinit import _warmup

    status = _status(args)
    total = time.perf_counter()
    with _compiling(status) as watch:
        for name, seconds in _warmup.run(args.backend, progress=status.update):
            status.line(f"  {name:12s} {seconds:6.2f} s")
    status.clear()
    compiled = (f"{watch.count} kernels compiled" if watch.count else
                "every kernel loaded from Numba's cache")
    print(f"warmup: {args.backend} kernels ready in {time.perf_counter() - total:.1f} s "
          f"({compiled})")
    return 0


def _backend_notes(status, backends_given):
    """Say why a backend or PyTorch is left out of a comparison (the install's warnings)."""
    import fastinit as fi

    if backends_given is None:
        for name in ("c", "numba"):
            why = fi.backends.available()[name]
            if why is not None:
                status.line(f"note: the {name} backend is not timed: {why}")


def cmd_kernels(args):
    import numpy as np

    from fastinit.lab import kernels

    if args.shrink is not None:
        sizes = kernels.shrink(args.shrink, args.kernel or 3, args.stride, args.pool)
        if args.json:
            print(json.dumps(dict(size=args.shrink, kernel=args.kernel or 3, stride=args.stride,
                                  pool=args.pool, sizes=sizes, steps=len(sizes) - 1)))
            return 0
        for k in ([args.kernel] if args.kernel else [3, 5, 7]):
            sz = kernels.shrink(args.shrink, k, args.stride, args.pool)
            print(f"{k}x{k} unpadded, stride {args.stride}"
                  + (f", {args.pool}x{args.pool} max pool" if args.pool > 1 else "")
                  + f": {args.shrink} -> {sz[-1]} in {len(sz) - 1} steps")
            print("  " + kernels.shrink_formula(args.shrink, k, args.stride, args.pool))
            print(textwrap.fill(" -> ".join(map(str, sz)), 100, initial_indent="  ",
                                subsequent_indent="  ", break_on_hyphens=False))
        return 0
    import fastinit as fi

    status = _status(args)
    if args.backend is not None:
        for b in args.backend:
            why = fi.backends.available()[b]
            if why is not None:
                args.parser.error(f"argument --backend: the {b} backend is not available: {why}")
    _backend_notes(status, args.backend)
    torch_too = not args.no_torch
    if torch_too and _missing("torch"):
        status.line("note: PyTorch is not installed, so it is not timed (pip install torch; "
                    "see the README for the CPU-only build)")
        torch_too = False

    def progress(rounds, seconds, widest):
        watch.finish()    # compilation happens in the warm-up, before the first round
        w = "unknown" if widest == float("inf") else f"+-{widest:.0%}"
        status.update(f"timing: round {rounds}, {seconds:.0f} s of at most {args.budget:g} s, "
                      f"widest 95% interval {w} (target +-{args.precision:.0%})")

    status.line("measuring: 3x3 stacks against one 5x5 and one 7x7, in alternating rounds "
                f"until the verdict's time ratios are known to +-{args.precision:.0%} "
                f"(at most {args.budget:g} s)")
    with _compiling(status) as watch:
        result = kernels.compare(batch=args.batch, channels=args.channels, size=args.size,
                                 channels_mid=args.channels_mid, relu=args.relu,
                                 backends=args.backend, dtype=np.dtype(args.dtype).type,
                                 budget=args.budget, precision=args.precision,
                                 torch_too=torch_too, progress=progress)
    status.clear()
    if args.plot:
        kernels.plot(result, args.plot)
    if args.json:
        print(kernels.to_json(result))
    else:
        print(kernels.format_table(result))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def cmd_signal(args):
    from fastinit.lab import signal

    if args.depth is None and args.activation is None and args.inits is None:
        configs = [dict(c) for c in signal.CLASSIC]
    elif args.activation == "linear" and args.inits is None:
        configs = [dict(signal.LINEAR, depth=args.depth or signal.LINEAR["depth"])]
    else:
        configs = [dict(depth=10 if args.depth is None else args.depth,
                        activation=args.activation or "tanh",
                        inits=args.inits or ("standard", "xavier_uniform"))]
    status = _status(args)
    results = []
    with _compiling(status):
        for cfg in configs:
            res = signal.run(width=args.width, batch_norm=args.batch_norm, batch=args.batch,
                             seed=args.seed, **cfg)
            results.append(res)
            if not args.json:
                print(signal.format_table(res))
                print()
    if args.plot:
        signal.plot(results, args.plot)
    if args.json:
        print(json.dumps(results))
    elif args.plot:
        print(f"histograms written to {args.plot}")
    return 0


def cmd_train(args):
    from fastinit.lab import train

    status = _status(args)
    if args.toy:
        with _compiling(status):
            res = train.toy(args.toy, inits=args.inits or ("zeros", "too_large", "he_normal"),
                            seed=args.seed)
        if args.plot:
            train.plot_toy(res, args.plot)
        if args.json:
            print(json.dumps(dict(config=res["config"], runs=[
                dict(init=r["init"], training_accuracy=r["accuracy"], loss=r["loss"])
                for r in res["runs"]])))
            return 0
        for r in res["runs"]:
            print(f"{args.toy} {r['init']:12s} training accuracy {r['accuracy']:.1%} "
                  f"loss {r['loss']:.4g}")
        if args.plot:
            print(f"decision boundaries written to {args.plot}")
        return 0
    settings = train_settings(args)
    with _compiling(status):
        res = train.run(model=args.model, batch=args.batch, momentum=args.momentum,
                        seed=args.seed, progress=status, data=args.data,
                        data_dir=args.data_dir, **settings)
    if args.plot:
        (train.plot_dynamics if settings.get("probe_every") else train.plot)(res, args.plot)
    if args.json:
        print(json.dumps(res))
    else:
        print(train.format_table(res))
        if args.plot:
            what = "activations over training" if settings.get("probe_every") else "curves"
            print(f"{what} written to {args.plot}")
    return 0


def train_experiment(args):
    """The experiment whose defaults an invocation of `fastinit train` takes: the first of
    --probe, --clip-norm/--clip-value, --batch-norm and --depth given (None: the seven inits)."""
    if args.probe or args.probe_every is not None:
        return "probe"
    if args.clip_norm is not None or args.clip_value is not None:
        return "clip"
    if args.batch_norm:
        return "batch_norm"
    if args.depth is not None:
        return "depth"
    return None


def train_settings(args):
    """train.run's keyword arguments: the experiment's defaults, overridden by every option
    given."""
    from fastinit.lab import train

    out = dict(inits=train.DEFAULT_INITS, activation="relu", depth=None, width=128, lr=0.05,
               epochs=20)
    exp = train_experiment(args)
    if exp is not None:
        out.update(train.EXPERIMENTS[exp])
    if exp == "probe":
        if args.probe_every is not None:
            out["probe_every"] = args.probe_every
        if args.inits or args.activation:      # the runs: inits x activations, as elsewhere
            pairs = out.pop("runs")
            out["inits"] = tuple(dict.fromkeys(r["init"] for r in pairs))
            out["activation"] = tuple(dict.fromkeys(r["activation"] for r in pairs))
    if exp == "clip":      # without clipping, then each clipping the command line names
        out["clip_norm"] = (None,) if args.clip_norm is None else (None, args.clip_norm)
        out["clip_value"] = () if args.clip_value is None else (args.clip_value,)
    for key in ("inits", "activation", "depth", "width", "lr", "epochs"):
        v = getattr(args, key)
        if v is not None:
            out[key] = v
    if isinstance(out["activation"], tuple) and len(out["activation"]) == 1:
        out["activation"] = out["activation"][0]
    if args.model == "cnn":
        out["depth"] = None      # the cnn has its own layers (an experiment's depth is mlp's)
    if isinstance(out["depth"], tuple) and len(out["depth"]) == 1:
        out["depth"] = out["depth"][0]
    return out


def cmd_bench(args):
    from fastinit.lab import bench

    status = _status(args)
    ops = tuple(o for o in args.ops if o not in bench.EXTRA_OPS) or \
        (() if args.ops else bench.OPS)
    out = []
    with _compiling(status):
        if ops:
            result = bench.run(ops=ops, budget=args.budget, precision=args.precision,
                               progress=status.update)
            status.clear()
            out.append(bench.to_json(result) if args.json else bench.format_table(result))
        if "layers" in args.ops:
            import fastinit as fi
            from fastinit.lab import layers

            res = layers.run(fi.backends.current(),
                             progress=lambda msg: status.update(f"layers: {msg}"))
            status.clear()
            out.append(json.dumps(res) if args.json else layers.format_table(res))
    print("\n\n".join(out))
    return 0


# ---- the parser ----------------------------------------------------------------------------

class _RawFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks (a table of experiments)."""


def _sub(sub, name, help, description=None, epilog=None):
    s = sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                       formatter_class=_RawFormatter if epilog else _Formatter)
    s.set_defaults(parser=s)
    return s


def _timing_options(s, budget, budget_help, stop):
    """--budget and --precision of a command that times in rounds until its ratios are tight:
    ``stop`` says what stops once they have tight intervals."""
    s.add_argument("--budget", type=positive_float, default=budget, metavar="SECONDS",
                   help=budget_help)
    s.add_argument("--precision", type=percent, default=0.03, metavar="PERCENT",
                   help=f"{stop} have 95%% intervals within +-PERCENT (default: 3)")


def build_parser():
    p = argparse.ArgumentParser(
        prog="fastinit", formatter_class=_Formatter,
        description="fastinit: deep-learning kernels in Numba and C beside a NumPy reference, "
                    "and experiments that show, measured by them, why initialization matters "
                    "and why 3x3 kernels win.",
        epilog="`fastinit COMMAND --help` lists a command's options.")
    p.add_argument("--version", action="version", version=f"fastinit {_fastinit_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _sub(sub, "info", "versions, backends (and why one is missing), CPU features, threads, "
                          "Numba's cache")
    s.set_defaults(func=cmd_info)

    s = _sub(sub, "warmup", "compile every Numba kernel ahead of use, with progress")
    s.add_argument("--backend", default="numba", choices=["numba", "c", "numpy"],
                   help="backend whose kernels to exercise")
    s.add_argument("--quiet", action="store_true", help="print only the total")
    s.set_defaults(func=cmd_warmup)

    s = _sub(sub, "kernels", "3x3 stacks vs one 5x5 / 7x7: parameters, multiply-adds (MACs), "
                             "activation memory, measured time",
             description="A stack of 3x3 convolutions against one 5x5 or 7x7 with the same "
                         "receptive field: parameters, multiply-adds, activation memory, and "
                         "time on each backend and PyTorch, measured in alternating rounds "
                         "until the verdict's time ratios have tight 95% intervals or the time "
                         "budget runs out.")
    s.add_argument("--batch", type=positive_int, default=8, metavar="N", help="images per batch")
    s.add_argument("--channels", type=positive_int, default=64, metavar="C",
                   help="input and output channels")
    s.add_argument("--size", type=positive_int, default=56, metavar="H",
                   help="image height and width")
    s.add_argument("--channels-mid", type=positive_int, default=None, metavar="M",
                   help="channels between the stacked 3x3s (default: --channels)")
    s.add_argument("--relu", action="store_true", help="a ReLU between the stacked 3x3s")
    s.add_argument("--backend", type=backend_list, default=None, metavar="LIST",
                   help="backends to time, comma-separated, e.g. c,numba; the verdict speaks "
                        "for the first (default: every available one; the verdict for the "
                        "default backend)")
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="data type")
    _timing_options(s, 30.0, "stop timing after this long even if an interval is still wide",
                    "stop timing once the verdict's ratios")
    s.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    s.add_argument("--plot", type=plot_path, metavar="FILE.png",
                   help="also draw the comparison into this image (default: no plot)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--shrink", type=positive_int, metavar="H",
                   help="instead: how many unpadded convolutions take HxH down to 1x1 "
                        "(default: off)")
    s.add_argument("--kernel", type=positive_int, default=None, metavar="K",
                   help="with --shrink: the kernel size (default: 3, 5 and 7)")
    s.add_argument("--stride", type=positive_int, default=1, help="with --shrink: the stride")
    s.add_argument("--pool", type=positive_int, default=1, metavar="P",
                   help="with --shrink: a PxP max pool after each convolution (1: none)")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_kernels)

    s = _sub(sub, "signal", "activation and gradient std per layer at initialization")
    s.add_argument("--depth", type=positive_int, default=None, metavar="L",
                   help="hidden layers (default: the two classic cases, a 10-layer tanh and a "
                        "30-layer ReLU network; 10 when --activation or --inits is given)")
    s.add_argument("--width", type=positive_int, default=256, help="units per hidden layer")
    s.add_argument("--activation", default=None,
                   choices=["tanh", "sigmoid", "relu", "leaky_relu", "linear"],
                   help="nonlinearity (default: the classic cases; tanh when --depth or --inits "
                        "is given); linear: the deep linear network, 9 layers of 0.5 x and "
                        "1.5 x the identity and Xavier's, beside the exact prediction")
    s.add_argument("--inits", type=init_list, default=None, metavar="LIST",
                   help="initializations to compare, comma-separated (default: the classic "
                        "cases; standard,xavier_uniform when --depth or --activation is given)")
    s.add_argument("--batch-norm", action="store_true", help="batch norm before every activation")
    s.add_argument("--batch", type=positive_int, default=512,
                   help="digits in the batch (at most the 1,347 training digits are used)")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="seed of weights and data")
    s.add_argument("--plot", type=plot_path, metavar="FILE.png",
                   help="draw histograms and std per layer into this image (default: no plot)")
    s.add_argument("--json", action="store_true", help="print the records as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_signal)

    s = _sub(sub, "train", "train on the digits (or a 2-D toy set) with each initialization",
             description=textwrap.fill(
                 "Train the same network once per initialization (and per setting compared) "
                 "on the digits, MNIST or a 2-D toy set. --depth, --probe, --clip-norm/"
                 "--clip-value and --batch-norm each run a classic experiment with its own "
                 "defaults (below); an option given wins over them.", 90),
             epilog=textwrap.dedent("""\
                 experiments (the defaults each takes):
                   --depth L,...     Xavier vs He on plain ReLU nets of 10, 20, 30 hidden layers
                                     of 64 units, lr 0.002, 30 epochs (He et al. 2015)
                   --probe           per-layer activations every 5 steps while training: sigmoid
                                     with the standard init vs tanh with Xavier's, 4 x 128,
                                     lr 0.1, 10 epochs (Glorot & Bengio 2010)
                   --clip-norm X     the deep linear net (10 x 64, identity activations,
                   --clip-value X    weights 1.5 I) at lr 0.01, 10 epochs, without clipping
                                     and with each clipping given
                   --batch-norm      too_small, too_large and normal inits on 6 x 64 ReLU nets,
                                     with and without batch norm, lr 0.02, 20 epochs
                 """))
    # (--inits, --depth, ... of train are declared like signal's, with their own help and
    # defaults: alike in shape, not repeated logic)
    s.add_argument("--model", default="mlp", choices=["mlp", "cnn"],
                   help="mlp: 64-128-128-10 (--depth, --width: other hidden layers); cnn: two "
                        "3x3 conv + batch norm + pool blocks")
    s.add_argument("--inits", type=init_list, default=None, metavar="LIST",
                   help="initializations, comma-separated (default: zeros, too_small, "
                        "xavier_normal, he_normal, too_large, normal, torch_default; with "
                        "--toy: zeros, too_large, he_normal; an experiment's own otherwise)")
    s.add_argument("--depth", type=depth_list, default=None, metavar="L,...",
                   help="hidden layers of the mlp, one network per value, e.g. 10,20,30 "
                        "(default: 2; alone: the depth experiment)")
    s.add_argument("--width", type=positive_int, default=None,
                   help="units per hidden layer (default: 128; an experiment's own)")
    s.add_argument("--epochs", type=positive_int, default=None,
                   help="passes over the training set (default: 20; an experiment's own)")
    s.add_argument("--batch", type=positive_int, default=64, help="minibatch size")
    s.add_argument("--lr", type=positive_float, default=None,
                   help="SGD learning rate (default: 0.05; an experiment's own)")
    s.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum, in [0, 1)")
    s.add_argument("--activation", type=activation_list, default=None, metavar="LIST",
                   help="nonlinearity, or several comma-separated, one network each, among "
                        "relu, leaky_relu, tanh, sigmoid, linear (default: relu; with --probe: "
                        "sigmoid and tanh)")
    s.add_argument("--probe", action="store_true",
                   help="record each hidden layer's activations (mean, 2nd-98th percentiles, "
                        "saturation) every few steps while training; --plot draws them")
    s.add_argument("--probe-every", type=positive_int, default=None, metavar="K",
                   help="with --probe: record every K training steps (default: 5)")
    s.add_argument("--clip-norm", type=positive_float, default=None, metavar="X",
                   help="also train with the gradients clipped to global L2 norm X, beside "
                        "no clipping (default: no clipping)")
    s.add_argument("--clip-value", type=positive_float, default=None, metavar="X",
                   help="also train with every gradient clipped to [-X, X], beside no "
                        "clipping (default: no clipping)")
    s.add_argument("--batch-norm", action="store_true",
                   help="train each network with and without batch norm before every "
                        "activation")
    s.add_argument("--data", default=None, choices=["digits", "mnist"],
                   help="digits: scikit-learn's 8x8 digits, shipped; mnist: the IDX files in "
                        "--data-dir (default: digits, or mnist when --data-dir is given)")
    s.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding MNIST's four IDX files (train-images-idx3-ubyte, ...; "
                        "plain or .gz); nothing is downloaded (default: none)")
    s.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the weights, the data split and the batch order")
    s.add_argument("--toy", default=None, choices=["moons", "circles", "spirals", "xor"],
                   help="instead: train on this 2-D set and draw the decision boundaries "
                        "(default: the digits)")
    s.add_argument("--plot", type=plot_path, metavar="FILE.png",
                   help="draw the curves (or boundaries) into this image (default: no plot)")
    s.add_argument("--json", action="store_true", help="print the history as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_train)

    s = _sub(sub, "bench", "performance dashboard: each op beside NumPy and PyTorch")
    from fastinit.lab.bench import OPS, EXTRA_OPS

    def op_name(text):
        if text not in OPS + EXTRA_OPS:
            raise argparse.ArgumentTypeError(
                f"unknown op {text!r}; choose from {', '.join(OPS + EXTRA_OPS)}")
        return text

    s.add_argument("ops", nargs="*", type=op_name, metavar="OP",
                   help=f"ops to measure (default: all of {' '.join(OPS)}; also: "
                        f"{' '.join(EXTRA_OPS)})")
    _timing_options(s, 5.0, "time budget per op", "stop an op once the default backend's ratios")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_bench)
    return p


def _check_before_work(args):
    """Optional packages a command needs, checked before it starts."""
    parser = args.parser
    if getattr(args, "plot", None):
        _require(parser, f"fastinit {args.command} --plot", "matplotlib")
    if args.command == "train" and not args.toy:
        _check_train(args)
    if args.command == "signal" or (args.command == "train" and not args.toy
                                    and args.data == "digits"):
        _require(parser, f"fastinit {args.command} (scikit-learn's digits)", "sklearn")


def _check_train(args):
    """Combinations of `fastinit train` options that cannot work, and the MNIST files."""
    parser = args.parser
    if args.data is None:
        args.data = "mnist" if args.data_dir is not None else "digits"
    if args.data == "mnist":
        if args.data_dir is None:
            parser.error("argument --data-dir: --data mnist reads the IDX files from a folder; "
                         "name it with --data-dir DIR")
        from fastinit.nn import data

        try:
            data.mnist_paths(args.data_dir)
        except FileNotFoundError as exc:
            parser.error(f"argument --data-dir: {str(exc).removeprefix('path: ')}")
    elif args.data_dir is not None:
        parser.error("argument --data-dir: only with --data mnist (the digits ship with "
                     "scikit-learn)")
    if args.model == "cnn":
        for flag, given in (("--depth", args.depth), ("--width", args.width),
                            ("--batch-norm", args.batch_norm)):
            if given:
                parser.error(f"argument {flag}: only for --model mlp (the cnn has its own "
                             f"layers and batch norm)")


def _restart_for_bench():
    """``fastinit bench`` run as a command: start again with what :func:`bench.quiet_env` asks
    for, when the caller has not set it (read at library load, so it cannot be set later)."""
    import fastinit as fi
    from fastinit.lab import bench

    missing = bench.quiet_env(fi.get_num_threads())
    if missing and sys.executable:
        sys.stdout.flush()
        sys.stderr.flush()
        # the command line as it was typed (interpreter flags, script or -m): the same fastinit
        os.execve(sys.executable, sys.orig_argv, dict(os.environ, **missing))


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        _check_before_work(args)
        if argv is None and args.func is cmd_bench:
            _restart_for_bench()
        code = args.func(args)
        sys.stdout.flush()   # inside the try: a closed pipe surfaces here, not at exit
        return code
    except KeyboardInterrupt:
        print("\nfastinit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`fastinit info | head -2`): stop quietly; point stdout at
        # /dev/null so Python's exit-time flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ValueError, TypeError) as exc:
        # a value the library refused (the command line checks most before this)
        print(f"fastinit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
