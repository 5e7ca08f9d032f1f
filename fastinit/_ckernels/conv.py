"""C kernels of 2-D convolution (csrc/conv2d.c, csrc/conv2d_3x3.c): thin wrappers, same names
and arguments as :mod:`fastinit.reference.conv`. Arrays arrive C-contiguous and checked."""
import numpy as np

from .. import _c


def _sizes(x_shape, w_shape, stride, padding, dilation, groups):
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    N, C, H, W = x_shape
    K, _, R, S = w_shape
    return (N, C, H, W, K, R, S, sh, sw, pt, pb, pl, pr, dh, dw, groups)


def _ptr(a):
    return _c.ffi.NULL if a is None else _c.ptr(a)


def _check(status, what):
    if status:
        raise MemoryError(f"fastinit {what}: out of memory for its scratch buffers")


def _winograd():
    from . import conv3x3
    return conv3x3


def conv2d(y, x, w, b, stride, padding, dilation, groups):
    wino = _winograd()
    if wino.applies(x.shape, w.shape, stride, dilation, groups, x.dtype):
        return wino.conv2d(y, x, w, b, padding)
    fn = _c.lib.fi_conv2d_forward_f32 if x.dtype == np.float32 else _c.lib.fi_conv2d_forward_f64
    _check(fn(_c.ptr(y), _c.ptr(x), _c.ptr(w), _ptr(b),
              *_sizes(x.shape, w.shape, stride, padding, dilation, groups)), "conv2d")
    return y


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    wino = _winograd()
    dx_direct = dx
    if dx is not None and wino.applies_data(x.shape, w.shape, stride, padding, dilation, groups,
                                            dy.dtype):
        wino.backward_data(dx, dy, w, padding)
        dx_direct = None
    dw_direct = dw
    if dw is not None and wino.applies_weights(x.shape, w.shape, dy.shape, stride, dilation,
                                               groups, dy.dtype):
        wino.backward_weights(dw, dy, x, padding)
        dw_direct = None
    if dx_direct is not None or dw_direct is not None or db is not None:
        fn = (_c.lib.fi_conv2d_backward_f32 if dy.dtype == np.float32
              else _c.lib.fi_conv2d_backward_f64)
        _check(fn(_ptr(dx_direct), _ptr(dw_direct), _ptr(db), _c.ptr(dy), _c.ptr(x), _c.ptr(w),
                  *_sizes(x.shape, w.shape, stride, padding, dilation, groups)),
               "conv2d_backward")
    return dx, dw, db


def _tile(which, dtype):
    rows, nvec, lanes = (_c.ffi.new("int *") for _ in range(3))
    _c.lib.fi_conv2d_tile(which, int(np.dtype(dtype) == np.float64), rows, nvec, lanes)
    return rows[0], nvec[0] * lanes[0], lanes[0]


def plan(kind, dtype, x_shape, w_shape, stride, padding, dilation, groups):
    wino = _winograd()
    path = _c.ffi.string(_c.lib.fi_conv2d_path()).decode()
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    Kg = K // groups
    why = f"{R}x{S}, stride {stride}, dilation {dilation}, groups {groups}, C={C}, K={K}"
    if kind == "forward" and wino.applies(x_shape, w_shape, stride, dilation, groups, dtype):
        return wino.describe("forward", x_shape, w_shape, dtype)
    if kind == "backward_data" and wino.applies_data(x_shape, w_shape, stride, padding, dilation,
                                                     groups, dtype):
        return wino.describe("backward_data", x_shape, w_shape, dtype)
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
    N = x_shape[0]
    OH = (H + padding[0][0] + padding[0][1] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    OW = (W + padding[1][0] + padding[1][1] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    if wino.applies_weights(x_shape, w_shape, (N, K, OH, OW), stride, dilation, groups, dtype):
        return wino.describe("backward_weights", x_shape, w_shape, dtype)
    rows, cols, _ = _tile(1, dtype)
    if 2 * Kg < cols:
        return (f"direct weight gradient, dot tile (lane reduction: few output channels per "
                f"group, {path}); {why}")
    if Cg <= 4:
        rows, cols, _ = _tile(2, dtype)
    return (f"direct weight gradient, {rows}x{cols} tile (input channels x output channels, "
            f"{path}) over blocks of output pixels, per-thread partial dw; {why}")
