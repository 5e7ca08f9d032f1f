"""C kernel of the SGD update (csrc/optim.c): a thin wrapper, same name as the reference.

The lists go to C as tables of pointers and sizes; the arrays are C-contiguous (viewed flat)
and kept alive by the caller's lists during the call.
"""
from .. import _c


def sgd_step(params, grads, velocities, lr, momentum, weight_decay):
    n = len(params)
    fb = _c.ffi.from_buffer
    arrays = params + grads if velocities is None else params + grads + velocities
    table = _c.ffi.new("void *[]", [fb(a) for a in arrays])   # one table: p, g, then v
    sizes = _c.ffi.new("int64_t[]", [p.size for p in params])
    _c.lib.fi_sgd_step(table, table + n, _c.ffi.NULL if velocities is None else table + 2 * n,
                       sizes, n, params[0].dtype.itemsize * 8, lr, momentum, weight_decay)
