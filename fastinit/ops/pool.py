"""2-D max and average pooling, forward and backward (NCHW).

``y = max_pool2d(x, kernel_size, stride=None, padding=0)``;
``dx = max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0)`` (the argmax is found
again from x: nothing is kept between the calls). ``avg_pool2d`` / ``avg_pool2d_backward``
likewise, with PyTorch's ``count_include_pad=True`` default. Output size per axis:
floor((H + 2p - k) / s) + 1, as PyTorch with ``ceil_mode=False``. ``stride`` defaults to the
kernel size; padding must be at most half the kernel (PyTorch's rule).

No ``out=``: large outputs come from the reused-output cache (fastinit/_alloc.py), which saves
the page faults of a fresh array as ``out=`` would, and the backward writes every element.
"""
import numpy as np

from .. import _alloc, _validate, backends

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "pool2d_output_shape"]


def _args(x, kernel_size, stride, padding, argname="x"):
    _validate.float_array(x, argname)
    return _geometry(x.shape, kernel_size, stride, padding, argname)


def _geometry(shape, kernel_size, stride, padding, argname):
    if len(shape) != 4:
        raise ValueError(f"{argname} must be 4-D (N, C, H, W), got shape {shape}")
    kh, kw = _validate.int_pair(kernel_size, "kernel_size", minimum=1)
    sh, sw = (kh, kw) if stride is None else _validate.int_pair(stride, "stride", minimum=1)
    ph, pw = _validate.int_pair(padding, "padding", minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    n, c, h, w = shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel_size {(kh, kw)} is larger than the padded input "
                         f"{(h + 2 * ph, w + 2 * pw)} of {argname} with shape {shape}")
    return (n, c, h, w, oh, ow), (kh, kw, sh, sw, ph, pw)


def pool2d_output_shape(x_shape, kernel_size, stride=None, padding=0):
    """(N, C, OH, OW) of pooling an input of shape ``x_shape`` (checked as the ops check x's)."""
    dims, _ = _geometry(_validate.shape(x_shape, "x_shape"), kernel_size, stride, padding,
                        "x_shape")
    n, c, _, _, oh, ow = dims
    return (n, c, oh, ow)


def _grad_args(dy, x_shape, dtype, oh, ow):
    _validate.float_array(dy, "dy")
    if dy.dtype != dtype:
        raise TypeError(f"dy has dtype {dy.dtype} but x has dtype {dtype}; mixed dtypes are not "
                        f"allowed: convert with dy.astype(np.{dtype})")
    want = (x_shape[0], x_shape[1], oh, ow)
    if dy.shape != want:
        raise ValueError(f"dy must have the pooled shape {want}, got {dy.shape}")
    return _validate.contiguous(dy)


def max_pool2d(x, kernel_size, stride=None, padding=0, *, backend=None):
    """Max over each kernel_size window; padded positions never win."""
    (n, c, h, w, oh, ow), k = _args(x, kernel_size, stride, padding)
    y = _alloc.empty((n, c, oh, ow), x.dtype)
    if y.size:
        fn, _ = backends.kernel("pool", "max_pool2d", backend)
        fn(y.reshape(n * c, oh, ow), _validate.contiguous(x).reshape(n * c, h, w), *k)
    return y


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, *, backend=None):
    """dx: each dy goes to its window's (first) maximum of x; overlaps add up."""
    (n, c, h, w, oh, ow), k = _args(x, kernel_size, stride, padding)
    dyc = _grad_args(dy, x.shape, x.dtype, oh, ow)
    dx = _alloc.empty(x.shape, x.dtype)  # every kernel writes all of dx (tests pre-fill NaN)
    if dx.size:
        fn, _ = backends.kernel("pool", "max_pool2d_backward", backend)
        fn(dx.reshape(n * c, h, w), dyc.reshape(n * c, oh, ow),
           _validate.contiguous(x).reshape(n * c, h, w), *k)
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
               backend=None):
    """Mean over each window (sums in float64 in the reference, in the data type elsewhere)."""
    (n, c, h, w, oh, ow), k = _args(x, kernel_size, stride, padding)
    include = _validate.boolean(count_include_pad, "count_include_pad")
    y = _alloc.empty((n, c, oh, ow), x.dtype)
    if y.size:
        fn, _ = backends.kernel("pool", "avg_pool2d", backend)
        fn(y.reshape(n * c, oh, ow), _validate.contiguous(x).reshape(n * c, h, w), *k, include)
    return y


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
                        backend=None):
    """dx: each dy spread evenly over its window."""
    (n, c, h, w, oh, ow), k = _args(x, kernel_size, stride, padding)
    include = _validate.boolean(count_include_pad, "count_include_pad")
    dyc = _grad_args(dy, x.shape, x.dtype, oh, ow)
    dx = _alloc.zeros(x.shape, x.dtype)
    if dx.size:
        fn, _ = backends.kernel("pool", "avg_pool2d_backward", backend)
        fn(dx.reshape(n * c, h, w), dyc.reshape(n * c, oh, ow), *k, include)
    return dx
