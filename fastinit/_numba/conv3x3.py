"""Winograd F(4x4,3x3) and F(2x2,5x5) for 3x3 / 5x5 stride-1 convolutions (Numba), and the
rule for when they run.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). Each 4x4 block
of outputs costs 36 products per (input, output) channel pair instead of 144::

    Y = A^T [ U (.) V ] A,   U = G g G^T (6x6 per filter),   V = B^T d B (6x6 per input tile)

Summed over input channels, the 36 elementwise products become 36 matrix products, one per
transform position xi: ``M[:, xi] (tiles x K) = V[:, xi] (tiles x C) @ U[xi] (C x K)``,
computed by the GEMM's register tile (rows = tiles, vector columns = output channels). The
image is copied zero-padded and channels-last into a per-thread buffer, so the transforms
work on whole vectors of consecutive channels (:mod:`fastinit._numba._wino_tile`); V and M
exist for one block of tiles at a time, tile-major (V[t, xi, c]). Outputs go back to NCHW
through an in-register 16 x 16 transpose.

F(2x2,5x5) uses the same six points (0, 1, -1, 2, -2, infinity), so the same B^T and input
transform; only G (6x5, Cook-Toom) and A^T (2x6) differ: 36 products per 2x2 outputs instead
of 100 (measured 1.9x the direct kernel at 5x5 C=K=64, one core, both backends).

Backward data: an r x r stride-1 convolution of dy with the weights flipped and transposed,
padded by r-1 - top / r-1 - left: the same code. Backward weights: the transposed algorithm
F(3x3,4x4), ``dw = G^T [ (A dy A^T) (.) (B^T x B) ] G`` per 4x4 tile of dy, A = (A^T)^T:
36 GEMMs ``M[xi] (K x C) += Wd[:, xi]^T @ V[:, xi]`` that reduce over the tiles, then
G^T M G per filter in float64.

When: 3x3 or 5x5 kernel, stride 1, dilation 1, groups 1, and at least ``MIN_CHANNELS`` (C backend)
or ``MIN_CHANNELS_NUMBA`` input and output channels: below, the transforms cost more than the
products save (measured, one core, float32, x/y per pass vs direct: C backend 2.7x at 64
channels, 2x at 32, 1.1x at 16; Numba 2.3x at 64, 1.4x at 32, 0.9x at 16; a first layer,
C = 3, stays direct). Backward data also needs top and left padding <= 2; the weight gradient
needs 64 tiles over the batch and K*C <= 8192 (its per-thread 36 K C accumulators).

Accuracy: the transforms scale by up to 8 and divide by up to 24, so results carry a few
times the rounding error of direct convolution. Measured against float64 references
(N4 C64 16x16 K64, He-scaled weights; tests/test_conv.py::test_winograd_error; max error /
max |result|): float32 y, dx, dw about 2e-6 - 7e-6 for 3x3 and 5x5 (direct convolution:
about 5e-7), float64 about 1e-14 (direct: 1e-15). PyTorch's own CPU convolution agrees to the same
float32 tolerance.
"""
import numpy as np

#: Fewest input and output channels for which Winograd beats direct convolution here, per
#: backend (one core, float32, N4 56x56 / N8 32x32: the C path wins 1.1x at 16 channels,
#: 2x at 32, 2.7x at 64; see the module docstring of fastinit/_ckernels/conv3x3.py).
MIN_CHANNELS = 16
MIN_CHANNELS_NUMBA = 32


#: Kernel sizes with a Winograd path, per backend: 3 (F(4x4,3x3)), 5 (F(2x2,5x5)).
KERNELS = (3, 5)
KERNELS_NUMBA = (3, 5)


def applies(x_shape, w_shape, stride, dilation, groups, dtype, min_channels=None, kernels=None):
    """Whether conv2d with these arguments runs Winograd (F(4x4,3x3) or F(2x2,5x5))."""
    K, Cg, R, S = w_shape
    least = MIN_CHANNELS_NUMBA if min_channels is None else min_channels
    sizes = KERNELS_NUMBA if kernels is None else kernels
    return (R == S and R in sizes and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and Cg >= least and K >= least)


