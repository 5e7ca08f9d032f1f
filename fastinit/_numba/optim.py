"""Numba kernel of the SGD update (contract of :mod:`fastinit.ops.optim`).

The lists arrive as an int64 table of addresses (params, grads, velocities) and sizes, viewed
with ``numba.carray`` (one jitted call for the whole list, as the clipping kernels do); the
list is cut into the clipping kernels' fixed chunks, run in parallel above
``PARALLEL_MIN_ELEMENTS`` elements. Compiled with ``exact=True``: no fast-math, no FMA
contraction, so the results are bit-identical to the reference and the C kernel.
"""
import numpy as np
from numba import carray, prange

from .. import _config
from .._config import njit, pjit
from ._reductions import address, pointer_like
from .clip import CHUNK, _chunks


@njit(exact=True, inline="always")
def _chunk(table, which, start, k, proto, lr, m, wd):
    i = which[k]
    lo = start[k]
    hi = min(table[3, i], lo + CHUNK)
    n = table[3, i]
    p = carray(pointer_like(table[0, i], proto), (n,))[lo:hi]
    g = carray(pointer_like(table[1, i], proto), (n,))[lo:hi]
    if table[2, i] != 0:  # velocities given (momentum != 0), even if m rounds to 0
        v = carray(pointer_like(table[2, i], proto), (n,))[lo:hi]
        if wd != 0:
            for j in range(p.shape[0]):
                u = m * v[j] + (g[j] + wd * p[j])
                v[j] = u
                p[j] = p[j] - lr * u
        else:
            for j in range(p.shape[0]):
                u = m * v[j] + g[j]
                v[j] = u
                p[j] = p[j] - lr * u
    elif wd != 0:
        for j in range(p.shape[0]):
            p[j] = p[j] - lr * (g[j] + wd * p[j])
    else:
        for j in range(p.shape[0]):
            p[j] = p[j] - lr * g[j]


@pjit(exact=True)
def _step_par(table, which, start, proto, lr, m, wd):
    for k in prange(which.shape[0]):
        _chunk(table, which, start, k, proto, lr, m, wd)


@njit(exact=True)
def _step(table, which, start, proto, lr, m, wd):
    for k in range(which.shape[0]):
        _chunk(table, which, start, k, proto, lr, m, wd)


def sgd_step(params, grads, velocities, lr, momentum, weight_decay):
    table = np.empty((4, len(params)), np.int64)
    table[0] = [address(p) for p in params]
    table[1] = [address(g) for g in grads]
    table[2] = 0 if velocities is None else [address(v) for v in velocities]
    table[3] = [p.size for p in params]
    which, start = _chunks(table[3])
    proto = np.empty(0, params[0].dtype)
    t = proto.dtype.type
    run = _step_par if int(table[3].sum()) >= _config.PARALLEL_MIN_ELEMENTS else _step
    run(table, which, start, proto, t(lr), t(momentum), t(weight_decay))
