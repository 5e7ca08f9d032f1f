"""The random stream: counter-based Philox4x32-10, the same numbers on every backend.

Every sampler in fastinit draws from a :class:`Stream`. There is no global hidden state: a
stream is created from a seed and advances only when you draw from it.

The mapping (a promise to users; tests pin it)
----------------------------------------------
Generator
    Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
    SC 2011), exactly as Random123 defines it: multipliers 0xD2511F53, 0xCD9E8D57, key
    increments 0x9E3779B9, 0xBB67AE85, ten rounds. ``philox(counter=(0,0,0,0), key=(0,0))`` is
    ``6627e8d5 e169c58d bc57ac4c 9b00dbd8``.
Key
    ``Stream(seed)``, 0 <= seed < 2**64: key = (seed mod 2**32, seed div 2**32).
    A child stream ``s.child(i)`` has the key formed by words 0 and 1 of
    ``philox(counter=(i mod 2**32, i div 2**32, 0xFFFFFFFF, 0xFFFFFFFF), key=s.key)``.
Draws and counters
    Each draw (one call of uniform/normal/trunc_normal, any size) has a draw index d: the
    stream's position, which starts at 0 and goes up by one per draw. Block j of draw d is
    ``philox(counter=(j mod 2**32, j div 2**32, d mod 2**32, d div 2**32), key)`` -> words
    x0..x3. Element i of the draw is a pure function of (key, d, i): the same for every
    backend, thread count and chunking.
float32 elements (with ``m(x) = x >> 8``, a 24-bit integer)
    * uniform: element i uses word i mod 4 of block i div 4; u = m * 2**-24 in [0, 1);
      value = low + (high - low) * u, each operation rounded in float32, no fused multiply-add.
    * normal: elements 2k and 2k+1 use words 2(k mod 2) and 2(k mod 2)+1 of block k div 2 (so a
      block gives four normals): u1 = (m(x_even) + 1) * 2**-24 in (0, 1], angle index
      b = m(x_odd); r = sqrt(-2 ln u1); element 2k = r cos(2 pi b / 2**24), element 2k+1 =
      r sin(2 pi b / 2**24); value = mean + std * z. ``ln``, ``sin`` and ``cos`` are fastinit's
      own float32 functions (Cephes polynomials, ``fastinit.reference.rng.ln_f32`` and
      ``sincos_2pi_f32``, about 1 ulp), evaluated op for op the same way on every backend; so
      normal float32 output is also bit-identical across backends. |z| <= 5.77 (u1 >= 2**-24).
    * truncated normal on [a, b] (in units of std): element i uses word i mod 4 of block
      i div 4; v = (2m + 1) * 2**-25 and 1 - v = (2**25 - 2m - 1) * 2**-25 (each rounded once);
      p = Phi(a) + (Phi(b) - Phi(a)) v, q = (1 - Phi(b)) + (Phi(b) - Phi(a)) (1 - v), the three
      constants computed in float64 and rounded; z = sqrt 2 * erfinv(p - q) with erfinv by
      Giles (2010) fed w = -ln(4 p q) (accurate in both tails); z clamped to [a, b];
      value = mean + std * z clamped to the absolute bounds. Exact inverse CDF, no rejection.
      Where an element's p or q could fall below 1e-8 (bounds beyond about 5.6 std),
      Giles' single-precision polynomial loses accuracy, so the float64 path below runs and
      its result is rounded to float32 (slower, same promise).
float64 elements (with ``m53 = ((x_hi << 32) | x_lo) >> 11``, a 53-bit integer)
    * uniform: element i uses words 2(i mod 2) (lo) and 2(i mod 2)+1 (hi) of block i div 2;
      u = m53 * 2**-53; value = low + (high - low) * u.
    * normal: elements 2k, 2k+1 use block k: u1 = (m53(x0, x1) + 1) * 2**-53,
      u2 = m53(x2, x3) * 2**-53; r = sqrt(-2 log u1); cos / sin of 2 pi u2 from the C library.
    * truncated normal: element i uses words as float64 uniform; v = (2 m53 + 1) * 2**-54;
      the quantile is solved to float64 precision (Giles start or tail asymptote, then Newton
      steps on ln Phi using the C library's erfc).

Guarantees
    Uniform output is bit-identical across backends and thread counts (both dtypes). Normal
    and truncated normal are bit-identical across thread counts on each backend; float32
    normal and truncated normal are bit-identical across backends too. float64 normal and
    truncated normal call the platform's log, sin, cos, erfc and exp: across backends they
    agree within 4 ulp of max(|z|, 1) * std (NumPy's own log/exp can differ from the C
    library's by an ulp, and the Newton step near z = 0 is accurate to an ulp of 1), and the
    Numba and C kernels give the reference's bits when it uses the C library's functions.
"""
import math
import numbers