def applies_data(x_shape, w_shape, stride, padding, dilation, groups, dtype, min_channels=None,
                 kernels=None):
    """Whether the backward-data pass runs Winograd (as a forward with flipped weights, padded
    by R-1 - top / R-1 - left, which must not be negative)."""
    (pt, _), (pl, _) = padding
    R = w_shape[2]
    return (applies(x_shape, w_shape, stride, dilation, groups, dtype, min_channels, kernels)
            and pt <= R - 1 and pl <= R - 1)


def describe_rule(kind, x_shape, w_shape, dtype, tile):
    """The plan text of a Winograd call."""
    K, C = w_shape[0], w_shape[1]
    R = w_shape[2]
    f = "F(4x4,3x3)" if R == 3 else "F(2x2,5x5)"
    what = {"forward": f"winograd {f}",
            "backward_data": f"winograd {f} on dy with flipped, transposed weights",
            "backward_weights": "winograd F(3x3,4x4) (weight gradient), summed over tiles"}[kind]
    extra = ", >= 64 tiles, K*C <= 8192" if kind == "backward_weights" else ""
    return (f"{what}: 6x6 transforms over channels, 36 GEMMs per block of tiles, {tile}; "
            f"{R}x{R}, stride 1, dilation 1, groups 1, C={C} and K={K} enough{extra}")


# ---- kernels --------------------------------------------------------------------------------
import threading  # noqa: E402

import numba  # noqa: E402
from numba import prange  # noqa: E402

from .._config import njit, pjit  # noqa: E402
from ._tile import VECTOR_BYTES, make_tile  # noqa: E402
from ._wino_tile import (dy_tile, hwc_block16, input_tile, load_tile16,  # noqa: E402
                         output_tile, output_tile2, store_tile16)

#: The in-register 16 x 16 transpose that writes output tiles back to NCHW needs 16 lanes.
TRANSPOSE16 = VECTOR_BYTES == 64

#: GEMM tile: 8 tiles x 2 vectors of output channels (8x2 beat 6x4, 12x2 and 4x4 in C, where
#: the same layout runs; 32 float32 columns also suit K = 32).
if VECTOR_BYTES >= 64:
    ROWS, NVEC = 8, 2
elif VECTOR_BYTES == 32:
    ROWS, NVEC = 6, 2
else:
    ROWS, NVEC = 4, 2
GEMM = make_tile(ROWS, NVEC, "strided", "strided")
_gemm_tile = GEMM.fn
#: Tiles per block: V and M of a block (36 x TB x (C + K) values) stay in the L2.
TILES_PER_BLOCK = 32

