"""Numba kernels of the random stream: Philox4x32-10 and its samplers, bit for bit the reference.

The mapping from (key, draw, element index) to a number is specified in :mod:`fastinit.rng`;
:mod:`fastinit.reference.rng` is the oracle. The float32 paths repeat the reference's exact
sequence of IEEE float32 operations (kernels compiled with ``exact=True``: no fused
multiply-add, no reassociation), so uniform, normal and truncated normal float32, and uniform
float64, give the same bits as NumPy. float64 normal and truncated normal call the C library
through LLVM (log, sin, cos, exp, erfc): the reference's bits when it too is evaluated with the
C library; NumPy's own SIMD log and exp differ from it by an ulp now and then.

Work is split into fixed-size chunks of :data:`CHUNK` elements, never sized from the thread
count, so every element is computed by the same code whatever the number of threads.
Below ``_config.PARALLEL_MIN_ELEMENTS`` the serial kernel runs (no parallel launch).

Why it vectorises: the per-element helpers are inlined by Numba (``inline="always"``; LLVM left
the Philox rounds as a call, and a call in the loop keeps it scalar); every loop runs over a
view from index 0; integers are uint64 holding 32-bit values (Numba widens small integers
anyway, and mixing signed with unsigned would give float64), so Philox's 32x32->64 multiply is
one uint64 multiply (``vpmuludq``); the float32 bit tricks use a bitcast intrinsic.
"""
import math

import numba
import numpy as np
from numba import prange, types
from numba.extending import overload

from .. import _config
from .._config import njit, pjit
from ._tile import f32_as_u32, u32_as_f32

#: Elements per parallel chunk (a multiple of 4: every chunk starts on a Philox block).
CHUNK = 1 << 16

_u64 = np.uint64
_f32 = np.float32
MASK = _u64(0xFFFFFFFF)
M0, M1 = _u64(0xD2511F53), _u64(0xCD9E8D57)
W0, W1 = _u64(0x9E3779B9), _u64(0xBB67AE85)
S8, S11, S22, S23, S32 = _u64(8), _u64(11), _u64(22), _u64(23), _u64(32)
ONE = _u64(1)
TWO_M24 = _f32(2.0 ** -24)
TWO_M25 = _f32(2.0 ** -25)
TWO_M53 = 2.0 ** -53
TWO_M54 = 2.0 ** -54
U24 = _u64(1 << 24)
U53 = _u64(1 << 53)


# ---- Philox4x32-10 ----------------------------------------------------------------------------

@njit(exact=True, inline="always")
def _philox(c0, c1, c2, c3, k0, k1):
    """Ten Philox4x32 rounds; every argument and result a uint64 holding a 32-bit word."""
    for r in range(10):
        p0 = c0 * M0
        p1 = c2 * M1
        c0, c1, c2, c3 = (p1 >> S32) ^ c1 ^ k0, p1 & MASK, (p0 >> S32) ^ c3 ^ k1, p0 & MASK
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return c0, c1, c2, c3


@njit(exact=True, inline="always")
def _block(j, d0, d1, k0, k1):
    """Block ``j`` (uint64) of draw (d0, d1): counter (j lo, j hi, d0, d1)."""
    return _philox(j & MASK, j >> S32, d0, d1, k0, k1)


# ---- float32 elementary functions: the reference's operations, in its order -------------------

LN_P0, LN_P1, LN_P2, LN_P3, LN_P4, LN_P5, LN_P6, LN_P7, LN_P8 = (
    _f32(7.0376836292e-2), _f32(-1.1514610310e-1), _f32(1.1676998740e-1),
    _f32(-1.2420140846e-1), _f32(1.4249322787e-1), _f32(-1.6668057665e-1),
    _f32(2.0000714765e-1), _f32(-2.4999993993e-1), _f32(3.3333331174e-1))
SQRTHF = _f32(0.707106781186547524)
LN2_LO = _f32(-2.12194440e-4)
LN2_HI = _f32(0.693359375)
HALF = _f32(0.5)
F1 = _f32(1.0)
F0 = _f32(0.0)