import numpy as np

from . import _validate, backends

_MASK = 0xFFFFFFFF
_SPAWN_WORD = 0xFFFFFFFF  # counter words 2 and 3 reserved for deriving child keys
_LAST_DRAW = 2 ** 64 - 1  # no draw has this index (it is (_SPAWN_WORD, _SPAWN_WORD))
#: Largest |z| each sampler can produce, a little rounded up: float32 u1 >= 2**-24 gives
#: sqrt(-2 ln 2**-24) = 5.77, float64 u1 >= 2**-53 gives 8.57 (truncated normal stays below).
_Z_MAX = {np.dtype(np.float32): 5.78, np.dtype(np.float64): 8.58}
#: Below this p or q, Giles' float32 erfinv is no longer accurate (w = -ln 4pq > 17).
_F32_MIN_TAIL = 1e-8
_F32_MIN_SPAN = 2.0 ** -96  # keeps every p, q a normal float32 number
_F64_MIN_SPAN = 1e-290


class Stream:
    """A reproducible random stream: ``Stream(seed)``; draws advance it, nothing else does.

    >>> s = Stream(0)
    >>> w = s.normal((256, 128), std=0.05)         # draw 0
    >>> b = s.uniform((256,), -0.1, 0.1)           # draw 1
    >>> layers = s.spawn(3)                        # three independent child streams
    """

    __slots__ = ("seed", "key", "position", "_spawned")

    def __init__(self, seed=0, *, key=None, position=0):
        if key is None:
            seed = _validate.seed(seed)
            key = (seed & _MASK, seed >> 32)
        self.seed = seed
        self.key = (int(key[0]), int(key[1]))
        if not isinstance(position, numbers.Integral) or not 0 <= position < 2 ** 64 - 1:
            raise ValueError(f"position must be an integer in [0, 2**64 - 1), got {position!r}")
        self.position = int(position)
        self._spawned = 0

    def __repr__(self):
        return (f"Stream(seed={self.seed!r}, key=(0x{self.key[0]:08x}, 0x{self.key[1]:08x}), "
                f"position={self.position})")

    # -- children ---------------------------------------------------------------------------
    def child(self, i):
        """Independent stream number ``i`` (0 <= i < 2**64) of this one; does not advance it."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < 2 ** 64:
            raise ValueError(f"i must be an integer in [0, 2**64), got {i!r}")
        from .reference.rng import philox4x32_10

        x = philox4x32_10(int(i) & _MASK, int(i) >> 32, _SPAWN_WORD, _SPAWN_WORD, *self.key)
        return Stream(key=(int(x[0]), int(x[1])), seed=(self.seed, int(i)))

    def spawn(self, n):
        """``n`` new independent child streams (children k, k+1, ... after earlier spawns)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        kids = [self.child(self._spawned + k) for k in range(n)]
        self._spawned += n
        return kids

    # -- draws ------------------------------------------------------------------------------
    def _next(self):
        """The key and counter words of the next draw; advances the stream (every draw, empty
        ones too). Draw index 2**64 - 1 is reserved for child keys, so the stream ends there."""
        d = self.position
        if d >= _LAST_DRAW:
            raise ValueError(f"this stream is exhausted: draw index {d} would reach the counter "
                             "reserved for child keys (2**64 - 1); use a child stream "
                             "(s.child(i)) or another seed")
        self.position = d + 1
        return self.key[0], self.key[1], d & _MASK, d >> 32

    def uniform(self, shape=(), low=0.0, high=1.0, *, dtype=np.float32, out=None, backend=None):
        """U[low, high) samples (see the module docstring for the exact mapping)."""
        low = _validate.finite_number(low, "low")
        high = _validate.finite_number(high, "high")
        if not low <= high:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
        out, flat = _validate.sample_out(shape, dtype, out)
        _uniform_fits(flat.dtype, low, high)
        fn, _ = backends.kernel("rng", "uniform", backend)
        words = self._next()
        if flat.size:
            fn(flat, *words, low, high)
        return _validate.finish_out(out, flat)

    def normal(self, shape=(), mean=0.0, std=1.0, *, dtype=np.float32, out=None, backend=None):
        """N(mean, std**2) samples by Box-Muller (see the module docstring)."""
        mean = _validate.finite_number(mean, "mean")
        std = _validate.non_negative(std, "std")
        out, flat = _validate.sample_out(shape, dtype, out)
        _normal_fits(flat.dtype, mean, std, _Z_MAX[flat.dtype])
        fn, _ = backends.kernel("rng", "normal", backend)
        words = self._next()
        if flat.size:
            fn(flat, *words, mean, std)
        return _validate.finish_out(out, flat)

    def trunc_normal(self, shape=(), mean=0.0, std=1.0, a_std=-2.0, b_std=2.0, *,
                     dtype=np.float32, out=None, backend=None):
        """N(mean, std**2) restricted to [mean + a_std*std, mean + b_std*std]: the bounds in
        std units, named as :func:`fastinit.init.trunc_normal` names them.

        Exact inverse-CDF sampling (no rejection loop); see the module docstring.
        """
        mean = _validate.finite_number(mean, "mean")
        std = _validate.non_negative(std, "std")
        a = _validate.number(a_std, "a_std")
        b = _validate.number(b_std, "b_std")
        if math.isnan(a) or math.isnan(b) or not a < b:
            raise ValueError(f"the bounds must satisfy a_std < b_std, got a_std={a!r}, "
                             f"b_std={b!r}")
        out, flat = _validate.sample_out(shape, dtype, out)
        _normal_fits(flat.dtype, mean, std, min(max(abs(a), abs(b)), _Z_MAX[flat.dtype]))
        pa, qb = _phi(a), _phi(-b)
        if pa + qb < 0.5:
            span = 1.0 - pa - qb
        elif a >= 0.0:  # both bounds in the right tail: difference of upper-tail masses
            span = _phi(-a) - qb
        else:
            span = _phi(b) - pa
        fast32 = flat.dtype == np.float32
        if fast32 and span < _F32_MIN_SPAN:
            raise ValueError(f"the interval [a, b] = [{a}, {b}] (in std) has probability {span:.3g}"
                             " under the normal: too small for float32; use dtype=float64")
        if span < _F64_MIN_SPAN:
            raise ValueError(f"the interval [a, b] = [{a}, {b}] (in std) has probability {span:.3g}"
                             " under the normal: too far in the tail to sample")
        lo, hi = (mean + a * std, mean + b * std) if std > 0 else (mean, mean)
        if fast32 and min(pa, qb) + span * 2.0 ** -25 < _F32_MIN_TAIL:
            target = np.empty(flat.size, np.float64)  # deep tails: the float64 path, rounded
        else:
            target = flat
        fn, _ = backends.kernel("rng", "truncated_normal", backend)
        words = self._next()
        if flat.size:
            fn(target, *words, mean, std, a, b, pa, qb, span,
               max(lo, -np.inf), min(hi, np.inf))
            if target is not flat:
                flat[:] = np.clip(target, np.float32(lo) if np.isfinite(lo) else -np.inf,
                                  np.float32(hi) if np.isfinite(hi) else np.inf)
        return _validate.finish_out(out, flat)


