"""C Winograd path of conv2d (csrc/winograd.c): F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7) forward
and dx, F(3x3,4x4) for the 3x3 weight gradient; thin calls with the blocking and the entry
points of :mod:`fastinit._numba.conv3x3` (the same for both backends). When it runs is the
planner's rule (``_winograd`` in :mod:`fastinit.ops.conv`).
"""
import sys

from .. import _c
from .._numba.conv3x3 import blocking, entry_points

_BYTES = {"avx512": 64, "avx2": 32, "portable": 16}
_ROWS = {"avx512": 12, "avx2": 6, "portable": 4}   # FI_MR of csrc/instances.h


def _plan(x_shape, k, out_hw, r, pt, pl, itemsize, transposed, weights=False):
    N, C, H, W = x_shape
    path = _c.cpu_features()
    threads = _c.lib.fi_get_num_threads()
    tb, kparts = blocking(N, C, k, out_hw[0], out_hw[1], r, itemsize, _BYTES[path], _ROWS[path],
                          threads, weights)
    return _c.ffi.new("fi_wino_plan *", dict(
        n=N, c=C, h=H, w=W, k=k, r=r, pt=pt, pl=pl, oh=out_hw[0], ow=out_hw[1], tb=tb,
        kparts=kparts, transposed=int(transposed), threads=threads, bits=8 * itemsize))


def _p(a):
    return _c.ffi.NULL if a is None else _c.ffi.from_buffer(a)


def _run(y, x, w, b, pt, pl, transposed):
    p = _plan(x.shape, y.shape[1], y.shape[2:], w.shape[-1], pt, pl, x.itemsize, transposed)
    _c.check(_c.lib.fi_conv2d_winograd(_p(y), _p(x), _p(w), _p(b), p), "conv2d")
    return y


def _run_weights(dw, db, dy, x, pt, pl):
    p = _plan(x.shape, dy.shape[1], dy.shape[2:], 3, pt, pl, x.itemsize, False, True)
    _c.check(_c.lib.fi_conv2d_winograd_dw(_p(dw), _p(db), _p(dy), _p(x), p), "conv2d_backward")
    return dw


conv2d, backward_data, backward_weights = entry_points(sys.modules[__name__])
