"""C kernels of gradient clipping (csrc/clip.c): thin wrappers, same names as the reference.

The list of arrays goes to C as a table of addresses and sizes (int64 arrays); each array is
1-D, C-contiguous and kept alive by the caller's list during the call.
"""
import numpy as np

from .. import _c


def _table(grads):
    addrs = np.array([g.ctypes.data for g in grads], np.int64)
    sizes = np.array([g.size for g in grads], np.int64)
    return _c.ptr(addrs), _c.ptr(sizes), len(grads), grads[0].dtype.itemsize * 8, (addrs, sizes)


def _check(status):
    if status != 0:
        raise MemoryError("clip: the C kernel could not allocate its chunk table")


def grad_norm(grads, norm_type):
    a, s, count, bits, keep = _table(grads)
    total = _c.ffi.new("double *")
    _check(_c.lib.fi_grad_norm(total, a, s, count, bits, norm_type))
    return total[0]


def scale_(grads, scale):
    a, s, count, bits, keep = _table(grads)
    _check(_c.lib.fi_grad_scale(a, s, count, bits, scale))


def clamp_(grads, clip_value):
    a, s, count, bits, keep = _table(grads)
    _check(_c.lib.fi_grad_clamp(a, s, count, bits, clip_value))
