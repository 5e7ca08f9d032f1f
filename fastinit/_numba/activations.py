"""Numba kernels of the activations (contract of :mod:`fastinit.reference.activations`).

Arrays are flat and C-contiguous; forward ``f(y, x, ...)``, backward ``f_backward(dx, dy, x,
...)``. Work is split into fixed chunks of CHUNK elements, in parallel from
``_config.PARALLEL_MIN_ELEMENTS`` elements.

float32 uses fastinit's own branch-free elementary functions, so the loops vectorise (there is
no SVML here: a libm call per element is several times slower than memory):
  exp     Cephes expf: n = round(x log2 e), r = x - n ln 2 (two-part ln 2), degree-5 polynomial,
          times 2**n built in the exponent bits; 0 below -87.3 (no subnormal results), and
          the input clamped at 88 (the callers only need exp to saturate there).
  expm1   Taylor series to x**8 on |x| < 1/2 (error < 1e-8 relative), exp(x) - 1 elsewhere.
  tanh    Cephes tanhf: odd polynomial on |x| < 0.625, (1 - e) / (1 + e) with e = exp(-2|x|)
          beyond, exactly +-1 from |x| = 9.1; its derivative as 4 e / (1 + e)**2 there (no
          1 - t**2 cancellation).
  gelu    the tanh form as x sigmoid(2u) ((1 + tanh u) / 2 = sigmoid(2u): one exp, and no
          1 + tanh cancellation for negative x), its cubic on x clamped to [-10, 10] (beyond,
          gelu is x or 0 in float32, returned exactly), so x**3 never overflows.
  Phi     the normal CDF of exact gelu, through erfc(|x| / sqrt 2) = t P(t) exp(-x**2 / 2)
          with a fitted degree-8 P (see ncdf_f32): within 2.2e-6 relative on [-10, 10], also
          in the left tail, where (1 + erf(x / sqrt 2)) / 2 cancels.
  sigmoid 1 / (1 + e) or e / (1 + e) with e = exp(-|x|) (never overflows); its derivative as
          e / (1 + e)**2 (no 1 - s cancellation).
float64 calls libm through LLVM (math.exp, math.tanh, math.erfc, math.expm1): accurate, scalar.
"""
import math

import numpy as np
from numba import prange, types
from numba.extending import overload

from .. import _config
from .._config import njit, pjit
from ._tile import u32_as_f32

#: Elements per parallel chunk.
CHUNK = 1 << 14  # at least two chunks from PARALLEL_MIN_ELEMENTS on, so both threads work

_f = np.float32
ZERO, HALF, ONE, TWO, FOUR = _f(0.0), _f(0.5), _f(1.0), _f(2.0), _f(4.0)
EXP_HI, EXP_LO = _f(88.0), _f(-87.33654)
LOG2E = _f(1.44269504088896341)
LN2_HI, LN2_LO = _f(0.693359375), _f(-2.12194440e-4)
EXP_P0, EXP_P1, EXP_P2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
EXP_P3, EXP_P4, EXP_P5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
TANH_P0, TANH_P1, TANH_P2 = _f(-5.70498872745e-3), _f(2.06390887954e-2), _f(-5.37397155531e-2)
TANH_P3, TANH_P4 = _f(1.33314422036e-1), _f(-3.33332819422e-1)
TANH_SMALL = _f(0.625)
TANH_ONE = _f(9.1)
GELU_CLAMP = 10.0  # gelu(x) is x or 0, gelu'(x) 1 or 0, in float32 beyond |x| = 10
INV_FACT = tuple(_f(1.0 / math.factorial(k)) for k in range(2, 9))  # 1/2!, ..., 1/8!
SQRT1_2_64 = math.sqrt(0.5)
NCDF_T = _f(0.5 * SQRT1_2_64)  # t = 1 / (1 + NCDF_T |x|) in ncdf_f32
NCDF_P = tuple(_f(v) for v in (-5.889078602e-02, 2.837019861e-01, -4.853836894e-01,
                               2.759780288e-01, -2.517754398e-02, 2.020697445e-01,
                               2.432610393e-01, 2.823534906e-01, 2.820876837e-01))
SQRT_2_OVER_PI_64 = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI_64 = 1.0 / math.sqrt(2.0 * math.pi)
U127 = np.uint32(127)
U23 = np.uint32(23)


# ---- float32 elementary functions (branch-free: selects, so loops vectorise) ---------------------

