"""Activation functions, forward and backward, elementwise on arrays of any shape.

``y = relu(x)``, ``dx = relu_backward(dy, x)``; likewise leaky_relu, elu, tanh, sigmoid, gelu,
identity. Every backward takes the forward's *input* x (not its output) and returns
dx = dy * f'(x). Formulas and the values at kinks follow PyTorch; they are listed in
:mod:`fastinit.reference.activations`.

float32 kernels evaluate exp and tanh with fastinit's own branch-free polynomials (a few ulp;
they vectorise, libm calls do not), and gelu's normal CDF through a fitted erfc (exact gelu
within 2.2e-6 relative of float64 on [-10, 10], 9 ulp on [-4, 4], the sign always right);
float64 kernels call libm (erfc for gelu). ``out=`` (a writable,
C-contiguous array of x's shape and dtype; may be ``x`` itself) receives the result instead of
a fresh array; an ``out`` that overlaps an input other than exactly gets the result computed
from a copy of that input.
"""
import numpy as np

from .. import _alloc, _validate, backends

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
           "tanh", "tanh_backward", "sigmoid", "sigmoid_backward", "gelu", "gelu_backward",
           "identity", "identity_backward"]

_GELU = ("none", "tanh")


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _plain(a):
    """A C-contiguous, aligned, writable float32/float64 ndarray (the common case, tested
    cheaply: carray is C-contiguous, aligned and writable in one flag; a read-only x takes the
    full checks)."""
    return type(a) is np.ndarray and (a.dtype is _F32 or a.dtype is _F64) and a.flags.carray


def _unaliased(a, out):
    """``a``, or a copy of it when it overlaps ``out`` other than exactly: the kernels read
    element i before they write element i, so out=x is safe, but out shifted against x would
    read elements already written (a and out are C-contiguous of one shape and dtype, so the
    same start address means the same memory). Two distinct arrays that own their data never
    overlap: that common case skips numpy's test."""
    if a is out or (a.base is None and out.base is None):
        return a
    if (np.may_share_memory(a, out)
            and a.__array_interface__["data"][0] != out.__array_interface__["data"][0]):
        return a.copy()
    return a


def _forward(name, x, out, backend, *args):
    if _plain(x):
        xc = x
    else:
        _validate.float_array(x, "x")
        xc = _validate.contiguous(x)
    if out is None:
        y = _alloc.empty(x.shape, x.dtype)
    else:
        y = _validate.out_array(out, "out", x.shape, x.dtype)
        xc = _unaliased(xc, y)
    if x.size:
        fn, _ = backends.kernel("activations", name, backend)
        fn(y.reshape(-1), xc.reshape(-1), *args)
    return y


def _backward(name, dy, x, out, backend, *args):
    if _plain(dy) and _plain(x) and dy.dtype is x.dtype and dy.shape == x.shape:
        xc, dyc = x, dy
    else:
        _validate.float_array(dy, "dy")
        _validate.float_array(x, "x")
        _validate.same_dtype(dy, "dy", x, "x")
        _validate.same_shape(dy, "dy", x, "x")
        xc = _validate.contiguous(x)
        dyc = _validate.contiguous(dy)
    if out is None:
        dx = _alloc.empty(x.shape, x.dtype)
    else:
        dx = _validate.out_array(out, "out", x.shape, x.dtype)
        xc, dyc = _unaliased(xc, dx), _unaliased(dyc, dx)
    if x.size:
        fn, _ = backends.kernel("activations", name, backend)
        fn(dx.reshape(-1), dyc.reshape(-1), xc.reshape(-1), *args)
    return dx


def relu(x, *, out=None, backend=None):
    """max(x, 0)."""
    return _forward("relu", x, out, backend)


def relu_backward(dy, x, *, out=None, backend=None):
    """dy where x > 0, else 0."""
    return _backward("relu_backward", dy, x, out, backend)


def leaky_relu(x, negative_slope=0.01, *, out=None, backend=None):
    """x where x > 0, else negative_slope * x."""
    return _forward("leaky_relu", x, out, backend,
                    _validate.finite_number(negative_slope, "negative_slope"))


def leaky_relu_backward(dy, x, negative_slope=0.01, *, out=None, backend=None):
    return _backward("leaky_relu_backward", dy, x, out, backend,
                     _validate.finite_number(negative_slope, "negative_slope"))


def elu(x, alpha=1.0, *, out=None, backend=None):
    """x where x > 0, else alpha * (exp(x) - 1) (Clevert et al. 2016)."""
    return _forward("elu", x, out, backend, _validate.finite_number(alpha, "alpha"))


def elu_backward(dy, x, alpha=1.0, *, out=None, backend=None):
    return _backward("elu_backward", dy, x, out, backend, _validate.finite_number(alpha, "alpha"))


def tanh(x, *, out=None, backend=None):
    return _forward("tanh", x, out, backend)


def tanh_backward(dy, x, *, out=None, backend=None):
    """dy * (1 - tanh(x)**2)."""
    return _backward("tanh_backward", dy, x, out, backend)


def sigmoid(x, *, out=None, backend=None):
    """1 / (1 + exp(-x)), without overflow for any x."""
    return _forward("sigmoid", x, out, backend)


def sigmoid_backward(dy, x, *, out=None, backend=None):
    """dy * s * (1 - s), s = sigmoid(x)."""
    return _backward("sigmoid_backward", dy, x, out, backend)


def gelu(x, approximate="none", *, out=None, backend=None):
    """x * Phi(x) (Hendrycks & Gimpel 2016); approximate="tanh" for the tanh form."""
    approximate = _validate.choice(approximate, "approximate", _GELU)
    return _forward("gelu", x, out, backend, approximate == "tanh")


def gelu_backward(dy, x, approximate="none", *, out=None, backend=None):
    approximate = _validate.choice(approximate, "approximate", _GELU)
    return _backward("gelu_backward", dy, x, out, backend, approximate == "tanh")


def identity(x, *, out=None, backend=None):
    """A copy of x (the linear "activation"; useful as a baseline)."""
    return _forward("identity", x, out, backend)


def identity_backward(dy, x, *, out=None, backend=None):
    return _backward("identity_backward", dy, x, out, backend)