@njit(exact=True, inline="always")
def _ln_f32(x):
    """Natural log of a positive normal float32 (Cephes logf), as reference.rng.ln_f32."""
    bits = _u64(f32_as_u32(x))
    e = np.int32((bits >> S23) & _u64(0xFF))
    m = u32_as_f32(np.uint32((bits & _u64(0x807FFFFF)) | _u64(0x3F000000)))  # [0.5, 1)
    small = m < SQRTHF
    if small:
        e = np.int32(e - 127)
        f = (m + m) - F1
    else:
        e = np.int32(e - 126)
        f = m - F1
    ef = _f32(e)
    z = f * f
    y = LN_P0 * f
    y = (y + LN_P1) * f
    y = (y + LN_P2) * f
    y = (y + LN_P3) * f
    y = (y + LN_P4) * f
    y = (y + LN_P5) * f
    y = (y + LN_P6) * f
    y = (y + LN_P7) * f
    y = (y + LN_P8) * f
    y = y * z
    y = y + LN2_LO * ef
    y = y - HALF * z
    r = f + y
    return r + LN2_HI * ef


SIN_P0, SIN_P1, SIN_P2 = _f32(-1.9515295891e-4), _f32(8.3321608736e-3), _f32(-1.6666654611e-1)
COS_P0, COS_P1, COS_P2 = (_f32(2.443315711809948e-5), _f32(-1.388731625493765e-3),
                          _f32(4.166664568298827e-2))
PI_2M23 = _f32(math.pi * 2.0 ** -23)


@njit(exact=True, inline="always")
def _sincos_2pi_f32(k):
    """(sin, cos) of 2 pi k / 2**24 for a uint64 0 <= k < 2**24, as reference.sincos_2pi_f32."""
    n = (k + _u64(1 << 21)) >> S22
    t = np.int32(np.int64(k) - np.int64(n << S22))  # |t| <= 2**21
    phi = _f32(t) * PI_2M23
    z = phi * phi
    s = SIN_P0 * z
    s = (s + SIN_P1) * z
    s = (s + SIN_P2) * z
    s = s * phi + phi
    c = COS_P0 * z
    c = (c + COS_P1) * z
    c = (c + COS_P2) * z
    c = c * z - HALF * z + F1
    # quadrant q = n mod 4: sin = s, c, -s, -c and cos = c, -s, -c, s (negation is exact)
    if n & ONE:
        sn, cs = c, s
    else:
        sn, cs = s, c
    if n & _u64(2):
        sn = -sn
    if (n + ONE) & _u64(2):
        cs = -cs
    return sn, cs


# Giles (2010) single-precision erfinv coefficients (reference.rng._ERFINV_A/_B).
GA = (_f32(2.81022636e-08), _f32(3.43273939e-07), _f32(-3.5233877e-06), _f32(-4.39150654e-06),
      _f32(0.00021858087), _f32(-0.00125372503), _f32(-0.00417768164), _f32(0.246640727),
      _f32(1.50140941))
GB = (_f32(-0.000200214257), _f32(0.000100950558), _f32(0.00134934322), _f32(-0.00367342844),
      _f32(0.00573950773), _f32(-0.0076224613), _f32(0.00943887047), _f32(1.00167406),
      _f32(2.83297682))
SQRT2_F32 = _f32(math.sqrt(2.0))
F2_5, F3, F4, F5 = _f32(2.5), _f32(3.0), _f32(4.0), _f32(5.0)


@njit(exact=True, inline="always")
def _max(x, c):
    """np.maximum(x, c) for a non-NaN c: c when equal (signed zeros), x when x is NaN."""
    return c if x <= c else x


@njit(exact=True, inline="always")
def _min(x, c):
    """np.minimum(x, c) for a non-NaN c: c when equal (signed zeros), x when x is NaN."""
    return c if x >= c else x


@njit(exact=True, inline="always")
def _horner(coefs, w, acc):
    """acc = c + acc * w for each c of coefs in turn (the reference's polynomial steps)."""
    for c in coefs:
        acc = c + acc * w
    return acc


@njit(exact=True, inline="always")
def _ndtri_pq_f32(p, q):
    """Standard normal quantile from p and q = 1 - p (float32), as reference.ndtri_pq_f32."""
    w = -_ln_f32((F4 * p) * q)
    x = p - q
    wa = w - F2_5
    wb = np.sqrt(_max(w, F0)) - F3
    # Giles' polynomials; the reference's leading `c0 + 0 * w` is c0 exactly (w is finite)
    pa = _horner(GA[1:], wa, GA[0])
    pb = _horner(GB[1:], wb, GB[0])
    g = pa if w < F5 else pb
    return SQRT2_F32 * (g * x)


