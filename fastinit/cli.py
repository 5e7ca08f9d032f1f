"""The ``fastinit`` command (also ``python -m fastinit``).

``fastinit info``     versions, backends (and why one is missing), CPU features, threads, cache
``fastinit warmup``   compile every Numba kernel ahead, and say how long it took
``fastinit kernels``  a stack of 3x3 convolutions against one 5x5 or 7x7 (``--shrink H`` too)
``fastinit signal``   signal propagation at initialization through a deep network
``fastinit train``    train on the digits with each initialization
``fastinit bench``    a performance dashboard: each op on each backend beside NumPy and PyTorch
"""
import argparse
import importlib.metadata
import json
import platform
import sys
import time


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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
    return 0


def cmd_warmup(args):
    from fastinit import _warmup

    total = time.perf_counter()
    for name, seconds in _warmup.run(args.backend, progress=not args.quiet):
        pass
    print(f"warmup: every {args.backend} kernel compiled or loaded from cache in "
          f"{time.perf_counter() - total:.1f} s")
    return 0


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _progress_printer(enabled):
    if not enabled:
        return None
    return lambda msg: print(f"  measuring {msg} ...", file=sys.stderr, flush=True)


def cmd_kernels(args):
    import numpy as np

    from fastinit.lab import kernels

    if args.shrink is not None:
        sizes = kernels.shrink(args.shrink, args.kernel, args.stride, args.pool)
        if args.json:
            print(json.dumps(dict(size=args.shrink, kernel=args.kernel, stride=args.stride,
                                  pool=args.pool, sizes=sizes, steps=len(sizes) - 1)))
            return 0
        for k in ([args.kernel] if args.kernel_given else [3, 5, 7]):
            sz = kernels.shrink(args.shrink, k, args.stride, args.pool)
            print(f"{k}x{k} unpadded, stride {args.stride}"
                  + (f", {args.pool}x{args.pool} max pool" if args.pool > 1 else "")
                  + f": {args.shrink} -> {sz[-1]} in {len(sz) - 1} steps")
            print("  " + kernels.shrink_formula(args.shrink, k, args.stride, args.pool))
            print("  " + " -> ".join(map(str, sz)))
        return 0
    backends = None if args.backend is None else _csv(args.backend)
    result = kernels.compare(batch=args.batch, channels=args.channels, size=args.size,
                             channels_mid=args.channels_mid, relu=args.relu, backends=backends,
                             dtype=np.dtype(args.dtype).type, repeat=args.repeat,
                             torch_too=not args.no_torch,
                             progress=_progress_printer(not args.json))
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
    else:
        configs = [dict(depth=args.depth or 10, activation=args.activation or "tanh",
                        inits=tuple(_csv(args.inits)) if args.inits else
                        ("standard", "xavier_uniform"))]
    results = []
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

    if args.toy:
        res = train.toy(args.toy, inits=tuple(_csv(args.inits)) if args.inits else
                        ("zeros", "too_large", "he_normal"), seed=args.seed)
        for r in res["runs"]:
            print(f"{args.toy} {r['init']:12s} accuracy {r['accuracy']:.1%} loss {r['loss']:.4g}")
        if args.plot:
            train.plot_toy(res, args.plot)
            print(f"decision boundaries written to {args.plot}")
        return 0
    inits = tuple(_csv(args.inits)) if args.inits else train.DEFAULT_INITS
    res = train.run(model=args.model, inits=inits, epochs=args.epochs, batch=args.batch,
                    lr=args.lr, momentum=args.momentum, seed=args.seed,
                    activation=args.activation, progress=not args.json)
    if args.plot:
        train.plot(res, args.plot)
    if args.json:
        print(json.dumps(res))
    else:
        print(train.format_table(res))
        if args.plot:
            print(f"curves written to {args.plot}")
    return 0


def cmd_bench(args):
    from fastinit.lab import bench

    result = bench.run(ops=tuple(args.ops) or bench.OPS, rounds=args.rounds,
                       progress=_progress_printer(not args.json))
    print(bench.to_json(result) if args.json else bench.format_table(result))
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="fastinit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="versions, backends, CPU features, threads, cache")
    s.set_defaults(func=cmd_info)
    s = sub.add_parser("warmup", help="compile every Numba kernel ahead of use")
    s.add_argument("--backend", default="numba", choices=["numba", "c", "numpy"])
    s.add_argument("--quiet", action="store_true", help="print only the total")
    s.set_defaults(func=cmd_warmup)

    s = sub.add_parser("kernels", help="3x3 stacks vs one 5x5 / 7x7: params, FLOPs, time")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--channels", type=int, default=64)
    s.add_argument("--size", type=int, default=56)
    s.add_argument("--channels-mid", type=int, default=None,
                   help="channels between the stacked 3x3s (default: --channels)")
    s.add_argument("--relu", action="store_true", help="a ReLU between the stacked 3x3s")
    s.add_argument("--backend", default=None, help="comma-separated (default: all but numpy)")
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    s.add_argument("--plot", metavar="FILE.png")
    s.add_argument("--json", action="store_true", help="print the records as JSON")
    s.add_argument("--shrink", type=int, metavar="H",
                   help="instead: how many unpadded convolutions take HxH down to 1x1")
    s.add_argument("--kernel", type=int, default=None, help="with --shrink (default 3, 5 and 7)")
    s.add_argument("--stride", type=int, default=1, help="with --shrink")
    s.add_argument("--pool", type=int, default=1, help="with --shrink: a max pool after each")
    s.set_defaults(func=cmd_kernels)

    s = sub.add_parser("signal", help="activation and gradient std per layer at initialization")
    s.add_argument("--depth", type=int, default=None)
    s.add_argument("--width", type=int, default=256)
    s.add_argument("--activation", default=None,
                   choices=["tanh", "sigmoid", "relu", "leaky_relu"])
    s.add_argument("--inits", default=None, help="comma-separated, e.g. standard,xavier_uniform")
    s.add_argument("--batch-norm", action="store_true")
    s.add_argument("--batch", type=int, default=512)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--plot", metavar="FILE.png")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_signal)

    s = sub.add_parser("train", help="train on the digits with each initialization")
    s.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    s.add_argument("--inits", default=None, help="comma-separated (default: the classic seven)")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--lr", type=float, default=0.05)
    s.add_argument("--momentum", type=float, default=0.9)
    s.add_argument("--activation", default="relu", choices=["relu", "tanh", "sigmoid"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--toy", default=None, choices=["moons", "circles", "spirals", "xor"],
                   help="instead: a 2-D set and its decision boundaries")
    s.add_argument("--plot", metavar="FILE.png")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("bench", help="performance dashboard: backends beside NumPy and PyTorch")
    s.add_argument("ops", nargs="*", help="ops to measure (default: all): init matmul conv3x3 "
                                          "conv5x5 conv7x7 batchnorm clip activations")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "func", None) is cmd_kernels:
        args.kernel_given = args.kernel is not None
        if args.kernel is None:
            args.kernel = 3
    try:
        return args.func(args)
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"fastinit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
