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
G^T M G per filter (in the data type here, float64 in C). Element (1, 1) of A dy A^T is the
sum of the tile's dy (row 1 of A is all ones), so the bias gradient comes with it.
The filter transform G g G^T of 3x3 runs in the data type, ``lanes`` filters at once.

Small images (at most half a block of tiles each, such as the one 6x6 tile of a 4x4 image)
go in blocks of whole images (:func:`image_blocks`), so the GEMMs get full row tiles; their
padded copy is zeroed once per call and only the pixels are written.

When: 3x3 or 5x5 kernel, stride 1, dilation 1, groups 1, and at least ``MIN_CHANNELS`` (C backend)
or ``MIN_CHANNELS_NUMBA`` input and output channels: below, the transforms cost more than the
products save (measured, one core, float32, x/y per pass vs direct: C backend 2.7x at 64
channels, 2x at 32, 1.1x at 16; Numba 2.3x at 64, 1.4x at 32, 0.9x at 16; a first layer,
C = 3, stays direct). On small images (at most 16x16) Numba takes it from
``MIN_CHANNELS_NUMBA_SMALL``. Backward data also needs top and left padding <= 2; the weight
gradient needs 64 tiles over the batch, K*C <= 8192 (its per-thread 36 K C accumulators)
and output images of more than 2x2 pixels (below, the direct small-image path wins).

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
#: ... except on small images (at most SMALL_IMAGE_TILES 4x4 output tiles, i.e. 16x16), which
#: the Numba path runs in blocks of whole images like the C one: there Winograd won from 16
#: channels (N64 C16 4x4 K32, 2 threads: forward, dx, dw each about 2x the direct kernels).
MIN_CHANNELS_NUMBA_SMALL = 16
SMALL_IMAGE_TILES = 16


#: Kernel sizes with a Winograd path, per backend: 3 (F(4x4,3x3)), 5 (F(2x2,5x5)).
KERNELS = (3, 5)
KERNELS_NUMBA = (3, 5)


