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


def _gemm(op, out, a, b, b_transposed, bias):
    """out = a @ (b.T if b_transposed else b) (+ bias); a and b C- or F-contiguous."""
    a2, ta = _operand(a)
    b2, tb = _operand(b)
    if out.dtype.char == "f":  # inline, not _c.kernel: call overhead decides small products
        fn, ct = _c.lib.fi_gemm_f32, "float[]"
    else:
        fn, ct = _c.lib.fi_gemm_f64, "double[]"
    fb = _c.ffi.from_buffer
    _c.check(fn(fb(ct, out), fb(ct, a2), fb(ct, b2), _c.ffi.NULL if bias is None else fb(ct, bias),
                out.shape[0], out.shape[1], a.shape[1], ta, tb ^ b_transposed, 0), op)
    return out


def matmul(out, a, b):
    return _gemm("matmul", out, a, b, 0, None)


def linear(y, x, w, b):
    return _gemm("linear", y, x, w, 1, b)  # y = x @ w.T + b


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