# ---- float64 quantile (libm) -------------------------------------------------------------------

GA64 = tuple(float(c) for c in GA)
GB64 = tuple(float(c) for c in GB)
SQRT2 = math.sqrt(2.0)
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
LN_2PI = math.log(2.0 * math.pi)


@njit(exact=True, inline="always")
def _ndtri_pq_f64(p, q):
    """Standard normal quantile in float64 from p and q = 1 - p, as reference.ndtri_pq_f64."""
    t = _min(p, q)
    big = _max(p, q)
    w = -math.log((4.0 * t) * big)
    x = t - big
    wa = w - 2.5
    wb = math.sqrt(_max(w, 0.0)) - 3.0
    pa = _horner(GA64[1:], wa, GA64[0] + 0.0 * wa)
    pb = _horner(GB64[1:], wb, GB64[0] + 0.0 * wb)
    if w <= 16.0:
        y = SQRT2 * ((pa if w < 5.0 else pb) * x)
    else:  # tail asymptote: y = -sqrt(L - ln L - ln 2 pi), L = -2 ln t
        big_l = -2.0 * math.log(t)
        y = -math.sqrt(_max(big_l - math.log(big_l) - LN_2PI, 0.0))
    log_t = math.log(t)
    for _ in range(3):  # Newton on ln Phi(y) = ln t
        cdf = 0.5 * math.erfc(-y * INV_SQRT2)
        y = y - (math.log(cdf) - log_t) * cdf / (math.exp(-0.5 * y * y) * INV_SQRT2PI)
    return y if p <= q else -y


# ---- runs: a contiguous piece of the output, starting at Philox block j0 -----------------------
# Each takes a view (indices from 0, provably non-negative, so LLVM vectorises the block loop).
# The float32 and float64 runs of a sampler are a specialisation kept apart: a float32 value
# takes one 32-bit word of a block (four values a block), a float64 value two (two a block),
# each in its own exact IEEE sequence; each run's block loop is written out with its element
# function inlined, since a sampler or dtype test inside the loop would keep it scalar.

@njit(exact=True, inline="always")
def _uniform_f32_u(x, lo, span):
    return lo + span * (_f32(np.int32(x >> S8)) * TWO_M24)


@njit(exact=True)
def _uniform_f32_run(out, j0, k0, k1, d0, d1, lo, span):
    n = out.shape[0]
    nb = n >> 2
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        out[4 * jj] = _uniform_f32_u(x0, lo, span)
        out[4 * jj + 1] = _uniform_f32_u(x1, lo, span)
        out[4 * jj + 2] = _uniform_f32_u(x2, lo, span)
        out[4 * jj + 3] = _uniform_f32_u(x3, lo, span)
    if n > 4 * nb:
        x = _block(j0 + _u64(nb), d0, d1, k0, k1)
        for i in range(n - 4 * nb):
            out[4 * nb + i] = _uniform_f32_u(x[i], lo, span)


@njit(exact=True, inline="always")
def _uniform_f64_u(xlo, xhi, low, span):
    m = ((xhi << S32) | xlo) >> S11
    return low + span * (np.float64(np.int64(m)) * TWO_M53)


@njit(exact=True)
def _uniform_f64_run(out, j0, k0, k1, d0, d1, low, span):
    n = out.shape[0]
    nb = n >> 1
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        out[2 * jj] = _uniform_f64_u(x0, x1, low, span)
        out[2 * jj + 1] = _uniform_f64_u(x2, x3, low, span)
    if n > 2 * nb:
        x0, x1, x2, x3 = _block(j0 + _u64(nb), d0, d1, k0, k1)
        out[2 * nb] = _uniform_f64_u(x0, x1, low, span)


@njit(exact=True, inline="always")
def _box_muller_f32(xa, xb):
    """(r cos, r sin) from words (xa, xb): u1 = (m(xa) + 1) 2**-24, angle index m(xb)."""
    u1 = _f32(np.int32((xa >> S8) + ONE)) * TWO_M24
    r = np.sqrt(_f32(-2.0) * _ln_f32(u1))
    s, c = _sincos_2pi_f32(xb >> S8)
    return r * c, r * s


