"""Every Numba flag, environment variable and thread setting of fastinit, in one place (the
tests and benchmarks read FASTINIT_TEST_BACKENDS and FASTINIT_BENCH_NO_WAIT besides).

No other module hard-codes ``cache=``, ``fastmath=``, ``error_model=`` or ``boundscheck=``:
kernels decorate themselves with :func:`njit` / :func:`pjit` from here.

Environment variables
---------------------
``FASTINIT_BACKEND``     default backend name (``numpy``, ``numba``, ``c``); unset = fastest.
``FASTINIT_DISABLE_C``   ``1`` hides the C extension at run time (the suite runs once this way).
``FASTINIT_BUILD_C``     ``0`` skips building the C extension at install time (see setup.py).
``FASTINIT_NUM_THREADS`` thread count for Numba and C kernels at import (default: all cores).
``FASTINIT_C_ISA``       ``avx512``, ``avx2`` or ``portable``: caps the instruction set of the C
                         kernels (default: the best the CPU has; CI tests the AVX2 build so).
``FASTINIT_OUTPUT_CACHE_MB`` size of the cache of reused outputs (fastinit/_alloc.py).
``FASTINIT_SANITIZE``    ``1`` builds the C extension under ASan and UBSan (CI only; see
                         fastinit/_build_ffi.py).
``NUMBA_CACHE_DIR``      where Numba keeps compiled kernels (Numba's own variable).
"""
import os
import sys
import types

import numba

# --- Numba flags ---------------------------------------------------------------------------
#: Compiled kernels are cached on disk, so a warm process does not recompile (docs/performance.md).
CACHE = True
#: Bounds checks off in kernels: wrappers validate every shape before a kernel runs.
BOUNDSCHECK = False
#: 'numpy' drops the ZeroDivisionError branch that blocks vectorisation (docs/performance.md).
ERROR_MODEL = "numpy"
#: Fast-math flags for arithmetic kernels: FMA contraction and no NaN/Inf/signed-zero care, but
#: no 'reassoc', which lets LLVM restructure loops we laid out on purpose (docs/performance.md).
FASTMATH = frozenset({"contract", "nnan", "ninf", "nsz", "arcp"})
#: Flags for kernels whose results are promised bit-for-bit across backends (the random
#: stream): no contraction, no reciprocal or reassociation, so every float op rounds as
#: IEEE 754 says and NumPy, Numba and C give the same bits.
FASTMATH_EXACT = frozenset()
#: Flags for elementwise kernels whose NaN and inf results are part of the contract (the
#: activations: a diverging network must show NaN, not tanh(NaN) = -1): FASTMATH without
#: 'nnan' and 'ninf', under which LLVM may fold away every comparison with NaN or inf.
FASTMATH_SPECIALS = frozenset({"contract", "nsz", "arcp"})
#: Flags for a plain reduction loop that should sum in vector lanes (the GEMM's dot products):
#: FASTMATH plus 'reassoc', without which LLVM keeps a sum loop scalar. The order is then
#: LLVM's, fixed for a build (and independent of the thread count: callers chunk the work).
FASTMATH_REDUCE = FASTMATH | {"reassoc"}

#: Threading layer priority. OpenMP is GNU libgomp, the runtime the C kernels use, so the two
#: backends share one pool of worker threads instead of competing for the cores; tbb needs
#: Intel's TBB library, which pip installs where a virtual environment's loader does not look;
#: workqueue aborts the process when two Python threads launch kernels at once. The omp layer
#: is not fork-safe (Numba kills a child that launches a parallel kernel, and libgomp would
#: wait forever there for the parent's workers), so a forked child runs serial twins of the
#: parallel kernels instead (see _serial_in_child).
numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

#: Below this many elements a kernel runs serially: a parallel launch costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 15


def njit(*args, exact=False, specials=False, **kwargs):
    """``numba.njit`` with fastinit's flags (serial kernel): ``exact`` for bit-for-bit IEEE
    arithmetic, ``specials`` to keep NaN and inf semantics (FASTMATH_SPECIALS)."""
    flags = FASTMATH_EXACT if exact else (FASTMATH_SPECIALS if specials else FASTMATH)
    opts = dict(cache=CACHE, boundscheck=BOUNDSCHECK, error_model=ERROR_MODEL,
                fastmath=set(flags), nogil=True)
    opts.update(kwargs)
    return numba.njit(*args, **opts)


