"""NumPy reference of the dense ops: the oracle every backend is compared with.

This is the only place in fastinit that calls BLAS (through ``numpy.matmul``). Kernels take
their outputs first, then inputs; the wrappers in :mod:`fastinit.ops.dense` have checked every
shape and dtype. Inputs are C- or F-contiguous 2-D arrays (a transposed view is passed as is);
outputs are C-contiguous and are filled in place.

    matmul(out, a, b)                      out = a @ b           a (M, K), b (K, N)
    linear(y, x, w, b)                     y = x @ w.T + b       x (N, in), w (out, in), b (out,)
    linear_backward(dx, dw, db, dy, x, w)  dx = dy @ w, dw = dy.T @ x, db = dy.sum(0)
                                           (db None: the layer has no bias)
"""
import numpy as np


def matmul(out, a, b):
    np.matmul(a, b, out=out)
    return out


def linear(y, x, w, b):
    np.matmul(x, w.T, out=y)
    if b is not None:
        y += b
    return y


def linear_backward(dx, dw, db, dy, x, w):
    if dx is not None:
        np.matmul(dy, w, out=dx)
    if dw is not None:
        np.matmul(dy.T, x, out=dw)
    if db is not None:
        np.sum(dy, axis=0, out=db)
    return dx, dw, db
