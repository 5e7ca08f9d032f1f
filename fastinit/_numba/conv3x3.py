"""Winograd convolution (Numba), stride 1: F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7) forward and
dx, F(3x3,4x4) for the 3x3 weight gradient; the twin of csrc/winograd.c, whose comment has the
algorithm, and the home of what both backends share: the Cook-Toom tables
(:func:`transforms`), the blocking (:func:`blocking`) and the entry points
(:func:`entry_points`).

F(m x m, r x r) on tiles of a = m + r - 1: ``Y = A^T [ U (.) V ] A`` with ``U = G g G^T`` and
``V = B^T d B``; summed over input channels, a*a matrix products ``M[:, xi] = V[:, xi] @
U[xi]`` (tiles x C times C x K) on the GEMM's register tile. Tiles are numbered across the
images; a block of them is one item's work (with a part of the output channels when blocks
are few), built from bands (the a rows under a run of tiles, channels last), transformed by
one primitive (:func:`fastinit._numba._tile.make_transform`, the tables baked in) a vector of
channels at a time.
"""
import functools
import math
import sys
from fractions import Fraction

import numba
import numpy as np
from numba import prange

from .._config import njit, pjit
from ._tile import VECTOR_BYTES, make_copy_add, make_tile, make_transform, make_transpose
from .gemm import MR, NVEC, _workspace

#: The points of each algorithm (infinity is the last, implied): F(4x4,3x3), F(2x2,5x5) and
#: F(3x3,4x4) on 0, +-1, +-2; F(2x2,7x7) adds +-1/2 (the points of F(6x6,3x3)), which keeps its
#: float32 error of the order of the others' (larger tiles lost a decade).
POINTS = {3: (0, 1, -1, 2, -2), 5: (0, 1, -1, 2, -2), 7: (0, 1, -1, 2, -2, Fraction(1, 2),
                                                          Fraction(-1, 2))}
#: Output tile per kernel size
TILE = {3: 4, 5: 2, 7: 2}


@functools.lru_cache(maxsize=None)
def transforms(m, r, points):
    """(B^T, G, A^T) of F(m, r) by Cook-Toom on ``points`` and infinity, as float64 arrays:
    row j of B^T the coefficients (ascending) of prod_{l != j} (x - p_l) (the last row: of
    prod_l (x - p_l)), G[j, k] = p_j^k / prod_{l != j} (p_j - p_l), A^T[i, j] = p_j^i; the
    point at infinity gives the unit last row of G and last column of A^T."""
    p = [Fraction(v) for v in points]
    assert len(p) == m + r - 2

    def poly(roots):
        c = [Fraction(1)]
        for z in roots:
            c = [Fraction(0)] + c
            for i in range(len(c) - 1):
                c[i] -= z * c[i + 1]
        return c

    bt = [poly([q for q in p if q != pj]) + [0] for pj in p] + [poly(p)]
    g = [[pj ** k / math.prod(pj - q for q in p if q != pj) for k in range(r)] for pj in p]
    g.append([int(k == r - 1) for k in range(r)])
    at = [[pj ** i for pj in p] + [int(i == m - 1)] for i in range(m)]
    return tuple(np.array([[float(v) for v in row] for row in t]) for t in (bt, g, at))


#: Bytes of a block's transforms (V and M of tb tiles) per thread: with the band they stay in
#: the L2 (1 MB on this Zen 5), as the general engine's blocks (BLOCK_BYTES of the planner).
BLOCK_BYTES = 512 * 1024