@njit(specials=True, inline="always")
def exp_f32(x):
    under = x < EXP_LO
    # comparisons, not min/max: Numba's min/max drop a NaN operand, these keep it
    x = EXP_LO if x < EXP_LO else (EXP_HI if x > EXP_HI else x)
    n = np.floor(x * LOG2E + HALF)
    r = x - n * LN2_HI
    r = r - n * LN2_LO
    p = ((((EXP_P0 * r + EXP_P1) * r + EXP_P2) * r + EXP_P3) * r + EXP_P4) * r + EXP_P5
    p = p * r * r + r + ONE
    scale = u32_as_f32(np.uint32((np.int32(n) + np.int32(127)) << U23))
    return ZERO if under else p * scale


@njit(specials=True, inline="always")
def expm1_f32(x):
    series = ((((((INV_FACT[6] * x + INV_FACT[5]) * x + INV_FACT[4]) * x + INV_FACT[3]) * x
                + INV_FACT[2]) * x + INV_FACT[1]) * x + INV_FACT[0]) * x * x + x
    big = exp_f32(x) - ONE
    return series if abs(x) < HALF else big


@njit(specials=True, inline="always")
def tanh_f32(x):
    ax = abs(x)
    z = x * x
    small = ((((TANH_P0 * z + TANH_P1) * z + TANH_P2) * z + TANH_P3) * z + TANH_P4) * z * x + x
    e = exp_f32(-TWO * ax)                     # in (0, 0.29] where it is used
    big = (ONE - e) / (ONE + e)
    big = ONE if ax >= TANH_ONE else big      # tanh is 1 in float32 from 9.1 on: exactly
    big = big if x >= ZERO else -big
    return small if ax < TANH_SMALL else big


@njit(specials=True, inline="always")
def tanh_grad_f32(x):
    """1 - tanh(x)**2, as 4 e / (1 + e)**2 with e = exp(-2|x|) where tanh is near +-1."""
    z = x * x
    t = ((((TANH_P0 * z + TANH_P1) * z + TANH_P2) * z + TANH_P3) * z + TANH_P4) * z * x + x
    e = exp_f32(-TWO * abs(x))
    r = ONE / (ONE + e)
    return ONE - t * t if abs(x) < TANH_SMALL else FOUR * e * r * r


@njit(specials=True, inline="always")
def sigmoid_f32(x):
    e = exp_f32(-abs(x))
    r = ONE / (ONE + e)
    return r if x >= ZERO else e * r


@njit(specials=True, inline="always")
def sigmoid_grad_f32(x):
    """sigmoid'(x) = e / (1 + e)**2, e = exp(-|x|): no 1 - s cancellation for large |x|."""
    e = exp_f32(-abs(x))
    r = ONE / (ONE + e)
    return e * r * r


@njit(specials=True, inline="always")
def ncdf_f32(x):
    """Phi(x) as csrc/activations.c computes it: q = Phi(-|x|) = 0.5 erfc(|x| / sqrt 2) as
    0.5 t P(t) exp(-x**2 / 2), t = 1 / (1 + |x| / (2 sqrt 2)), P the fitted degree-8
    polynomial; Phi = q for x <= 0, 1 - q above (never 1 + erf, which cancels for negative
    x). Within 2.2e-6 relative on [-10, 10]; one exp, one division, no branch: it vectorises.
    NaN gives NaN."""
    t = ONE / (ONE + NCDF_T * abs(x))
    p = NCDF_P[0]
    p = p * t + NCDF_P[1]
    p = p * t + NCDF_P[2]
    p = p * t + NCDF_P[3]
    p = p * t + NCDF_P[4]
    p = p * t + NCDF_P[5]
    p = p * t + NCDF_P[6]
    p = p * t + NCDF_P[7]
    p = p * t + NCDF_P[8]
    q = HALF * t * p * exp_f32(-HALF * x * x)
    return ONE - q if x > ZERO else q


@njit(specials=True, inline="always")
def _ncdf_f64(x):
    return 0.5 * math.erfc(x * -SQRT1_2_64)  # erfc: no cancellation in the left tail


# ---- per-element functions chosen by dtype at typing time (only one is compiled) ----------------

def _choose(f32_impl, f64_impl, inline="never"):
    """A function of one float whose float32 and float64 versions differ (an overload).
    ``inline="always"`` inlines it in Numba's IR: for a body too large for LLVM to inline the
    overload's call, a call left in the loop would stop it vectorising."""
    def stub(x):  # pragma: no cover - replaced by the overload inside jitted code
        raise NotImplementedError

    @overload(stub, inline=inline)
    def _impl(x):
        if x == types.float32:
            return lambda x: f32_impl(x)
        if x == types.float64:
            return lambda x: f64_impl(x)
        return None

    return stub


