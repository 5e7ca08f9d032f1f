"""C kernels of the random stream (csrc/rng.c): thin wrappers, same names as the reference.

``out`` is a 1-D C-contiguous float32/float64 array filled in place; ``k0, k1, d0, d1`` are the
key and draw words (< 2**32); the rest are Python floats, which cffi rounds to float for the
float32 kernels exactly as ``np.float32(x)`` does. See :mod:`fastinit.rng` for the mapping.
"""
import numpy as np

from .. import _c


def uniform(out, k0, k1, d0, d1, low, high):
    """Fill ``out`` with U[low, high)."""
    fn = _c.lib.fi_rng_uniform_f32 if out.dtype == np.float32 else _c.lib.fi_rng_uniform_f64
    fn(_c.ptr(out), out.size, k0, k1, d0, d1, low, high)
    return out


def normal(out, k0, k1, d0, d1, mean, std):
    """Fill ``out`` with N(mean, std**2) by Box-Muller."""
    fn = _c.lib.fi_rng_normal_f32 if out.dtype == np.float32 else _c.lib.fi_rng_normal_f64
    fn(_c.ptr(out), out.size, k0, k1, d0, d1, mean, std)
    return out


def truncated_normal(out, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi):
    """Fill ``out`` with N(mean, std**2) truncated to [mean + a std, mean + b std] (inverse CDF)."""
    if out.dtype == np.float32:
        fn = _c.lib.fi_rng_truncated_normal_f32
    else:
        fn = _c.lib.fi_rng_truncated_normal_f64
    fn(_c.ptr(out), out.size, k0, k1, d0, d1, mean, std, a, b, pa, qb, span, lo, hi)
    return out
