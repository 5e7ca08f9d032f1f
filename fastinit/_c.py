"""Loads the optional C extension ``fastinit._cfast`` once, silently.

``lib`` and ``ffi`` are the cffi objects, or ``None`` when the extension is not built or is
disabled with ``FASTINIT_DISABLE_C=1``; ``reason`` then says why (``None`` when loaded).
Nothing is printed at import: the reason surfaces only when someone asks for the C backend.

The C side's contracts in Python: :func:`kernel` finds the float32 or float64 entry point of a
kernel, :func:`check` turns the ``fi_status`` every entry point returns into an exception, and
:func:`isa_cap` caps the instruction set the kernels use (the
cap ``FASTINIT_C_ISA`` sets at import).
"""
import contextlib
import os

import numpy as np

from . import _config

lib = None
ffi = None
reason = None

#: FASTINIT_C_ISA's names, in increasing order (enum fi_isa in csrc/fastinit.h: 1, 2, 3).
ISA_NAMES = ("portable", "avx2", "avx512")

if _config.env_flag("FASTINIT_DISABLE_C"):
    reason = "disabled at run time by FASTINIT_DISABLE_C=1"
else:
    try:
        from . import _cfast  # built by setup.py from csrc/ (see fastinit/_build_ffi.py)
    except ImportError as exc:
        reason = (
            "the C extension fastinit._cfast is not built (installed with FASTINIT_BUILD_C=0 or "
            f"without a working C compiler; reinstall with one to get it): {exc}"
        )
        try:  # setup.py leaves the compiler's message here when the build was skipped
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "_cfast_build.txt")) as _note:
                reason = ("the C extension fastinit._cfast was not built at install: "
                          f"{_note.read().strip()}; reinstall with a working C compiler to get it")
        except OSError:
            pass
    else:
        lib, ffi = _cfast.lib, _cfast.ffi
        lib.fi_init()
        _cap = _config.c_isa()
        if _cap is not None:
            lib.fi_isa_cap(ISA_NAMES.index(_cap) + 1)
        lib.fi_set_num_threads(_config.default_num_threads())

_CTYPES = {np.dtype(np.float32): "float *", np.dtype(np.float64): "double *",
           np.dtype(np.uint32): "uint32_t *", np.dtype(np.int64): "int64_t *",
           np.dtype(np.int32): "int32_t *", np.dtype(np.uint8): "uint8_t *"}


_CARRAYS = {dt: decl[:-2] + "[]" for dt, decl in _CTYPES.items()}


def ptr(a):
    """A typed C array over the data of C-contiguous array ``a`` (kept alive by the caller);
    it passes where the C function takes a pointer."""
    return ffi.from_buffer(_CARRAYS[a.dtype], a)  # read-only buffers too (cffi default)


def check(status, op):
    """Raise for a C kernel's ``fi_status`` (0 is FI_OK): ``op`` names the operation."""
    if status == 0:
        return
    if status == -1:  # FI_ERR_NOMEM
        raise MemoryError(f"fastinit {op}: the C kernel ran out of memory for its scratch buffers")
    if status == -2:  # FI_ERR_ARG
        raise ValueError(f"fastinit {op}: the C kernel refused its arguments")
    raise RuntimeError(f"fastinit {op}: the C kernel failed with status {status}")


_KERNELS = {}


def kernel(name, dtype):
    """The C entry point ``fi_<name>_f32`` or ``fi_<name>_f64`` for ``dtype`` (by its kind: an
    unpickled float32 array's dtype is equal to, not the same object as, np.dtype(np.float32)),
    looked up once: the wrappers ask on every call."""
    key = (name, dtype.char)
    try:
        return _KERNELS[key]
    except KeyError:
        fn = _KERNELS[key] = getattr(lib, f"fi_{name}_{'f32' if dtype.char == 'f' else 'f64'}")
        return fn


def cpu_features():
    """The instruction set the C kernels run on ("avx512", "avx2" or "portable"), or None."""
    if lib is None:
        return None
    return ffi.string(lib.fi_isa_name(lib.fi_isa())).decode()


@contextlib.contextmanager
def isa_cap(name):
    """Within the block the C kernels use at most the instruction set ``name`` (one of
    ISA_NAMES; on a CPU without it, the best it has): yields the name of the set they use."""
    if name not in ISA_NAMES:
        raise ValueError(f"isa_cap: name must be one of {ISA_NAMES}, got {name!r}")
    previous = lib.fi_isa_cap(ISA_NAMES.index(name) + 1)
    try:
        yield cpu_features()
    finally:
        lib.fi_isa_cap(previous)
