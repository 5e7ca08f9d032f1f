"""Blocked GEMM for Numba: C = op(A) @ op(B) (or C += ...), float32 and float64, no BLAS.

Large products follow BLIS's loop order (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
Instantiating BLAS Functionality", ACM TOMS 2015), :func:`gemm_packed`::

    for jc in N by NC:                      B panel (KC x NC), shared by the threads
      for pc in K by KC:
        pack B[pc:pc+kc, jc:jc+nc]          panels of NR columns, k-major (threads split panels)
        parallel for each block of C rows:  A block (MC x KC), one per thread
          pack A[ic:ic+mc, pc:pc+kc]        panels of MR rows, k-major
          for jr in nc by NR:               B micro-panel (KC x NR)
            for ir in mc by MR:
              tile: C[ir:ir+MR, jr:jr+NR] (+)= Ap @ Bp     (registers; see _tile.py)

with a deep KC (1024 float32) and a small MC (96): every pass over K re-reads and re-writes C,
and on this Zen 5 both micro-panels stream from L2 fast enough (see :func:`blocking`). A B that
is not transposed is read where it lies unless its row stride would thrash the caches
(:func:`b_rows_direct`); only a partial last panel is packed then.

Small and medium products (:func:`gemm_direct`: up to DIRECT_MAX_MACS multiply-adds, a C of
at most one row block (MC rows: every thread would pack the same A), or K in one block and A of
at most DIRECT_MAX_A_BYTES) take K in one block (blocks of DIRECT_KB past
that) and read A and B where they lie (B copied only when it comes transposed), on one thread
or, from PARALLEL_MIN_MACS on, split over the threads in a single parallel launch. A C of at most
DOTS_MAX_OUT values over a long K is a few dot products (:func:`gemm_dots`). A narrow C
(N < NR, e.g. a linear layer with 10 outputs) is computed as C.T = op(B).T @ op(A).T, so M
runs along the tile's columns instead of leaving them idle.

Operands come as C-contiguous 2-D arrays plus a flag ``ta``/``tb``: with the flag set the
array holds the *transpose* of the operand (``A = a.T``), so ``dy.T @ x`` or ``x @ w.T`` never
materialise a transposed copy: the packing routines read either layout (a row-major A, or a
transposed B, is packed by lanes x lanes register transposes).

Edge tiles: packed panels are padded to MR rows / NR columns and the tile stores with masks,
so there is no scalar clean-up loop anywhere.
"""
import threading

import numba
import numpy as np
from numba import prange

from .._config import FASTMATH_REDUCE, njit, pjit
from ._tile import VECTOR_BYTES, make_tile, make_transpose

# ---- tile shape -------------------------------------------------------------------------------
# AVX-512: 12 rows x 2 vectors = 24 accumulators of 32 zmm registers (two more hold B, two the
# broadcasts of A; 14 x 2 made LLVM spill one accumulator per k step).
# AVX2: 6 x 2 = 12 of 16 ymm. SSE: 4 x 2 of 16 xmm.
if VECTOR_BYTES >= 64:
    MR, NVEC = 12, 2
elif VECTOR_BYTES == 32:
    MR, NVEC = 6, 2
else:
    MR, NVEC = 4, 2

#: The direct path's K block: its B panel (K x NR values) stays in L2.
DIRECT_KB = 4096
#: A C of at most DOTS_MAX_OUT values with K >= DOTS_MIN_K, rows of op(A) and columns of op(B)
#: contiguous, is computed as dot products over K chunks of DOTS_CHUNK (:func:`gemm_dots`).
DOTS_MAX_OUT = 16
DOTS_MIN_K = 2048
DOTS_CHUNK = 8192

PACKED = make_tile(MR, NVEC, "packed", "packed")
PACKED_A = make_tile(MR, NVEC, "packed", "strided")   # the large path when B is read in place
DIRECT = make_tile(MR, NVEC, "strided", "strided")    # the direct path: A and B where they lie
_packed_tile = PACKED.fn
_packed_a_tile = PACKED_A.fn
_direct_tile = DIRECT.fn
#: Packing a row-major A (or a transposed B) is a transpose: done a lanes x lanes block at a
#: time in registers (scalar copies ran at about 0.5 values per cycle, 8% of a 1024^3 product).
_transpose_a = make_transpose(rows=MR)
_transpose_b = make_transpose(nvec=NVEC)
#: Values a packed A buffer needs past its end (the transposes of a partial last group spill).
PACK_PAD = 64


