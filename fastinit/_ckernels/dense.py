"""C kernels of the dense ops (csrc/gemm.c): thin wrappers, same names as the reference.

Inputs are C- or F-contiguous 2-D arrays; an F-contiguous one is passed as the C-contiguous
array it is the transpose of, with the GEMM's "transposed" flag set (no copy). Pointers come
from ``ffi.from_buffer("float[]", x)``: one call where ``_c.ptr`` takes two, and call
overhead decides small products.
"""
from .. import _c


def _operand(x):
    """(C-contiguous array, transposed): x is arr, or arr.T when the flag is set."""
    if x.flags.c_contiguous:
        return x, 0
    return x.T, 1


def matmul(out, a, b):
    a2, ta = _operand(a)
    b2, tb = _operand(b)
    fb = _c.ffi.from_buffer
    if out.dtype.char == "f":
        fn, ct = _c.lib.fi_gemm_f32, "float[]"
    else:
        fn, ct = _c.lib.fi_gemm_f64, "double[]"
    _c.check(fn(fb(ct, out), fb(ct, a2), fb(ct, b2), _c.ffi.NULL, out.shape[0], out.shape[1],
                a.shape[1], ta, tb, 0), "matmul")
    return out


def linear(y, x, w, b):
    x2, tx = _operand(x)
    w2, tw = _operand(w)
    fb = _c.ffi.from_buffer
    if y.dtype.char == "f":
        fn, ct = _c.lib.fi_gemm_f32, "float[]"
    else:
        fn, ct = _c.lib.fi_gemm_f64, "double[]"
    bias = _c.ffi.NULL if b is None else fb(ct, b)
    # y = x @ w.T + b: B = w.T, so the flag is the opposite of w's own
    _c.check(fn(fb(ct, y), fb(ct, x2), fb(ct, w2), bias, y.shape[0], y.shape[1], x.shape[1],
                tx, 1 - tw, 0), "linear")
    return y


def linear_backward(dx, dw, db, dy, x, w):
    dy2, tdy = _operand(dy)
    x2, tx = _operand(x)
    w2, tw = _operand(w)
    fb = _c.ffi.from_buffer
    if dy.dtype.char == "f":
        fn, ct = _c.lib.fi_linear_backward_f32, "float[]"
    else:
        fn, ct = _c.lib.fi_linear_backward_f64, "double[]"
    null = _c.ffi.NULL
    _c.check(fn(null if dx is None else fb(ct, dx), null if dw is None else fb(ct, dw),
                null if db is None else fb(ct, db), fb(ct, dy2),
                fb(ct, x2), fb(ct, w2), dy.shape[0], x.shape[1], dy.shape[1], tdy, tx, tw),
             "linear_backward")
    return dx, dw, db