@njit(specials=True, inline="always")
def _sigmoid_f64(x):
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


@njit(specials=True, inline="always")
def _sigmoid_grad_f64(x):
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return e * r * r


@njit(specials=True, inline="always")
def _tanh_grad_f64(x):
    t = math.tanh(x)
    e = math.exp(-2.0 * abs(x))
    r = 1.0 / (1.0 + e)
    return 1.0 - t * t if abs(x) < 0.625 else 4.0 * e * r * r


@njit(specials=True, inline="always")
def _exp_f64(x):
    return math.exp(x)


@njit(specials=True, inline="always")
def _expm1_f64(x):
    return math.expm1(x)


@njit(specials=True, inline="always")
def _tanh_f64(x):
    return math.tanh(x)


def like(p, v):  # pragma: no cover - replaced by the overload inside jitted code
    """v converted to the float type of p (float32 constants stay float32)."""
    raise NotImplementedError


@overload(like)
def _like_impl(p, v):
    if p == types.float32:
        return lambda p, v: np.float32(v)
    if p == types.float64:
        return lambda p, v: np.float64(v)
    return None


exp_ = _choose(exp_f32, _exp_f64)
expm1_ = _choose(expm1_f32, _expm1_f64)
tanh_ = _choose(tanh_f32, _tanh_f64)
tanh_grad_ = _choose(tanh_grad_f32, _tanh_grad_f64)
sigmoid_ = _choose(sigmoid_f32, _sigmoid_f64)
sigmoid_grad_ = _choose(sigmoid_grad_f32, _sigmoid_grad_f64)
ncdf_ = _choose(ncdf_f32, _ncdf_f64, inline="always")


# ---- elementwise bodies over whole (chunk) views; p is a scalar of the data dtype ---------------
# One body per activation: the forward pass out = f(x) when dy is None, else the backward pass
# out = dy * f'(x). The test is settled when the body compiles (Numba prunes the backward branch
# for a None dy; for an array dy it is a constant False that LLVM folds): each pass compiles to
# its own loop.

@njit(specials=True)
def _relu(out, dy, x, p):
    zero = like(p, 0.0)
    for i in range(x.shape[0]):
        v = x[i]
        if dy is None:
            out[i] = zero if v < zero else v
        else:
            out[i] = zero if v <= zero else dy[i]


@njit(specials=True)
def _leaky_relu(out, dy, x, p):
    zero = like(p, 0.0)
    for i in range(x.shape[0]):
        g = x[i] if dy is None else dy[i]
        out[i] = g if x[i] > zero else g * p


@njit(specials=True)
def _elu(out, dy, x, p):
    zero = like(p, 0.0)
    for i in range(x.shape[0]):
        v = x[i]
        u = zero if v > zero else v  # NaN stays NaN
        if dy is None:
            out[i] = v if v > zero else p * expm1_(u)
        else:
            out[i] = dy[i] if v > zero else dy[i] * p * exp_(u)


# tanh and sigmoid: p is 1 for tanh, 0 for sigmoid (one body for the two activations without a
# parameter, as gelu's body serves its two forms).

@njit(specials=True)
def _tanh_sigmoid(out, dy, x, p):
    if p != like(p, 0.0):
        for i in range(x.shape[0]):
            out[i] = tanh_(x[i]) if dy is None else dy[i] * tanh_grad_(x[i])
    else:
        for i in range(x.shape[0]):
            out[i] = sigmoid_(x[i]) if dy is None else dy[i] * sigmoid_grad_(x[i])


# gelu: p is 1 for the tanh form, 0 for the exact (Phi) form; constants in the data dtype.

