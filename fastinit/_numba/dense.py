"""Numba kernels of the dense ops: same names and arguments as :mod:`fastinit.reference.dense`.

Every product runs on fastinit's own blocked GEMM (:mod:`fastinit._numba.gemm`); no BLAS.
Inputs are C- or F-contiguous 2-D arrays: an F-contiguous one is handed to the GEMM as the
C-contiguous array it is the transpose of, with the "transposed" flag set, so ``dy.T @ x`` and
``x @ w.T`` only change how panels are packed.
"""
import numpy as np

from .._config import njit
from . import gemm as _gemm


def _operand(x):
    """(C-contiguous array, transposed): x is arr, or arr.T when the flag is set."""
    if x.flags.c_contiguous:
        return x, False
    return x.T, True


def matmul(out, a, b):
    if a.flags.c_contiguous:
        a2, ta = a, False
    else:
        a2, ta = a.T, True
    if b.flags.c_contiguous:
        b2, tb = b, False
    else:
        b2, tb = b.T, True
    _gemm.gemm(a2, ta, b2, tb, out, 0)
    return out


def linear(y, x, w, b):
    x2, tx = _operand(x)
    w2, tw = _operand(w)
    _gemm.gemm(x2, tx, w2, not tw, y, 0, b)  # B = w.T: the flag is the opposite of w's own
    return y


@njit
def column_sums(out, x, transposed):
    """out[j] = sum_i X[i, j] with X = x (or x.T), accumulated in float64 in row order."""
    if transposed:
        for j in range(x.shape[0]):
            row = x[j]
            s = 0.0
            for i in range(row.size):
                s += row[i]
            out[j] = s
    else:
        acc = np.zeros(x.shape[1], np.float64)
        for i in range(x.shape[0]):
            row = x[i]
            for j in range(row.size):
                acc[j] += row[j]
        for j in range(acc.size):
            out[j] = acc[j]


def linear_backward(dx, dw, db, dy, x, w):
    dy2, tdy = _operand(dy)
    x2, tx = _operand(x)
    w2, tw = _operand(w)
    if dx is not None:
        _gemm.gemm(dy2, tdy, w2, tw, dx, 0)      # dx = dy @ w
    if dw is not None:
        _gemm.gemm(dy2, not tdy, x2, tx, dw, 0)  # dw = dy.T @ x
    if db is not None:
        column_sums(db, dy2, tdy)
    return dx, dw, db
