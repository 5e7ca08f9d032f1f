"""C kernels of 2-D convolution (csrc/conv2d.c, csrc/conv2d_3x3.c): thin wrappers, same names
and arguments as :mod:`fastinit.reference.conv`. Arrays arrive C-contiguous and checked.

Which kernel runs is decided here (Winograd for 3x3, 5x5 and 7x7 stride-1 layers, see
:mod:`fastinit._ckernels.conv3x3`) and in C
(the direct kernels pick their path themselves: the small-image path via
``fi_conv2d_small``, the channel-vector tile); :func:`plan` asks the same functions, so it
says what a call really runs. These wrappers run once per layer call on tiny images too, so
they avoid per-call work that costs microseconds (imports, repeated dtype look-ups).
"""
import numpy as np

from .. import _c
from . import conv3x3 as _wino

_CTYPE = {"f": "float[]", "d": "double[]"}
_FNS = {}


def _fns(char):
    """(forward, backward) C functions of the data type with numpy character code ``char``."""
    if char not in _FNS:
        sfx = "f32" if char == "f" else "f64"
        _FNS[char] = (getattr(_c.lib, "fi_conv2d_forward_" + sfx),
                      getattr(_c.lib, "fi_conv2d_backward_" + sfx))
    return _FNS[char]


def _p(a, ctype):
    return _c.ffi.NULL if a is None else _c.ffi.from_buffer(ctype, a)


def _sizes(x_shape, w_shape, stride, padding, dilation, groups):
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    N, C, H, W = x_shape
    K, _, R, S = w_shape
    return (N, C, H, W, K, R, S, sh, sw, pt, pb, pl, pr, dh, dw, groups)


def _check(status, what):
    if status:
        raise MemoryError(f"fastinit {what}: out of memory for its scratch buffers")


def _maybe_winograd(w_shape, stride, dilation, groups):
    """The cheap part of the Winograd rule (3x3, 5x5 or 7x7, stride 1, dilation 1, groups 1)."""
    R = w_shape[2]
    return (groups == 1 and (R == 3 or R == 5 or R == 7) and w_shape[3] == R and stride == (1, 1)
            and dilation == (1, 1))


def conv2d(y, x, w, b, stride, padding, dilation, groups):
    if (_maybe_winograd(w.shape, stride, dilation, groups)
            and _wino.applies(x.shape, w.shape, stride, dilation, groups, x.dtype)):
        return _wino.conv2d(y, x, w, b, padding)
    char = x.dtype.char
    ct = _CTYPE[char]
    fb = _c.ffi.from_buffer
    _check(_fns(char)[0](fb(ct, y), fb(ct, x), fb(ct, w), _p(b, ct),
                         *_sizes(x.shape, w.shape, stride, padding, dilation, groups)),
           "conv2d")
    return y


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    dx_direct, dw_direct, db_direct = dx, dw, db
    if _maybe_winograd(w.shape, stride, dilation, groups):
        dt = dy.dtype
        if dx is not None and _wino.applies_data(x.shape, w.shape, stride, padding, dilation,
                                                 groups, dt):
            _wino.backward_data(dx, dy, w, padding)
            dx_direct = None
        if dw is not None and _wino.applies_weights(x.shape, w.shape, dy.shape, stride,
                                                    dilation, groups, dt):
            _wino.backward_weights(dw, db, dy, x, padding)   # db rides along
            dw_direct = db_direct = None
    if dx_direct is not None or dw_direct is not None or db_direct is not None:
        char = dy.dtype.char
        ct = _CTYPE[char]
        fb = _c.ffi.from_buffer
        _check(_fns(char)[1](_p(dx_direct, ct), _p(dw_direct, ct), _p(db_direct, ct),
                             fb(ct, dy), fb(ct, x), fb(ct, w),
                             *_sizes(x.shape, w.shape, stride, padding, dilation, groups)),
               "conv2d_backward")
    return dx, dw, db


def _tile(which, dtype):
    rows, nvec, lanes = (_c.ffi.new("int *") for _ in range(3))
    _c.lib.fi_conv2d_tile(which, int(np.dtype(dtype) == np.float64), rows, nvec, lanes)
    return rows[0], nvec[0] * lanes[0], lanes[0]


def _small_plan(kind, dtype, x_shape, w_shape, out_hw, groups, why, path):
    """The plan text of the small-image path, or None when the C kernels do not take it."""
    C, K, R, S = x_shape[1], w_shape[0], w_shape[2], w_shape[3]
    code = ("forward", "backward_data", "backward_weights").index(kind)
    if not _c.lib.fi_conv2d_small(code, int(np.dtype(dtype) == np.float64), C, K, R, S,
                                  out_hw[0], out_hw[1], groups):
        return None
    what = {"forward": "y[n] = [w | b] @ [im2col(x[n]); 1]",
            "backward_data": "dcol = w^T @ dy[n], dx[n] = col2im(dcol)",
            "backward_weights": "[dw | db] += [im2col(x[n]); 1] @ dy[n]^T per thread"}[kind]
    return (f"direct small-image path (few output pixels per image: im2col of one image at a "
            f"time, {what}, GEMM tile, {path}); {why}")


def plan(kind, dtype, x_shape, w_shape, stride, padding, dilation, groups):
    path = _c.ffi.string(_c.lib.fi_conv2d_path()).decode()
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    Kg = K // groups
    why = f"{R}x{S}, stride {stride}, dilation {dilation}, groups {groups}, C={C}, K={K}"
    OH = (H + padding[0][0] + padding[0][1] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    OW = (W + padding[1][0] + padding[1][1] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    if kind == "forward" and _wino.applies(x_shape, w_shape, stride, dilation, groups, dtype):
        return _wino.describe("forward", x_shape, w_shape, dtype, (OH, OW))
    if kind == "backward_data" and _wino.applies_data(x_shape, w_shape, stride, padding,
                                                      dilation, groups, dtype):
        return _wino.describe("backward_data", x_shape, w_shape, dtype, (H, W))
    if kind == "backward_weights" and _wino.applies_weights(x_shape, w_shape, (N, K, OH, OW),
                                                            stride, dilation, groups, dtype):
        return _wino.describe("backward_weights", x_shape, w_shape, dtype, (OH, OW))
    small = _small_plan(kind, dtype, x_shape, w_shape, (OH, OW), groups, why, path)
    if small:
        return small
    if kind == "forward":
        rows, cols, _ = _tile(3, dtype)
        if R * S >= 25 and Kg % cols == 0:
            return (f"direct, {rows}x{cols} channel-vector tile ({rows} pixels of a row x "
                    f"{cols} output channels: no dropped columns, {path}), offset table into a "
                    f"per-thread padded image; {why}")
    if kind in ("forward", "backward_data"):
        per_group = Kg if kind == "forward" else Cg
        rows, cols, lanes = _tile(0, dtype)
        if per_group == 1:
            rows, cols = 1, 4 * lanes
        what = "direct" if kind == "forward" else "direct transposed (per stride phase)"
        return (f"{what}, {rows}x{cols} tile ({rows} channels x {cols} pixels, {path}), offset "
                f"table into a per-thread padded image; {why}")
    rows, cols, _ = _tile(1, dtype)
    if 2 * Kg < cols:
        return (f"direct weight gradient, dot tile (lane reduction: few output channels per "
                f"group, {path}); {why}")
    if Cg <= 4:
        rows, cols, _ = _tile(2, dtype)
    return (f"direct weight gradient, {rows}x{cols} tile (input channels x output channels, "
            f"{path}) over blocks of output pixels, per-thread partial dw; {why}")