@njit(specials=True)
def _gelu(out, dy, x, p):
    zero = like(p, 0.0)
    one = like(p, 1.0)
    half = like(p, 0.5)
    c = like(p, SQRT_2_OVER_PI_64)
    k = like(p, 0.044715)
    k3 = like(p, 3.0 * 0.044715)
    inv = like(p, INV_SQRT_2PI_64)
    lim = like(p, GELU_CLAMP)
    c2 = c + c
    if p != zero:  # x sigmoid(2u) (see the module docstring); d/dx: sigmoid(2u) + x sigmoid'(2u) 2u'
        for i in range(x.shape[0]):
            v = x[i]
            w = -lim if v < -lim else (lim if v > lim else v)  # NaN stays NaN
            t = c2 * (w + k * w * w * w)
            if dy is None:
                out[i] = (v if v > zero else zero) if abs(v) > lim else v * sigmoid_(t)
            else:
                d = sigmoid_(t) + w * sigmoid_grad_(t) * c2 * (one + k3 * w * w)
                out[i] = dy[i] * ((one if v > zero else zero) if abs(v) > lim else d)
    else:
        for i in range(x.shape[0]):
            v = x[i]
            cdf = ncdf_(v)
            if dy is None:
                out[i] = zero if v == -np.inf else v * cdf  # the limit at -inf
            else:
                d = cdf if abs(v) == np.inf else cdf + v * inv * exp_(-half * v * v)  # the limits
                out[i] = dy[i] * d


@njit(specials=True)
def _identity(out, dy, x, p):
    for i in range(x.shape[0]):
        out[i] = x[i] if dy is None else dy[i]


# ---- the chunked driver: fixed chunks, in parallel from PARALLEL_MIN_ELEMENTS ------------------
# One driver for every activation and both passes, the body picked by an op code at each chunk:
# a jitted function passed as an argument, or captured by a closure, is not cached by Numba.

RELU, LEAKY_RELU, ELU, TANH_SIGMOID, GELU, IDENTITY = range(6)
_BODIES = (_relu, _leaky_relu, _elu, _tanh_sigmoid, _gelu, _identity)


def _chunk(a, lo, hi):  # pragma: no cover - replaced by the overload inside jitted code
    """a[lo:hi], or None for a None a (the forward pass's dy)."""
    raise NotImplementedError


@overload(_chunk)
def _chunk_impl(a, lo, hi):
    if isinstance(a, types.NoneType):
        return lambda a, lo, hi: None
    return lambda a, lo, hi: a[lo:hi]


@njit(specials=True, inline="always")
def _op(op, out, dy, x, p):
    if op == RELU:
        _relu(out, dy, x, p)
    elif op == LEAKY_RELU:
        _leaky_relu(out, dy, x, p)
    elif op == ELU:
        _elu(out, dy, x, p)
    elif op == TANH_SIGMOID:
        _tanh_sigmoid(out, dy, x, p)
    elif op == GELU:
        _gelu(out, dy, x, p)
    else:
        _identity(out, dy, x, p)


@pjit(specials=True)
def _par(op, out, dy, x, p):
    n = x.shape[0]
    for b in prange((n + CHUNK - 1) // CHUNK):
        lo = b * CHUNK
        hi = min(n, lo + CHUNK)
        _op(op, out[lo:hi], _chunk(dy, lo, hi), x[lo:hi], p)


def _run(op, out, dy, x, p):
    """out = f(x) (dy None) or dy * f'(x), with the parameter p in the data dtype."""
    p = x.dtype.type(p)
    if x.size >= _config.PARALLEL_MIN_ELEMENTS:
        _par(op, out, dy, x, p)
    else:
        _BODIES[op](out, dy, x, p)


# ---- the kernels (contract of fastinit.reference.activations) -----------------------------------

def relu(y, x):
    _run(RELU, y, None, x, 0.0)


def relu_backward(dx, dy, x):
    _run(RELU, dx, dy, x, 0.0)


def leaky_relu(y, x, negative_slope):
    _run(LEAKY_RELU, y, None, x, negative_slope)


def leaky_relu_backward(dx, dy, x, negative_slope):
    _run(LEAKY_RELU, dx, dy, x, negative_slope)


def elu(y, x, alpha):
    _run(ELU, y, None, x, alpha)


def elu_backward(dx, dy, x, alpha):
    _run(ELU, dx, dy, x, alpha)


def tanh(y, x):
    _run(TANH_SIGMOID, y, None, x, 1.0)


def tanh_backward(dx, dy, x):
    _run(TANH_SIGMOID, dx, dy, x, 1.0)


def sigmoid(y, x):
    _run(TANH_SIGMOID, y, None, x, 0.0)


def sigmoid_backward(dx, dy, x):
    _run(TANH_SIGMOID, dx, dy, x, 0.0)


def gelu(y, x, approximate):
    _run(GELU, y, None, x, 1.0 if approximate else 0.0)


def gelu_backward(dx, dy, x, approximate):
    _run(GELU, dx, dy, x, 1.0 if approximate else 0.0)


def identity(y, x):
    _run(IDENTITY, y, None, x, 0.0)


def identity_backward(dx, dy, x):
    _run(IDENTITY, dx, dy, x, 0.0)