@njit(exact=True)
def _normal_f32_run(out, j0, k0, k1, d0, d1, mean, std):
    n = out.shape[0]
    nb = n >> 2
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        z0, z1 = _box_muller_f32(x0, x1)
        z2, z3 = _box_muller_f32(x2, x3)
        out[4 * jj] = mean + std * z0
        out[4 * jj + 1] = mean + std * z1
        out[4 * jj + 2] = mean + std * z2
        out[4 * jj + 3] = mean + std * z3
    rem = n - 4 * nb
    if rem:
        x0, x1, x2, x3 = _block(j0 + _u64(nb), d0, d1, k0, k1)
        z0, z1 = _box_muller_f32(x0, x1)
        z2, z3 = _box_muller_f32(x2, x3)
        out[4 * nb] = mean + std * z0
        if rem > 1:
            out[4 * nb + 1] = mean + std * z1
        if rem > 2:
            out[4 * nb + 2] = mean + std * z2


@njit(exact=True, inline="always")
def _box_muller_f64(x0, x1, x2, x3):
    m1 = ((x1 << S32) | x0) >> S11
    m2 = ((x3 << S32) | x2) >> S11
    u1 = np.float64(np.int64(m1 + ONE)) * TWO_M53
    u2 = np.float64(np.int64(m2)) * TWO_M53
    r = math.sqrt(-2.0 * math.log(u1))
    theta = (2.0 * math.pi) * u2
    return r * math.cos(theta), r * math.sin(theta)


@njit(exact=True)
def _normal_f64_run(out, j0, k0, k1, d0, d1, mean, std):
    n = out.shape[0]
    nb = n >> 1
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        z0, z1 = _box_muller_f64(x0, x1, x2, x3)
        out[2 * jj] = mean + std * z0
        out[2 * jj + 1] = mean + std * z1
    if n > 2 * nb:
        x0, x1, x2, x3 = _block(j0 + _u64(nb), d0, d1, k0, k1)
        z0, z1 = _box_muller_f64(x0, x1, x2, x3)
        out[2 * nb] = mean + std * z0


@njit(exact=True, inline="always")
def _trunc_f32_one(x, mean, std, a, b, pa, qb, span, lo, hi):
    m = x >> S8
    v = _f32(np.int32((m << ONE) + ONE)) * TWO_M25  # 2m + 1 < 2**25: rounded once
    v1 = _f32(np.int32(((U24 - m) << ONE) - ONE)) * TWO_M25  # 1 - v from its own integer
    p = pa + span * v
    q = qb + span * v1
    z = _min(_max(_ndtri_pq_f32(p, q), a), b)
    return _min(_max(mean + std * z, lo), hi)


@njit(exact=True)
def _trunc_f32_run(out, j0, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi):
    n = out.shape[0]
    nb = n >> 2
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        out[4 * jj] = _trunc_f32_one(x0, mean, std, a, b, pa, qb, span, lo, hi)
        out[4 * jj + 1] = _trunc_f32_one(x1, mean, std, a, b, pa, qb, span, lo, hi)
        out[4 * jj + 2] = _trunc_f32_one(x2, mean, std, a, b, pa, qb, span, lo, hi)
        out[4 * jj + 3] = _trunc_f32_one(x3, mean, std, a, b, pa, qb, span, lo, hi)
    if n > 4 * nb:
        x = _block(j0 + _u64(nb), d0, d1, k0, k1)
        for i in range(n - 4 * nb):
            out[4 * nb + i] = _trunc_f32_one(x[i], mean, std, a, b, pa, qb, span, lo, hi)


@njit(exact=True, inline="always")
def _trunc_f64_one(xlo, xhi, mean, std, a, b, pa, qb, span, lo, hi):
    m = ((xhi << S32) | xlo) >> S11
    v = np.float64(np.int64((m << ONE) + ONE)) * TWO_M54  # 2m + 1 < 2**54: rounded once
    v1 = np.float64(np.int64(((U53 - m) << ONE) - ONE)) * TWO_M54
    p = pa + span * v
    q = qb + span * v1
    z = _min(_max(_ndtri_pq_f64(p, q), a), b)
    return _min(_max(mean + std * z, lo), hi)


@njit(exact=True)
def _trunc_f64_run(out, j0, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi):
    n = out.shape[0]
    nb = n >> 1
    for jj in range(nb):
        x0, x1, x2, x3 = _block(j0 + _u64(jj), d0, d1, k0, k1)
        out[2 * jj] = _trunc_f64_one(x0, x1, mean, std, a, b, pa, qb, span, lo, hi)
        out[2 * jj + 1] = _trunc_f64_one(x2, x3, mean, std, a, b, pa, qb, span, lo, hi)
    if n > 2 * nb:
        x0, x1, x2, x3 = _block(j0 + _u64(nb), d0, d1, k0, k1)
        out[2 * nb] = _trunc_f64_one(x0, x1, mean, std, a, b, pa, qb, span, lo, hi)