_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
#: G (6x5) of F(2x2,5x5): Cook-Toom on the same points (0, 1, -1, 2, -2, infinity), so B^T is
#: the same as F(4x4,3x3)'s: G[j, k] = p_j^k / prod_{l != j} (p_j - p_l).
_G5 = np.array([[1 / 4, 0, 0, 0, 0], [-1 / 6] * 5, [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3], [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
                [0, 0, 0, 0, 1]])


@pjit
def _filter(U, w, G, transposed):
    """U[xi, c, k] = (G g G^T)[xi] in float64, g the r x r filter from input channel c to
    output channel k: w[k, c] (w (K, C, r, r)), or, when transposed, w[c, k] flipped
    (w (C, K, r, r)); G is 6 x r; columns k >= K stay as they are (zero)."""
    C = U.shape[1]
    K = w.shape[1] if transposed else w.shape[0]
    r = G.shape[1]
    for c in prange(C):
        tmp = np.empty((6, r, K))
        g = np.empty((r * r, K))
        for rs in range(r * r):
            for k in range(K):
                if transposed:
                    g[rs, k] = w[c, k, r - 1 - rs // r, r - 1 - rs % r]
                else:
                    g[rs, k] = w[k, c, rs // r, rs % r]
        for i in range(6):
            for s in range(r):
                for k in range(K):
                    total = 0.0
                    for a in range(r):
                        total += G[i, a] * g[a * r + s, k]
                    tmp[i, s, k] = total
        for i in range(6):
            for j in range(6):
                u = U[i * 6 + j, c]
                for k in range(K):
                    total = 0.0
                    for s in range(r):
                        total += tmp[i, s, k] * G[j, s]
                    u[k] = total


def filter_transform(w, C, K, Kp, transposed, dtype, out=None):
    """U (36, C, Kp): U[xi, c, k] = (G g G^T)[xi] of the filter from input channel c to output
    channel k, computed in float64: g = w[k, c], or, when transposed, w[c, k] flipped.
    ``out``: a buffer to fill (a cached one: a fresh array costs page faults every call)."""
    U = np.empty((36, C, Kp), dtype) if out is None else out
    U[:, :, K:] = 0
    _filter(U, w, _G if w.shape[-1] == 3 else _G5, transposed)
    return U


@njit
def _pad_hwc(xh, x3, C, Cp, pt, pl, Wp, y0, y1, fast16):
    """xh[(yy*Wp + xx)*Cp + c] = x3[c, yy - pt, xx - pl] (0 outside and for c >= C), rows
    y0 <= yy < y1: the image zero-padded, channels last."""
    H = x3.shape[1]
    W = x3.shape[2]
    for yy in range(y0, y1):
        row = xh[yy * Wp * Cp:(yy + 1) * Wp * Cp]
        iy = yy - pt
        if iy < 0 or iy >= H:
            for i in range(Wp * Cp):
                row[i] = 0
            continue
        x0 = min(pl, Wp)
        x1 = min(pl + W, Wp)
        for i in range(x0 * Cp):
            row[i] = 0
        for i in range(x1 * Cp, Wp * Cp):
            row[i] = 0
        src = x3[:, iy]
        n = x1 - x0
        j0 = 0
        if fast16:   # whole 16 x 16 blocks in registers
            xf = x3.reshape(-1)
            while j0 + 16 <= n:
                for c0 in range(0, C - 15, 16):
                    hwc_block16(xf, (c0 * H + iy) * W + j0, H * W, row, (x0 + j0) * Cp + c0, Cp)
                for j in range(j0, j0 + 16):
                    d = row[(x0 + j) * Cp:(x0 + j + 1) * Cp]
                    for c in range(C - C % 16, C):
                        d[c] = src[c, j]
                    for c in range(C, Cp):
                        d[c] = 0
                j0 += 16
        for j in range(j0, n):
            d = row[(x0 + j) * Cp:(x0 + j + 1) * Cp]
            for c in range(C):
                d[c] = src[c, j]
            for c in range(C, Cp):
                d[c] = 0


@njit
def _input(V, xh, Cp, Wp, TW, tile0, nt, lanes, mt):
    """V[(t*36 + xi)*Cp + c] = (B^T d B)[xi] for the tiles tile0..tile0+nt-1 of the block, tile
    t reading the 6x6 patch at (mt*ty, mt*tx)."""
    for t in range(nt):
        ty = (tile0 + t) // TW
        tx = (tile0 + t) - ty * TW
        input_tile(xh, ((mt * ty) * Wp + mt * tx) * Cp, Cp, Wp * Cp, V, t * 36 * Cp, Cp,
                   Cp // lanes)


@njit
def _output2(y2, M, bias, K, Kp, OH, OW, TW, tile0, nt, out, lanes):
    """F(2x2,5x5): y2[k, (2ty + i)*OW + 2tx + j] = (A^T M A)[i, j] + bias[k]."""
    for t in range(nt):
        ty = (tile0 + t) // TW
        tx = (tile0 + t) - ty * TW
        output_tile2(M, t * 36 * Kp, Kp, bias, out, 0, Kp, Kp // lanes)
        rows = min(2, OH - 2 * ty)
        cols = min(2, OW - 2 * tx)
        y0 = (2 * ty) * OW + 2 * tx
        for k in range(K):
            yk = y2[k]
            for i in range(rows):
                for j in range(cols):
                    yk[y0 + i * OW + j] = out[(i * 2 + j) * Kp + k]


@njit
def _output(y2, M, bias, K, Kp, OH, OW, TW, tile0, nt, out, lanes, transpose16):
    """y2[k, (4ty + i)*OW + 4tx + j] = (A^T M A)[i, j] + bias[k] for the tiles of the block:
    the transform into out (16 x Kp, pixel-major), then into y (in registers when
    ``transpose16``, else element by element)."""
    yf = y2.reshape(-1)
    plane = OH * OW
    for t in range(nt):
        ty = (tile0 + t) // TW
        tx = (tile0 + t) - ty * TW
        output_tile(M, t * 36 * Kp, Kp, bias, out, 0, Kp, Kp // lanes)
        rows = min(4, OH - 4 * ty)
        cols = min(4, OW - 4 * tx)
        y0 = (4 * ty) * OW + 4 * tx
        if transpose16 and rows == 4 and cols == 4:
            for k0 in range(0, K, 16):
                store_tile16(out, k0, Kp, yf, k0 * plane + y0, plane, OW, min(16, K - k0))
            continue
        for k in range(K):
            yk = y2[k]
            for i in range(rows):
                for j in range(cols):
                    yk[y0 + i * OW + j] = out[(i * 4 + j) * Kp + k]


@pjit
def _forward(y3, x, U, bias, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes, transpose16,
             mt):
    """y3 (N, K, OH*OW) from x (N, C, H, W) and U (36, C, Kp), output tiles mt x mt (4:
    F(4x4,3x3), 2: F(2x2,5x5)); ws (threads, per-thread)."""
    N = x.shape[0]
    TH = (OH + mt - 1) // mt
    TW = (OW + mt - 1) // mt
    T = TH * TW
    Hp = mt * (TH - 1) + 6
    Wp = mt * (TW - 1) + 6
    nblk = (T + TB - 1) // TB
    Uf = U.reshape(-1)
    for item in prange(N * nsplit):
        n = item // nsplit
        part = item - n * nsplit
        b0 = part * nblk // nsplit
        b1 = (part + 1) * nblk // nsplit
        if b1 <= b0:
            continue
        w = ws[numba.get_thread_id()]
        xh = w[:Hp * Wp * Cp]
        V = w[Hp * Wp * Cp:Hp * Wp * Cp + 36 * TB * Cp]
        M = w[Hp * Wp * Cp + 36 * TB * Cp:Hp * Wp * Cp + 36 * TB * (Cp + Kp)]
        o = Hp * Wp * Cp + 36 * TB * (Cp + Kp)
        out = w[o:o + 16 * Kp]
        y0 = mt * ((b0 * TB) // TW)
        y1 = mt * ((min(b1 * TB, T) - 1) // TW) + 6
        _pad_hwc(xh, x[n], C, Cp, pt, pl, Wp, y0, y1, transpose16)
        for blk in range(b0, b1):
            tile0 = blk * TB
            nt = min(TB, T - tile0)
            _input(V, xh, Cp, Wp, TW, tile0, nt, lanes, mt)
            for xi in range(36):
                for t0 in range(0, nt, ROWS):
                    m = min(ROWS, nt - t0)
                    for k0 in range(0, K, NVEC * (VECTOR_BYTES // Uf.itemsize)):
                        cols = NVEC * (VECTOR_BYTES // Uf.itemsize)
                        _gemm_tile(C, V, (t0 * 36 + xi) * Cp, 36 * Cp, 1, Uf, xi * C * Kp + k0,
                                   Kp, M, (t0 * 36 + xi) * Kp + k0, 36 * Kp, m,
                                   min(cols, K - k0), 0)
            if mt == 4:
                _output(y3[n], M, bias, K, Kp, OH, OW, TW, tile0, nt, out, lanes, transpose16)
            else:
                _output2(y3[n], M, bias, K, Kp, OH, OW, TW, tile0, nt, out, lanes)


@njit
def _dy_tiles(Wd, dy2, K, Kp, OH, OW, TW, tile0, nt, tmp, lanes, transpose16):
    """Wd[(t*36 + xi)*Kp + k] = (A dy A^T)[xi] of the 4x4 dy tiles of the block (zero beyond
    OH, OW and K): the tile gathered pixel-major into tmp (16 x Kp), then transformed."""
    dyf = dy2.reshape(-1)
    plane = OH * OW
    for t in range(nt):
        ty = (tile0 + t) // TW
        tx = (tile0 + t) - ty * TW
        rows = min(4, OH - 4 * ty)
        cols = min(4, OW - 4 * tx)
        y0 = (4 * ty) * OW + 4 * tx
        if transpose16 and rows == 4 and cols == 4 and K % 16 == 0:
            for k0 in range(0, K, 16):
                load_tile16(dyf, k0 * plane + y0, plane, OW, 16, tmp, k0, Kp)
        else:
            for i in range(16 * Kp):
                tmp[i] = 0
            for k in range(K):
                yk = dy2[k]
                for i in range(rows):
                    for j in range(cols):
                        tmp[(i * 4 + j) * Kp + k] = yk[y0 + i * OW + j]
        dy_tile(tmp, 0, Kp, Wd, t * 36 * Kp, Kp, Kp // lanes)


@pjit
def _weights(Macc, dy3, x, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes, transpose16):
    """Per-thread Macc (threads, 36*K*Cp): sum over tiles of Wd[t, xi, k] V[t, xi, c]."""
    N = x.shape[0]
    TH = (OH + 3) // 4
    TW = (OW + 3) // 4
    T = TH * TW
    Hp = 4 * TH + 2
    Wp = 4 * TW + 2
    nblk = (T + TB - 1) // TB
    cols = NVEC * lanes
    for t in range(Macc.shape[0]):
        for i in range(Macc.shape[1]):
            Macc[t, i] = 0
    for item in prange(N * nsplit):
        n = item // nsplit
        part = item - n * nsplit
        b0 = part * nblk // nsplit
        b1 = (part + 1) * nblk // nsplit
        if b1 <= b0:
            continue
        tid = numba.get_thread_id()
        w = ws[tid]
        acc = Macc[tid]
        xh = w[:Hp * Wp * Cp]
        V = w[Hp * Wp * Cp:Hp * Wp * Cp + 36 * TB * Cp]
        Wd = w[Hp * Wp * Cp + 36 * TB * Cp:Hp * Wp * Cp + 36 * TB * (Cp + Kp)]
        o = Hp * Wp * Cp + 36 * TB * (Cp + Kp)
        tmp = w[o:o + 16 * Kp]
        y0 = 4 * ((b0 * TB) // TW)
        y1 = 4 * ((min(b1 * TB, T) - 1) // TW) + 6
        _pad_hwc(xh, x[n], C, Cp, pt, pl, Wp, y0, y1, transpose16)
        for blk in range(b0, b1):
            tile0 = blk * TB
            nt = min(TB, T - tile0)
            _input(V, xh, Cp, Wp, TW, tile0, nt, lanes, 4)
            _dy_tiles(Wd, dy3[n], K, Kp, OH, OW, TW, tile0, nt, tmp, lanes, transpose16)
            for xi in range(36):
                for k0 in range(0, K, ROWS):
                    m = min(ROWS, K - k0)
                    for c0 in range(0, C, cols):
                        _gemm_tile(nt, Wd, xi * Kp + k0, 1, 36 * Kp, V, xi * Cp + c0, 36 * Cp,
                                   acc, (xi * K + k0) * Cp + c0, Cp, m, min(cols, C - c0), 1)


@pjit
def _weights_out(dw, Macc, G, K, C, Cp):
    """dw[k, c] = G^T M G in float64, M = Macc summed over the threads."""
    for kc in prange(K * C):
        k = kc // C
        c = kc - k * C
        m = np.zeros(36)
        for t in range(Macc.shape[0]):
            for xi in range(36):
                m[xi] += Macc[t, (xi * K + k) * Cp + c]
        for r in range(3):
            for s in range(3):
                total = 0.0
                for i in range(6):
                    for j in range(6):
                        total += G[i, r] * m[i * 6 + j] * G[j, s]
                dw[k, c, r, s] = total


#: Tiles per block of the weight gradient (its GEMMs reduce over the tiles of a block).
TILES_PER_BLOCK_DW = 64
#: Fewest tiles (over the batch) for Winograd weight gradients: with fewer, the per-thread
#: 36 x K x C accumulators cost more than the products save (C256 14x14 N1 lost to direct).
MIN_TILES_DW = 64
#: Most K x C for Winograd weight gradients: beyond, the accumulators (36 K C values per
#: thread) leave the L2 and every tile call waits on them (Numba C128 K128: 164 vs 197 GF/s).
MAX_KC_DW = 8192


def applies_weights(x_shape, w_shape, dy_shape, stride, dilation, groups, dtype,
                    min_channels=None):
    """Whether the weight gradient runs Winograd F(3x3,4x4)."""
    N, _, OH, OW = dy_shape
    K, C = w_shape[0], w_shape[1]
    return (applies(x_shape, w_shape, stride, dilation, groups, dtype, min_channels, (3,))
            and N * (-(-OH // 4)) * (-(-OW // 4)) >= MIN_TILES_DW and K * C <= MAX_KC_DW)


def backward_weights(dw, dy, x, padding):
    """dw of a 3x3 stride-1 layer by Winograd F(3x3,4x4) (``applies_weights`` was checked)."""
    (pt, _), (pl, _) = padding
    N, C, H, W = x.shape
    K, OH, OW = dy.shape[1:]
    dt = x.dtype
    lanes = VECTOR_BYTES // dt.itemsize
    Kp = -(-K // lanes) * lanes
    Cp = -(-C // lanes) * lanes
    TH, TW = -(-OH // 4), -(-OW // 4)
    T = TH * TW
    TB = TILES_PER_BLOCK_DW
    nt = numba.get_num_threads()
    nsplit = 1
    if nt > 1 and N % nt != 0 and N < 4 * nt:
        nsplit = max(1, min(-(-T // TB), nt * 2 // N + 1))
    per = (4 * TH + 2) * (4 * TW + 2) * Cp + 36 * TB * (Cp + Kp) + 16 * Kp
    ws = _workspace((nt, per + 16), dt)
    Macc = _workspace_named("macc", (nt, 36 * K * Cp + GEMM.cols(dt)), dt)
    _weights(Macc, dy.reshape(N, K, -1), x, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes,
             TRANSPOSE16 and lanes == 16)
    _weights_out(dw, Macc, _G, K, C, Cp)
    return dw


_scratch = threading.local()


def _workspace(shape, dtype):
    return _workspace_named("ws", shape, dtype)


def _workspace_named(name, shape, dtype):
    """A cached per-Python-thread scratch array (reused: fresh buffers cost page faults)."""
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype).char)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    arr = bufs.get(key)
    if arr is None or arr.size < size:
        arr = bufs[key] = np.zeros(max(size, 1), dtype)
    return arr[:size].reshape(shape)


def _run(y, x, w, b, pt, pl, transposed):
    N, C, H, W = x.shape
    K, OH, OW = y.shape[1:]
    dt = x.dtype
    mt = 4 if w.shape[-1] == 3 else 2
    lanes = VECTOR_BYTES // dt.itemsize
    cols = GEMM.cols(dt)
    Kp = -(-K // cols) * cols
    Cp = -(-C // lanes) * lanes
    U = filter_transform(w, C, K, Kp, transposed, dt, _workspace_named("U", (36, C, Kp), dt))
    bias = np.zeros(Kp, dt)
    if b is not None:
        bias[:K] = b
    TH, TW = -(-OH // mt), -(-OW // mt)
    T = TH * TW
    TB = -(-TILES_PER_BLOCK // ROWS) * ROWS
    nt = numba.get_num_threads()
    nsplit = 1
    if nt > 1 and N % nt != 0 and N < 4 * nt:
        nsplit = max(1, min(-(-T // TB), nt * 2 // N + 1))
    per = (mt * (TH - 1) + 6) * (mt * (TW - 1) + 6) * Cp + 36 * TB * (Cp + Kp) + 16 * Kp
    ws = _workspace((nt, per + 16), dt)
    _forward(y.reshape(N, K, -1), x, U, bias, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes,
             TRANSPOSE16 and lanes == 16, mt)
    return y


def conv2d(y, x, w, b, padding):
    """y = conv2d(x, w, b) for a 3x3 stride-1 layer (``applies`` was checked)."""
    (pt, _), (pl, _) = padding
    return _run(y, x, w, b, pt, pl, False)


def backward_data(dx, dy, w, padding):
    """dx of an r x r stride-1 layer: Winograd forward of dy with w flipped and transposed,
    padded by r-1 - top / r-1 - left (``applies_data`` was checked)."""
    (pt, _), (pl, _) = padding
    r = w.shape[-1]
    return _run(dx, dy, w, None, r - 1 - pt, r - 1 - pl, True)


def describe(kind, x_shape, w_shape, dtype):
    cols = GEMM.cols(dtype)
    return describe_rule(kind, x_shape, w_shape, dtype,
                         f"{ROWS}x{cols} GEMM tile ({ROWS} tiles x {cols} output channels)")