def nr(dtype):
    """Columns of a tile (NR) for ``dtype``."""
    return PACKED.cols(dtype)


# ---- blocking (elements) -----------------------------------------------------------------------
def blocking(dtype):
    """(KC, MC, NC) for ``dtype``: the most of K, of M and of N one packed block takes.

    A deep KC pays most: every pass over K re-reads and re-writes the C tile (from L3 or
    memory for a large C) and restarts the tile loop, and with a small MC both micro-panels
    stream from L2, which keeps up (benchmarks/records/2026-12-05-comments.md has the
    measurement). float64: the same bytes.
    """
    if np.dtype(dtype).itemsize == 4:
        return 1024, MR * 8, 4096
    return 512, MR * 8, 2048


# ---- packing ----------------------------------------------------------------------------------
@njit(inline="always")
def _pack_panel(x, tx, p0, kc, j0, cols, dst, d0, P):
    """dst[d0 + k*P + j] = X[p0 + k, j0 + j] for k < kc, j < P: one k-major panel of P columns of
    X = x (tx False) or x.T (tx True), x C-contiguous 2-D. Columns past ``cols`` are padding:
    zero (x) or copies of the last (x.T, whose transposes read whole rows); the tile never
    stores their sums. When P is not a multiple of the lanes (A's MR), the transposes write
    up to a vector past the panel: PACK_PAD."""
    W = VECTOR_BYTES // x.itemsize
    ld = x.shape[1]
    xf = x.reshape(-1)
    if tx:
        row0 = j0 * ld + p0
        kv = kc - kc % W
        for k in range(0, kv, W):
            if P == MR:   # the transposes are made for one height: A's MR or B's NR
                _transpose_a(xf, row0 + k, ld, cols, dst, d0 + k * P, P)
            else:
                _transpose_b(xf, row0 + k, ld, cols, dst, d0 + k * P, P)
        for j in range(P):
            src = xf[row0 + min(j, cols - 1) * ld:]
            for k in range(kv, kc):
                dst[d0 + k * P + j] = src[k]
    else:
        for k in range(kc):
            src = xf[(p0 + k) * ld + j0:]
            out = dst[d0 + k * P:d0 + (k + 1) * P]
            if cols == P:
                for j in range(P):  # a constant trip count for A (P = MR): vector moves
                    out[j] = src[j]
            else:
                for j in range(cols):
                    out[j] = src[j]
                for j in range(cols, P):
                    out[j] = 0


