"""NumPy reference of the random stream: the oracle every backend is compared with.

The float32 paths are written as the exact sequence of IEEE float32 operations that the Numba
and C kernels perform (no fused multiply-add anywhere), so all three give the same bits. The
mapping itself is specified in the docstring of :mod:`fastinit.rng`; read that first.

Kernels here take ``out`` (a 1-D C-contiguous float32/float64 array, filled in place), the key
words ``k0, k1`` and the draw words ``d0, d1`` (each < 2**32), then the distribution's numbers.
"""
import math

import numpy as np

# Philox4x32 constants (Salmon et al. 2011; Random123's PHILOX_M4x32_*, PHILOX_W32_*).
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF

_f32 = np.float32
TWO_M24 = _f32(2.0 ** -24)
TWO_M25 = _f32(2.0 ** -25)
TWO_M53 = 2.0 ** -53


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 arrays (or scalars); returns the four output words (uint32)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0), np.uint64(k1)
    m32 = np.uint64(MASK32)
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(W0)) & m32
            k1 = (k1 + np.uint64(W1)) & m32
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & m32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & m32)
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def _blocks(nblocks, k0, k1, d0, d1):
    """Words (x0, x1, x2, x3) of blocks 0..nblocks-1 of draw (d0, d1) under key (k0, k1)."""
    j = np.arange(nblocks, dtype=np.uint64)
    return philox4x32_10(j & np.uint64(MASK32), j >> np.uint64(32),
                         np.full(nblocks, d0, np.uint64), np.full(nblocks, d1, np.uint64), k0, k1)


