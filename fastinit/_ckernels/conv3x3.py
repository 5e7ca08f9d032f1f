"""C Winograd path of conv2d (csrc/conv2d_3x3.c): F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7); when
it applies, and thin calls.

The choice for 3x3 and 5x5 is the same for the Numba backend (:mod:`fastinit._numba.conv3x3`,
which holds the rule and its measurements); only the calls differ. 7x7 is C only: F(2x2,7x7)
on 8x8 tiles (points 0, +-1, +-2, +-1/2, infinity), 64 products per 2x2 outputs and channel
pair instead of 196. It takes the same rule as 3x3 and 5x5 (stride 1, dilation 1, groups 1, C
and K >= ``MIN_CHANNELS`` = 16; dx also needs top and left padding <= 6). Measured, float32, 2
threads, AVX-512, against the direct kernels (y; dx): N32 C64 56x56 K64 37 ms against 81 for
PyTorch (2.2x); N8 56x56 C=K=16 1.35x, 1.4x; C=K=32 1.7x, 2.1x; C=K=64 2.1x, 2.5x; C16 K64
1.6x; C64 K16 1.6x; N64 C16 8x8 K16 1.8x, 2.6x; N1 C64 14x14 1.3x, 2.4x (float64 1.4x - 2.2x);
below 16 channels it lost (C=K=8 0.4x, C64 K8 0.8x). Its float32 error is of the order of
F(2x2,5x5)'s (tests/test_conv_7x7.py: max error / max |y| 5.6e-6, dx 6.1e-6 against a
float64 reference; 3x3 and 5x5 2e-6 - 7e-6, direct 7x7 2.2e-6).
"""
import numpy as np

from .. import _c
from .._numba import conv3x3 as _rule
from .._numba.conv3x3 import describe_rule

#: Kernel sizes with a C Winograd path: 3 (F(4x4,3x3)), 5 (F(2x2,5x5)), 7 (F(2x2,7x7)).
KERNELS = (3, 5, 7)


def applies(x_shape, w_shape, stride, dilation, groups, dtype):
    """Whether conv2d runs Winograd on the C backend (the rule of fastinit._numba.conv3x3,
    with 7x7 added)."""
    return _rule.applies(x_shape, w_shape, stride, dilation, groups, dtype, _rule.MIN_CHANNELS,
                         KERNELS)


def applies_weights(x_shape, w_shape, dy_shape, stride, dilation, groups, dtype):
    return _rule.applies_weights(x_shape, w_shape, dy_shape, stride, dilation, groups, dtype,
                                 _rule.MIN_CHANNELS)


def applies_data(x_shape, w_shape, stride, padding, dilation, groups, dtype):
    return _rule.applies_data(x_shape, w_shape, stride, padding, dilation, groups, dtype,
                              _rule.MIN_CHANNELS, KERNELS)

#: Tiles per block (the size of the per-thread transform buffers); <= 0: the C default.
TILES_PER_BLOCK = 0
#: The C default for F(2x2,7x7) (FI_WINO_TB7 in csrc/conv2d_3x3.c)
TILES_PER_BLOCK_7 = 32


_CTYPE = {"f": "float[]", "d": "double[]"}


def _call(y, x, w, b, pt, pl, transposed):
    N, Cin, H, W = x.shape
    Kout, OH, OW = y.shape[1:]
    char = x.dtype.char
    ct = _CTYPE[char]
    fb = _c.ffi.from_buffer
    fn = _c.lib.fi_conv2d_winograd_f32 if char == "f" else _c.lib.fi_conv2d_winograd_f64
    status = fn(fb(ct, y), fb(ct, x), fb(ct, w), _c.ffi.NULL if b is None else fb(ct, b), N,
                Cin, H, W, Kout, w.shape[-1], pt, pl, OH, OW, TILES_PER_BLOCK, int(transposed))
    if status:
        raise MemoryError("fastinit conv2d (Winograd): out of memory for its scratch buffers")
    return y


def conv2d(y, x, w, b, padding):
    """y = conv2d(x, w, b) for a 3x3 stride-1 layer (``applies`` was checked)."""
    (pt, _), (pl, _) = padding
    return _call(y, x, w, b, pt, pl, False)


def backward_data(dx, dy, w, padding):
    """dx of an r x r stride-1 layer: the forward Winograd of dy with w flipped and transposed,
    padded by r-1 - top / r-1 - left (``applies_data`` was checked)."""
    (pt, _), (pl, _) = padding
    r = w.shape[-1]
    return _call(dx, dy, w, None, r - 1 - pt, r - 1 - pl, True)


def backward_weights(dw, db, dy, x, padding):
    """dw of a 3x3 stride-1 layer by Winograd F(3x3,4x4) (``applies_weights`` was checked),
    and db (the tile sums of dy, a by-product of its transform) unless db is None."""
    (pt, _), (pl, _) = padding
    N, C, H, W = x.shape
    K, OH, OW = dy.shape[1:]
    char = dy.dtype.char
    ct = _CTYPE[char]
    fb = _c.ffi.from_buffer
    fn = _c.lib.fi_conv2d_winograd_dw_f32 if char == "f" else _c.lib.fi_conv2d_winograd_dw_f64
    if fn(fb(ct, dw), _c.ffi.NULL if db is None else fb(ct, db), fb(ct, dy), fb(ct, x), N, C,
          H, W, K, pt, pl, OH, OW, 0):
        raise MemoryError("fastinit conv2d_backward (Winograd): out of memory for its scratch")
    return dw


#: Rows of the one-vector GEMM tile per path (FI_WR1 in csrc/conv2d_3x3.c)
_ROWS1 = {"avx512": 16, "avx2+fma": 12, "portable": 8}


def describe(kind, x_shape, w_shape, dtype, out_hw=None):
    rows, nvec, lanes = (_c.ffi.new("int *") for _ in range(3))
    _c.lib.fi_conv2d_winograd_tile(int(np.dtype(dtype) == np.float64), rows, nvec, lanes)
    path = _c.ffi.string(_c.lib.fi_conv2d_path()).decode()
    # channels along the vectors: output channels (forward), x's (dx), input channels (dw)
    along = w_shape[0] if kind == "forward" else w_shape[1]
    if along <= lanes[0]:
        tile = (f"{_ROWS1[path]}x{lanes[0]} GEMM tile (one vector of {along} channels, "
                f"{path})")
    else:
        tile = (f"{rows[0]}x{nvec[0] * lanes[0]} GEMM tile ({rows[0]} tiles x "
                f"{nvec[0] * lanes[0]} output channels, {path})")
    if w_shape[2] != 7:
        return describe_rule(kind, x_shape, w_shape, dtype, tile, out_hw)
    K, C = w_shape[0], w_shape[1]
    what = {"forward": "winograd F(2x2,7x7)",
            "backward_data": "winograd F(2x2,7x7) on dy with flipped, transposed weights"}[kind]
    blocks = "per block of tiles"
    if out_hw is not None:
        tiles = (-(-out_hw[0] // 2)) * (-(-out_hw[1] // 2))
        if 2 * tiles <= TILES_PER_BLOCK_7:
            blocks = f"per block of whole images (small images, {tiles} tile(s) each)"
    return (f"{what}: 8x8 transforms over channels, 64 GEMMs {blocks}, {tile}; "
            f"7x7, stride 1, dilation 1, groups 1, C={C} and K={K} enough")