def pjit(*args, exact=False, specials=False, **kwargs):
    """``numba.njit(parallel=True)`` with fastinit's flags (kernel with ``prange``).

    Parallel kernels are called from Python (through their module's global name), never from
    another jitted function: in a forked child that name is rebound to a serial twin."""
    if not (args and callable(args[0])):
        return lambda fn: pjit(fn, *args, exact=exact, specials=specials, **kwargs)
    if IN_FORKED_CHILD:  # a module first imported in a forked child
        return _serial_twin(args[0], exact, specials, kwargs)
    kernel = njit(*args, exact=exact, specials=specials, parallel=True, **kwargs)
    _parallel_kernels[id(kernel)] = (kernel, exact, specials, kwargs)
    return kernel


def serial(kernel):
    """The serial twin of pjit kernel ``kernel`` (its prange runs as range), made once: the one
    driver of a family serves calls below its parallel threshold too, with no hand-written
    range copy. In a forked child ``kernel`` may already be a twin: it is returned as is."""
    entry = _parallel_kernels.get(id(kernel))
    if entry is None:
        return kernel
    twin = _twins.get(id(kernel))
    if twin is None:
        _, exact, specials, kwargs = entry
        twin = _twins[id(kernel)] = _serial_twin(kernel.py_func, exact, specials, kwargs)
    return twin


# ---- fork --------------------------------------------------------------------------------
#: id -> (parallel kernel, its flags): every kernel pjit made, for _serial_in_child.
_parallel_kernels = {}
#: id of a parallel kernel -> its serial twin, made by serial()
_twins = {}
#: True in a child of os.fork(): kernels run on the calling thread there (see below).
IN_FORKED_CHILD = False


def _serial_twin(f, exact, specials, kwargs):
    """Python function ``f`` of a parallel kernel compiled without ``parallel`` (prange runs
    as range). The copy gets its own qualified name: Numba's disk cache does not key entries by
    the parallel flag, so under the same name the twin would load the parallel code (or
    overwrite it)."""
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                              f.__closure__)
    twin.__qualname__ = f.__qualname__ + "__serial"
    twin.__module__ = f.__module__
    return njit(twin, exact=exact, specials=specials, **kwargs)


def _serial_in_child():
    """After os.fork(), in the child: rebind every parallel kernel's module-level name to its
    serial twin. With Numba's omp layer a child that launches a parallel kernel is terminated
    by Numba (GNU OpenMP is not fork-safe), and libgomp would otherwise wait forever for the
    parent's worker threads, which the child does not have. Twins compile on first use in a
    child (then come from the disk cache); the C kernels make the same choice (csrc/dispatch.h)."""
    global IN_FORKED_CHILD
    IN_FORKED_CHILD = True
    twins = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "fastinit" or name.startswith("fastinit.")):
            continue
        namespace = vars(module)
        for attr, value in list(namespace.items()):
            entry = _parallel_kernels.get(id(value))
            if entry is None or entry[0] is not value:
                continue
            if id(value) not in twins:
                kernel, exact, specials, kwargs = entry
                twins[id(value)] = _serial_twin(kernel.py_func, exact, specials, kwargs)
            namespace[attr] = twins[id(value)]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_serial_in_child)


def env_flag(name, default=False):
    """True when environment variable ``name`` is set to a true-ish value."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "no", "false", "off")


def default_num_threads():
    """Threads at import: ``FASTINIT_NUM_THREADS`` when set, else every core Numba sees."""
    value = os.environ.get("FASTINIT_NUM_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"FASTINIT_NUM_THREADS must be a positive integer, got {value!r}")
        if n < 1:
            raise ValueError(f"FASTINIT_NUM_THREADS must be a positive integer, got {value!r}")
        return min(n, numba.config.NUMBA_NUM_THREADS)
    return numba.config.NUMBA_NUM_THREADS


def c_isa():
    """``FASTINIT_C_ISA``: the name of the C kernels' instruction-set cap, or None (no cap)."""
    value = os.environ.get("FASTINIT_C_ISA", "").strip().lower()
    if not value:
        return None
    if value not in ("portable", "avx2", "avx512"):
        raise ValueError(f"FASTINIT_C_ISA must be portable, avx2 or avx512, got {value!r}")
    return value


def cache_dir():
    """Where Numba writes its cache for fastinit's kernels (a description, for `fastinit info`)."""
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_numba", "__pycache__")
    parent = os.path.dirname(here)
    if os.access(parent, os.W_OK):
        return here
    return os.path.join(os.path.expanduser("~"), ".cache", "numba") + " (package dir not writable)"
