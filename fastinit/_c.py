"""Loads the optional C extension ``fastinit._cfast`` once, silently.

``lib`` and ``ffi`` are the cffi objects, or ``None`` when the extension is not built or is
disabled with ``FASTINIT_DISABLE_C=1``; ``reason`` then says why (``None`` when loaded).
Nothing is printed at import: the reason surfaces only when someone asks for the C backend.
"""
import os

import numpy as np

from . import _config

lib = None
ffi = None
reason = None

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
        lib.fi_set_num_threads(_config.default_num_threads())

_CTYPES = {np.dtype(np.float32): "float *", np.dtype(np.float64): "double *",
           np.dtype(np.uint32): "uint32_t *", np.dtype(np.int64): "int64_t *",
           np.dtype(np.int32): "int32_t *", np.dtype(np.uint8): "uint8_t *"}


_CARRAYS = {dt: decl[:-2] + "[]" for dt, decl in _CTYPES.items()}


def ptr(a):
    """A typed C array over the data of C-contiguous array ``a`` (kept alive by the caller);
    it passes where the C function takes a pointer."""
    return ffi.from_buffer(_CARRAYS[a.dtype], a)  # read-only buffers too (cffi default)


def cpu_features():
    """The vector path the C kernels dispatched to on this CPU ("avx2+fma" or "portable")."""
    if lib is None:
        return None
    return ffi.string(lib.fi_cpu_path()).decode()
