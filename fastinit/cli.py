"""The ``fastinit`` command (also ``python -m fastinit``).

``fastinit info``     versions, backends (and why one is missing), CPU features, threads, cache
``fastinit warmup``   compile every Numba kernel ahead, and say how long it took
"""
import argparse
import importlib.metadata
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


def build_parser():
    p = argparse.ArgumentParser(prog="fastinit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="versions, backends, CPU features, threads, cache")
    s.set_defaults(func=cmd_info)
    s = sub.add_parser("warmup", help="compile every Numba kernel ahead of use")
    s.add_argument("--backend", default="numba", choices=["numba", "c", "numpy"])
    s.add_argument("--quiet", action="store_true", help="print only the total")
    s.set_defaults(func=cmd_warmup)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"fastinit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