def blocking(N, C, K, OH, OW, r, itemsize, vector_bytes, rows, threads, weights=False):
    """(tb, kparts): tiles per block and parts of the output channels, for both backends.
    Blocks are whole row tiles (``rows`` tiles, the register tile's height) whose transforms
    fit BLOCK_BYTES; when the blocks do not split evenly over the threads and are few, the
    output channels are split too, so every thread has work on small maps (the weight
    gradient splits the tiles only, at least ``rows`` per thread)."""
    m = 4 if weights else TILE[r]
    a = m + r - 1 if not weights else 6
    lanes = vector_bytes // itemsize
    Cp, Kp = -(-C // lanes) * lanes, -(-K // (2 * lanes)) * 2 * lanes
    tiles = N * -(-OH // m) * -(-OW // m)
    tb = max(rows, BLOCK_BYTES // (itemsize * a * a * (Cp + Kp)) // rows * rows)
    if weights:
        return max(1, min(tb, -(-tiles // threads))), 1
    tb = min(tb, -(-tiles // rows) * rows)
    blocks = -(-tiles // tb)
    kparts = 1
    if blocks % threads and blocks < 4 * threads:
        kparts = min(Kp // (2 * lanes), threads // math.gcd(blocks, threads))
    return tb, kparts


def entry_points(backend):
    """conv2d, backward_data and backward_weights of a Winograd backend (both backends'), over
    the two calls of its module ``backend``, looked up at each call: ``_run(y, x, w, b, pt, pl,
    transposed)`` (the forward; dx when ``transposed``) and ``_run_weights(dw, db, dy, x, pt,
    pl)``; the padding passed as the offsets of the first tile (the bottom and right follow
    from the output's shape)."""

    def conv2d(y, x, w, b, padding):
        """y = conv2d(x, w, b), r x r, stride 1, padded by ((top, bottom), (left, right))."""
        (pt, _), (pl, _) = padding
        return backend._run(y, x, w, b, pt, pl, False)

    def backward_data(dx, dy, w, padding):
        """dx of an r x r stride-1 layer: the forward of dy with w turned and transposed,
        padded by r-1 - top / r-1 - left."""
        (pt, _), (pl, _) = padding
        r = w.shape[-1]
        return backend._run(dx, dy, w, None, r - 1 - pt, r - 1 - pl, True)

    def backward_weights(dw, db, dy, x, padding):
        """dw of a 3x3 stride-1 layer by F(3x3,4x4), and db (sums of the dy tiles) unless
        None."""
        (pt, _), (pl, _) = padding
        return backend._run_weights(dw, db, dy, x, pt, pl)

    return conv2d, backward_data, backward_weights


# ---- kernels --------------------------------------------------------------------------------

#: Rows of the register tile (tiles in the forward, output channels in dw): its A is strided,
#: one pointer per row, and 12 rows (the GEMM's MR on AVX-512) left LLVM too few registers
ROWS = 8 if VECTOR_BYTES >= 64 else MR
_GEMM = make_tile(ROWS, NVEC, "strided", "strided").fn
_transpose = make_transpose(nvec=1)
_copy_add4, _copy_add2 = make_copy_add(4), make_copy_add(2)   # rows of m = 4, 2 outputs
_P, _P7 = POINTS[3], POINTS[7]
_BT6, _G3, _AT4 = (make_transform(t) for t in transforms(4, 3, _P))
_, _G5, _AT2 = (make_transform(t) for t in transforms(2, 5, _P))
_BT8, _G7, _AT2_8 = (make_transform(t) for t in transforms(2, 7, _P7))
_, _G34, _AT3 = (make_transform(t) for t in transforms(3, 4, _P))   # the weight gradient


@njit
def _band(xb, x, C, Cp, H, W, L, n, y0, x0, a, bw):
    """xb[(i*bw + j)*Cp + c] = x[n, c, y0 + i, x0 + j] for i < a, j < bw, x (N, C, H, W), zero
    outside the image: the a rows under a run of tiles, channels last (channels C..Cp-1:
    copies or zeros, never read by a product); lanes x lanes blocks transposed in registers."""
    HW = H * W
    j0 = min(max(-x0, 0), bw)
    j1 = max(min(W - x0, bw), j0)
    for i in range(a):
        row = i * bw * Cp
        iy = y0 + i
        if iy < 0 or iy >= H:
            xb[row:row + bw * Cp] = 0
            continue
        xb[row:row + j0 * Cp] = 0
        src = (n * C * H + iy) * W + x0
        # whole blocks, and a last one that reads past j1 while x has the values (the pixels
        # past j1 land in the padding, zeroed below, or in the next row, written after)
        j = j0
        while j + L <= j1 or (j < j1 and src + (C - 1) * HW + j + L <= x.shape[0]):
            for c0 in range(0, C, L):
                _transpose(x, src + c0 * HW + j, HW, C - c0, xb, row + j * Cp + c0, Cp)
            j += L
        for jj in range(j, j1):
            d = row + jj * Cp
            for c in range(C):
                xb[d + c] = x[src + c * HW + jj]
            xb[d + C:d + Cp] = 0
        xb[row + j1 * Cp:row + bw * Cp] = 0


@njit
def _input(V, xb, x, geo, g0, g1, m, a):
    """V[(t*a*a + xi)*Cp + c] = (B^T d B)[xi] for the tiles g0..g1-1 (t = g - g0), d the a x a
    patch under tile g; the tiles of a run along a row share one band."""
    N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L = geo
    vts = a * a * Cp
    g = g0
    while g < g1:
        n, ty, tx = g // T, g % T // TW, g % TW
        run = min(TW - tx, g1 - g)
        bw = m * run + a - m
        _band(xb, x, C, Cp, H, W, L, n, m * ty - pt, m * tx - pl, a, bw)
        for s in range(run):
            for c0 in range(0, Cp, L):
                if a == 6:
                    _BT6(xb, m * s * Cp + c0, bw * Cp, Cp, V, (g - g0 + s) * vts + c0, a * Cp, Cp)
                else:
                    _BT8(xb, m * s * Cp + c0, bw * Cp, Cp, V, (g - g0 + s) * vts + c0, a * Cp, Cp)
        g += run


@njit
def _item(y, x, U, bias, geo, r, blk, part, ws):
    """One item of the forward: block blk of tiles, part of the output channels: V of its
    tiles, the a*a products M[:, xi] = V[:, xi] @ U[xi] on the register tile, A^T M A of each
    tile and output vector into y with the bias (csrc/winograd_isa.h, fi_wn_item_)."""
    N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L = geo
    m = 4 if r == 3 else 2
    a = m + r - 1
    npan = Kp // (NVEC * L)
    vts, mts = a * a * Cp, a * a * Kl
    M, o = tb * vts, tb * (vts + mts)   # offsets in ws: M, o (32 L values), o2, xb
    o2 = o + 32 * L
    xb = o2 + tb * L * -(-m * m // L) * L
    g0, g1 = blk * tiles // blocks, (blk + 1) * tiles // blocks
    kb = part * npan // kparts * NVEC * L
    ke = min(K, (part + 1) * npan // kparts * NVEC * L)
    nt = g1 - g0
    _input(ws, ws[xb:], x, geo, g0, g1, m, a)
    for xi in range(a * a):
        for t0 in range(0, nt, ROWS):
            for k0 in range(kb, ke, NVEC * L):
                _GEMM(C, ws, t0 * vts + xi * Cp, vts, 1, U, xi * C * Kp + k0, Kp, ws,
                      M + t0 * mts + xi * Kl + k0 - kb, mts, ROWS, min(NVEC * L, ke - k0), 0)
    # per run of tiles along a row and vector of channels: A^T M A of each tile (pixel-major,
    # at o), turned into channel rows ld2 apart (tile s at o2 + s*ts); then channel by channel
    # the run's rows go to y tile after tile, so a line of y is filled while it is in the L1
    # (channel planes of 4 KB would put every channel's line into one L1 set)
    ld2 = -(-m * m // L) * L
    ts = L * ld2
    g = g0
    while g < g1:
        n, oy, tx = g // T, g % T // TW * m, g % TW
        run = min(TW - tx, g1 - g)
        rows = min(m, OH - oy)
        full = run if m * (tx + run) <= OW else run - 1   # tiles with all m columns in y
        for k0 in range(kb, ke, L):
            for s in range(run):
                src = M + (g - g0 + s) * mts + k0 - kb
                if r == 3:
                    _AT4(ws, src, a * Kl, Kl, ws, o, m * L, L)
                elif r == 5:
                    _AT2(ws, src, a * Kl, Kl, ws, o, m * L, L)
                else:
                    _AT2_8(ws, src, a * Kl, Kl, ws, o, m * L, L)
                for p0 in range(0, m * m, L):
                    _transpose(ws, o + p0 * L, L, m * m - p0, ws, o2 + s * ts + p0, ld2)
            for k in range(k0, min(k0 + L, ke)):
                dst = ((n * K + k) * OH + oy) * OW + tx * m
                src = o2 + (k - k0) * ld2
                if m == 4:
                    _copy_add4(ws, src, m, ts, y, dst, OW, m, rows, m, full, bias, k, 0)
                    if full < run:
                        _copy_add4(ws, src + full * ts, m, ts, y, dst + full * m, OW, m, rows,
                                   OW - m * (tx + full), 1, bias, k, 0)
                else:
                    _copy_add2(ws, src, m, ts, y, dst, OW, m, rows, m, full, bias, k, 0)
                    if full < run:
                        _copy_add2(ws, src + full * ts, m, ts, y, dst + full * m, OW, m, rows,
                                   OW - m * (tx + full), 1, bias, k, 0)
        g += run


@njit
def _filter(U, w, geo, r, c, k0, transposed, st):
    """U[(xi*C + c)*Kp + k0 + l] = (G g G^T)[xi] for l < lanes, g the r x r filter from input
    channel c to output channel k = k0 + l: w[k, c] (w (K, C, r, r)) or, transposed, w[c, k]
    turned by 180 degrees (w (C, K, r, r)); zero for k >= K. Gathered into st first."""
    N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L = geo
    rr = r * r
    for l in range(L):
        k = k0 + l
        for s in range(rr):
            if k >= K:
                st[s * L + l] = 0
            elif transposed:
                st[s * L + l] = w[(c * K + k) * rr + rr - 1 - s]
            else:
                st[s * L + l] = w[(k * C + c) * rr + s]
    a = 8 if r == 7 else 6
    if r == 3:
        _G3(st, 0, r * L, L, U, c * Kp + k0, a * C * Kp, C * Kp)
    elif r == 5:
        _G5(st, 0, r * L, L, U, c * Kp + k0, a * C * Kp, C * Kp)
    else:
        _G7(st, 0, r * L, L, U, c * Kp + k0, a * C * Kp, C * Kp)


@pjit
def _forward(y, x, w, bias, geo, r, U, ws, transposed):
    """y = x (*) w + bias by F(m x m, r x r): the filter transform into U, then the items."""
    N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L = geo
    nkv = Kp // L
    for i in prange(C * nkv):
        _filter(U, w, geo, r, i // nkv, i % nkv * L, transposed, ws[numba.get_thread_id()])
    for i in prange(blocks * kparts):
        _item(y, x, U, bias, geo, r, i // kparts, i % kparts, ws[numba.get_thread_id()])


@pjit
def _weights(dw, db, has_db, dy, x, geo, acc, ws):
    """dw (and db) of a 3x3 layer by F(3x3,4x4): thread t sums the products of its run of
    blocks into acc[t] (36 x Kr x Cp, then the bias sums), the tiles of a block being the
    reduction; the sums are added in thread order and transformed, a vector of channels at a
    time (csrc/winograd_isa.h, fi_wn_dw_)."""
    N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L = geo
    vts, dts = 36 * Cp, 36 * Kp
    Kr = -(-K // ROWS) * ROWS   # acc's rows: whole tiles
    nthr = acc.shape[0]
    for th in prange(nthr):
        A, wk = acc[th], ws[th]   # wk: the dy band, V, D, the x band
        V = (16 * tb + L) * Kp
        D, xb = V + tb * vts, V + tb * (vts + dts)
        A[36 * Kr * Cp:] = 0
        fresh = True
        for blk in range(th * blocks // nthr, (th + 1) * blocks // nthr):
            g0, g1 = blk * tiles // blocks, (blk + 1) * tiles // blocks
            _input(wk[V:], wk[xb:], x, geo, g0, g1, 4, 6)
            t = g0
            while t < g1:   # runs of 4x4 dy tiles: a band of 4 rows, channels last
                n, tx = t // T, t % TW
                run = min(TW - tx, g1 - t)
                _band(wk, dy, K, Kp, OH, OW, L, n, t % T // TW * 4, tx * 4, 4, 4 * run)
                for s in range(run):
                    for k0 in range(0, Kp, L):
                        _G34(wk, 4 * s * Kp + k0, 4 * run * Kp, Kp, wk, D + (t - g0 + s) * dts + k0,
                             6 * Kp, Kp)
                if has_db:   # the bias gradient: dy's sums
                    for p in range(16 * run):
                        for k in range(K):
                            A[36 * Kr * Cp + k] += wk[p * Kp + k]
                t += run
            for xi in range(36):
                for k0 in range(0, K, ROWS):
                    for c0 in range(0, C, NVEC * L):
                        _GEMM(g1 - g0, wk, D + xi * Kp + k0, 1, dts, wk, V + xi * Cp + c0, vts,
                              A, (xi * Kr + k0) * Cp + c0, Cp, ROWS, min(NVEC * L, C - c0),
                              0 if fresh else 1)
            fresh = False
        if fresh:
            A[:36 * Kr * Cp] = 0
    ncv = Cp // L
    for item in prange(K * ncv):
        k, c0 = item // ncv, item % ncv * L
        s = ws[numba.get_thread_id()]
        for xi in range(36):
            for l in range(L):
                v = acc[0, (xi * Kr + k) * Cp + c0 + l]
                for th in range(1, nthr):
                    v += acc[th, (xi * Kr + k) * Cp + c0 + l]
                s[xi * L + l] = v
        _AT3(s, 0, 6 * L, L, s, 36 * L, 3 * L, L)
        for l in range(min(L, C - c0)):
            for p in range(9):
                dw[(k * C + c0 + l) * 9 + p] = s[36 * L + p * L + l]
    if has_db:
        for k in range(K):
            v = acc[0, 36 * Kr * Cp + k]
            for th in range(1, nthr):
                v += acc[th, 36 * Kr * Cp + k]
            db[k] = v


# ---- calls ----------------------------------------------------------------------------------
def _geo(x_shape, K, out_hw, r, pt, pl, dtype, weights=False):
    """The geometry tuple of the kernels and the per-thread scratch size."""
    N, C, H, W = x_shape
    OH, OW = out_hw
    L = VECTOR_BYTES // dtype.itemsize
    threads = numba.get_num_threads()
    tb, kparts = blocking(N, C, K, OH, OW, r, dtype.itemsize, VECTOR_BYTES, ROWS, threads, weights)
    m = 4 if weights else TILE[r]
    a = 6 if weights else m + r - 1
    Cp, Kp = -(-C // L) * L, -(-K // (NVEC * L)) * NVEC * L
    Kl = -(-(Kp // (NVEC * L)) // kparts) * NVEC * L
    TW = -(-OW // m)
    T = -(-OH // m) * TW
    tiles = N * T
    blocks = -(-tiles // tb)
    geo = (N, C, Cp, H, W, K, Kp, Kl, pt, pl, OH, OW, TW, T, tiles, tb, blocks, kparts, L)
    band = a * (m * tb + a) * Cp + L * Cp   # a last block writes up to L pixels past it
    if weights:
        per = tb * 36 * (Cp + Kp) + (16 * tb + L) * Kp + band + 64
    else:
        per = max(tb * a * a * (Cp + Kl) + 32 * L + tb * L * 16 + band, 49 * L) + 64
    return geo, per


def _scratch(name, rows, per, dtype):
    return _workspace(name, rows * per, dtype)[:rows * per].reshape(rows, per)


def _run(y, x, w, b, pt, pl, transposed):
    r = w.shape[-1]
    geo, per = _geo(x.shape, y.shape[1], y.shape[2:], r, pt, pl, x.dtype)
    a = 8 if r == 7 else 6
    U = _workspace("wino_u", a * a * geo[1] * geo[6], x.dtype)
    ws = _scratch("wino", numba.config.NUMBA_NUM_THREADS, per, x.dtype)
    if b is None:
        b = _workspace("wino_zeros", y.shape[1], x.dtype)[:y.shape[1]]
        b[:] = 0
    _forward(y.reshape(-1), x.reshape(-1), w.reshape(-1), b, geo, r, U, ws, transposed)
    return y


def _run_weights(dw, db, dy, x, pt, pl):
    geo, per = _geo(x.shape, dy.shape[1], dy.shape[2:], 3, pt, pl, x.dtype, True)
    nthr = numba.get_num_threads()
    acc = _scratch("wino_acc", nthr, 36 * (geo[5] + ROWS) * geo[2] + geo[6], x.dtype)
    ws = _scratch("wino", numba.config.NUMBA_NUM_THREADS, per, x.dtype)
    _weights(dw.reshape(-1), dw.reshape(-1) if db is None else db, db is not None,
             dy.reshape(-1), x.reshape(-1), geo, acc, ws)
    return dw


conv2d, backward_data, backward_weights = entry_points(sys.modules[__name__])
