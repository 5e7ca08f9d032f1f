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

3x3 stride-1 layers with enough channels run Winograd (:mod:`fastinit._numba.conv3x3`);
:func:`plan` says which kernel a call takes and why.
"""
import threading

import numba
import numpy as np
from numba import prange

from .._config import njit, pjit
from ._conv_tile import make_channel_tile, make_dot_tile
from ._tile import VECTOR_BYTES, lanes, make_tile

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


# ---- plans: tables and packed weights (Python side) ----------------------------------------------
_scratch = threading.local()


def _workspace(name, shape, dtype):
    """A cached per-Python-thread scratch array of ``shape`` (reused across calls: a fresh
    buffer costs a page fault per 4 KB on first touch)."""
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype).char)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    arr = bufs.get(key)
    if arr is None or arr.size < size:
        arr = bufs[key] = np.zeros(max(size, 1), dtype)
    return arr[:size].reshape(shape)


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


# ---- entry points ----------------------------------------------------------------------------
def conv2d(y, x, w, b, stride, padding, dilation, groups):
    from . import conv3x3

    if conv3x3.applies(x.shape, w.shape, stride, dilation, groups, x.dtype):
        return conv3x3.conv2d(y, x, w, b, padding)
    geo = _Geometry(x.shape, w.shape, stride, padding, dilation, groups)
    dt = x.dtype
    nt = _threads()
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
    from . import conv3x3

    geo = _Geometry(x.shape, w.shape, stride, padding, dilation, groups)
    dt = dy.dtype
    nt = _threads()
    dw_out = dw
    if dx is not None:
        if conv3x3.applies_data(x.shape, w.shape, stride, padding, dilation, groups, dt):
            conv3x3.backward_data(dx, dy, w, padding)
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
        conv3x3.backward_weights(dw, dy, x, padding)
        dw = None
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
    return dx, dw_out, db


def plan(kind, dtype, x_shape, w_shape, stride, padding, dilation, groups):
    from . import conv3x3

    dt = np.dtype(dtype)
    geo = _Geometry(x_shape, w_shape, stride, padding, dilation, groups)
    why = (f"{geo.R}x{geo.S}, stride {stride}, dilation {dilation}, groups {groups}, "
           f"C={geo.C}, K={geo.K}")
    if kind == "forward" and conv3x3.applies(x_shape, w_shape, stride, dilation, groups, dt):
        return conv3x3.describe("forward", x_shape, w_shape, dt)
    if kind == "backward_data" and conv3x3.applies_data(x_shape, w_shape, stride, padding, dilation,
                                                       groups, dt):
        return conv3x3.describe("backward_data", x_shape, w_shape, dt)
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
    if kind == "backward_weights" and conv3x3.applies_weights(
            x_shape, w_shape, (geo.N, geo.K, geo.OH, geo.OW), stride, dilation, groups, dt):
        return conv3x3.describe("backward_weights", x_shape, w_shape, dt)
    if 2 * geo.Kg < DW.cols(dt):
        return (f"direct weight gradient, 1x{DOT_COLS} dot tile (lane reduction: few output "
                f"channels per group); {why}")
    if geo.Cg <= 4:
        return (f"direct weight gradient, 4x{DW_SMALL.cols(dt)} tile (input channels x output "
                f"channels) over blocks of {PBLOCK} output pixels, per-thread partial dw; {why}")
    return (f"direct weight gradient, {DW_ROWS}x{DW.cols(dt)} tile (input channels x output "
            f"channels) over blocks of {PBLOCK} output pixels, per-thread partial dw; {why}")
