"""Numba kernels of 2-D convolution: the general engine and the depthwise path, the twins of
csrc/conv2d.c (whose comment has the picture), following the planner's :class:`Plan`
(:mod:`fastinit.ops.conv`); Winograd is :mod:`fastinit._numba.conv3x3`.

Per group g the convolution is ``Y_g (Kg x N*OH*OW) = W_g (Kg x T) @ X_g (T x N*OH*OW)``, with
T = Cg*R*S taps and X_g the patch matrix (tap t = (c*R + r)*S + s, pixel j = (n*OH + oy)*OW +
ox). Blocks of X_g are built on the fly (:func:`_patches`) and fed to the GEMM's register tile
(:mod:`fastinit._numba._tile`): forward per chunk of pixels, dx as W_g^T dY_g added back into
dx (col2im), dw as X_g dY_g^T reducing over the pixels. Depthwise layers run with channels
along the vectors instead. Arrays reach the kernels flat (1-D views) with the geometry as a
tuple; every thread works in its own row of a scratch array.
"""
import functools

import numba
import numpy as np
from numba import prange

from .._config import njit, pjit
from . import conv3x3
from .gemm import MR, NVEC, _workspace
from ._tile import VECTOR_BYTES, make_lanes, make_tile, make_transpose

_transpose = make_transpose(nvec=1)
_transpose_mr = make_transpose(rows=MR)
_LANES4 = make_lanes(4, table=True)     # depthwise: 4 pixels x the taps, lane by lane
_LANES1T = make_lanes(1, table=True)
_LANES1 = make_lanes(1)


def isa():
    """The vector ISA of the Numba kernels (the planner's tile shape)."""
    return "avx512" if VECTOR_BYTES >= 64 else "avx2" if VECTOR_BYTES == 32 else "portable"