def _words(n, k0, k1, d0, d1):
    """The first ``n`` 32-bit words of a draw, word i being word i % 4 of block i // 4."""
    x = np.stack(_blocks((n + 3) // 4, k0, k1, d0, d1), axis=1).reshape(-1)
    return x[:n]


def _u53(lo_word, hi_word):
    """53-bit integer from two words: ((hi << 32 | lo) >> 11)."""
    return ((hi_word.astype(np.uint64) << np.uint64(32)) | lo_word.astype(np.uint64)) >> np.uint64(11)


# ---- float32 elementary functions (the promise: same bits on every backend) ---------------

_LN_P = [_f32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                           1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                           3.3333331174e-1)]
_SQRTHF = _f32(0.707106781186547524)
_LN2_LO = _f32(-2.12194440e-4)
_LN2_HI = _f32(0.693359375)


def ln_f32(x):
    """Natural log of positive normal float32 ``x`` (Cephes logf, branch-free)."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    e = ((bits >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int32) - np.int32(126)
    m = ((bits & np.uint32(0x807FFFFF)) | np.uint32(0x3F000000)).view(np.float32)  # [0.5, 1)
    small = m < _SQRTHF
    e = e - small.astype(np.int32)
    f = np.where(small, m + m, m) - _f32(1.0)
    ef = e.astype(np.float32)
    z = f * f
    y = _LN_P[0] * f
    for c in _LN_P[1:]:
        y = (y + c) * f
    y = y * z
    y = y + _LN2_LO * ef
    y = y - _f32(0.5) * z
    r = f + y
    return r + _LN2_HI * ef


_SIN_P = [_f32(c) for c in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)]
_COS_P = [_f32(c) for c in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)]
_PI_2M23 = _f32(math.pi * 2.0 ** -23)  # exact: float32(pi) scaled by a power of two


def sincos_2pi_f32(k):
    """(sin, cos) of 2*pi*k/2**24 in float32 for integers 0 <= k < 2**24 (Cephes polynomials).

    The quadrant comes from integer arithmetic, so the reduced angle phi = t*pi/2**23 with
    |t| <= 2**21 is exact up to one rounding and lies in [-pi/4, pi/4].
    """
    k = np.asarray(k, dtype=np.int32)
    n = (k + np.int32(1 << 21)) >> np.int32(22)
    t = k - (n << np.int32(22))
    phi = t.astype(np.float32) * _PI_2M23
    z = phi * phi
    s = _SIN_P[0] * z
    s = (s + _SIN_P[1]) * z
    s = (s + _SIN_P[2]) * z
    s = s * phi + phi
    c = _COS_P[0] * z
    c = (c + _COS_P[1]) * z
    c = (c + _COS_P[2]) * z
    c = c * z - _f32(0.5) * z + _f32(1.0)  # evaluated left to right: ((c*z) - (0.5*z)) + 1
    q = n & np.int32(3)
    sin = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    cos = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    return sin, cos


# Giles (2010), "Approximating the erfinv function", single-precision coefficients.
_ERFINV_A = [_f32(c) for c in (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                               0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                               1.50140941)]
_ERFINV_B = [_f32(c) for c in (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                               0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                               2.83297682)]
_SQRT2_F32 = _f32(math.sqrt(2.0))


def _giles(w, x, one, coef_a, coef_b):
    """erfinv(x) from w = -ln(1 - x*x) by Giles' two polynomials (both evaluated, one kept)."""
    wa = w - one * 2.5
    wb = np.sqrt(np.maximum(w, 0 * one)) - one * 3.0
    pa = coef_a[0] + 0 * wa
    for c in coef_a[1:]:
        pa = c + pa * wa
    pb = coef_b[0] + 0 * wb
    for c in coef_b[1:]:
        pb = c + pb * wb
    return np.where(w < one * 5.0, pa, pb) * x


def ndtri_pq_f32(p, q):
    """Standard normal quantile from p and q = 1 - p, both given accurately (float32).

    z = sqrt(2) * erfinv(p - q), with erfinv's argument w = -ln(4 p q) taken from p and q
    directly so both tails keep full relative precision.
    """
    w = -ln_f32(_f32(4.0) * p * q)
    return _SQRT2_F32 * _giles(w, p - q, _f32(1.0), _ERFINV_A, _ERFINV_B)


_erfc = np.frompyfunc(math.erfc, 1, 1)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LN_2PI = math.log(2.0 * math.pi)


def ndtri_pq_f64(p, q):
    """Standard normal quantile in float64 from p and q = 1 - p.

    Solve Phi(y) = t for t = min(p, q) <= 1/2 (so y <= 0, the side where Phi keeps full
    relative precision), then z = y or -y. Start: Giles' polynomial where it holds
    (w = -ln(4 t (1 - t)) <= 16), else the tail asymptote y = -sqrt(L - ln L - ln 2 pi) with
    L = -2 ln t; then three Newton steps on ln Phi(y) = ln t, which converge in the far tail.
    """
    t = np.minimum(p, q)
    w = -np.log(4.0 * t * np.maximum(p, q))
    giles = math.sqrt(2.0) * _giles(w, t - np.maximum(p, q), 1.0,
                                    [float(c) for c in _ERFINV_A], [float(c) for c in _ERFINV_B])
    big_l = -2.0 * np.log(t)
    tail = -np.sqrt(np.maximum(big_l - np.log(big_l) - _LN_2PI, 0.0))
    y = np.where(w <= 16.0, giles, tail)
    log_t = np.log(t)
    for _ in range(3):
        cdf = 0.5 * _erfc(-y * _INV_SQRT2).astype(np.float64)
        y = y - (np.log(cdf) - log_t) * cdf / (np.exp(-0.5 * y * y) * _INV_SQRT2PI)
    return np.where(p <= q, y, -y)


# ---- the kernels ----------------------------------------------------------------------------

def uniform(out, k0, k1, d0, d1, low, high):
    """Fill ``out`` with U[low, high): low + (high - low) * u, u from 24 or 53 bits."""
    n = out.size
    if out.dtype == np.float32:
        x = _words(n, k0, k1, d0, d1)
        u = (x >> np.uint32(8)).astype(np.float32) * TWO_M24
        lo = _f32(low)
        span = _f32(high) - lo
        out[:] = lo + span * u
    else:
        x = _words(2 * n, k0, k1, d0, d1)
        u = _u53(x[0::2], x[1::2]).astype(np.float64) * TWO_M53
        out[:] = low + (high - low) * u
    return out


def normal(out, k0, k1, d0, d1, mean, std):
    """Fill ``out`` with N(mean, std^2) by Box-Muller (pairs of elements share a block half)."""
    n = out.size
    if out.dtype == np.float32:
        x = _words(2 * ((n + 1) // 2), k0, k1, d0, d1)
        a = x[0::2] >> np.uint32(8)  # u1 = (a + 1) * 2^-24 in (0, 1]
        b = x[1::2] >> np.uint32(8)  # u2 = b * 2^-24 in [0, 1)
        u1 = (a + np.uint32(1)).astype(np.float32) * TWO_M24
        r = np.sqrt(_f32(-2.0) * ln_f32(u1))
        sin, cos = sincos_2pi_f32(b.astype(np.int32))
        z = np.empty(2 * a.size, np.float32)
        z[0::2] = r * cos
        z[1::2] = r * sin
        out[:] = _f32(mean) + _f32(std) * z[:n]
    else:
        x = _words(4 * ((n + 1) // 2), k0, k1, d0, d1)
        u1 = (_u53(x[0::4], x[1::4]) + np.uint64(1)).astype(np.float64) * TWO_M53
        u2 = _u53(x[2::4], x[3::4]).astype(np.float64) * TWO_M53
        r = np.sqrt(-2.0 * np.log(u1))
        theta = (2.0 * math.pi) * u2
        z = np.empty(2 * u1.size, np.float64)
        z[0::2] = r * np.cos(theta)
        z[1::2] = r * np.sin(theta)
        out[:] = mean + std * z[:n]
    return out


def truncated_normal(out, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi):
    """Fill ``out`` with N(mean, std^2) truncated to [mean + a*std, mean + b*std].

    Inverse CDF: v in (0, 1) from the element's bits, p = pa + span*v and
    q = qb + span*(1 - v) (pa = Phi(a), qb = 1 - Phi(b), span = Phi(b) - Phi(a), computed
    by the caller in float64), z = Phi^-1 from (p, q) clamped to [a, b], then mean + std*z
    clamped to [lo, hi].
    """
    n = out.size
    if out.dtype == np.float32:
        x = _words(n, k0, k1, d0, d1)
        m = x >> np.uint32(8)
        v = ((m << np.uint32(1)) + np.uint32(1)).astype(np.float32) * TWO_M25
        w = ((np.uint32(1 << 24) - m) << np.uint32(1)) - np.uint32(1)
        v1 = w.astype(np.float32) * TWO_M25  # 1 - v, from its own integer (no cancellation)
        sp = _f32(span)
        p = _f32(pa) + sp * v
        q = _f32(qb) + sp * v1
        z = np.minimum(np.maximum(ndtri_pq_f32(p, q), _f32(a)), _f32(b))
        y = _f32(mean) + _f32(std) * z
        out[:] = np.minimum(np.maximum(y, _f32(lo)), _f32(hi))
    else:
        x = _words(2 * n, k0, k1, d0, d1)
        m = _u53(x[0::2], x[1::2])
        v = ((m << np.uint64(1)) + np.uint64(1)).astype(np.float64) * (TWO_M53 * 0.5)
        w = ((np.uint64(1 << 53) - m) << np.uint64(1)) - np.uint64(1)
        v1 = w.astype(np.float64) * (TWO_M53 * 0.5)
        p = pa + span * v
        q = qb + span * v1
        z = np.minimum(np.maximum(ndtri_pq_f64(p, q), a), b)
        out[:] = np.minimum(np.maximum(mean + std * z, lo), hi)
    return out