@njit
def _pack_a(a, ta, i0, mc, p0, kc, dst):
    """dst[(q*kc + k)*MR + r] = A[i0 + q*MR + r, p0 + k]; rows past mc are padding.

    A = a (ta False) or a.T (ta True): MR rows of A are MR columns of A.T, which is a.T or a,
    so packed as B's panels with the flag turned. ``dst`` is 1-D with room for ceil(mc/MR)*MR*kc values plus PACK_PAD.
    """
    for q in range((mc + MR - 1) // MR):
        _pack_panel(a, not ta, p0, kc, i0 + q * MR, min(MR, mc - q * MR), dst, q * kc * MR, MR)


@njit
def _pack_b_panel(b, tb, p0, kc, j0, cols, panel, NR):
    """panel[k*NR + j] = B[p0 + k, j0 + j] for j < cols, padding beyond. B = b or b.T (tb)."""
    _pack_panel(b, tb, p0, kc, j0, cols, panel, 0, NR)


@njit(inline="always")
def _dims(a, ta, c):
    """(M, N, K, NR) of C (+)= op(A) @ op(B): C's shape, op(A)'s columns, a tile's columns."""
    m, n = c.shape
    return m, n, a.shape[0] if ta else a.shape[1], NVEC * (VECTOR_BYTES // c.itemsize)


@njit(inline="always")
def _add_bias(cflat, off, ldc, rows, cols, bias, j):
    """C[r, :cols] += bias[j:j + cols] for the rows of a tile just stored (in L1): the bias
    added as the C kernels' tiles add it when they store (acc + bias), without a pass over C
    before the product."""
    brow = bias[j:j + cols]
    for r in range(rows):
        row = cflat[off + r * ldc:off + r * ldc + cols]
        for jj in range(cols):
            row[jj] += brow[jj]


# ---- drivers ----------------------------------------------------------------------------------
@pjit
def gemm_packed(a, ta, b, tb, c, beta, kc_max, mc_max, nc_max, apack, bpack, nthreads,
                b_direct, bias, has_bias):
    """C (+)= A @ B with packing, parallel over blocks of C: the large-product path.

    a, b : C-contiguous 2-D; A = a.T when ta, B = b.T when tb. c : C-contiguous (M, N).
    beta : 0 overwrites C, 1 adds to it. apack : (threads, >= mc_max*kc_max + PACK_PAD) scratch;
    bpack : 1-D scratch of >= kc_max * ceil(nc_max/NR)*NR values. nthreads : how many
    threads to split the work for (numba.get_num_threads() inside the kernel would stop Numba
    from caching it). b_direct : B is not transposed and its rows are far enough apart in
    cache sets (see :func:`b_rows_direct`): the tile then reads full column panels of B where
    they lie and only a partial last panel is packed. has_bias : add ``bias`` (N,) to every row
    (with K's first block; beta must be 0 then).
    """
    m, n, k, NR = _dims(a, ta, c)
    ldc = n
    cflat = c.reshape(-1)
    bflat = b.reshape(-1)
    npan_m = (m + MR - 1) // MR
    if k == 0:
        if beta == 0:
            cflat[:] = 0
        return
    # K in equal blocks (a multiple of the vector width) rather than kc_max and a stub.
    W = VECTOR_BYTES // c.itemsize
    nkb = (k + kc_max - 1) // kc_max
    kc_step = ((k + nkb - 1) // nkb + W - 1) // W * W
    for jc in range(0, n, nc_max):
        nc = min(nc_max, n - jc)
        npan_n = (nc + NR - 1) // NR
        # Work split: blocks of at most mc_max rows, as many as the threads (or a multiple);
        # when C has too few rows for every thread, its columns are split as well.
        mblocks = (npan_m * MR + mc_max - 1) // mc_max
        if mblocks % nthreads:
            mblocks += nthreads - mblocks % nthreads
        mblocks = min(mblocks, npan_m)
        nsplit = 1
        if mblocks < nthreads:
            nsplit = min((nthreads + mblocks - 1) // mblocks, npan_n)
        items = mblocks * nsplit
        for pc in range(0, k, kc_step):
            kc = min(kc_step, k - pc)
            if b_direct:
                t = nc // NR  # only a partial last panel is packed
                if t < npan_n:
                    _pack_b_panel(b, tb, pc, kc, jc + t * NR, nc - t * NR,
                                  bpack[t * kc * NR:(t + 1) * kc * NR], NR)
            else:
                for t in prange(npan_n):
                    j0 = jc + t * NR
                    _pack_b_panel(b, tb, pc, kc, j0, min(NR, n - j0),
                                  bpack[t * kc * NR:(t + 1) * kc * NR], NR)
            bet = beta if pc == 0 else 1
            add_bias = has_bias and pc == 0
            for it in prange(items):
                bi = it // nsplit
                bj = it - bi * nsplit
                q0 = bi * npan_m // mblocks
                q1 = (bi + 1) * npan_m // mblocks
                t0 = bj * npan_n // nsplit
                t1 = (bj + 1) * npan_n // nsplit
                ap = apack[numba.get_thread_id()]
                i0 = q0 * MR
                mc = min(q1 * MR, m) - i0
                _pack_a(a, ta, i0, mc, pc, kc, ap)
                for t in range(t0, t1):
                    j = jc + t * NR
                    nv = min(NR, n - j)
                    if b_direct and nv == NR:
                        for q in range(q1 - q0):
                            i = i0 + q * MR
                            _packed_a_tile(kc, ap, q * kc * MR, 0, 0, bflat, pc * n + j, n,
                                           cflat, i * ldc + j, ldc, min(MR, m - i), nv, bet)
                            if add_bias:
                                _add_bias(cflat, i * ldc + j, ldc, min(MR, m - i), nv, bias, j)
                    else:
                        for q in range(q1 - q0):
                            i = i0 + q * MR
                            _packed_tile(kc, ap, q * kc * MR, 0, 0, bpack, t * kc * NR, 0,
                                         cflat, i * ldc + j, ldc, min(MR, m - i), nv, bet)
                            if add_bias:
                                _add_bias(cflat, i * ldc + j, ldc, min(MR, m - i), nv, bias, j)


@njit
def _direct_block(a, ta, b, tb, c, beta, bpanel, i0, i1, t0, t1, bias, has_bias):
    """C[i0:i1, column panels t0..t1-1] (+)= op(A) @ op(B), K in blocks of DIRECT_KB, nothing of
    A packed.

    The tile reads A's rows (or columns, when ``ta``) and B's rows where they lie; a B panel is
    copied into ``bpanel`` (kb * NR values, reused panel after panel) only when B comes
    transposed, or for a partial last panel (the tile reads whole vectors). Packing A bought
    nothing here (see csrc/gemm_isa.h: its rows stay in cache across the panels).
    """
    m, n, k, NR = _dims(a, ta, c)
    ldc = n
    cflat = c.reshape(-1)
    bflat = b.reshape(-1)
    aflat = a.reshape(-1)
    a_rs, a_ks = (1, m) if ta else (k, 1)
    # K in blocks of at most DIRECT_KB (one block for every product chosen by size; a long thin
    # one, e.g. (16, 65536) @ (65536, 16), would otherwise copy a K x NR panel of megabytes)
    for p0 in range(0, k, DIRECT_KB):
        kc = min(DIRECT_KB, k - p0)
        bet = beta if p0 == 0 else 1
        for t in range(t0, t1):
            j = t * NR
            nv = min(NR, n - j)
            if tb or nv < NR:
                _pack_b_panel(b, tb, p0, kc, j, nv, bpanel, NR)
                bsrc, boff, bstep = bpanel, 0, NR
            else:
                bsrc, boff, bstep = bflat, p0 * n + j, n
            for i in range(i0, i1, MR):
                _direct_tile(kc, aflat, i * a_rs + p0 * a_ks, a_rs, a_ks, bsrc, boff, bstep,
                             cflat, i * ldc + j, ldc, min(MR, i1 - i), nv, bet)
                if has_bias and p0 == 0:
                    _add_bias(cflat, i * ldc + j, ldc, min(MR, i1 - i), nv, bias, j)


def direct_scratch(k, itemsize, nchunks):
    """Values of scratch :func:`gemm_direct` needs: one B panel (a K block) per part."""
    NR = NVEC * (VECTOR_BYTES // itemsize)
    return max(nchunks, 1) * min(k, DIRECT_KB) * NR


@pjit
def gemm_direct(a, ta, b, tb, c, beta, ws, nchunks, bias, has_bias):
    """C (+)= op(A) @ op(B) with K in one block (or a few), A and B read where they lie (B
    copied only when it comes transposed): small and medium products.

    Same arguments as :func:`gemm_packed`; ``ws`` : 1-D scratch of at least
    ``direct_scratch(K, itemsize, nchunks)`` values. ``nchunks`` > 1 splits the work in one
    parallel launch: by rows, unless B is the bigger operand or comes transposed (each part
    would then read or copy all of B) or there are too few rows, and there are enough column
    panels: then by panels. Nothing one
    thread writes is read by another. With ``nchunks`` == 1 no thread is started.
    """
    m, n, k, NR = _dims(a, ta, c)
    if k == 0:
        if beta == 0:
            c[:] = 0
        return
    npan = (n + NR - 1) // NR
    nrow = (m + MR - 1) // MR
    size = min(k, DIRECT_KB) * NR
    if nchunks <= 1:
        _direct_block(a, ta, b, tb, c, beta, ws[:size], 0, m, 0, npan, bias, has_bias)
    elif npan >= nchunks and (tb or nrow < nchunks or m < n):
        for ch in prange(nchunks):
            _direct_block(a, ta, b, tb, c, beta, ws[ch * size:(ch + 1) * size], 0, m,
                          ch * npan // nchunks, (ch + 1) * npan // nchunks, bias, has_bias)
    else:
        for ch in prange(nchunks):
            # equal shares of rows (128 rows as 64 + 64, not 60 + 68: see csrc/gemm_isa.h)
            i0 = ch * m // nchunks
            i1 = (ch + 1) * m // nchunks
            if i0 < i1:
                _direct_block(a, ta, b, tb, c, beta, ws[ch * size:(ch + 1) * size], i0, i1,
                              0, npan, bias, has_bias)


@njit(fastmath=set(FASTMATH_REDUCE))
def _dot(x, xo, y, yo, length):
    """sum_p x[xo + p] y[yo + p], p < length, summed in vector lanes (FASTMATH_REDUCE: without
    'reassoc' the loop stayed scalar, one FMA per value, slower than the tiles from 4 outputs)."""
    xs = x[xo:xo + length]
    ys = y[yo:yo + length]
    s = x.dtype.type(0)
    for p in range(length):
        s += xs[p] * ys[p]
    return s


@pjit
def gemm_dots(a, a_rs, b, b_cs, c, beta, bias, has_bias, part):
    """A C of at most DOTS_MAX_OUT values over a long K whose rows of op(A) and columns of op(B)
    lie contiguous (A[i, p] = a[i*a_rs + p], B[p, j] = b[j*b_cs + p], flat arrays), e.g.
    (1, K) @ (K, 1): dot products over fixed chunks of DOTS_CHUNK (in parallel), the chunks'
    sums added in order. ``part``: scratch of nchunks * m * n values. See csrc/gemm_isa.h."""
    m, n = c.shape
    outs = m * n
    nch = part.size // outs
    k = (a.size // m) if a_rs else a.size
    for ch in prange(nch):
        p0 = ch * DOTS_CHUNK
        length = min(DOTS_CHUNK, k - p0)
        for i in range(m):
            for j in range(n):
                part[ch * outs + i * n + j] = _dot(a, i * a_rs + p0, b, j * b_cs + p0, length)
    for i in range(m):
        for j in range(n):
            s = part[i * n + j]
            for ch in range(1, nch):
                s += part[ch * outs + i * n + j]
            if has_bias:
                c[i, j] = s + (c[i, j] + bias[j] if beta else bias[j])
            else:
                c[i, j] = s + c[i, j] if beta else s


@njit
def _add_transposed(c, ct, beta, bias, has_bias):
    """c = ct.T [+ c when beta] [+ bias when has_bias] (the narrow product's last step; numpy's
    broadcasting add costs more than the loop on small results)."""
    m, n = c.shape
    for i in range(m):
        row = c[i]
        for j in range(n):
            v = ct[j, i]
            if beta:
                v += row[j]
            if has_bias:
                v += bias[j]
            row[j] = v


# ---- entry point ------------------------------------------------------------------------------
class _Scratch(threading.local):
    """Cached scratch arrays, per Python thread, reused across calls: a fresh multi-megabyte
    buffer costs a page fault per 4 KB on first touch."""

    def __init__(self):
        self.bufs = {}


_scratch = _Scratch()


def _threads_getter():
    """numba.get_num_threads, or its raw ctypes half (it skips the thread-pool launch check,
    done once here), since call overhead decides small products."""
    numba.get_num_threads()
    try:
        from numba.np.ufunc.parallel import _get_num_threads
    except ImportError:  # pragma: no cover - a numba without the private name
        return numba.get_num_threads
    return lambda: _get_num_threads() or numba.get_num_threads()


_num_threads = _threads_getter()
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NR = {_F32: nr(_F32), _F64: nr(_F64)}
_BLOCKING = {_F32: blocking(_F32), _F64: blocking(_F64)}


def _workspace(name, size, dtype):
    """A scratch array of ``dtype`` with at least ``size`` values, zero when first made (tiles
    read rows past the valid ones and drop their results; uninitialised memory there can hold
    denormals, which slow every multiply-add of the tile)."""
    bufs = _scratch.bufs
    arr = bufs.get((name, dtype))
    if arr is None or arr.size < size:
        arr = bufs[(name, dtype)] = np.zeros(max(size, 1), dtype)
    return arr


#: Products of at most this many multiply-adds (m*n*k) skip packing (direct path).
DIRECT_MAX_MACS = 256 * 256 * 256
#: Products of at least this many multiply-adds use the threads.
PARALLEL_MIN_MACS = 100 * 100 * 100
#: Larger products still go direct when K fits one block and A has at most this many bytes
#: (A then stays in L2 while the B panels stream by; the large path's shared packed B pays
#: only with several row blocks per thread).
DIRECT_MAX_A_BYTES = 512 * 1024


def gemm(a, ta, b, tb, c, beta=0, bias=None):
    """C (+)= op(a) @ op(b) [+ bias] into C-contiguous ``c``; op(x) = x.T when the flag is set.

    ``a``, ``b`` are C-contiguous 2-D arrays of c's dtype, ``bias`` None or a C-contiguous
    (N,) array (the caller checks shapes).
    """
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    dt = c.dtype
    NR = _NR[dt]
    if m * n <= DOTS_MAX_OUT and k >= DOTS_MIN_K and (not ta or m == 1) and (tb or n == 1) \
            and m and n:
        nch = (k + DOTS_CHUNK - 1) // DOTS_CHUNK
        part = _workspace("dots", nch * m * n, dt)[:nch * m * n]
        gemm_dots(a.reshape(-1), k if m > 1 else 0, b.reshape(-1), k if n > 1 else 0, c, beta,
                  c[0] if bias is None else bias, bias is not None, part)
        return c
    if n < NR and m > n and k:
        # A narrow C (e.g. a linear layer with 10 outputs) would leave most of every tile's
        # columns idle: compute C.T = op(B).T @ op(A).T (M along the tile's columns) instead.
        ct = _workspace("transposed", m * n, dt)[:m * n].reshape(n, m)
        gemm(b, not tb, a, not ta, ct, 0)
        _add_transposed(c, ct, beta, c[0] if bias is None else bias, bias is not None)
        return c
    has_bias = bias is not None
    if has_bias and (beta or k == 0):
        # C starts as the bias rows (plus C); the product adds on
        if beta:
            c += bias
        else:
            c[...] = bias
            beta = 1
        has_bias = False
    # otherwise the tiles' bias: added to each tile as it is stored (a 1-D stand-in when none)
    tile_bias = bias if has_bias else c.reshape(-1)
    macs = m * n * k
    kc, mc, nc = _BLOCKING[dt]
    if macs <= DIRECT_MAX_MACS or m <= mc or (k <= kc and m * k * dt.itemsize <= DIRECT_MAX_A_BYTES):
        if m and n:
            chunks = 1
            if macs >= PARALLEL_MIN_MACS:
                chunks = min(_num_threads(), max((m + MR - 1) // MR, (n + NR - 1) // NR))
            size = direct_scratch(k, dt.itemsize, chunks)
            gemm_direct(a, ta, b, tb, c, beta, _workspace("direct", size, dt), chunks, tile_bias,
                        has_bias)
        return c
    threads = numba.config.NUMBA_NUM_THREADS
    slot = mc * kc + PACK_PAD
    apack = _workspace("apack", threads * slot, dt)[:threads * slot].reshape(threads, slot)
    bsize = kc * ((min(nc, n) + NR - 1) // NR) * NR
    gemm_packed(a, ta, b, tb, c, beta, kc, mc, nc, apack, _workspace("bpack", bsize, dt),
                _num_threads(), not tb and b_rows_direct(n * dt.itemsize), tile_bias, has_bias)
    return c


def b_rows_direct(row_bytes):
    """Whether the tile may read B's rows where they lie (no packing) at this row stride.

    A tile reads a KC x NR strip of B, one row segment per k, and the strip is re-read for
    every row panel of A. Rows whose stride is a multiple of a large power of two fall into
    few cache sets (4 KB apart: the same L1 set, and 1/16 of the L2's) and thrash: B is packed
    then. Otherwise reading B in place saves the copy.
    """
    return (row_bytes & -row_bytes) <= 256
