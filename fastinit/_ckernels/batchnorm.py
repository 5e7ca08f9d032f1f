"""C kernels of batch norm (csrc/batchnorm.c): thin wrappers, same names as the reference.

x is a C-contiguous (N, C, S) float32/float64 array; statistics are (C,) float64 arrays.
"""
import numpy as np

from .. import _c


_FNS = {}


def _fn(name, dtype):
    """The C function of kernel ``name`` for ``dtype`` (looked up once: this runs per call)."""
    try:
        return _FNS[name, dtype]
    except KeyError:
        fn = getattr(_c.lib, f"fi_batch_norm_{name}_{'f32' if dtype == np.float32 else 'f64'}")
        _FNS[name, dtype] = fn
        return fn


def batch_norm_forward_train(y, mean, var, invstd, x, gamma, beta, eps):
    p = _c.ptr
    _c.check(_fn("forward_train", x.dtype)(p(y), p(mean), p(var), p(invstd), p(x), p(gamma),
                                           p(beta), eps, *x.shape), "batch_norm")


def batch_norm_forward_eval(y, invstd, x, gamma, beta, mean, var, eps):
    p = _c.ptr
    _c.check(_fn("forward_eval", x.dtype)(p(y), p(invstd), p(x), p(gamma), p(beta), p(mean),
                                          p(var), eps, *x.shape), "batch_norm")


def batch_norm_backward_train(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    p = _c.ptr
    _c.check(_fn("backward", x.dtype)(p(dx), p(dgamma), p(dbeta), p(dy), p(x), p(gamma), p(mean),
                                      p(invstd), 1, *x.shape), "batch_norm_backward")


def batch_norm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    p = _c.ptr
    _c.check(_fn("backward", x.dtype)(p(dx), p(dgamma), p(dbeta), p(dy), p(x), p(gamma), p(mean),
                                      p(invstd), 0, *x.shape), "batch_norm_backward")
