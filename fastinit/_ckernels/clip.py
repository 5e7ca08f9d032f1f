"""C kernels of gradient clipping (csrc/clip.c): thin wrappers, same names as the reference.

The list of arrays goes to C as a table of pointers and one of sizes; each array is 1-D,
C-contiguous and kept alive by the caller's list during the call. (cffi's from_buffer builds
the pointer table in about 7 us for 62 arrays; ``g.ctypes.data`` took about 50 us.)
"""
from .. import _c


def _table(grads):
    ffi = _c.ffi
    addrs = ffi.new("void *[]", [ffi.from_buffer(g) for g in grads])
    sizes = ffi.new("int64_t[]", [g.size for g in grads])
    return addrs, sizes, len(grads), grads[0].dtype.itemsize * 8


def _check(status):
    if status != 0:
        raise MemoryError("clip: the C kernel could not allocate its chunk table")


def grad_norm(grads, norm_type):
    a, s, count, bits = _table(grads)
    total = _c.ffi.new("double *")
    _check(_c.lib.fi_grad_norm(total, a, s, count, bits, norm_type))
    return total[0]


def scale_(grads, scale):
    _check(_c.lib.fi_grad_scale(*_table(grads), scale))


def clamp_(grads, clip_value):
    _check(_c.lib.fi_grad_clamp(*_table(grads), clip_value))