# ---- the parallel driver: prange over fixed chunks of CHUNK elements ---------------------------
# One driver, the sampler picked by an op code per chunk (a jitted function passed as an
# argument is not cached by Numba) and its float32 or float64 run by out's dtype when the driver
# compiles; p holds the sampler's parameters, padded to nine.

UNIFORM, NORMAL, TRUNC = range(3)


def _sample(op, out, start, k0, k1, d0, d1, p):  # pragma: no cover - replaced by the overload
    """Sampler ``op`` into ``out``, the chunk of the stream from element ``start``."""
    raise NotImplementedError


@overload(_sample)
def _sample_impl(op, out, start, k0, k1, d0, d1, p):
    if out.dtype == types.float32:  # a 32-bit word a value: element i is in block i // 4
        uniform, normal, trunc, shift = _uniform_f32_run, _normal_f32_run, _trunc_f32_run, 2
    else:  # two words a value: element i is in block i // 2
        uniform, normal, trunc, shift = _uniform_f64_run, _normal_f64_run, _trunc_f64_run, 1

    def impl(op, out, start, k0, k1, d0, d1, p):
        j0 = _u64(start >> shift)
        if op == UNIFORM:
            uniform(out, j0, k0, k1, d0, d1, p[0], p[1])
        elif op == NORMAL:
            normal(out, j0, k0, k1, d0, d1, p[0], p[1])
        else:
            trunc(out, j0, k0, k1, d0, d1, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])

    return impl


@pjit(exact=True)
def _par(op, out, k0, k1, d0, d1, p):
    n = out.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        _sample(op, out[start:min(start + CHUNK, n)], start, k0, k1, d0, d1, p)


# ---- the kernels (same names and arguments as fastinit.reference.rng) --------------------------

def _words(k0, k1, d0, d1):
    return _u64(k0), _u64(k1), _u64(d0), _u64(d1)


def _run(run, op, out, keys, args):
    """The serial kernel ``run`` below PARALLEL_MIN_ELEMENTS, else the parallel driver with its
    chunks handed out one at a time (on a shared machine a thread that gets less CPU time does
    fewer; the chunk size is set here, not inside the kernel, which then could not be cached)."""
    if out.shape[0] < _config.PARALLEL_MIN_ELEMENTS:
        run(out, _u64(0), *keys, *args)
        return
    previous = numba.set_parallel_chunksize(1)
    try:
        _par(op, out, *keys, args + (args[0],) * (9 - len(args)))
    finally:
        numba.set_parallel_chunksize(previous)


def uniform(out, k0, k1, d0, d1, low, high):
    """Fill ``out`` with U[low, high) (see fastinit.rng for the mapping)."""
    keys = _words(k0, k1, d0, d1)
    if out.dtype == np.float32:
        lo = _f32(low)
        args = (lo, _f32(_f32(high) - lo))
        run = _uniform_f32_run
    else:
        args = (float(low), float(high) - float(low))
        run = _uniform_f64_run
    _run(run, UNIFORM, out, keys, args)
    return out


def normal(out, k0, k1, d0, d1, mean, std):
    """Fill ``out`` with N(mean, std**2) by Box-Muller (see fastinit.rng for the mapping)."""
    keys = _words(k0, k1, d0, d1)
    if out.dtype == np.float32:
        args = (_f32(mean), _f32(std))
        run = _normal_f32_run
    else:
        args = (float(mean), float(std))
        run = _normal_f64_run
    _run(run, NORMAL, out, keys, args)
    return out


def truncated_normal(out, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi):
    """Fill ``out`` with N(mean, std**2) truncated to [mean + a std, mean + b std] (inverse CDF)."""
    keys = _words(k0, k1, d0, d1)
    cast = _f32 if out.dtype == np.float32 else float
    args = tuple(cast(v) for v in (mean, std, a, b, pa, qb, span, lo, hi))
    run = _trunc_f32_run if out.dtype == np.float32 else _trunc_f64_run
    _run(run, TRUNC, out, keys, args)
    return out
