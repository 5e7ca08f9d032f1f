"""C kernel of the SGD update (csrc/optim.c): a thin wrapper, same name as the reference.

The lists go to C as tables of pointers and sizes; the arrays are C-contiguous (viewed flat)
and kept alive by the caller's lists during the call.
"""
from .. import _c


def _pointers(arrays):
    return _c.ffi.new("void *[]", [_c.ffi.from_buffer(a) for a in arrays])


def sgd_step(params, grads, velocities, lr, momentum, weight_decay):
    sizes = _c.ffi.new("int64_t[]", [p.size for p in params])
    v = _c.ffi.NULL if velocities is None else _pointers(velocities)
    _c.lib.fi_sgd_step(_pointers(params), _pointers(grads), v, sizes, len(params),
                       params[0].dtype.itemsize * 8, lr, momentum, weight_decay)
