"""Numba kernels of gradient clipping (contract of :mod:`fastinit.reference.clip`).

``grads`` is a list of 1-D C-contiguous arrays of one dtype. The kernels get them as a table of
addresses and sizes (int64) and view each with ``numba.carray``: one jitted call for the whole
list, however many arrays it holds (a typed List would cost more per call than the work on
the small arrays of a network).

The list is cut into fixed chunks of CHUNK elements (a chunk never spans two arrays); each
chunk's partial sum is float64 and the partials are combined in list order, so the total is
the same for any thread count. Compiled with ``exact=True``: no fast-math, so NaN and inf
propagate (a NaN gradient must give a NaN norm, and clamping must keep NaN).

float16 has no Numba type: those arrays are viewed as uint16 and decoded through a 65536-entry
table; scaling rounds float32 products back to float16 bits (round to nearest even).
"""
import math

import numpy as np
from numba import carray, prange, types
from numba.extending import overload

from .. import _config
from .._config import njit, pjit, serial
from ._tile import f32_as_u32
from ._reductions import abs_max, abs_sum, address, pointer_like, shifted_sums

#: Elements per partial sum (fixed, never derived from the thread count).
CHUNK = 1 << 14

with np.errstate(invalid="ignore"):  # the NaN patterns decode to NaN, as they should
    _HALF_TO_F32 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(
        np.float16).astype(np.float32)
    _HALF_TO_F64 = _HALF_TO_F32.astype(np.float64)

KIND_ONE, KIND_TWO, KIND_INF, KIND_P = 0, 1, 2, 3


# ---- the chunk table ----------------------------------------------------------------------------

@njit(exact=True)
def _chunks(sizes):
    """(array index, start) of every chunk, in list order."""
    total = 0
    for i in range(sizes.shape[0]):
        total += (sizes[i] + CHUNK - 1) // CHUNK
    which = np.empty(total, np.int64)
    start = np.empty(total, np.int64)
    k = 0
    for i in range(sizes.shape[0]):
        for lo in range(0, sizes[i], CHUNK):
            which[k] = i
            start[k] = lo
            k += 1
    return which, start


@njit(exact=True, inline="always")
def _chunk_view(addrs, sizes, which, start, k, proto):
    i = which[k]
    lo = start[k]
    view = carray(pointer_like(addrs[i], proto), (sizes[i],))
    return view[lo:min(sizes[i], lo + CHUNK)]


# ---- partial norms of one chunk -----------------------------------------------------------------

@njit(exact=True)
def _partial_float(a, kind, p):
    """(partial, NaN count) of a float chunk: sum |a|, sum a**2, max |a| or sum |a|**p."""
    if kind == KIND_ONE:
        return abs_sum(a), 0.0
    if kind == KIND_TWO:
        return shifted_sums(a, 0.0)[1], 0.0
    if kind == KIND_INF:
        return abs_max(a)
    s0 = 0.0
    s1 = 0.0
    m = a.shape[0] - a.shape[0] % 2
    for j in range(0, m, 2):
        s0 += abs(np.float64(a[j])) ** p
        s1 += abs(np.float64(a[j + 1])) ** p
    for j in range(m, a.shape[0]):
        s0 += abs(np.float64(a[j])) ** p
    return s0 + s1, 0.0


@njit(exact=True)
def _partial_half(a, kind, p):
    """The same for a chunk of float16 bits (decoded through the float64 table)."""
    table = _HALF_TO_F64
    s = 0.0
    nans = 0.0
    for j in range(a.shape[0]):
        v = abs(table[a[j]])
        if v != v:
            nans += 1.0
        if kind == KIND_ONE:
            s += v
        elif kind == KIND_TWO:
            s += v * v
        elif kind == KIND_INF:
            s = v if v > s else s
        else:
            s += v ** p
    return s, nans


def _partial(a, kind, p):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


@overload(_partial)
def _partial_impl(a, kind, p):
    if a.dtype == types.uint16:
        return lambda a, kind, p: _partial_half(a, kind, p)
    return lambda a, kind, p: _partial_float(a, kind, p)


@pjit(exact=True)
def _partials_par(out, nans, addrs, sizes, which, start, proto, kind, p):
    for k in prange(which.shape[0]):
        out[k], nans[k] = _partial(_chunk_view(addrs, sizes, which, start, k, proto), kind, p)


_partials = serial(_partials_par)  # the same driver on the calling thread


@njit(exact=True)
def _combine(out, nans, kind, p):
    """The total norm from the chunk partials, combined in list order."""
    if kind == KIND_INF:
        m = 0.0
        bad = 0.0
        for k in range(out.shape[0]):
            m = out[k] if out[k] > m else m
            bad += nans[k]
        return math.nan if bad > 0 else m
    s = 0.0
    for k in range(out.shape[0]):
        s += out[k]
    if kind == KIND_ONE:
        return s
    if kind == KIND_TWO:
        return math.sqrt(s)
    return s ** (1.0 / p)


# ---- float16 rounding ---------------------------------------------------------------------------

