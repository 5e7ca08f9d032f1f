"""Numba kernels of 2-D convolution: direct, with no materialised im2col.

Same names and arguments as :mod:`fastinit.reference.conv` (shapes there). Every pass is a
product ``A @ B`` computed by a register tile (:mod:`fastinit._numba._tile`, shared with the
GEMM, and :mod:`fastinit._numba._conv_tile`) whose image operand is read straight out of a
zero-padded copy of one image through an *offset table*:

forward   y[k, p] = sum_t w[k, t] * xq[tab[t] + p]
    One image (one group of its channels) is copied, zero-padded, into a per-thread buffer
    ``xq`` laid out in *stride phases*: phase (py, px) holds padded rows py, py+sh, ... and
    columns px, px+sw, ..., so output pixels along a row read consecutive values for every
    stride. ``tab[t]`` is the offset of tap t = (c, r, s): channel c, phase
    ((r*dh) % sh, (s*dw) % sw), shifted by ((r*dh) // sh, (s*dw) // sw).
    Pixel-vector tile (the default): output pixels flattened with the phase row width Wq
    (>= OW), the ``Wq - OW`` columns past each row computed and dropped, so a tile of 48 pixels
    may span rows and small images waste no lanes; 8 output channels x 48 pixels (float32,
    AVX-512) into a per-thread tile buffer, scattered into y with the bias.
    Channel-vector tile (kernels of 25+ taps whose output channels fill whole tiles): 14
    pixels of one output row x 32 output channels, pixels broadcast from xq, packed weights
    as the vectors; no dropped columns ((S-1)*dw/Wq of the work: 10% at 7x7 on 56x56).
backward data (dx)
    The transposed convolution, split into the sh*sw phases of dx: positions
    ``(m*sh + ry - top)`` receive taps r with ``(r*dh) % sh == ry`` only, and over one phase
    that is an ordinary stride-1 correlation of a zero-padded copy of dy with those taps. So
    dx is the pixel-vector tile over a padded dy and per-phase tables (rows: input channels).
backward weights (dw)
    Per block of 512 output pixels: dy transposed (pixels x Kg) and, per tap, the input values
    it meets gathered (Cg x pixels); a GEMM tile (input channels x output channels) reduces
    over the whole block into a per-thread copy of dw, the copies summed at the end. Only
    real output pixels are multiplied (no dropped columns: 0 * inf would be NaN). Depthwise
    and narrow groups use a "dot" tile that reduces along the vector lanes instead.

Memory: per thread one padded image (one group) plus one tile buffer (or one block of
transposed dy and gathered inputs, and one copy of dw) - nothing that grows with N*H*W*R*S.
Threads take (image, group, part) items: whole images when there are enough of them, else
parts of one image (pixel blocks or output rows), each thread padding its own copy.

Small images (groups 1, few output pixels per image: the teaching CNN's 8x8 and 4x4) take a
fourth path, the twin of csrc/conv2d.c's: im2col of one image at a time into a per-thread
buffer and the GEMM tile straight on it (forward up to 144 output pixels, weight gradient
with the bias gradient as a row of ones up to 1024, dx only with C*R*S <= 32; see
:func:`small` and the comment above it).

3x3 stride-1 layers with enough channels run Winograd (:mod:`fastinit._numba.conv3x3`);
:func:`plan` says which kernel a call takes and why.
"""
import functools

import numba
import numpy as np
from numba import prange

from .._config import njit, pjit
from . import conv3x3
from ._conv_tile import make_channel_tile, make_copy_rows, make_dot_tile
from ._tile import VECTOR_BYTES, lanes, make_tile, make_transpose

# ---- tiles ---------------------------------------------------------------------------------
# Forward and dx: 8 output channels x 3 vectors (24 of 32 zmm registers accumulate; 8x3, 6x4
# and 4x6 ran alike, 220-230 GF/s on one core, 12x2 about 10% slower); 48 float32 pixels keep
# edge waste small on small images. Layers with one output channel per group (depthwise) take
# a 1 x 4 tile. dw: 8 input channels x 2 vectors of output channels (32 float32): 256-260
# GF/s at 64 and 32 channels where 12x2 lost the 64/72 rows; 4 x 4 vectors when a group has
# at most 4 input channels (a first layer: 3 of 4 rows busy instead of 3 of 8).
# Large kernels (R*S >= 25) whose output channels fill whole tiles take the channel-vector
# tile: 14 output pixels x 2 vectors of output channels, no dropped columns (7x7 C64 K64 on
# one core, C: 261 vs 236 GF/s at 56x56, 248 vs 170 at 14x14; 12x2, 7x4 and 6x4 were slower).
if VECTOR_BYTES >= 64:
    FWD_ROWS, FWD_NVEC, DW_ROWS, DW_NVEC, CH_ROWS, CH_NVEC = 8, 3, 8, 2, 14, 2
elif VECTOR_BYTES == 32:
    FWD_ROWS, FWD_NVEC, DW_ROWS, DW_NVEC, CH_ROWS, CH_NVEC = 4, 3, 6, 2, 6, 2
else:
    FWD_ROWS, FWD_NVEC, DW_ROWS, DW_NVEC, CH_ROWS, CH_NVEC = 4, 2, 4, 2, 4, 2
ROW_NVEC = 4
DOT_COLS = 8
#: Output pixels per weight-gradient block (the reduction length of one tile call; 256-512
#: measured best, 1024+ lost the gathered rows from L1 at 32 channels).
PBLOCK = 512

FWD = make_tile(FWD_ROWS, FWD_NVEC, "packed", "table")
ROW = make_tile(1, ROW_NVEC, "packed", "table")
DW = make_tile(DW_ROWS, DW_NVEC, "strided", "strided")
DW_SMALL = make_tile(4, 4, "strided", "strided")
_fwd_tile = FWD.fn
_row_tile = ROW.fn
_dw_tile = DW.fn
_dw_small_tile = DW_SMALL.fn
_dot_tile = make_dot_tile(1, DOT_COLS)
_channel_tile = make_channel_tile(CH_ROWS, CH_NVEC)


def channel_cols(dtype):
    """Output channels per channel-vector tile."""
    return CH_NVEC * lanes(dtype)


# ---- building blocks --------------------------------------------------------------------------
@njit
def _zero(a):
    for i in range(a.shape[0]):
        a[i] = 0


