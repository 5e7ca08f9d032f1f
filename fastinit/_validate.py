"""Argument checks shared by every op: the one place fastinit words its errors.

Every check names the argument and says how to fix it. Wrappers call these; kernels never
validate (shared DESIGN.md).
"""
import math
import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def seed(value, argname="seed"):
    """An int in [0, 2**64)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argname} must be an int in [0, 2**64), got {type(value).__name__} "
                        f"{value!r}")
    value = int(value)
    if not 0 <= value < 2 ** 64:
        raise ValueError(f"{argname} must be an int in [0, 2**64), got {value}")
    return value


def number(value, argname):
    """A real number (int or float, inf allowed); returned as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argname} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def finite_number(value, argname):
    value = number(value, argname)
    if not math.isfinite(value):
        raise ValueError(f"{argname} must be finite, got {value!r}")
    return value


def non_negative(value, argname):
    value = finite_number(value, argname)
    if value < 0:
        raise ValueError(f"{argname} must be >= 0, got {value!r}")
    return value


def positive(value, argname):
    value = finite_number(value, argname)
    if not value > 0:
        raise ValueError(f"{argname} must be > 0, got {value!r}")
    return value


def float_dtype(dtype, argname="dtype"):
    """np.float32 or np.float64; anything else is a TypeError saying what to pass."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{argname} must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{argname} must be np.float32 or np.float64, got {dt}; "
                        "convert with .astype(np.float32)")
    return dt


def shape(value, argname="shape"):
    """A shape tuple of non-negative ints (an int n means (n,))."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        dims = tuple(operator.index(d) for d in value)
    except TypeError:
        raise TypeError(f"{argname} must be a tuple of non-negative ints, got {value!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{argname} must be a tuple of non-negative ints, got {value!r}")
    return dims


def float_array(a, argname):
    """A float32/float64 ndarray (not converted): TypeError for anything else."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{argname} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{argname} must have dtype float32 or float64, got {a.dtype}; "
                        f"convert with {argname}.astype(np.float32)")
    return a


def writable_array(a, argname):
    """A float ndarray that can be filled in place."""
    float_array(a, argname)
    if not a.flags.writeable:
        raise ValueError(f"{argname} is read-only; pass a writable array (e.g. {argname}.copy())")
    return a


def sample_out(shape_, dtype, out):
    """(out, flat): the array to return and a C-contiguous 1-D buffer a kernel fills.

    With ``out`` given it must be a writable float array (its own dtype and shape are used);
    when it is not C-contiguous the kernel fills a contiguous buffer that is copied back.
    """
    if out is None:
        dims = shape(shape_)
        out = np.empty(dims, float_dtype(dtype))
        return out, out.reshape(-1)
    writable_array(out, "out")
    if out.flags.c_contiguous:
        return out, out.reshape(-1)
    return out, np.empty(out.size, out.dtype)


def finish_out(out, flat):
    """Copy the kernel's buffer back into ``out`` when they differ; return ``out``."""
    if not np.shares_memory(out, flat) and out.size:
        out[...] = flat.reshape(out.shape)
    return out