def applies(x_shape, w_shape, stride, dilation, groups, dtype, min_channels=None, kernels=None):
    """Whether conv2d with these arguments runs Winograd (F(4x4,3x3) or F(2x2,5x5))."""
    K, Cg, R, S = w_shape
    least = min_channels
    if least is None:
        small = (-(-x_shape[2] // 4)) * (-(-x_shape[3] // 4)) <= SMALL_IMAGE_TILES
        least = MIN_CHANNELS_NUMBA_SMALL if small else MIN_CHANNELS_NUMBA
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


def describe_rule(kind, x_shape, w_shape, dtype, tile, out_hw=None):
    """The plan text of a Winograd call; ``out_hw``: the (height, width) of the pass's output
    (y, dx or dy), which says whether the images go in blocks of whole images."""
    K, C = w_shape[0], w_shape[1]
    R = w_shape[2]
    f = "F(4x4,3x3)" if R == 3 else "F(2x2,5x5)"
    what = {"forward": f"winograd {f}",
            "backward_data": f"winograd {f} on dy with flipped, transposed weights",
            "backward_weights": "winograd F(3x3,4x4) (weight gradient), summed over tiles"}[kind]
    extra = ", >= 64 tiles, K*C <= 8192" if kind == "backward_weights" else ""
    blocks = "per block of tiles"
    if out_hw is not None:
        mt = 2 if R == 5 else 4
        tiles = (-(-out_hw[0] // mt)) * (-(-out_hw[1] // mt))
        if 2 * tiles <= (TILES_PER_BLOCK_DW if kind == "backward_weights" else TILES_PER_BLOCK):
            blocks = f"per block of whole images (small images, {tiles} tile(s) each)"
    return (f"{what}: 6x6 transforms over channels, 36 GEMMs {blocks}, {tile}; "
            f"{R}x{R}, stride 1, dilation 1, groups 1, C={C} and K={K} enough{extra}")


# ---- kernels --------------------------------------------------------------------------------
import functools  # noqa: E402
import threading  # noqa: E402

import numba  # noqa: E402
from numba import prange  # noqa: E402

from .._config import njit, pjit  # noqa: E402
from ._tile import VECTOR_BYTES, make_tile  # noqa: E402
from ._wino_tile import (dy_tile, filter_tile, hwc_block16, hwc_scatter16,  # noqa: E402
                         input_tile, load_tile16, output_tile, output_tile2, store_tile16,
                         weight_out_tile)

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
#: One vector of output (dw: input) channels: a taller tile, no wasted columns (K <= lanes).
ROWS1 = 16 if VECTOR_BYTES >= 64 else 12 if VECTOR_BYTES == 32 else 8
_gemm_tile1 = make_tile(ROWS1, 1, "strided", "strided").fn
#: Tiles per block: V and M of a block (36 x TB x (C + K) values) stay in the L2.
TILES_PER_BLOCK = 32
#: Small images (at most half a block of tiles each, e.g. one 6x6 tile per 4x4 image) go in
#: blocks of whole images instead (one tile per image left 7 of 8 GEMM tile rows idle); tiles
#: per such block (forward, weight gradient).
TILES_PER_BLOCK_SMALL = 32
TILES_PER_BLOCK_SMALL_DW = 32


def image_blocks(N, tiles, TB, nthreads):
    """Blocks of whole images when an image has at most half of ``TB`` tiles (the images split
    evenly over a multiple of the threads, at most TB // tiles per block), else 0 (the rule of
    csrc/conv2d_3x3.c)."""
    if 2 * tiles > TB:
        return 0
    nb = -(-N // (TB // tiles))
    if nthreads > 1:
        nb = -(-nb // nthreads) * nthreads
    return min(nb, N)

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


@njit
def _filter3_channel(Uf, w, C, c, K, Kp, uc, ux, transposed, st, lanes):
    """U[xi][c][k] = Uf[xi*ux + c*uc + k] = (G g G^T)[xi] for the 3x3 filters of input channel
    c, k < Kp (zeros for k >= K), in the data type: the filter values staged
    filter-value-major into st (9, Kp), then ``lanes`` output channels at a time (filter_tile:
    G's structure spelt out)."""
    wf = w.reshape(-1)
    if transposed:
        for k in range(K):
            base = (c * K + k) * 9 + 8
            for rs in range(9):
                st[rs * Kp + k] = wf[base - rs]
    else:
        for k in range(K):
            base = (k * C + c) * 9
            for rs in range(9):
                st[rs * Kp + k] = wf[base + rs]
    for k in range(K, Kp):
        for rs in range(9):
            st[rs * Kp + k] = 0
    for k0 in range(0, Kp, lanes):
        filter_tile(st, k0, Kp, Uf, c * uc + k0, ux)


@njit
def _filter3(Uf, w, C, Kp, uc, ux, transposed, st, lanes):
    """_filter3_channel for every input channel, serially (small layers: a parallel launch
    costs more than the transform)."""
    K = w.shape[1] if transposed else w.shape[0]
    for c in range(C):
        _filter3_channel(Uf, w, C, c, K, Kp, uc, ux, transposed, st, lanes)


@pjit
def _filter3_parallel(Uf, w, C, Kp, uc, ux, transposed, sts, lanes):
    K = w.shape[1] if transposed else w.shape[0]
    nt = sts.shape[0]
    for t in prange(nt):
        for c in range(t * C // nt, (t + 1) * C // nt):
            _filter3_channel(Uf, w, C, c, K, Kp, uc, ux, transposed, sts[t], lanes)


#: Most C*K filters transformed serially (a parallel launch costs a few microseconds).
FILTER_SERIAL = 8192


def filter_transform(w, C, K, Kp, transposed, dtype, out=None, c_major=False):
    """U: U[xi, c, k] = (G g G^T)[xi] of the filter from input channel c to output channel k
    (3x3: in the data type; 5x5: in float64): g = w[k, c], or, when transposed, w[c, k] flipped.
    Shape (36, C, Kp), or (C, 36, Kp) when ``c_major`` (3x3 only: small layers, see _run).
    ``out``: a buffer to fill (a cached one: a fresh array costs page faults every call)."""
    shape = (C, 36, Kp) if c_major else (36, C, Kp)
    U = np.empty(shape, dtype) if out is None else out.reshape(shape)
    lanes = VECTOR_BYTES // U.itemsize
    uc, ux = (36 * Kp, Kp) if c_major else (Kp, C * Kp)
    if w.shape[-1] == 3 and Kp % lanes == 0:
        if C * K <= FILTER_SERIAL:
            _filter3(U.reshape(-1), w, C, Kp, uc, ux, transposed,
                     _workspace_named("st3", (9 * Kp,), dtype), lanes)
        else:
            nt = numba.get_num_threads()
            _filter3_parallel(U.reshape(-1), w, C, Kp, uc, ux, transposed,
                              _workspace_named("st3", (nt, 9 * Kp), dtype), lanes)
        return U
    assert not c_major
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


def pixel_table(H, W, Cp, pt, pl, Hp, Wp):
    """Offsets in the channels-last padded image of the H*W pixels of an image, row by row;
    pixels no tile reads (beyond Hp, Wp) go to a dummy row just past it (Hp*Wp*Cp; the
    caller leaves 16 values there)."""
    q = np.arange(H * W)
    yy, xx = q // W + pt, q % W + pl
    tab = (yy * Wp + xx) * Cp
    tab[(yy >= Hp) | (xx >= Wp)] = Hp * Wp * Cp
    return np.ascontiguousarray(tab, dtype=np.int64)


@njit
def _pad_small(xh, xf, x_off, C, Cp, HW, pixtab, fast16):
    """The pixels of one image (xf[x_off + c*HW + q], C x HW) into xh (channels last, the
    layout of _pad_hwc) at the offsets pixtab[q]; xh's zeros were written before (the same
    positions are zero for every image). 16 channels x 16 pixels at a time transposed in
    registers when ``fast16``."""
    c0 = 0
    if fast16:
        while c0 + 16 <= C:
            q0 = 0
            while q0 + 16 <= HW:
                hwc_scatter16(xf, x_off + c0 * HW + q0, HW, xh, c0, pixtab, q0)
                q0 += 16
            for q in range(q0, HW):
                d = pixtab[q] + c0
                for c in range(16):
                    xh[d + c] = xf[x_off + (c0 + c) * HW + q]
            c0 += 16
    for q in range(HW):
        d = pixtab[q]
        for c in range(c0, C):
            xh[d + c] = xf[x_off + c * HW + q]


@njit
def _gemm36(M, V, Uf, C, Cp, K, Kp, nt, lanes, uc, ux):
    """M[:, xi] (nt x K) = V[:, xi] (nt x C) @ U[xi] (C x K) for the 36 xi (rows 36*Cp and
    36*Kp apart; U[xi][c][k] = Uf[xi*ux + c*uc + k])."""
    if K <= lanes:   # one vector of output channels: the taller tile
        for xi in range(36):
            for t0 in range(0, nt, ROWS1):
                _gemm_tile1(C, V, (t0 * 36 + xi) * Cp, 36 * Cp, 1, Uf, xi * ux, uc, M,
                            (t0 * 36 + xi) * Kp, 36 * Kp, min(ROWS1, nt - t0), K, 0)
        return
    cols = NVEC * lanes
    for xi in range(36):
        for t0 in range(0, nt, ROWS):
            m = min(ROWS, nt - t0)
            for k0 in range(0, K, cols):
                _gemm_tile(C, V, (t0 * 36 + xi) * Cp, 36 * Cp, 1, Uf, xi * ux + k0, uc, M,
                           (t0 * 36 + xi) * Kp + k0, 36 * Kp, m, min(cols, K - k0), 0)


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
             mt, nimg, pixtab, uc, ux):
    """y3 (N, K, OH*OW) from x (N, C, H, W) and U (36, C, Kp), output tiles mt x mt (4:
    F(4x4,3x3), 2: F(2x2,5x5)); ws (threads, per-thread). nimg > 0: blocks of whole images
    (small images, see image_blocks)."""
    N = x.shape[0]
    TH = (OH + mt - 1) // mt
    TW = (OW + mt - 1) // mt
    T = TH * TW
    Hp = mt * (TH - 1) + 6
    Wp = mt * (TW - 1) + 6
    nblk = (T + TB - 1) // TB
    Uf = U.reshape(-1)
    if nimg > 0:
        xf = x.reshape(-1)
        HW = x.shape[2] * x.shape[3]
        for blk in prange(nimg):
            n0 = blk * N // nimg
            n1 = (blk + 1) * N // nimg
            w = ws[numba.get_thread_id()]
            xh = w[:Hp * Wp * Cp + 16]
            V = w[Hp * Wp * Cp + 16:Hp * Wp * Cp + 16 + 36 * TB * Cp]
            M = w[Hp * Wp * Cp + 16 + 36 * TB * Cp:Hp * Wp * Cp + 16 + 36 * TB * (Cp + Kp)]
            o = Hp * Wp * Cp + 16 + 36 * TB * (Cp + Kp)
            out = w[o:o + 16 * Kp]
            for i in range(Hp * Wp * Cp):
                xh[i] = 0
            for n in range(n0, n1):
                _pad_small(xh, xf, n * C * HW, C, Cp, HW, pixtab, transpose16)
                _input(V[(n - n0) * T * 36 * Cp:], xh, Cp, Wp, TW, 0, T, lanes, mt)
            _gemm36(M, V, Uf, C, Cp, K, Kp, (n1 - n0) * T, lanes, uc, ux)
            for n in range(n0, n1):
                if mt == 4:
                    _output(y3[n], M[(n - n0) * T * 36 * Kp:], bias, K, Kp, OH, OW, TW, 0, T, out,
                            lanes, transpose16)
                else:
                    _output2(y3[n], M[(n - n0) * T * 36 * Kp:], bias, K, Kp, OH, OW, TW, 0, T, out,
                             lanes)
        return
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
            _gemm36(M, V, Uf, C, Cp, K, Kp, nt, lanes, uc, ux)
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


@njit
def _dw_gemm36(acc, Wd, V, C, Cp, K, Kp, nt, lanes, beta):
    """acc[(xi*K + k)*Cp + c] (+)= sum over the nt tiles of Wd[t, xi, k] V[t, xi, c] (beta 0:
    =)."""
    if C <= lanes:   # one vector of input channels: the taller tile
        for xi in range(36):
            for k0 in range(0, K, ROWS1):
                _gemm_tile1(nt, Wd, xi * Kp + k0, 1, 36 * Kp, V, xi * Cp, 36 * Cp, acc,
                            (xi * K + k0) * Cp, Cp, min(ROWS1, K - k0), C, beta)
        return
    cols = NVEC * lanes
    for xi in range(36):
        for k0 in range(0, K, ROWS):
            m = min(ROWS, K - k0)
            for c0 in range(0, C, cols):
                _gemm_tile(nt, Wd, xi * Kp + k0, 1, 36 * Kp, V, xi * Cp + c0, 36 * Cp,
                           acc, (xi * K + k0) * Cp + c0, Cp, m, min(cols, C - c0), beta)


@njit
def _db_tiles(dbacc, Wd, Kp, nt):
    """dbacc[k] += sum over the nt tiles of Wd[t, 7, k]: row 1 of A is all ones, so element
    (1, 1) of A dy A^T is the sum of the tile's dy (zero beyond OH, OW): the bias gradient."""
    for t in range(nt):
        src = Wd[(t * 36 + 7) * Kp:(t * 36 + 7) * Kp + Kp]
        for k in range(Kp):
            dbacc[k] += src[k]


@pjit
def _weights(Macc, dy3, x, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes, transpose16,
             nimg, with_db, pixtab, dwpart):
    """Per-thread Macc (threads, 36*K*Cp + Kp): sum over tiles of Wd[t, xi, k] V[t, xi, c],
    then (with_db) the bias gradient per output channel. nimg > 0: blocks of whole images, and
    each thread's G^T M G into dwpart[t] (K*C*9) (then _weights_parts sums them)."""
    N = x.shape[0]
    TH = (OH + 3) // 4
    TW = (OW + 3) // 4
    T = TH * TW
    Hp = 4 * TH + 2
    Wp = 4 * TW + 2
    nblk = (T + TB - 1) // TB
    nthr = Macc.shape[0]
    fresh = np.ones(nthr, np.int64)   # a thread's first block overwrites its Macc: no zeroing
    if nimg > 0:
        # threads take contiguous runs of blocks, then apply G^T M G to their own partial
        # (linear: the small per-thread dw are summed after, not the 36 K C accumulators)
        xf = x.reshape(-1)
        HW = x.shape[2] * x.shape[3]
        for t in prange(nthr):
            w = ws[t]
            acc = Macc[t]
            xh = w[:Hp * Wp * Cp + 16]
            V = w[Hp * Wp * Cp + 16:Hp * Wp * Cp + 16 + 36 * TB * Cp]
            Wd = w[Hp * Wp * Cp + 16 + 36 * TB * Cp:Hp * Wp * Cp + 16 + 36 * TB * (Cp + Kp)]
            o = Hp * Wp * Cp + 16 + 36 * TB * (Cp + Kp)
            tmp = w[o:o + 16 * Kp]
            o9 = w[o + 16 * Kp:o + 16 * Kp + 9 * Cp]
            for i in range(Hp * Wp * Cp):
                xh[i] = 0
            for blk in range(t * nimg // nthr, (t + 1) * nimg // nthr):
                n0 = blk * N // nimg
                n1 = (blk + 1) * N // nimg
                for n in range(n0, n1):
                    _pad_small(xh, xf, n * C * HW, C, Cp, HW, pixtab, transpose16)
                    _input(V[(n - n0) * T * 36 * Cp:], xh, Cp, Wp, TW, 0, T, lanes, 4)
                    _dy_tiles(Wd[(n - n0) * T * 36 * Kp:], dy3[n], K, Kp, OH, OW, TW, 0, T, tmp,
                              lanes, transpose16)
                if fresh[t]:
                    for i in range(36 * K * Cp, acc.shape[0]):
                        acc[i] = 0
                _dw_gemm36(acc, Wd, V, C, Cp, K, Kp, (n1 - n0) * T, lanes, 1 - fresh[t])
                fresh[t] = 0
                if with_db:
                    _db_tiles(acc[36 * K * Cp:], Wd, Kp, (n1 - n0) * T)
            part = dwpart[t]
            if fresh[t]:   # no block here
                for i in range(part.shape[0]):
                    part[i] = 0
                for i in range(36 * K * Cp, acc.shape[0]):
                    acc[i] = 0
                continue
            for k in range(K):
                for c0 in range(0, Cp, lanes):
                    weight_out_tile(acc, k * Cp + c0, K * Cp, o9, c0, Cp)
                for c in range(C):
                    for rs in range(9):
                        part[(k * C + c) * 9 + rs] = o9[rs * Cp + c]
        return
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
            if fresh[tid]:
                for i in range(36 * K * Cp, acc.shape[0]):
                    acc[i] = 0
            _dw_gemm36(acc, Wd, V, C, Cp, K, Kp, nt, lanes, 1 - fresh[tid])
            fresh[tid] = 0
            if with_db:
                _db_tiles(acc[36 * K * Cp:], Wd, Kp, nt)
    for t in range(nthr):   # threads without a block
        if fresh[t]:
            for i in range(Macc.shape[1]):
                Macc[t, i] = 0


@njit
def _weights_parts(dwf, db, dwpart, Macc, K, Cp, with_db):
    """dwf = the per-thread dw partials summed in thread order; db likewise."""
    nt = dwpart.shape[0]
    for i in range(dwf.shape[0]):
        total = dwpart[0, i]
        for t in range(1, nt):
            total += dwpart[t, i]
        dwf[i] = total
    if with_db:
        size = 36 * K * Cp
        for k in range(K):
            total = Macc[0, size + k]
            for t in range(1, nt):
                total += Macc[t, size + k]
            db[k] = total


@njit
def _weights_out(dw, db, Macc, K, C, Cp, with_db, msum, o9, lanes):
    """dw[k, c] = G^T M G (weight_out_tile, in the data type), M = Macc summed over the threads
    in thread order (into msum); db likewise from the bias sums after the 36*K*Cp values.
    Serial: a parallel launch costs more than this at the sizes Winograd dw takes."""
    nt = Macc.shape[0]
    size = 36 * K * Cp
    for i in range(size):
        total = Macc[0, i]
        for t in range(1, nt):
            total += Macc[t, i]
        msum[i] = total
    for k in range(K):
        for c0 in range(0, Cp, lanes):
            weight_out_tile(msum, k * Cp + c0, K * Cp, o9, c0, Cp)
        for c in range(C):
            for rs in range(9):
                dw[k, c, rs // 3, rs % 3] = o9[rs * Cp + c]
    if with_db:
        for k in range(K):
            total = Macc[0, size + k]
            for t in range(1, nt):
                total += Macc[t, size + k]
            db[k] = total


#: Tiles per block of the weight gradient (its GEMMs reduce over the tiles of a block).
TILES_PER_BLOCK_DW = 64
#: Fewest tiles (over the batch) for Winograd weight gradients: with fewer, the per-thread
#: 36 x K x C accumulators cost more than the products save (C256 14x14 N1 lost to direct).
MIN_TILES_DW = 64
#: Output images of at most this many pixels (2x2: a 4x4 tile three quarters padding) take
#: the direct small-image path for the weight gradient (C, N64 C16 2x2 K32: 39 vs 52 us).
MAX_PIXELS_SMALL_DW = 4
#: Most K x C for Winograd weight gradients: beyond, the accumulators (36 K C values per
#: thread) leave the L2 and every tile call waits on them (Numba C128 K128: 164 vs 197 GF/s).
MAX_KC_DW = 8192


def applies_weights(x_shape, w_shape, dy_shape, stride, dilation, groups, dtype,
                    min_channels=None):
    """Whether the weight gradient runs Winograd F(3x3,4x4)."""
    N, _, OH, OW = dy_shape
    K, C = w_shape[0], w_shape[1]
    return (applies(x_shape, w_shape, stride, dilation, groups, dtype, min_channels, (3,))
            and N * (-(-OH // 4)) * (-(-OW // 4)) >= MIN_TILES_DW and K * C <= MAX_KC_DW
            and OH * OW > MAX_PIXELS_SMALL_DW)


def backward_weights(dw, db, dy, x, padding):
    """dw of a 3x3 stride-1 layer by Winograd F(3x3,4x4) (``applies_weights`` was checked),
    and db (the tile sums of dy, a by-product of its transform) unless db is None."""
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
    nimg = image_blocks(N, T, TB, nt)
    if nimg:
        TB = max(TILES_PER_BLOCK_SMALL_DW, T)
        nimg = image_blocks(N, T, TB, nt)
    nsplit = 1
    if nt > 1 and N % nt != 0 and N < 4 * nt:
        nsplit = max(1, min(-(-T // TB), nt * 2 // N + 1))
    per = (4 * TH + 2) * (4 * TW + 2) * Cp + 36 * TB * (Cp + Kp) + 16 * Kp + 9 * Cp + 256
    ws = _workspace((nt, per + 16), dt)
    Macc = _workspace_named("macc", (nt, 36 * K * Cp + Kp + GEMM.cols(dt)), dt)
    pixtab = _pixel_table(H, W, Cp, pt, pl, 4 * TH + 2, 4 * TW + 2) if nimg else _NO_TABLE
    dwpart = _workspace_named("dwpart", (nt, K * C * 9), dt)
    _weights(Macc, dy.reshape(N, K, -1), x, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes,
             TRANSPOSE16 and lanes == 16, nimg, db is not None, pixtab, dwpart)
    dbv = db if db is not None else Macc[0, :1]
    if nimg:
        _weights_parts(dw.reshape(-1), dbv, dwpart, Macc, K, Cp, db is not None)
    else:
        _weights_out(dw, dbv, Macc, K, C, Cp, db is not None,
                     _workspace_named("msum", (36 * K * Cp,), dt),
                     _workspace_named("o9", (9 * Cp,), dt), lanes)
    return dw


_scratch = threading.local()


def _workspace(shape, dtype):
    return _workspace_named("ws", shape, dtype)


def _workspace_named(name, shape, dtype):
    """A cached per-Python-thread scratch array of ``shape`` (reused: fresh buffers cost page
    faults). The view of each shape is cached too: on tiny images this runs per layer call."""
    bufs = _scratch.__dict__.get("bufs")
    if bufs is None:
        bufs = _scratch.bufs = {}
    char = np.dtype(dtype).char
    view = bufs.get((name, char, shape))
    if view is not None:
        return view
    size = 1
    for d in shape:
        size *= d
    arr = bufs.get((name, char))
    if arr is None or arr.size < size:
        for key in [k for k in bufs if k[:2] == (name, char)]:
            del bufs[key]   # views of the old buffer
        arr = bufs[(name, char)] = np.zeros(max(size, 1), dtype)
    view = bufs[(name, char, shape)] = arr[:size].reshape(shape)
    return view


_NO_TABLE = np.zeros(1, np.int64)
_pixel_table = functools.lru_cache(maxsize=64)(pixel_table)


@functools.lru_cache(maxsize=256)
def _run_plan(N, C, H, W, K, OH, OW, r, pt, pl, char, nt):
    """Sizes and blocking of one forward call (cached: on tiny images the arithmetic of this
    plan was a fifth of the call)."""
    dt = np.dtype(char)
    mt = 4 if r == 3 else 2
    lanes = VECTOR_BYTES // dt.itemsize
    cols = GEMM.cols(dt)
    Kp = lanes if K <= lanes else -(-K // cols) * cols   # one vector: the taller tile
    Cp = -(-C // lanes) * lanes
    TH, TW = -(-OH // mt), -(-OW // mt)
    T = TH * TW
    TB = TILES_PER_BLOCK
    nimg = image_blocks(N, T, TB, nt)
    if nimg:
        TB = max(TILES_PER_BLOCK_SMALL, T)
    TB = -(-TB // ROWS) * ROWS
    if nimg:
        nimg = image_blocks(N, T, TB, nt)
    # U c-major for small images (36 stores of a filter 36*Kp apart, not C*Kp: those fell into
    # two L1 sets, 4 us for 16 x 32 filters against 0.7 c-major), else xi-major
    c_major = nimg > 0 and mt == 4
    uc, ux = (36 * Kp, Kp) if c_major else (Kp, C * Kp)
    nsplit = 1
    if nt > 1 and N % nt != 0 and N < 4 * nt:
        nsplit = max(1, min(-(-T // TB), nt * 2 // N + 1))
    Hp, Wp = mt * (TH - 1) + 6, mt * (TW - 1) + 6
    per = Hp * Wp * Cp + 36 * TB * (Cp + Kp) + 16 * Kp + 256
    pixtab = pixel_table(H, W, Cp, pt, pl, Hp, Wp) if nimg else _NO_TABLE
    return (mt, lanes, Kp, Cp, TB, nimg, c_major, uc, ux, nsplit, per, pixtab)


def _run(y, x, w, b, pt, pl, transposed):
    N, C, H, W = x.shape
    K, OH, OW = y.shape[1:]
    dt = x.dtype
    nt = numba.get_num_threads()
    mt, lanes, Kp, Cp, TB, nimg, c_major, uc, ux, nsplit, per, pixtab = _run_plan(
        N, C, H, W, K, OH, OW, w.shape[-1], pt, pl, dt.char, nt)
    U = filter_transform(w, C, K, Kp, transposed, dt, _workspace_named("U", (36 * C * Kp,), dt),
                         c_major)
    bias = _workspace_named("bias", (Kp,), dt)
    bias[K:] = 0
    bias[:K] = 0 if b is None else b
    ws = _workspace((nt, per + 16), dt)
    _forward(y.reshape(N, K, -1), x, U, bias, C, Cp, K, Kp, pt, pl, OH, OW, TB, nsplit, ws, lanes,
             TRANSPOSE16 and lanes == 16, mt, nimg, pixtab, uc, ux)
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


def describe(kind, x_shape, w_shape, dtype, out_hw=None):
    cols = GEMM.cols(dtype)
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    along = w_shape[0] if kind == "forward" else w_shape[1]   # channels along the vectors
    tile = (f"{ROWS1}x{lanes} GEMM tile (one vector of {along} channels)" if along <= lanes
            else f"{ROWS}x{cols} GEMM tile ({ROWS} tiles x {cols} output channels)")
    return describe_rule(kind, x_shape, w_shape, dtype, tile, out_hw)
