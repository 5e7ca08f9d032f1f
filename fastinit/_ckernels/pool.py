"""C kernels of 2-D pooling (csrc/pool.c): thin wrappers, same names as the reference."""
from .. import _c


def max_pool2d(y, x, kh, kw, sh, sw, ph, pw):
    p, h, w = x.shape
    _c.kernel("max_pool2d", x.dtype)(_c.ptr(y), _c.ptr(x), p, h, w, y.shape[1], y.shape[2],
                                     kh, kw, sh, sw, ph, pw)


def max_pool2d_backward(dx, dy, x, kh, kw, sh, sw, ph, pw):
    p, h, w = x.shape
    _c.kernel("max_pool2d_backward", x.dtype)(_c.ptr(dx), _c.ptr(dy), _c.ptr(x), p, h, w,
                                              dy.shape[1], dy.shape[2], kh, kw, sh, sw, ph, pw)


def avg_pool2d(y, x, kh, kw, sh, sw, ph, pw, count_include_pad):
    p, h, w = x.shape
    _c.kernel("avg_pool2d", x.dtype)(_c.ptr(y), _c.ptr(x), p, h, w, y.shape[1], y.shape[2],
                                     kh, kw, sh, sw, ph, pw, int(count_include_pad))


def avg_pool2d_backward(dx, dy, kh, kw, sh, sw, ph, pw, count_include_pad):
    p, h, w = dx.shape
    _c.kernel("avg_pool2d_backward", dx.dtype)(_c.ptr(dx), _c.ptr(dy), p, h, w, dy.shape[1],
                                               dy.shape[2], kh, kw, sh, sw, ph, pw,
                                               int(count_include_pad))
