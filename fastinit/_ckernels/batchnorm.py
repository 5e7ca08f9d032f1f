"""C kernels of batch norm (csrc/batchnorm.c): thin wrappers, same names as the reference.

x is a C-contiguous (N, C, S) float32/float64 array; statistics are (C,) float64 arrays.
"""
from .. import _c


def batch_norm_forward_train(y, mean, var, invstd, x, gamma, beta, eps):
    p = _c.ptr
    fn = _c.kernel("batch_norm_forward_train", x.dtype)
    _c.check(fn(p(y), p(mean), p(var), p(invstd), p(x), p(gamma), p(beta), eps, *x.shape),
             "batch_norm")


def batch_norm_forward_eval(y, invstd, x, gamma, beta, mean, var, eps):
    p = _c.ptr
    fn = _c.kernel("batch_norm_forward_eval", x.dtype)
    _c.check(fn(p(y), p(invstd), p(x), p(gamma), p(beta), p(mean), p(var), eps, *x.shape),
             "batch_norm")


def batch_norm_backward_train(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    p = _c.ptr
    fn = _c.kernel("batch_norm_backward", x.dtype)
    _c.check(fn(p(dx), p(dgamma), p(dbeta), p(dy), p(x), p(gamma), p(mean), p(invstd), 1,
                *x.shape), "batch_norm_backward")


def batch_norm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    p = _c.ptr
    fn = _c.kernel("batch_norm_backward", x.dtype)
    _c.check(fn(p(dx), p(dgamma), p(dbeta), p(dy), p(x), p(gamma), p(mean), p(invstd), 0,
                *x.shape), "batch_norm_backward")
