"""C kernels of gradient clipping (csrc/clip.c): thin wrappers, same names as the reference.

The list of arrays goes to C as a table of pointers and one of sizes; each array is 1-D,
C-contiguous and kept alive by the caller's list during the call. (cffi's from_buffer builds
the pointer table; ``g.ctypes.data`` took several times as long.)
"""
from .. import _c


def _table(grads):
    ffi = _c.ffi
    addrs = ffi.new("void *[]", [ffi.from_buffer(g) for g in grads])
    sizes = ffi.new("int64_t[]", [g.size for g in grads])
    return addrs, sizes, len(grads), grads[0].dtype.itemsize * 8


def grad_norm(grads, norm_type):
    a, s, count, bits = _table(grads)
    total = _c.ffi.new("double *")
    _c.check(_c.lib.fi_grad_norm(total, a, s, count, bits, norm_type), "clip_grad_norm_")
    return total[0]


def scale_(grads, scale):
    _c.check(_c.lib.fi_grad_scale(*_table(grads), scale), "clip_grad_norm_")


def clamp_(grads, clip_value):
    _c.check(_c.lib.fi_grad_clamp(*_table(grads), clip_value), "clip_grad_value_")