def _uniform_fits(dtype, low, high):
    """ValueError unless low, high and high - low (the kernels' span) are finite in dtype."""
    big = float(np.finfo(dtype).max)
    for name, v in (("low", low), ("high", high)):
        if abs(v) > big:
            raise ValueError(f"{name} = {v!r} is beyond the largest {dtype} ({big:.6g})")
    with np.errstate(over="ignore"):
        span = dtype.type(high) - dtype.type(low)
    if not np.isfinite(span):
        raise ValueError(f"high - low = {high - low:.6g} overflows {dtype} (largest "
                         f"{big:.6g}); samples are low + (high - low) * u: narrow [low, high]")


def _normal_fits(dtype, mean, std, z_max):
    """ValueError unless mean + std * z stays finite in dtype for every |z| <= z_max."""
    big = float(np.finfo(dtype).max)
    if abs(mean) > big:
        raise ValueError(f"mean = {mean!r} is beyond the largest {dtype} ({big:.6g})")
    if abs(mean) + std * z_max * (1 + 2.0 ** -20) > big:
        raise ValueError(f"std = {std!r} (with mean = {mean!r}) would give samples beyond the "
                         f"largest {dtype} ({big:.6g}): |mean| + {z_max} * std must stay "
                         "below it")


def _phi(x):
    """Standard normal CDF in float64, accurate in the left tail (erfc, no cancellation)."""
    if x == -math.inf:
        return 0.0
    if x == math.inf:
        return 1.0
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def as_stream(seed=None, rng=None, argname="seed"):
    """The stream a sampler draws from: ``rng`` when given, else a fresh ``Stream(seed)``.

    Exactly one of the two must be given: fastinit keeps no hidden global generator.
    """
    if rng is not None:
        if seed is not None:
            raise ValueError("pass either seed= or rng=, not both")
        if not isinstance(rng, Stream):
            raise TypeError(f"rng must be a fastinit.rng.Stream, got {type(rng).__name__}")
        return rng
    if seed is None:
        raise ValueError(f"{argname} is required (an int in [0, 2**64)) or pass rng=Stream(...): "
                         "fastinit has no hidden global random state")
    return Stream(seed)