@njit
def _fill_phases(xq, x3, c0, nc, sh, sw, pt, pl, Hq, Wq, slack):
    """xq[((c*sh + py)*sw + px)*Hq*Wq + i*Wq + j] = x3[c0 + c, i*sh + py - pt, j*sw + px - pl]
    (zero outside x3), then ``slack`` zeros: channels c0..c0+nc-1 of one image, zero-padded and
    split into stride phases. With sh = sw = 1 it is a plain zero-padded copy."""
    H = x3.shape[1]
    W = x3.shape[2]
    plane = Hq * Wq
    for c in range(nc):
        for py in range(sh):
            for px in range(sw):
                base = ((c * sh + py) * sw + px) * plane
                jlo = (pl - px + sw - 1) // sw if pl > px else 0
                jhi = min(Wq, (W - 1 + pl - px) // sw + 1)
                if jhi < jlo:
                    jhi = jlo
                for i in range(Hq):
                    row = xq[base + i * Wq:base + (i + 1) * Wq]
                    iy = i * sh + py - pt
                    if iy < 0 or iy >= H or jhi == jlo:
                        _zero(row)
                        continue
                    src = x3[c0 + c, iy]
                    _zero(row[:jlo])
                    dst = row[jlo:jhi]
                    s0 = jlo * sw + px - pl
                    if sw == 1:
                        seg = src[s0:s0 + jhi - jlo]
                        for j in range(dst.shape[0]):
                            dst[j] = seg[j]
                    else:
                        for j in range(dst.shape[0]):
                            dst[j] = src[s0 + j * sw]
                    _zero(row[jhi:])
    _zero(xq[nc * sh * sw * plane:nc * sh * sw * plane + slack])


@njit
def _scatter(out2, k0, nk, tb, ldt, p0, nv, Wq, OW, bias, has_bias):
    """out2[k0 + k, oy*OW + ox] = tb[k*ldt + j] (+ bias[k0 + k]) for the pixels p0 + j
    = oy*Wq + ox of a flattened tile, j < nv, dropping the columns ox >= OW."""
    j = 0
    while j < nv:
        p = p0 + j
        oy = p // Wq
        ox = p - oy * Wq
        if ox >= OW:
            j += Wq - ox
            continue
        seg = min(OW - ox, nv - j)
        d0 = oy * OW + ox
        for k in range(nk):
            dst = out2[k0 + k, d0:d0 + seg]
            src = tb[k * ldt + j:k * ldt + j + seg]
            bk = bias[k0 + k] if has_bias else 0
            for t in range(seg):
                dst[t] = src[t] + bk
        j += seg


@njit
def _scatter_strided(out2, c0, nc, tb, ldt, p0, nv, Wd, Mx, ybase, xbase, sh, sw, W):
    """out2[c0 + c, (ybase + my*sh)*W + xbase + mx*sw] = tb[c*ldt + j] for the pixels
    p0 + j = my*Wd + mx of a flattened phase tile, j < nv, dropping the columns mx >= Mx."""
    j = 0
    while j < nv:
        p = p0 + j
        my = p // Wd
        mx = p - my * Wd
        if mx >= Mx:
            j += Wd - mx
            continue
        seg = min(Mx - mx, nv - j)
        d0 = (ybase + my * sh) * W + xbase + mx * sw
        for c in range(nc):
            src = tb[c * ldt + j:c * ldt + j + seg]
            if sw == 1:
                dst = out2[c0 + c, d0:d0 + seg]
                for t in range(seg):
                    dst[t] = src[t]
            else:
                dst = out2[c0 + c, d0:d0 + (seg - 1) * sw + 1]
                for t in range(seg):
                    dst[t * sw] = src[t]
        j += seg


# ---- forward --------------------------------------------------------------------------------
@pjit
def _forward(y3, x, wpack, tab, bias, has_bias, G, Cg, Kg, sh, sw, pt, pl, Hq, Wq, OW,
             row_tile, cols, nsplit, xq_all, tb_all):
    """y3 (N, K, OH*OW) = conv(x (N, C, H, W)); wpack (G, npan, CRS, rows) packed weights."""
    N = x.shape[0]
    OH = y3.shape[2] // OW
    CRS = tab.shape[0]
    P = (OH - 1) * Wq + OW
    nblk = (P + cols - 1) // cols
    rows = 1 if row_tile else FWD_ROWS
    npan = (Kg + rows - 1) // rows
    plane = Cg * sh * sw * Hq * Wq
    for item in prange(N * G * nsplit):
        n = item // (G * nsplit)
        g = (item // nsplit) % G
        part = item % nsplit
        tid = numba.get_thread_id()
        xq = xq_all[tid]
        tb = tb_all[tid]
        _fill_phases(xq, x[n], g * Cg, Cg, sh, sw, pt, pl, Hq, Wq, xq.shape[0] - plane)
        for blk in range(part * nblk // nsplit, (part + 1) * nblk // nsplit):
            p0 = blk * cols
            nv = min(cols, P - p0)
            for q in range(npan):
                a_off = (g * npan + q) * CRS * rows
                m = min(rows, Kg - q * rows)
                if row_tile:
                    _row_tile(CRS, wpack, a_off, 0, 0, xq, p0, tab, tb, q * cols, cols, m, nv, 0)
                else:
                    _fwd_tile(CRS, wpack, a_off, 0, 0, xq, p0, tab, tb, q * rows * cols, cols,
                              m, nv, 0)
            _scatter(y3[n], g * Kg, Kg, tb, cols, p0, nv, Wq, OW, bias, has_bias)


@pjit
def _forward_channels(y3, x, wpack, tab, bias, has_bias, G, Cg, Kg, sh, sw, pt, pl, Hq, Wq, OW,
                      cols, nsplit, xq_all, tb_all):
    """y3 (N, K, OH*OW) = conv(x) with the channel-vector tile: per output row, blocks of
    CH_ROWS pixels x ``cols`` output channels; wpack (G, Kg/cols, CRS, cols)."""
    N = x.shape[0]
    OH = y3.shape[2] // OW
    CRS = tab.shape[0]
    nkb = Kg // cols
    plane = Cg * sh * sw * Hq * Wq
    for item in prange(N * G * nsplit):
        n = item // (G * nsplit)
        g = (item // nsplit) % G
        part = item % nsplit
        tid = numba.get_thread_id()
        xq = xq_all[tid]
        tb = tb_all[tid]
        _fill_phases(xq, x[n], g * Cg, Cg, sh, sw, pt, pl, Hq, Wq, xq.shape[0] - plane)
        yn = y3[n]
        for oy in range(part * OH // nsplit, (part + 1) * OH // nsplit):
            for ox0 in range(0, OW, CH_ROWS):
                m = min(CH_ROWS, OW - ox0)
                for kb in range(nkb):
                    _channel_tile(CRS, xq, oy * Wq + ox0, tab, wpack,
                                  (g * nkb + kb) * CRS * cols, tb, 0, m)
                    for j in range(cols):
                        k = g * Kg + kb * cols + j
                        dst = yn[k, oy * OW + ox0:oy * OW + ox0 + m]
                        bk = bias[k] if has_bias else 0
                        for r in range(m):
                            dst[r] = tb[r * cols + j] + bk


@njit
def _axpy_row(dst, src, a, first):
    """dst = a * src (first) or dst += a * src, over one output row (vectorises)."""
    if first:
        for i in range(dst.shape[0]):
            dst[i] = a * src[i]
    else:
        for i in range(dst.shape[0]):
            dst[i] += a * src[i]


@pjit
def _forward_depthwise(y3, x, w2, tab, bias, has_bias, sh, sw, pt, pl, Hq, Wq, OW, xq_all,
                       tb_all):
    """Depthwise (one input and one output channel per group): one vectorised pass per tap
    over the flattened padded channel (rows Wq apart), acc += w[tap] * xq[tab[tap]:], then
    the OW valid columns of each row into y. w2 (C, R*S); tab: the taps of one channel."""
    N, C = x.shape[0], x.shape[1]
    OH = y3.shape[2] // OW
    RS = tab.shape[0]
    plane = sh * sw * Hq * Wq
    P = (OH - 1) * Wq + OW
    for item in prange(N * C):
        n = item // C
        c = item - n * C
        tid = numba.get_thread_id()
        xq = xq_all[tid]
        acc = tb_all[tid][:P]
        _fill_phases(xq, x[n], c, 1, sh, sw, pt, pl, Hq, Wq, xq.shape[0] - plane)
        wc = w2[c]
        _axpy_row(acc, xq[tab[0]:tab[0] + P], wc[0], True)
        for t in range(1, RS):
            _axpy_row(acc, xq[tab[t]:tab[t] + P], wc[t], False)
        yc = y3[n, c]
        bc = bias[c] if has_bias else 0
        for oy in range(OH):
            dst = yc[oy * OW:(oy + 1) * OW]
            src = acc[oy * Wq:oy * Wq + OW]
            for i in range(OW):
                dst[i] = src[i] + bc


# ---- backward data ----------------------------------------------------------------------------
@pjit
def _backward_data(dx3, dy, packs, tabs, phases, G, Cg, Kg, Ty, Tx, Hd, Wd, sh, sw, W,
                   row_tile, cols, nsplit, dq_all, tb_all):
    """dx3 (N, C, H*W) from dy (N, K, OH, OW), phase by phase (see the module docstring).

    phases[i] = (tab_start, ntap, pack_start, My, Mx, ybase, xbase); packs (G, total)."""
    N = dy.shape[0]
    rows = 1 if row_tile else FWD_ROWS
    npan = (Cg + rows - 1) // rows
    plane = Kg * Hd * Wd
    for item in prange(N * G * nsplit):
        n = item // (G * nsplit)
        g = (item // nsplit) % G
        part = item % nsplit
        tid = numba.get_thread_id()
        dq = dq_all[tid]
        tb = tb_all[tid]
        _fill_phases(dq, dy[n], g * Kg, Kg, 1, 1, Ty, Tx, Hd, Wd, dq.shape[0] - plane)
        for ph in range(phases.shape[0]):
            t0, ntap, pk0, My, Mx, ybase, xbase = (phases[ph, 0], phases[ph, 1], phases[ph, 2],
                                                   phases[ph, 3], phases[ph, 4], phases[ph, 5],
                                                   phases[ph, 6])
            if My <= 0 or Mx <= 0:
                continue
            P = (My - 1) * Wd + Mx
            nblk = (P + cols - 1) // cols
            tab = tabs[t0:t0 + max(ntap, 1)]
            for blk in range(part * nblk // nsplit, (part + 1) * nblk // nsplit):
                p0 = blk * cols
                nv = min(cols, P - p0)
                if ntap == 0:  # no tap reaches this phase: its dx is zero
                    _zero(tb[:Cg * cols])
                for q in range(npan):
                    if ntap == 0:
                        break
                    a_off = pk0 + q * ntap * rows
                    m = min(rows, Cg - q * rows)
                    if row_tile:
                        _row_tile(ntap, packs[g], a_off, 0, 0, dq, p0, tab, tb, q * cols, cols,
                                  m, nv, 0)
                    else:
                        _fwd_tile(ntap, packs[g], a_off, 0, 0, dq, p0, tab, tb,
                                  q * rows * cols, cols, m, nv, 0)
                _scatter_strided(dx3[n], g * Cg, Cg, tb, cols, p0, nv, Wd, Mx, ybase, xbase,
                                 sh, sw, W)


# ---- backward weights -------------------------------------------------------------------------
@njit
def _gather_rows(dst, ld, xq, base, chan, nc, p0, npix, OW, Wq):
    """dst[c*ld + j] = xq[base + c*chan + oy*Wq + ox] for the output pixels p0 + j = oy*OW + ox,
    j < npix: the input values one tap multiplies, without the dropped columns."""
    j = 0
    while j < npix:
        oy = (p0 + j) // OW
        ox = p0 + j - oy * OW
        seg = min(OW - ox, npix - j)
        src0 = base + oy * Wq + ox
        for c in range(nc):
            d = dst[c * ld + j:c * ld + j + seg]
            src = xq[src0 + c * chan:src0 + c * chan + seg]
            for t in range(seg):
                d[t] = src[t]
        j += seg


@pjit
def _backward_weights(dwp, x, dy, tab, G, Cg, Kg, sh, sw, pt, pl, Hq, Wq, dot, cols, pblock,
                      nsplit, xq_all, xt_all, dyt_all):
    """Per-thread partial weight gradients dwp (threads, size of w), see the module docstring.

    GEMM tile: dwp[t] laid out (G, R*S, Cg, Kg); dot tile: (K, Cg*R*S) (w's own layout).
    tab: forward offset table (Cg*R*S,); its first R*S entries are the taps of channel 0.
    Pixels go in blocks of ``pblock``: per block, dy is transposed (pixels x Kg) and, per tap,
    the input values it meets are gathered (Cg x pixels); one tile call then reduces over the
    whole block."""
    N, K, OH, OW = dy.shape
    CRS = tab.shape[0]
    RS = CRS // Cg
    plane = Cg * sh * sw * Hq * Wq
    chan = sh * sw * Hq * Wq
    dyf = dy.reshape(-1)
    P = OH * OW
    for t in range(dwp.shape[0]):
        _zero(dwp[t])
    for item in prange(N * G * nsplit):
        n = item // (G * nsplit)
        g = (item // nsplit) % G
        part = item % nsplit
        tid = numba.get_thread_id()
        xq = xq_all[tid]
        acc = dwp[tid]
        _fill_phases(xq, x[n], g * Cg, Cg, sh, sw, pt, pl, Hq, Wq, xq.shape[0] - plane)
        if dot:
            oy0 = part * OH // nsplit
            oy1 = (part + 1) * OH // nsplit
            if oy1 <= oy0:
                continue
            for k in range(Kg):
                a_off = ((n * K + g * Kg + k) * OH + oy0) * OW
                for t0 in range(0, CRS, DOT_COLS):
                    _dot_tile(oy1 - oy0, OW, dyf, a_off, 0, OW, xq, oy0 * Wq, tab[t0:],
                              Wq, acc, (g * Kg + k) * CRS + t0, CRS, 1, min(DOT_COLS, CRS - t0))
            continue
        xt = xt_all[tid]
        dyt = dyt_all[tid]
        small = Cg <= 4
        rows = 4 if small else DW_ROWS
        ncol = cols * 4 // DW_NVEC if small else cols
        npan = (Cg + rows - 1) // rows
        nblk = (P + pblock - 1) // pblock
        for blk in range(part * nblk // nsplit, (part + 1) * nblk // nsplit):
            p0 = blk * pblock
            npix = min(pblock, P - p0)
            _transpose_block(dyt, dyf, (n * K + g * Kg) * P + p0, P, Kg, npix)
            for rs in range(RS):
                _gather_rows(xt, pblock, xq, tab[rs], chan, Cg, p0, npix, OW, Wq)
                for q in range(npan):
                    c0 = q * rows
                    m = min(rows, Cg - c0)
                    c_off = ((g * RS + rs) * Cg + c0) * Kg
                    for kb in range(0, Kg, ncol):
                        if small:
                            _dw_small_tile(npix, xt, c0 * pblock, pblock, 1, dyt, kb, Kg, acc,
                                           c_off + kb, Kg, m, min(ncol, Kg - kb), 1)
                        else:
                            _dw_tile(npix, xt, c0 * pblock, pblock, 1, dyt, kb, Kg, acc,
                                     c_off + kb, Kg, m, min(ncol, Kg - kb), 1)


@njit
def _transpose_block(dst, src, s0, lds, nk, npix):
    """dst[j*nk + k] = src[s0 + k*lds + j] for k < nk, j < npix, in 16 x 16 blocks."""
    for j0 in range(0, npix, 16):
        j1 = min(j0 + 16, npix)
        for k0 in range(0, nk, 16):
            k1 = min(k0 + 16, nk)
            for j in range(j0, j1):
                d = dst[j * nk + k0:j * nk + k1]
                for k in range(k1 - k0):
                    d[k] = src[s0 + (k0 + k) * lds + j]


@pjit
def _bias_grad(db, dy3):
    """db[k] = sum over images and pixels of dy3 (N, K, P), summed in float64."""
    N, K, P = dy3.shape
    for k in prange(K):
        s = 0.0
        for n in range(N):
            row = dy3[n, k]
            for p in range(P):
                s += row[p]
        db[k] = s


# ---- small images: im2col of one image at a time + GEMM tiles ---------------------------------
# The Numba twin of the small-image path of csrc/conv2d.c (read its comment for the picture):
#   forward   y[n] (K x P) = [w | b] (K x CRS+1) @ [col; 1], col = im2col(x[n]) (CRS x P)
#   dx        dcol (CRS x P) = w^T @ dy[n], dx[n] = col2im(dcol)
#   dw, db    acc (CRS+1 x K) += [col; 1] @ dy[n]^T per thread, the partials summed after
# Threads take contiguous chunks of images, each with its own buffers (a few KB: nothing grows
# with N). Tiles: output channels (forward), taps (dx, dw) down the rows; 1 or 2 vectors of
# pixels (forward, dx) or output channels (dw) along the columns.
#: The rule of csrc/conv2d.c (fi_conv2d_small): groups 1; forward up to SMALL_FORWARD output
#: pixels per image; dx only with at most SMALL_DX_TAPS taps per output channel (C*R*S: its
#: col2im costs more than the transposed direct kernel beyond); dw up to SMALL_PIXELS; every
#: per-thread buffer within SMALL_BUF values.
SMALL_PIXELS = 1024
SMALL_FORWARD = 144
SMALL_DX_TAPS = 32
SMALL_BUF = 65536
#: Tile rows with 1 and with 2 vectors per row.
SMALL_ROWS = (16, 8) if VECTOR_BYTES >= 64 else (8, 4)
_small1 = make_tile(SMALL_ROWS[0], 1, "strided", "strided").fn
_small2 = make_tile(SMALL_ROWS[1], 2, "strided", "strided").fn
# dw splits its last panel of taps into rows of 8 / 4 / 2 (at most one tap row dropped)
_small1_8 = make_tile(8, 1, "strided", "strided").fn
_small1_4 = make_tile(4, 1, "strided", "strided").fn
_small1_2 = make_tile(2, 1, "strided", "strided").fn
_small2_4 = make_tile(4, 2, "strided", "strided").fn
_small2_2 = make_tile(2, 2, "strided", "strided").fn
_transpose_block16 = make_transpose(nvec=1)


def _small_shape(count, dtype):
    """(vectors per tile row, 1 or 2; the row length padded to whole tiles) for ``count``
    columns, in the fewest column blocks."""
    ln = lanes(dtype)
    v = -(-count // ln)
    nb = -(-v // 2)
    nvec = -(-v // nb)
    return nvec, nb * nvec * ln


def small(kind, dtype, C, K, R, S, OH, OW, groups):
    """Whether the small-image path runs for kind 0 forward, 1 backward data, 2 weights."""
    CRS, P = C * R * S, OH * OW
    if groups != 1 or P > SMALL_PIXELS:
        return False
    if kind == 2:   # dyT (P x K) and col (CRS+1 x P)
        _, ldk = _small_shape(K, dtype)
        return P * ldk + (CRS + 1) * (P + 16) <= SMALL_BUF
    if (P > SMALL_FORWARD) if kind == 0 else (CRS > SMALL_DX_TAPS):
        return False
    _, ld = _small_shape(P, dtype)
    return (CRS + 1 + (K if kind == 1 else 0)) * ld <= SMALL_BUF


_copy_rows = make_copy_rows()


@njit
def _im2col(col, ld, xq, tab, OH, OW, Wq):
    """col[t*ld + oy*OW + ox] = xq[tab[t] + oy*Wq + ox] for every tap t."""
    for t in range(tab.shape[0]):
        _copy_rows(col, t * ld, OW, xq, tab[t], Wq, OH, OW)


@njit
def _small_gemm(kc, a, a_off, a_rs, a_ks, b, b_step, c, c_off, ldc, M, ncols, nvec, cols, beta):
    """c[c_off + r*ldc + j] (+)= sum_k a[a_off + r*a_rs + k*a_ks] b[k*b_step + j] for r < M,
    j < ncols: row panels of SMALL_ROWS[nvec - 1], column blocks of ``cols``."""
    rows = SMALL_ROWS[0] if nvec == 1 else SMALL_ROWS[1]
    for r0 in range(0, M, rows):
        m = min(rows, M - r0)
        for j0 in range(0, ncols, cols):
            n = min(cols, ncols - j0)
            if nvec == 1:
                _small1(kc, a, a_off + r0 * a_rs, a_rs, a_ks, b, j0, b_step, c,
                        c_off + r0 * ldc + j0, ldc, m, n, beta)
            else:
                _small2(kc, a, a_off + r0 * a_rs, a_rs, a_ks, b, j0, b_step, c,
                        c_off + r0 * ldc + j0, ldc, m, n, beta)


@pjit
def _small_forward(y3, x, w2, wb, bias, tab, C, sh, sw, pt, pl, Hq, Wq, OW, ld, nvec, cols, ws,
                   nthr):
    """y3 (N, K, P) = wb (K, kc) @ [im2col(x[n]); 1]: wb = [w2 | bias] (kc = CRS + 1) when
    wb has a column more than w2 (K, CRS), else wb = w2."""
    N, K, P = y3.shape
    OH = P // OW
    CRS = tab.shape[0]
    kc = wb.shape[1]
    for k in range(K):
        for t in range(CRS):
            wb[k, t] = w2[k, t]
        if kc > CRS:
            wb[k, CRS] = bias[k]
    chan = sh * sw * Hq * Wq
    for t in prange(nthr):
        buf = ws[t]
        col = buf[:kc * ld]
        xq = buf[kc * ld:kc * ld + C * chan]
        _zero(col)
        _zero(xq)
        if kc > CRS:
            for p in range(P):
                col[CRS * ld + p] = 1
        for n in range(t * N // nthr, (t + 1) * N // nthr):
            _pad_interior(xq, x[n], sh, sw, pt, pl, Hq, Wq)
            _im2col(col, ld, xq, tab, OH, OW, Wq)
            _small_gemm(kc, wb, 0, kc, 1, col, ld, y3, n * K * P, P, K, P, nvec, cols, 0)


@pjit
def _small_data(dx, dy3, w2, tab, C, H, W, sh, sw, pt, pl, Hq, Wq, OW, ld, nvec, cols, ws, nthr):
    """dx (N, C, H, W) = col2im(w2^T @ dy3[n]): w2 (K, CRS), dy3 (N, K, P)."""
    N, K, P = dy3.shape
    OH = P // OW
    CRS = tab.shape[0]
    chan = sh * sw * Hq * Wq
    for t in prange(nthr):
        buf = ws[t]
        dyp = buf[:K * ld]
        dcol = buf[K * ld:(K + CRS) * ld]
        xq = buf[(K + CRS) * ld:(K + CRS) * ld + C * chan]
        _zero(dyp)
        dyf = dy3.reshape(-1)
        for n in range(t * N // nthr, (t + 1) * N // nthr):
            _copy_rows(dyp, 0, ld, dyf, n * K * P, P, K, P)
            _small_gemm(K, w2, 0, 1, CRS, dyp, ld, dcol, 0, ld, CRS, P, nvec, cols, 0)
            _zero(xq)
            for tp in range(CRS):   # col2im into the padded layout: the adjoint of _im2col
                for oy in range(OH):
                    d = xq[tab[tp] + oy * Wq:tab[tp] + oy * Wq + OW]
                    s = dcol[tp * ld + oy * OW:tp * ld + oy * OW + OW]
                    for ox in range(OW):
                        d[ox] += s[ox]
            _unfill_phases(dx[n], xq, sh, sw, pt, pl, Hq, Wq)


@njit
def _pad_interior(xq, x3, sh, sw, pt, pl, Hq, Wq):
    """The pixels of x3 (C, H, W) into xq (the layout of _fill_phases), whose zeros were
    written before (the same positions are zero for every image); pixels that no output
    reads (beyond Hq, Wq) are skipped."""
    C, H, W = x3.shape
    plane = Hq * Wq
    if sh == 1 and sw == 1:
        n = min(W, Wq - pl)
        for c in range(C):
            for iy in range(min(H, Hq - pt)):
                d = xq[c * plane + (iy + pt) * Wq + pl:c * plane + (iy + pt) * Wq + pl + n]
                src = x3[c, iy]
                for j in range(n):
                    d[j] = src[j]
        return
    for c in range(C):
        for iy in range(H):
            row = x3[c, iy]
            py = (iy + pt) % sh
            i = (iy + pt) // sh
            if i >= Hq:
                continue
            for ix in range(W):
                j = (ix + pl) // sw
                if j < Wq:
                    xq[((c * sh + py) * sw + (ix + pl) % sw) * plane + i * Wq + j] = row[ix]


@njit
def _unfill_phases(x3, xq, sh, sw, pt, pl, Hq, Wq):
    """x3[c, iy, ix] = the value of xq (the layout of _fill_phases) at that pixel, 0 for the
    pixels that no output reads (not in xq)."""
    C, H, W = x3.shape
    plane = Hq * Wq
    for c in range(C):
        for iy in range(H):
            row = x3[c, iy]
            py = (iy + pt) % sh
            i = (iy + pt) // sh
            for ix in range(W):
                px = (ix + pl) % sw
                j = (ix + pl) // sw
                if i < Hq and j < Wq:
                    row[ix] = xq[((c * sh + py) * sw + px) * plane + i * Wq + j]
                else:
                    row[ix] = 0


@njit
def _small_dw_panel(P, col, ld, t0, dyT, ldk, acc, M, nvec, cols, rows):
    """acc[(t0 + r)*ldk + j] += sum_p col[(t0 + r)*ld + p] dyT[p*ldk + j], r < M, j < ldk,
    with a tile of ``rows`` rows (SMALL_ROWS[nvec - 1], 8, 4 or 2)."""
    for j0 in range(0, ldk, cols):
        if nvec == 1:
            if rows == 8:
                _small1_8(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
            elif rows == 4:
                _small1_4(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
            elif rows == 2:
                _small1_2(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
            else:
                _small1(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
        else:
            if rows == 4:
                _small2_4(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
            elif rows == 2:
                _small2_2(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)
            else:
                _small2(P, col, t0 * ld, ld, 1, dyT, j0, ldk, acc, t0 * ldk + j0, ldk, M, cols, 1)


@pjit
def _small_weights(acc_all, dy3, x, tab, nt, C, sh, sw, pt, pl, Hq, Wq, OW, ldp, ldk, nvec,
                   cols, ln, ws, nthr):
    """acc_all[t] (nt x ldk) = sum over the images of chunk t of [im2col(x[n]); 1] @ dy3[n]^T
    (nt = CRS + 1 with the row of ones for db, else CRS)."""
    N, K, P = dy3.shape
    OH = P // OW
    CRS = tab.shape[0]
    chan = sh * sw * Hq * Wq
    full = SMALL_ROWS[0] if nvec == 1 else SMALL_ROWS[1]
    dyf = dy3.reshape(-1)
    for t in prange(nthr):
        buf = ws[t]
        dyT = buf[:P * ldk]
        col = buf[P * ldk:P * ldk + nt * ldp]
        xq = buf[P * ldk + nt * ldp:P * ldk + nt * ldp + C * chan]
        acc = acc_all[t]
        _zero(dyT)
        _zero(col)
        _zero(acc)
        _zero(xq)
        if nt > CRS:
            for p in range(P):
                col[CRS * ldp + p] = 1
        for n in range(t * N // nthr, (t + 1) * N // nthr):
            _pad_interior(xq, x[n], sh, sw, pt, pl, Hq, Wq)
            _im2col(col, ldp, xq, tab, OH, OW, Wq)
            p0 = 0
            while p0 + ln <= P:   # dyT (P x K) = dy[n]^T, 16 x 16 blocks in registers
                for k0 in range(0, K, ln):
                    _transpose_block16(dyf, (n * K + k0) * P + p0, P, K - k0, dyT,
                                       p0 * ldk + k0, ldk)
                p0 += ln
            for p in range(p0, P):
                for k in range(K):
                    dyT[p * ldk + k] = dy3[n, k, p]
            t0 = 0
            while t0 + full <= nt:
                _small_dw_panel(P, col, ldp, t0, dyT, ldk, acc, full, nvec, cols, full)
                t0 += full
            for rows in (8, 4):
                if full > rows and t0 + rows <= nt:
                    _small_dw_panel(P, col, ldp, t0, dyT, ldk, acc, rows, nvec, cols, rows)
                    t0 += rows
            while t0 < nt:
                _small_dw_panel(P, col, ldp, t0, dyT, ldk, acc, min(2, nt - t0), nvec, cols, 2)
                t0 += 2


@njit
def _small_weights_out(dw2, db, acc_all, CRS, ldk, has_db):
    """dw2[k, t] = sum over the chunks of acc_all[:, t*ldk + k] (in chunk order); db likewise
    from the row of ones."""
    K = dw2.shape[0]
    for k in range(K):
        for t in range(CRS + has_db):
            s = acc_all[0, t * ldk + k]
            for i in range(1, acc_all.shape[0]):
                s += acc_all[i, t * ldk + k]
            if t < CRS:
                dw2[k, t] = s
            else:
                db[k] = s


# ---- plans: tables and packed weights (Python side) ----------------------------------------------
def _workspace(name, shape, dtype):
    """A cached per-Python-thread scratch array of ``shape`` (conv3x3's: one cache)."""
    return conv3x3._workspace_named(name, shape, dtype)


class _Geometry:
    """Everything the kernels need about one call, derived once from the normalised arguments."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups):
        N, C, H, W = x_shape
        K, Cg, R, S = w_shape
        (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
        self.N, self.C, self.H, self.W, self.K, self.Cg, self.R, self.S = N, C, H, W, K, Cg, R, S
        self.G, self.Kg = groups, K // groups
        self.sh, self.sw, self.dh, self.dw, self.pt, self.pl = sh, sw, dh, dw, pt, pl
        self.OH = (H + pt + pb - dh * (R - 1) - 1) // sh + 1
        self.OW = (W + pl + pr - dw * (S - 1) - 1) // sw + 1
        self.Hq = self.OH + ((R - 1) * dh) // sh
        self.Wq = self.OW + ((S - 1) * dw) // sw
        r = np.arange(R)[:, None]
        s = np.arange(S)[None, :]
        c = np.arange(Cg)[:, None, None]
        chan = sh * sw * self.Hq * self.Wq
        tap = ((((r * dh) % sh) * sw + (s * dw) % sw) * self.Hq * self.Wq
               + ((r * dh) // sh) * self.Wq + (s * dw) // sw)
        self.tab = (c * chan + tap[None]).reshape(-1).astype(np.int64)
        self.chan = chan

    def nsplit(self, items, nthreads, work_rows):
        """Parts per (image, group): 1 when whole images balance the threads, else enough parts
        (at most ``work_rows``) to keep every thread busy."""
        if nthreads <= 1 or items % nthreads == 0 or items >= 4 * nthreads:
            return 1
        return max(1, min(work_rows, nthreads * 2 // max(items, 1) + 1))


@functools.lru_cache(maxsize=256)
def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """The :class:`_Geometry` of a call, cached (its tap table costs ~10 us of NumPy; on tiny
    images that was the kernel's own time). Shapes and arguments are tuples."""
    return _Geometry(x_shape, w_shape, stride, padding, dilation, groups)


def _use_channel_tile(geo, dtype):
    """Channel-vector tile for large kernels whose output channels fill whole tiles (the rule
    of csrc/conv2d.c, measured there)."""
    return geo.R * geo.S >= 25 and geo.Kg % channel_cols(dtype) == 0


def _row_tile_for(channels_out):
    return channels_out == 1


def _pack_rows(wmat, rows):
    """(G, M, T) -> (G, npan, T, rows): row panels of ``rows``, zero-padded, k-major."""
    G, M, T = wmat.shape
    npan = -(-M // rows)
    pad = np.zeros((G, npan * rows, T), wmat.dtype)
    pad[:, :M] = wmat
    return np.ascontiguousarray(pad.reshape(G, npan, rows, T).transpose(0, 1, 3, 2))


def _threads():
    return numba.get_num_threads()


def _small_args(geo):
    return (geo.C, geo.sh, geo.sw, geo.pt, geo.pl, geo.Hq, geo.Wq, geo.OW)


def _small_forward_call(y, x, w, b, geo, nthr):
    dt = x.dtype
    CRS, P = geo.C * geo.R * geo.S, geo.OH * geo.OW
    nvec, ld = _small_shape(P, dt)
    nthr = max(1, min(nthr, geo.N))
    kc = CRS + (b is not None)   # [w | b]: the bias rides on a row of ones under the im2col
    wb = _workspace("small_wb", (geo.K, kc), dt)
    ws = _workspace("small_ws", (nthr, (CRS + 1) * ld + geo.C * geo.chan + 16), dt)
    _small_forward(y.reshape(geo.N, geo.K, P), x, w.reshape(geo.K, CRS), wb,
                   b if b is not None else wb[0], geo.tab, *_small_args(geo), ld, nvec,
                   nvec * lanes(dt), ws, nthr)
    return y


def _small_data_call(dx, dy, w, geo, nthr):
    dt = dy.dtype
    CRS, P = geo.C * geo.R * geo.S, geo.OH * geo.OW
    nvec, ld = _small_shape(P, dt)
    nthr = max(1, min(nthr, geo.N))
    ws = _workspace("small_ws", (nthr, (geo.K + CRS) * ld + geo.C * geo.chan + 16), dt)
    _small_data(dx, dy.reshape(geo.N, geo.K, P), w.reshape(geo.K, CRS), geo.tab, geo.C, geo.H,
                geo.W, geo.sh, geo.sw, geo.pt, geo.pl, geo.Hq, geo.Wq, geo.OW, ld, nvec,
                nvec * lanes(dt), ws, nthr)
    return dx


def _small_weights_call(dw, db, dy, x, geo, nthr):
    dt = dy.dtype
    CRS, P = geo.C * geo.R * geo.S, geo.OH * geo.OW
    nt = CRS + (db is not None)
    nvec, ldk = _small_shape(geo.K, dt)
    ln = lanes(dt)
    ldp = -(-P // ln) * ln
    nthr = max(1, min(nthr, geo.N))
    ws = _workspace("small_ws", (nthr, P * ldk + nt * ldp + geo.C * geo.chan + 16), dt)
    acc = _workspace("small_acc", (nthr, nt * ldk), dt)
    _small_weights(acc, dy.reshape(geo.N, geo.K, P), x, geo.tab, nt, *_small_args(geo), ldp,
                   ldk, nvec, nvec * ln, ln, ws, nthr)
    _small_weights_out(dw.reshape(geo.K, CRS), db if db is not None else acc[0, :1], acc, CRS,
                       ldk, int(db is not None))


# ---- entry points ----------------------------------------------------------------------------
def conv2d(y, x, w, b, stride, padding, dilation, groups):
    if conv3x3.applies(x.shape, w.shape, stride, dilation, groups, x.dtype):
        return conv3x3.conv2d(y, x, w, b, padding)
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    dt = x.dtype
    nt = _threads()
    if small(0, dt, geo.C, geo.K, geo.R, geo.S, geo.OH, geo.OW, groups):
        return _small_forward_call(y, x, w, b, geo, nt)
    bias = b if b is not None else np.zeros(1, dt)
    if geo.Cg == 1 and geo.Kg == 1:
        xq = _workspace("xq", (nt, geo.chan + 16), dt)
        tb = _workspace("tb", (nt, geo.OH * geo.Wq), dt)
        _forward_depthwise(y.reshape(geo.N, geo.K, -1), x, w.reshape(geo.K, -1), geo.tab, bias,
                           b is not None, geo.sh, geo.sw, geo.pt, geo.pl, geo.Hq, geo.Wq, geo.OW,
                           xq, tb)
        return y
    if _use_channel_tile(geo, dt):
        cols = channel_cols(dt)
        wpack = np.ascontiguousarray(w.reshape(geo.G, geo.Kg // cols, cols, -1)
                                     .transpose(0, 1, 3, 2))
        xq = _workspace("xq", (nt, geo.Cg * geo.chan + CH_ROWS + 16), dt)
        tb = _workspace("tb", (nt, CH_ROWS * cols), dt)
        _forward_channels(y.reshape(geo.N, geo.K, -1), x, wpack.reshape(-1), geo.tab, bias,
                          b is not None, geo.G, geo.Cg, geo.Kg, geo.sh, geo.sw, geo.pt, geo.pl,
                          geo.Hq, geo.Wq, geo.OW, cols,
                          geo.nsplit(geo.N * geo.G, nt, geo.OH), xq, tb)
        return y
    row = _row_tile_for(geo.Kg)
    rows = 1 if row else FWD_ROWS
    cols = (ROW if row else FWD).cols(dt)
    wpack = _pack_rows(w.reshape(geo.G, geo.Kg, -1), rows)
    nsplit = geo.nsplit(geo.N * geo.G, nt, -(-((geo.OH - 1) * geo.Wq + geo.OW) // cols))
    xq = _workspace("xq", (nt, geo.Cg * geo.chan + cols + 16), dt)
    tb = _workspace("tb", (nt, -(-geo.Kg // rows) * rows * cols), dt)
    _forward(y.reshape(geo.N, geo.K, -1), x, wpack.reshape(-1), geo.tab, bias, b is not None,
             geo.G, geo.Cg, geo.Kg, geo.sh, geo.sw, geo.pt, geo.pl, geo.Hq, geo.Wq, geo.OW, row,
             cols, nsplit, xq, tb)
    return y


def _data_phases(geo, w, rows):
    """Tables, packed weights and phase records of the backward-data pass (module docstring)."""
    sh, sw, dh, dw, R, S = geo.sh, geo.sw, geo.dh, geo.dw, geo.R, geo.S
    Ty, Tx = ((R - 1) * dh) // sh, ((S - 1) * dw) // sw
    Hd = max(geo.OH, -(-(geo.pt + geo.H) // sh)) + Ty
    Wd = max(geo.OW, -(-(geo.pl + geo.W) // sw)) + Tx
    G, Kg, Cg = geo.G, geo.Kg, geo.Cg
    wg = w.reshape(G, Kg, Cg, R, S)
    tabs, packs, records = [], [], []
    t0 = pk0 = 0
    npan = -(-Cg // rows)
    for ry in range(sh):
        rtaps = [r for r in range(R) if (r * dh) % sh == ry]
        ylo = (geo.pt - ry + sh - 1) // sh
        My = (geo.pt + geo.H - ry + sh - 1) // sh - ylo
        for rx in range(sw):
            staps = [s for s in range(S) if (s * dw) % sw == rx]
            xlo = (geo.pl - rx + sw - 1) // sw
            Mx = (geo.pl + geo.W - rx + sw - 1) // sw - xlo
            ntap = Kg * len(rtaps) * len(staps)
            if ntap:
                k = np.arange(Kg)[:, None, None]
                oy = np.array([ylo - (r * dh) // sh + Ty for r in rtaps])[None, :, None]
                ox = np.array([xlo - (s * dw) // sw + Tx for s in staps])[None, None, :]
                tabs.append((k * Hd * Wd + oy * Wd + ox).reshape(-1))
                a = wg[:, :, :, rtaps][:, :, :, :, staps]            # (G, Kg, Cg, r, s)
                a = a.transpose(0, 2, 1, 3, 4).reshape(G, Cg, ntap)   # rows: input channels
                packs.append(_pack_rows(a, rows).reshape(G, -1))
            records.append((t0, ntap, pk0, My, Mx, ylo * sh + ry - geo.pt, xlo * sw + rx - geo.pl))
            t0 += ntap
            pk0 += npan * rows * ntap
    tab = np.concatenate(tabs).astype(np.int64) if tabs else np.zeros(1, np.int64)
    pack = np.concatenate(packs, axis=1) if packs else np.zeros((G, 1), w.dtype)
    return tab, np.ascontiguousarray(pack), np.array(records, np.int64), Ty, Tx, Hd, Wd


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    dt = dy.dtype
    nt = _threads()
    dw_out, db_out = dw, db
    if dx is not None:
        if conv3x3.applies_data(x.shape, w.shape, stride, padding, dilation, groups, dt):
            conv3x3.backward_data(dx, dy, w, padding)
        elif small(1, dt, geo.C, geo.K, geo.R, geo.S, geo.OH, geo.OW, groups):
            _small_data_call(dx, dy, w, geo, nt)
        else:
            row = _row_tile_for(geo.Cg)
            rows = 1 if row else FWD_ROWS
            cols = (ROW if row else FWD).cols(dt)
            tab, pack, phases, Ty, Tx, Hd, Wd = _data_phases(geo, w, rows)
            nsplit = geo.nsplit(geo.N * geo.G, nt, -(-geo.H * Wd // cols))
            dq = _workspace("xq", (nt, geo.Kg * Hd * Wd + cols + 16), dt)
            tb = _workspace("tb", (nt, -(-geo.Cg // rows) * rows * cols), dt)
            _backward_data(dx.reshape(geo.N, geo.C, -1), dy, pack, tab, phases, geo.G, geo.Cg,
                           geo.Kg, Ty, Tx, Hd, Wd, geo.sh, geo.sw, geo.W, row, cols, nsplit,
                           dq, tb)
    if dw is not None and conv3x3.applies_weights(x.shape, w.shape, dy.shape, stride, dilation,
                                                  groups, dt):
        conv3x3.backward_weights(dw, db, dy, x, padding)
        dw = db = None   # db rides along
    if dw is not None and small(2, dt, geo.C, geo.K, geo.R, geo.S, geo.OH, geo.OW, groups):
        _small_weights_call(dw, db, dy, x, geo, nt)
        dw = db = None   # db rides along
    if dw is not None:
        dot = 2 * geo.Kg < DW.cols(dt)
        nsplit = geo.nsplit(geo.N * geo.G, nt, geo.OH if dot else -(-geo.OH * geo.OW // PBLOCK))
        xq = _workspace("xq", (nt, geo.Cg * geo.chan + 16), dt)
        xt = _workspace("xt", (nt, 1 if dot else geo.Cg * PBLOCK), dt)
        dyt = _workspace("dyt", (nt, 1 if dot else PBLOCK * geo.Kg + DW_SMALL.cols(dt) + 16), dt)
        dwp = _workspace("dwp", (nt, w.size), dt)
        _backward_weights(dwp, x, dy, geo.tab, geo.G, geo.Cg, geo.Kg, geo.sh, geo.sw, geo.pt,
                          geo.pl, geo.Hq, geo.Wq, dot, DW.cols(dt), PBLOCK, nsplit, xq, xt, dyt)
        total = dwp.sum(axis=0)
        if dot:
            dw[...] = total.reshape(w.shape)
        else:
            R, S = geo.R, geo.S
            dw[...] = (total.reshape(geo.G, R, S, geo.Cg, geo.Kg).transpose(0, 4, 3, 1, 2)
                       .reshape(w.shape))
    if db is not None:
        db64 = np.empty(db.shape, np.float64)
        _bias_grad(db64, dy.reshape(dy.shape[0], dy.shape[1], -1))
        db[...] = db64
    return dx, dw_out, db_out


def plan(kind, dtype, x_shape, w_shape, stride, padding, dilation, groups):
    dt = np.dtype(dtype)
    geo = _geometry(tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups)
    why = (f"{geo.R}x{geo.S}, stride {stride}, dilation {dilation}, groups {groups}, "
           f"C={geo.C}, K={geo.K}")
    OH, OW = geo.OH, geo.OW
    if kind == "forward" and conv3x3.applies(x_shape, w_shape, stride, dilation, groups, dt):
        return conv3x3.describe("forward", x_shape, w_shape, dt, (OH, OW))
    if kind == "backward_data" and conv3x3.applies_data(x_shape, w_shape, stride, padding, dilation,
                                                       groups, dt):
        return conv3x3.describe("backward_data", x_shape, w_shape, dt, (geo.H, geo.W))
    if kind == "backward_weights" and conv3x3.applies_weights(
            x_shape, w_shape, (geo.N, geo.K, OH, OW), stride, dilation, groups, dt):
        return conv3x3.describe("backward_weights", x_shape, w_shape, dt, (OH, OW))
    code = ("forward", "backward_data", "backward_weights").index(kind)
    if small(code, dt, geo.C, geo.K, geo.R, geo.S, OH, OW, groups):
        what = {"forward": "y[n] = [w | b] @ [im2col(x[n]); 1]",
                "backward_data": "dcol = w^T @ dy[n], dx[n] = col2im(dcol)",
                "backward_weights": "[dw | db] += [im2col(x[n]); 1] @ dy[n]^T per thread"}[kind]
        return (f"direct small-image path (few output pixels per image: im2col of one image at "
                f"a time, {what}, GEMM tile); {why}")
    if kind == "forward" and _use_channel_tile(geo, dt):
        cols = channel_cols(dt)
        return (f"direct, {CH_ROWS}x{cols} channel-vector tile ({CH_ROWS} pixels of a row x "
                f"{cols} output channels: no dropped columns), offset table into a per-thread "
                f"padded image; {why}")
    if kind == "forward" and geo.Cg == 1 and geo.Kg == 1:
        return (f"direct depthwise: one vectorised multiply-add pass per tap over a per-thread "
                f"padded channel; {why}")
    if kind in ("forward", "backward_data"):
        per_group = geo.Kg if kind == "forward" else geo.Cg
        if _row_tile_for(per_group):
            tile = f"1x{ROW.cols(dt)} tile (one channel x {ROW.cols(dt)} pixels)"
        else:
            tile = (f"{FWD_ROWS}x{FWD.cols(dt)} tile ({FWD_ROWS} channels x {FWD.cols(dt)} "
                    "pixels)")
        what = "direct" if kind == "forward" else "direct transposed (per stride phase)"
        return (f"{what}, {tile}, offset table into a per-thread padded image; {why}"
                + ("; Winograd needs 3x3, stride 1, dilation 1 and enough channels"
                   if geo.R == geo.S == 3 else ""))
    if 2 * geo.Kg < DW.cols(dt):
        return (f"direct weight gradient, 1x{DOT_COLS} dot tile (lane reduction: few output "
                f"channels per group); {why}")
    if geo.Cg <= 4:
        return (f"direct weight gradient, 4x{DW_SMALL.cols(dt)} tile (input channels x output "
                f"channels) over blocks of {PBLOCK} output pixels, per-thread partial dw; {why}")
    return (f"direct weight gradient, {DW_ROWS}x{DW.cols(dt)} tile (input channels x output "
            f"channels) over blocks of {PBLOCK} output pixels, per-thread partial dw; {why}")