@njit
def _ld(n):
    """Row length of a block of n pixels or channels: whole tiles of 32 values, never a
    multiple of 4 KB (as csrc/conv2d.c's fi_cv_ld)."""
    ld = -(-n // 32) * 32
    return ld if ld % 1024 else ld + 32


# ---- building blocks ----------------------------------------------------------------------
def _by_height(a_mode, b_mode, nvec=NVEC, **kw):
    """A tile of at most MR rows (mv) and nvec vectors that runs the shortest of three made
    tiles (MR, 8 and 4 rows) holding them, so a partial block pays only for its rows::

        tile(mv, kc, a, a_off, a_rs, a_ks, b, b_off, b_step, c, c_off, ldc, nv, beta)
    """
    tall, mid, short = (make_tile(h, nvec, a_mode, b_mode, **kw).fn for h in (MR, 8, 4))

    @njit(inline="always")
    def tile(mv, kc, a, a_off, a_rs, a_ks, b, b_off, bstep, c, c_off, ldc, nv, beta):
        if mv > 8:
            tall(kc, a, a_off, a_rs, a_ks, b, b_off, bstep, c, c_off, ldc, mv, nv, beta)
        elif mv > 4:
            mid(kc, a, a_off, a_rs, a_ks, b, b_off, bstep, c, c_off, ldc, mv, nv, beta)
        else:
            short(kc, a, a_off, a_rs, a_ks, b, b_off, bstep, c, c_off, ldc, mv, nv, beta)

    return tile


#: Packed A panels of MR rows (a shorter tile reads a panel's first rows), B rows.
_tile = _by_height("packed", "strided", panel=MR)
#: The direct forward (stride 1 along the row): A through the tap table, B packed; one vector
#: wide when a group's output channels fit in one (_dp_nr).
_dp_tile = _by_height("table", "packed", row_step=1)
_dp_tile1 = _by_height("table", "packed", nvec=1, row_step=1)
#: The direct dw: a row of A per tap (through the table), B the rows of dy transposed.
_dp_rows_tile = _by_height("rowtable", "strided")


@njit
def _zero(d):
    for i in range(d.shape[0]):
        d[i] = 0


@njit
def _tail(d, d0, ld, rows, n, NR):
    """Zero columns n.. of ``rows`` rows (ld apart, from d0) up to a whole tile width NR: the
    tile reads NR columns and stores the first n only, so the rest must hold zeros, not what
    the scratch held before (denormals there cost a microcode assist per FMA)."""
    end = -(-n // NR) * NR
    for r in range(rows):
        for i in range(d0 + r * ld + n, d0 + r * ld + end):
            d[i] = 0


@njit
def _patches(col, c0, pq, pr, pc, x, geo, g, t0, nt, j0, nj, mode):
    """The patch matrix X_g (see the module docstring) and a block of it in col: X_g[t, j] at
    col[c0 + q*pq + r*pr + (j - j0)*pc] for t - t0 = q*MR + r (row-major: pq = MR*ld, pr =
    ld, pc = 1; packed A panels of MR taps: pr = 1, pc = MR). mode 0 builds the block (im2col,
    zero in the padding), mode 1 adds it back into x (col2im). Pixels are walked in runs along
    one output row (as csrc/conv2d_isa.h, fi_cv_patches_)."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    Cg, P = C // G, OH * OW
    for t in range(t0, t0 + nt):
        c, r, s = t // (R * S), t // S % R, t % S
        offy, offx = r * dh - pt, s * dw - pl
        lo = (-offx + sw - 1) // sw if offx < 0 else 0
        hi = min(OW, (W - offx + sw - 1) // sw) if W - offx > 0 else 0
        lo = min(lo, hi)
        xc = (g * Cg + c) * H * W + offx
        row = c0 + (t - t0) // MR * pq + (t - t0) % MR * pr
        j = j0
        n, oy, ox = j // P, j % P // OW, j % OW
        while j < j0 + nj:
            ln = min(OW - ox, j0 + nj - j)
            iy = oy * sh + offy
            a = ox + ln if iy < 0 or iy >= H else max(ox, lo)
            b = min(ox + ln, hi)
            d = row + (j - j0 - ox) * pc      # col[d + ox'*pc] is pixel (n, oy, ox')
            src = xc + n * C * H * W + iy * W
            # (unsigned indices: every index here is >= 0, and Numba then skips the
            # negative-index wraparound it would otherwise test on every access)
            if mode == 0:
                for i in range(ox, a if a < b else ox + ln):
                    col[np.uint64(d + i * pc)] = 0
                if a < b:
                    for i in range(b, ox + ln):
                        col[np.uint64(d + i * pc)] = 0
            if a < b and pc == 1 and sw <= 2:
                # a row segment: strides 1 and 2 spelt out, so that LLVM vectorises them
                dst = col[d + a:d + b]
                if sw == 1:
                    xs = x[src + a:src + b]
                    if mode == 0:
                        for i in range(b - a):
                            dst[i] = xs[i]
                    else:
                        for i in range(b - a):
                            xs[i] += dst[i]
                else:
                    xs = x[src + 2 * a:src + 2 * b]
                    if mode == 0:
                        for i in range(b - a):
                            dst[i] = xs[2 * i]
                    else:
                        for i in range(b - a):
                            xs[2 * i] += dst[i]
            elif a < b:
                if mode == 0:
                    for i in range(a, b):
                        col[np.uint64(d + i * pc)] = x[np.uint64(src + i * sw)]
                else:
                    for i in range(a, b):
                        x[np.uint64(src + i * sw)] += col[np.uint64(d + i * pc)]
            j += ln
            ox += ln
            if ox == OW:
                ox = 0
                oy += 1
                if oy == OH:
                    oy = 0
                    n += 1


@njit
def _rows(z, chans, zc0, cb, ldc, k0, k1, j0, nj, P, bias, has_bias, to_z):
    """Rows k0..k1-1 of a pixel block cb (row k - k0 at (k - k0)*ldc, pixels j0..) and the
    NCHW array z of ``chans`` channels per image: to z (+ bias[k]) or from z."""
    j = j0
    while j < j0 + nj:
        n, p = j // P, j % P
        ln = min(P - p, j0 + nj - j)
        for k in range(k0, k1):
            zr = z[(n * chans + zc0 + k) * P + p:(n * chans + zc0 + k) * P + p + ln]
            cr = cb[(k - k0) * ldc + j - j0:(k - k0) * ldc + j - j0 + ln]
            if to_z:
                bk = bias[k] if has_bias else 0
                for i in range(ln):
                    zr[i] = cr[i] + bk
            else:
                for i in range(ln):
                    cr[i] = zr[i]
        j += ln


# ---- the general engine: forward, backward data, backward weights ----------------------------
@pjit
def _forward(y, x, wpack, bias, has_bias, geo, blk, ws):
    """y = conv(x, w) + b: items (group, pixel chunk, part of the output channels); per block
    of kc taps the patch block and every packed weight panel's tiles, into the thread's block
    of y (cb), then y with the bias (see csrc/conv2d_isa.h, fi_cv_forward_)."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    nc, kc_max, chunks, parts = blk
    Kg, T, P = K // G, C // G * R * S, OH * OW
    J, NR = N * P, NVEC * (VECTOR_BYTES // y.itemsize)
    ldc, mp, npan = _ld(nc), (J + NR - 1) // NR, (Kg + MR - 1) // MR
    for item in prange(G * chunks * parts):
        buf = ws[numba.get_thread_id()]
        g, ch, part = item // (chunks * parts), item // parts % chunks, item % parts
        j0 = ch * mp // chunks * NR
        nj = min((ch + 1) * mp // chunks * NR, J) - j0
        p0, p1 = part * npan // parts, (part + 1) * npan // parts
        cbo = kc_max * ldc
        for t0 in range(0, T, kc_max):
            kc = min(kc_max, T - t0)
            _patches(buf, 0, MR * ldc, ldc, 1, x, geo, g, t0, kc, j0, nj, 0)
            _tail(buf, 0, ldc, kc, nj, NR)
            for pn in range(p0, p1):
                mv = min(MR, Kg - pn * MR)
                a_off = ((g * npan + pn) * T + t0) * MR
                for jb in range(0, nj, NR):
                    c_off = cbo + (pn - p0) * MR * ldc + jb
                    nv = min(NR, nj - jb)
                    _tile(mv, kc, wpack, a_off, 0, 0, buf, jb, ldc, buf, c_off, ldc, nv, t0)
        _rows(y, K, g * Kg, buf[cbo:], ldc, p0 * MR, min(p1 * MR, Kg), j0, nj, P,
              bias[g * Kg:], has_bias, True)


@pjit
def _pack_weights(wpack, w, G, Kg, T):
    """wpack[((g*npan + pn)*T + t)*MR + r] = w[g*Kg + pn*MR + r, t] (zero past Kg)."""
    npan = (Kg + MR - 1) // MR
    for gp in prange(G * npan):
        g, pn = gp // npan, gp % npan
        for r in range(MR):
            k = pn * MR + r
            dst = wpack[gp * T * MR + r:(gp + 1) * T * MR]
            if k < Kg:
                src = w[(g * Kg + k) * T:(g * Kg + k + 1) * T]
                for t in range(T):
                    dst[t * MR] = src[t]
            else:
                for t in range(T):
                    dst[t * MR] = 0


@pjit
def _backward_data(dx, dy, wtp, geo, blk, ws):
    """dx = col2im(W_g^T dY_g): items (group, image range, part of the input channels), so no
    two items add into the same place; W_g^T from its packed panels (:func:`_pack_wt`); see
    csrc/conv2d_isa.h, fi_cv_backward_data_."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    nc, kc_max, tb, imgs, parts = blk
    Cg, Kg, P, RS = C // G, K // G, OH * OW, R * S
    NR, ldc, tmax = NVEC * (VECTOR_BYTES // dx.itemsize), _ld(nc), _tmax(Cg, parts, RS)
    for item in prange(G * imgs * parts):
        buf = ws[numba.get_thread_id()]
        g, ib, part = item // (imgs * parts), item // parts % imgs, item % parts
        n0, n1 = ib * N // imgs, (ib + 1) * N // imgs
        c0, c1 = part * Cg // parts, (part + 1) * Cg // parts
        wp = (g * parts + part) * tmax * Kg
        for n in range(n0, n1):
            _zero(dx[(n * C + g * Cg + c0) * H * W:(n * C + g * Cg + c1) * H * W])
        dco = Kg * ldc
        for j0 in range(n0 * P, n1 * P, nc):
            nj = min(nc, n1 * P - j0)
            _rows(dy, K, g * Kg, buf, ldc, 0, Kg, j0, nj, P, buf, False, False)
            _tail(buf, 0, ldc, Kg, nj, NR)
            for tp in range(0, (c1 - c0) * RS, tb):
                nt = min(tb, (c1 - c0) * RS - tp)
                for kb in range(0, Kg, kc_max):
                    kc = min(kc_max, Kg - kb)
                    for t in range(0, nt, MR):
                        for jb in range(0, nj, NR):
                            _tile(min(MR, nt - t), kc, wtp, wp + ((tp + t) // MR * Kg + kb) * MR,
                                  0, 0, buf, kb * ldc + jb, ldc, buf, dco + t * ldc + jb, ldc,
                                  min(NR, nj - jb), kb)
                _patches(buf, dco, MR * ldc, ldc, 1, dx, geo, g, c0 * RS + tp, nt, j0, nj, 1)


@njit
def _tmax(Cg, parts, RS):
    """Taps of the largest part of the input channels, in whole panels of MR."""
    return -(-(-(-Cg // parts) * RS) // MR) * MR


@pjit
def _pack_wt(wtp, w, G, Kg, Cg, RS, parts):
    """W_g^T as packed A panels of MR taps per (group, part of the input channels), k-major
    over Kg, each part's taps from a panel's start (csrc/conv2d_isa.h, fi_cv_pack_wt_)."""
    T, tmax = Cg * RS, _tmax(Cg, parts, RS)
    npan = tmax // MR
    for i in prange(G * parts * npan):
        g, part, pn = i // npan // parts, i // npan % parts, i % npan
        c0, c1 = part * Cg // parts, (part + 1) * Cg // parts
        dst = ((g * parts + part) * tmax + pn * MR) * Kg
        for k in range(Kg):
            for r in range(MR):
                t = pn * MR + r
                wtp[dst + k * MR + r] = w[(g * Kg + k) * T + c0 * RS + t] if t < (c1 - c0) * RS else 0


@njit
def _dy_transposed(dyt, ldk, dy, geo, g, j0, nj):
    """dyt[(j - j0)*ldk + k] = dy[n, g*Kg + k, p] for the pixels j = n*P + p of a chunk,
    lanes x lanes blocks in registers where a run of pixels allows."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    Kg, P = K // G, OH * OW
    L = VECTOR_BYTES // dy.itemsize
    j = j0
    while j < j0 + nj:
        n, p = j // P, j % P
        ln = min(P - p, j0 + nj - j)
        src = (n * K + g * Kg) * P + p
        dst = (j - j0) * ldk
        i = 0
        while i + L <= ln:
            for k0 in range(0, Kg, L):
                _transpose(dy, src + k0 * P + i, P, Kg - k0, dyt, dst + i * ldk + k0, ldk)
            i += L
        for i2 in range(i, ln):
            for k in range(Kg):
                dyt[dst + i2 * ldk + k] = dy[src + k * P + i2]
        j += ln
    _tail(dyt, 0, ldk, nj, Kg, NVEC * L)


@njit
def _panels(ap, a0, col, c0, ld, nt, nk):
    """ap[a0 + q*MR*ld + k*MR + r] = col[c0 + (q*MR + r)*ld + k] for the nt rows and nk
    columns of a row-major block: packed A panels of MR rows, lanes x lanes blocks in
    registers (rows past nt repeat the last: their sums are never stored)."""
    L = VECTOR_BYTES // col.itemsize
    for t in range(0, nt, MR):
        rows = min(MR, nt - t)
        k = 0
        while k + L <= nk:
            _transpose_mr(col, c0 + t * ld + k, ld, rows, ap, a0 + t * ld + k * MR, MR)
            k += L
        for k2 in range(k, nk):
            for r in range(MR):
                ap[a0 + t * ld + k2 * MR + r] = col[c0 + (t + min(r, rows - 1)) * ld + k2]


@pjit
def _backward_weights(acc, per_acc, dy, x, geo, blk, ws):
    """dW_g^T (T x Kg) = X_g dY_g^T over the pixels: items (group, part), a part a pixel range
    with its own partial sum (split 0) or a tap range over all pixels (split 1); see
    csrc/conv2d_isa.h, fi_cv_backward_weights_."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    nc, kc, tb, parts, split = blk
    Kg, T, J = K // G, C // G * R * S, N * OH * OW
    ldc, ldk, NR = _ld(nc), _ld(Kg), NVEC * (VECTOR_BYTES // dy.itemsize)
    for item in prange(G * parts):
        buf = ws[numba.get_thread_id()]
        g, part = item // parts, item % parts
        ja, jb_, ta, tz = 0, J, 0, T
        out = g * T * ldk
        if split == 0:
            ja, jb_ = part * J // parts, (part + 1) * J // parts
            out += part * per_acc
        else:
            npan = (T + MR - 1) // MR
            ta = part * npan // parts * MR
            tz = min((part + 1) * npan // parts * MR, T)
        _zero(acc[out + ta * ldk:out + tz * ldk])
        colo = nc * ldk
        apo = colo + (-(-tb // MR) + 1) * MR * ldc
        for j0 in range(ja, jb_, nc):
            nj = min(nc, jb_ - j0)
            _dy_transposed(buf, ldk, dy, geo, g, j0, nj)
            for t0 in range(ta, tz, tb):
                nt = min(tb, tz - t0)
                _patches(buf, colo, MR * ldc, ldc, 1, x, geo, g, t0, nt, j0, nj, 0)
                _panels(buf, apo, buf, colo, ldc, nt, nj)
                for k0 in range(0, Kg, kc):      # dyt's block in L2
                    for t in range(0, nt, MR):
                        for kb in range(k0, min(k0 + kc, Kg), NR):
                            _tile(min(MR, nt - t), nj, buf, apo + t * ldc, 0, 0, buf, kb, ldk, acc,
                                  out + (t0 + t) * ldk + kb, ldk, min(NR, Kg - kb), 1)


@pjit
def _sum_dw(dw, acc, per_acc, nacc, G, Kg, T):
    """dw[g*Kg + k, t] = the partial sums of dW_g^T added in order."""
    ldk = _ld(Kg)
    for gt in prange(G * T):
        g, t = gt // T, gt % T
        for k in range(Kg):
            s = acc[gt * ldk + k]
            for a in range(1, nacc):
                s += acc[a * per_acc + gt * ldk + k]
            dw[(g * Kg + k) * T + t] = s


@pjit
def _bias_grad(db, dy, N, K, P):
    """db[k] = the sum over images and pixels of dy (N, K, P), in float64."""
    for k in prange(K):
        s = 0.0
        for n in range(N):
            row = dy[(n * K + k) * P:(n * K + k + 1) * P]
            for p in range(P):
                s += row[p]
        db[k] = s


# ---- depthwise (Cg = Kg = 1): channels along the vectors ------------------------------------
@njit
def _dw_flat(z, z0, ldz, n, nch, zi, L, to_z):
    """Between the planes z[z0 + v*ldz + p] (v < nch, p < n) and zi[p*L + v] (interleaved)."""
    p = 0
    if nch == L:
        while p + L <= n:
            if to_z:
                _transpose(zi, p * L, L, L, z, z0 + p, ldz)
            else:
                _transpose(z, z0 + p, ldz, L, zi, p * L, L)
            p += L
    for p2 in range(p, n):
        for v in range(nch):
            if to_z:
                z[z0 + v * ldz + p2] = zi[p2 * L + v]
            else:
                zi[p2 * L + v] = z[z0 + v * ldz + p2]


@njit
def _dw_pad(zf, H, W, zi, zi0, Hp, Wp, oy0, ox0, L, to_zf):
    """Between the interleaved image zf (H x W pixels) and the padded buffer zi (Hp x Wp
    pixels at zi0, zf's (0, 0) at (oy0, ox0)): only what lies inside both moves; to zf, zero
    where zi does not reach."""
    ya, yb = max(0, -oy0), min(H, Hp - oy0)
    xa, xb = max(0, -ox0), min(W, Wp - ox0)
    for iy in range(H):
        zr = zf[iy * W * L:(iy + 1) * W * L]
        if iy < ya or iy >= yb or xa >= xb:
            if to_zf:
                _zero(zr)
            continue
        base = zi0 + ((iy + oy0) * Wp + ox0) * L
        zir = zi[base + xa * L:base + xb * L]
        zin = zr[xa * L:xb * L]
        if to_zf:
            _zero(zr[:xa * L])
            _zero(zr[xb * L:])
            for i in range(zin.shape[0]):
                zin[i] = zir[i]
        else:
            for i in range(zin.shape[0]):
                zir[i] = zin[i]


@pjit
def _depthwise(out, a, b, bias, has_bias, geo, parts, ws, toff, pass_):
    """pass_ 0 forward (out = y, a = x, b = w), 1 dx by scatter (out = dx, a = dy, b = w), 2 dw
    (out = partial sums, a = dy, b = x): items (part of the images, channel block), per image
    the block moved into the interleaved buffers and back (see csrc/conv2d_isa.h, fi_dw_run_)."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    L = VECTOR_BYTES // out.itemsize
    RS, P, HW = R * S, OH * OW, H * W
    Hp, Wp = (OH - 1) * sh + (R - 1) * dh + 1, (OW - 1) * sw + (S - 1) * dw + 1
    nblk = (C + L - 1) // L
    big = max(HW, P)
    xst, yst = sw * L, sh * Wp * L
    xi0, oi0 = 0, Hp * Wp * L
    fl0 = oi0 + P * L
    wv0 = fl0 + big * L
    bv0 = wv0 + RS * L
    for item in prange(parts * nblk):
        buf = ws[numba.get_thread_id()]
        part, c0 = item // nblk, item % nblk * L
        nch = min(L, C - c0)
        for v in range(L):
            for t in range(RS):
                buf[wv0 + t * L + v] = b[(c0 + v) * RS + t] if pass_ < 2 and v < nch else 0
            buf[bv0 + v] = bias[c0 + v] if has_bias and v < nch else 0
        _zero(buf[:Hp * Wp * L])
        for n in range(part * N // parts, (part + 1) * N // parts):
            zx = (n * C + c0) * HW
            zy = (n * C + c0) * P
            oi = buf[oi0:oi0 + P * L]
            fl = buf[fl0:fl0 + big * L]
            if pass_ > 0:
                _dw_flat(a, zy, P, P, nch, oi, L, False)
            if pass_ == 1:
                _zero(buf[:Hp * Wp * L])
            else:
                _dw_flat(a if pass_ == 0 else b, zx, HW, HW, nch, fl, L, False)
                _dw_pad(fl, H, W, buf, xi0, Hp, Wp, pt, pl, L, False)
            for oy in range(OH):
                xr = xi0 + oy * yst
                if pass_ == 2:       # dw[t] += sum over the row of dy * x at tap t
                    for t in range(RS):
                        _LANES1(OW, oi, oy * OW * L, L, buf, xr + toff[t], xst, 0, buf,
                                wv0 + t * L, 0, 1, 0)
                elif pass_ == 1:     # scatter dy into the padded dx (strided layers)
                    for ox in range(OW):
                        o = oi[(oy * OW + ox) * L:(oy * OW + ox + 1) * L]
                        for t in range(RS):
                            xv = buf[xr + ox * xst + toff[t]:xr + ox * xst + toff[t] + L]
                            wt = buf[wv0 + t * L:wv0 + (t + 1) * L]
                            for v in range(L):
                                xv[v] += wt[v] * o[v]
                else:                # 4 pixels a step, then one at a time, from the bias
                    ox = 0
                    while ox + 4 <= OW:
                        _LANES4(RS, buf, wv0, L, buf, xr + ox * xst, toff, xst, buf,
                                oi0 + (oy * OW + ox) * L, L, 2, bv0)
                        ox += 4
                    for ox2 in range(ox, OW):
                        _LANES1T(RS, buf, wv0, L, buf, xr + ox2 * xst, toff, 0, buf,
                                 oi0 + (oy * OW + ox2) * L, 0, 2, bv0)
            if pass_ == 0:
                _dw_flat(out, zy, P, P, nch, oi, L, True)
            elif pass_ == 1:
                _dw_pad(fl, H, W, buf, xi0, Hp, Wp, pt, pl, L, True)
                _dw_flat(out, zx, HW, HW, nch, fl, L, True)
        if pass_ == 2:
            for v in range(nch):
                for t in range(RS):
                    out[part * C * RS + (c0 + v) * RS + t] = buf[wv0 + t * L + v]


# ---- direct (few output channels per group): no patch matrix (csrc/conv2d_isa.h, fi_dp_*) --
@njit
def _dp_pad(xp, x, geo, n, g, Hp, Wp):
    """xp[(c*Hp + i)*Wp + j] = x[n, g*Cg + c, i - pt, j - pl], zero outside x."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    Cg = C // G
    ja, jb = min(pl, Wp), min(pl + W, Wp)
    for c in range(Cg):
        for i in range(Hp):
            row = xp[(c * Hp + i) * Wp:(c * Hp + i + 1) * Wp]
            iy = i - pt
            if iy < 0 or iy >= H or jb <= ja:
                _zero(row)
                continue
            _zero(row[:ja])
            _zero(row[jb:])
            src = x[((n * C + g * Cg + c) * H + iy) * W:((n * C + g * Cg + c) * H + iy) * W + jb - ja]
            dst = row[ja:jb]
            for j in range(jb - ja):
                dst[j] = src[j]


@njit
def _dp_nr(Kg, itemsize):
    """Output channels per panel of the direct forward: one vector when Kg fits in one (the
    tile's other vector would multiply zeros), else NVEC vectors (as csrc FI_DP_NR)."""
    lanes = VECTOR_BYTES // itemsize
    return lanes if Kg <= lanes else NVEC * lanes


@pjit
def _dp_pack(wt, w, G, Kg, T, NR):
    """wt[((g*npan + pn)*T + t)*NR + j] = w[g*Kg + pn*NR + j, t] (zero past Kg)."""
    npan = (Kg + NR - 1) // NR
    for gp in prange(G * npan):
        for t in range(T):
            for j in range(NR):
                k = gp % npan * NR + j
                wt[(gp * T + t) * NR + j] = w[(gp // npan * Kg + k) * T + t] if k < Kg else 0


@pjit
def _dp_forward(y, x, wt, bias, has_bias, geo, parts, tab, ws):
    """Per output row, per block of MR pixels: MR pixels x NR output channels over all taps,
    A read from the padded image through the tap table; to y transposed, with the bias. The
    planner sends only layers with stride 1 along the rows here (the tiles' rows step 1)."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    Cg, Kg, T = C // G, K // G, C // G * R * S
    NR = _dp_nr(Kg, y.itemsize)
    Hp, Wp = (OH - 1) * sh + (R - 1) * dh + 1, (OW - 1) * sw + (S - 1) * dw + 1
    npan = (Kg + NR - 1) // NR
    tbo = Cg * Hp * Wp
    for item in prange(N * G * parts):
        buf = ws[numba.get_thread_id()]
        n, g, part = item // (G * parts), item // parts % G, item % parts
        _dp_pad(buf, x, geo, n, g, Hp, Wp)
        for oy in range(part * OH // parts, (part + 1) * OH // parts):
            for ox0 in range(0, OW, MR):
                mv = min(MR, OW - ox0)
                for pn in range(npan):
                    nv = min(NR, Kg - pn * NR)
                    if NR == VECTOR_BYTES // y.itemsize:
                        _dp_tile1(mv, T, buf, oy * sh * Wp + ox0 * sw, sw, tab, wt,
                                  (g * npan + pn) * T * NR, 0, buf, tbo, NR, nv, 0)
                    else:
                        _dp_tile(mv, T, buf, oy * sh * Wp + ox0 * sw, sw, tab, wt,
                                 (g * npan + pn) * T * NR, 0, buf, tbo, NR, nv, 0)
                    for j in range(nv):       # to y, transposed, with the bias
                        k = g * Kg + pn * NR + j
                        y0 = ((n * K + k) * OH + oy) * OW + ox0
                        bk = bias[k] if has_bias else 0
                        for r in range(mv):
                            y[np.uint64(y0 + r)] = buf[np.uint64(tbo + r * NR + j)] + bk


@pjit
def _dp_weights(acc, per_acc, dy, x, geo, parts, tab, ws):
    """Per output row, per panel of MR taps: dW^T[taps, :] += the row's sum over its pixels,
    A read from the padded image (a row per tap), B the row of dy transposed; a partial sum
    per part of the batch."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = geo
    Cg, Kg, T = C // G, K // G, C // G * R * S
    NR = NVEC * (VECTOR_BYTES // dy.itemsize)
    Hp, Wp = (OH - 1) * sh + (R - 1) * dh + 1, (OW - 1) * sw + (S - 1) * dw + 1
    ldk = _ld(Kg)
    dto = Cg * Hp * Wp
    for part in prange(parts):
        buf = ws[numba.get_thread_id()]
        out = part * per_acc
        _zero(acc[out:out + G * T * ldk])
        for n in range(part * N // parts, (part + 1) * N // parts):
            for g in range(G):
                _dp_pad(buf, x, geo, n, g, Hp, Wp)
                for oy in range(OH):
                    _dy_transposed(buf[dto:], ldk, dy, geo, g, (n * OH + oy) * OW, OW)
                    for t0 in range(0, T, MR):
                        for kb in range(0, Kg, NR):
                            _dp_rows_tile(min(MR, T - t0), OW, buf, oy * sh * Wp, tab[t0:], sw,
                                          buf, dto + kb, ldk, acc,
                                          out + (g * T + t0) * ldk + kb, ldk, min(NR, Kg - kb), 1)


@functools.lru_cache(maxsize=256)
def _dp_taps(g, dtype):
    """(Hp, Wp, tab): the padded extent and each tap's offset in the padded planes (cached:
    a training loop repeats the geometry, and on tiny images this NumPy work was half the
    call)."""
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = g
    Hp, Wp = (OH - 1) * sh + (R - 1) * dh + 1, (OW - 1) * sw + (S - 1) * dw + 1
    t = np.arange(C // G * R * S)
    tab = (((t // (R * S)) * Hp + t // S % R * dh) * Wp + t % S * dw).astype(np.int64)
    return Hp, Wp, tab


# ---- entry points -----------------------------------------------------------------------------
def _geo(geo):
    N, C, H, W = geo.x_shape
    K, _, R, S = geo.w_shape
    return (N, C, H, W, K, R, S, geo.stride[0], geo.stride[1], geo.padding[0][0],
            geo.padding[1][0], geo.dilation[0], geo.dilation[1], geo.groups,
            geo.out_shape[2], geo.out_shape[3])


def _ws(name, per, dtype):
    """Per-thread scratch rows (threads x per values)."""
    nt = numba.config.NUMBA_NUM_THREADS
    return _workspace(name, nt * per, dtype)[:nt * per].reshape(nt, per)


def _run_depthwise(out, a, b, bias, geo, plan, pass_):
    g = _geo(geo)
    N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = g
    if pass_ == 1 and sh == 1 and sw == 1 and np.isfinite(b).all():
        # stride 1: dx is the correlation of dy, padded by (R-1)*dh - pt / (S-1)*dw - pl, with
        # the kernels turned by 180 degrees (a forward pass; see csrc/conv2d.c; not with an
        # inf or NaN weight, which would meet the padding's zeros)
        g = (N, C, OH, OW, K, R, S, 1, 1, (R - 1) * dh - pt, (S - 1) * dw - pl, dh, dw, G, H, W)
        b, pass_ = np.ascontiguousarray(b[:, :, ::-1, ::-1]), 0
        N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW = g
    L = VECTOR_BYTES // out.itemsize
    Hp, Wp = (OH - 1) * sh + (R - 1) * dh + 1, (OW - 1) * sw + (S - 1) * dw + 1
    per = (Hp * Wp + OH * OW + max(H * W, OH * OW) + R * S + 1) * L + 64
    toff = np.array([((t // S) * dh * Wp + t % S * dw) * L for t in range(R * S)], np.int64)
    parts = plan.blocking["parts"]
    target = out.reshape(-1)
    if pass_ == 2:
        target = np.zeros(parts * C * R * S, out.dtype)
    _depthwise(target, a.reshape(-1), b.reshape(-1), out.reshape(-1) if bias is None else bias,
               bias is not None, g, parts, _ws("dw", per, out.dtype), toff, pass_)
    if pass_ == 2:
        out.reshape(-1)[:] = target.reshape(parts, -1).sum(axis=0, dtype=np.float64)


def conv2d(y, x, w, b, geo, plan):
    if plan.path == "winograd":
        return conv3x3.conv2d(y, x, w, b, geo.padding)
    if plan.path == "depthwise":
        _run_depthwise(y, x, w, b, geo, plan, 0)
        return y
    g = _geo(geo)
    if plan.path == "direct":
        K, Cg, R, S = w.shape
        G = geo.groups
        NR = _dp_nr(K // G, y.itemsize)
        Hp, Wp, tab = _dp_taps(g, y.dtype)
        npan = -(-(K // G) // NR)
        wt = _workspace("wt", G * npan * Cg * R * S * NR, w.dtype)[:G * npan * Cg * R * S * NR]
        _dp_pack(wt, w.reshape(-1), G, K // G, Cg * R * S, NR)
        _dp_forward(y.reshape(-1), x.reshape(-1), wt, y.reshape(-1) if b is None else b,
                    b is not None, g, plan.blocking["parts"], tab,
                    _ws("conv", Cg * Hp * Wp + MR * NR + 64, y.dtype))
        return y
    blk = plan.blocking
    K, Cg, R, S = w.shape
    G = geo.groups
    Kg, T = K // G, Cg * R * S
    npan = -(-Kg // MR)
    wpack = _workspace("wpack", G * npan * T * MR, w.dtype)[:G * npan * T * MR]
    _pack_weights(wpack, w.reshape(-1), G, Kg, T)
    ldc = _ld(blk["nc"])
    per = (blk["kc"] + -(-npan // blk["parts"]) * MR) * ldc + 64
    _forward(y.reshape(-1), x.reshape(-1), wpack, y.reshape(-1) if b is None else b,
             b is not None, g, (blk["nc"], blk["kc"], blk["chunks"], blk["parts"]),
             _ws("conv", per, y.dtype))
    return y


def conv2d_backward(dx, dw, db, dy, x, w, geo, plans):
    plan_dx, plan_dw = plans
    g = _geo(geo)
    K, Cg, R, S = w.shape
    G = geo.groups
    Kg, T = K // G, Cg * R * S
    if dx is not None:
        b = plan_dx.blocking
        if plan_dx.path == "winograd":
            conv3x3.backward_data(dx, dy, w, geo.padding)
        elif plan_dx.path == "depthwise":
            _run_depthwise(dx, dy, w, None, geo, plan_dx, 1)
        else:
            parts, RS = b["parts"], R * S
            size = G * parts * _tmax(Cg, parts, RS) * Kg
            wtp = _workspace("wtp", size, w.dtype)[:size]
            _pack_wt(wtp, w.reshape(-1), G, Kg, Cg, RS, parts)
            per = (Kg + -(-b["tb"] // MR) * MR) * _ld(b["nc"]) + 64
            _backward_data(dx.reshape(-1), dy.reshape(-1), wtp, g,
                           (b["nc"], b["kc"], b["tb"], b["imgs"], parts),
                           _ws("conv", per, dy.dtype))
    if plan_dw is None:
        return dx, dw, db
    if dw is not None:
        b = plan_dw.blocking
        if plan_dw.path == "winograd":
            conv3x3.backward_weights(dw, db, dy, x, geo.padding)
            return dx, dw, db
        if plan_dw.path == "depthwise":
            _run_depthwise(dw, dy, x, None, geo, plan_dw, 2)
        elif plan_dw.path == "direct":
            Hp, Wp, tab = _dp_taps(g, dy.dtype)
            ldk, parts = _ld(Kg), b["parts"]
            acc = _workspace("dwacc", parts * G * T * ldk, dy.dtype)[:parts * G * T * ldk]
            _dp_weights(acc, G * T * ldk, dy.reshape(-1), x.reshape(-1), g, parts, tab,
                        _ws("conv", Cg * Hp * Wp + g[15] * ldk + 64, dy.dtype))
            _sum_dw(dw.reshape(-1), acc, G * T * ldk, parts, G, Kg, T)
        else:
            ldk = _ld(Kg)
            per_acc = G * T * ldk
            nacc = b["parts"] if b["split"] == 0 else 1
            acc = _workspace("dwacc", per_acc * nacc, dy.dtype)[:per_acc * nacc]
            per = b["nc"] * ldk + 2 * (-(-b["tb"] // MR) + 1) * MR * _ld(b["nc"]) + 64
            _backward_weights(acc, per_acc, dy.reshape(-1), x.reshape(-1), g,
                              (b["nc"], b["kc"], b["tb"], b["parts"], b["split"]),
                              _ws("conv", per, dy.dtype))
            _sum_dw(dw.reshape(-1), acc, per_acc, nacc, G, Kg, T)
    if db is not None:
        N, _, OH, OW = dy.shape
        _bias_grad(db, dy.reshape(-1), N, K, OH * OW)
    return dx, dw, db