@njit(exact=True, inline="always")
def _f32_to_f16_bits(f):
    """IEEE float32 -> float16 bits, round to nearest even (numpy's npy_floatbits_to_halfbits)."""
    x = np.uint32(f32_as_u32(f))
    sign = np.uint16((x >> np.uint32(16)) & np.uint32(0x8000))
    x = x & np.uint32(0x7FFFFFFF)
    if x >= np.uint32(0x7F800000):  # inf or NaN (NaN stays a quiet NaN)
        return sign | np.uint16(0x7C00 if x == np.uint32(0x7F800000) else 0x7E00)
    if x >= np.uint32(0x477FF000):  # rounds to >= 65520: overflow to inf
        return sign | np.uint16(0x7C00)
    if x < np.uint32(0x38800000):  # below 2**-14: subnormal half or zero
        if x <= np.uint32(0x33000000):  # <= 2**-25: rounds to zero (ties to even)
            return sign
        e = np.int64(x >> np.uint32(23))
        m = np.int64((x & np.uint32(0x7FFFFF)) | np.uint32(0x800000))
        shift = 126 - e
        h = m >> shift
        rem = m & ((np.int64(1) << shift) - 1)
        half = np.int64(1) << (shift - 1)
        if rem > half or (rem == half and (h & 1) == 1):
            h += 1
        return sign | np.uint16(h)
    h = np.int64((x - np.uint32(0x38000000)) >> np.uint32(13))
    rem = np.int64(x & np.uint32(0x1FFF))
    if rem > 0x1000 or (rem == 0x1000 and (h & 1) == 1):
        h += 1
    return sign | np.uint16(h)


# ---- scale and clamp of one chunk ---------------------------------------------------------------
# s and c arrive in the data type (float32 for float16 data: products are rounded once).

@njit(exact=True)
def _scale_float(a, s):
    for j in range(a.shape[0]):
        a[j] = a[j] * s


@njit(exact=True)
def _scale_half(a, s):
    table = _HALF_TO_F32
    for j in range(a.shape[0]):
        a[j] = _f32_to_f16_bits(table[a[j]] * s)


@njit(exact=True)
def _clamp_float(a, c):
    for j in range(a.shape[0]):
        v = a[j]
        a[j] = c if v > c else (-c if v < -c else v)  # NaN fails both tests and stays


@njit(exact=True)
def _clamp_half(a, c):
    table = _HALF_TO_F32
    hi = _f32_to_f16_bits(c)
    lo = _f32_to_f16_bits(-c)
    for j in range(a.shape[0]):
        v = table[a[j]]
        if v > c:
            a[j] = hi
        elif v < -c:
            a[j] = lo


def _scale(a, s):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


def _clamp(a, c):  # pragma: no cover
    raise NotImplementedError


@overload(_scale)
def _scale_impl(a, s):
    if a.dtype == types.uint16:
        return lambda a, s: _scale_half(a, s)
    return lambda a, s: _scale_float(a, s)


@overload(_clamp)
def _clamp_impl(a, c):
    if a.dtype == types.uint16:
        return lambda a, c: _clamp_half(a, c)
    return lambda a, c: _clamp_float(a, c)


@pjit(exact=True)
def _scale_par(addrs, sizes, which, start, proto, s):
    for k in prange(which.shape[0]):
        _scale(_chunk_view(addrs, sizes, which, start, k, proto), s)


_scale_ser = serial(_scale_par)  # the same driver on the calling thread


@pjit(exact=True)
def _clamp_par(addrs, sizes, which, start, proto, c):
    for k in prange(which.shape[0]):
        _clamp(_chunk_view(addrs, sizes, which, start, k, proto), c)


_clamp_ser = serial(_clamp_par)  # the same driver on the calling thread


# ---- the kernels (contract of fastinit.reference.clip) ------------------------------------------

def _table(grads):
    """(addresses, sizes, chunk index arrays, prototype array, parallel?) of a gradient list."""
    # (Numba takes no float16 array: their addresses come from ctypes)
    addrs = np.array([g.ctypes.data if g.dtype == np.float16 else address(g) for g in grads],
                     np.int64)
    sizes = np.array([g.size for g in grads], np.int64)
    which, start = _chunks(sizes)
    proto = grads[0]
    if proto.dtype == np.float16:
        proto = proto.view(np.uint16)
    par = int(sizes.sum()) >= _config.PARALLEL_MIN_ELEMENTS
    return addrs, sizes, which, start, proto, par


def _value(grads, v):
    dt = grads[0].dtype
    return np.float32(v) if dt == np.float16 else dt.type(v)


def grad_norm(grads, norm_type):
    addrs, sizes, which, start, proto, par = _table(grads)
    if math.isinf(norm_type):
        kind = KIND_INF
    else:
        kind = {1.0: KIND_ONE, 2.0: KIND_TWO}.get(norm_type, KIND_P)
    out = np.empty(which.shape[0])
    nans = np.empty(which.shape[0])
    run = _partials_par if par else _partials
    run(out, nans, addrs, sizes, which, start, proto, kind, float(norm_type))
    return _combine(out, nans, kind, float(norm_type))


def scale_(grads, scale):
    addrs, sizes, which, start, proto, par = _table(grads)
    run = _scale_par if par else _scale_ser
    run(addrs, sizes, which, start, proto, _value(grads, scale))


def clamp_(grads, clip_value):
    addrs, sizes, which, start, proto, par = _table(grads)
    run = _clamp_par if par else _clamp_ser
    run(addrs, sizes, which, start, proto, _value(grads, clip_value))
