"""Argument checks shared by every op: the one place fastinit words its errors.

Every check names the argument and says how to fix it. Wrappers call these; kernels never
validate (docs/design.md).
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
    if type(value) is float:  # the common case, without the ABC check below
        return value
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


def plain_ndarray(a, argname, what="numpy.ndarray"):
    """``a`` is an ndarray, and not of a subclass whose indexing or mask the kernels would
    ignore (np.matrix, masked arrays): TypeError naming the argument otherwise."""
    if type(a) is np.ndarray:
        return a
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{argname} must be a {what}, got {type(a).__name__}")
    if isinstance(a, (np.matrix, np.ma.MaskedArray)):
        raise TypeError(f"{argname} must be a plain numpy.ndarray, got {type(a).__name__} "
                        f"(its own semantics would be ignored); pass np.asarray({argname})")
    return a


def float_array(a, argname):
    """A float32/float64 ndarray (not converted): TypeError for anything else."""
    plain_ndarray(a, argname)
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
    if out.flags.c_contiguous and out.flags.aligned:
        return out, out.reshape(-1)
    return out, np.empty(out.size, out.dtype)


def finish_out(out, flat):
    """Copy the kernel's buffer back into ``out`` when they differ; return ``out``."""
    if not np.shares_memory(out, flat) and out.size:
        out[...] = flat.reshape(out.shape)
    return out


# ---- batch norm, clipping, activations, losses ----------------------------------------------

def boolean(value, argname):
    """A bool (numpy bools too)."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argname} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def choice(value, argname, options):
    """One of the strings in ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{argname} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def fraction(value, argname):
    """A finite number in [0, 1]."""
    value = finite_number(value, argname)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{argname} must be in [0, 1], got {value!r}")
    return value


def ndim_in(a, argname, ndims, layout=""):
    """``a.ndim`` is one of ``ndims``."""
    if a.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{argname} must be {want}{layout}, got shape {a.shape}")
    return a


def same_dtype(a, argname, ref, refname):
    """``a`` has the dtype of ``ref`` (no silent mixing of float32 and float64)."""
    if a.dtype != ref.dtype:
        raise TypeError(f"{argname} has dtype {a.dtype} but {refname} has dtype {ref.dtype}; "
                        f"mixed dtypes are not allowed: convert with "
                        f"{argname}.astype(np.{ref.dtype})")
    return a


def same_shape(a, argname, ref, refname):
    if a.shape != ref.shape:
        raise ValueError(f"{argname} must have the shape of {refname} {ref.shape}, got {a.shape}")
    return a


def channel_vector(a, argname, channels, ref, refname="x"):
    """A float array of shape (channels,) with the dtype of ``ref``."""
    float_array(a, argname)
    if a.shape != (channels,):
        raise ValueError(f"{argname} must have shape ({channels},) (one value per channel of "
                         f"{refname}), got {a.shape}")
    return same_dtype(a, argname, ref, refname)


def contiguous(a):
    """``a`` itself when C-contiguous and aligned, else a C-contiguous copy (inputs are copied
    once). Aligned: the data at a multiple of the itemsize, as the kernels' loads assume (an
    array made from a byte buffer at an odd offset is not)."""
    flags = a.flags
    return a if flags.c_contiguous and flags.aligned else np.array(a, order="C")


def gradients(need, names):
    """The gradients a backward should compute, as a tuple: ``need`` is one name of ``names``
    (a string) or a collection of them."""
    try:
        items = (need,) if isinstance(need, str) else tuple(need)
    except TypeError:
        raise TypeError(f"need must be one of {names} or a collection of them, got "
                        f"{need!r}") from None
    for item in items:
        if not isinstance(item, str) or item not in names:
            raise ValueError(f"need must name gradients among {names}, got {need!r}")
    return items


def disjoint(a, b):
    """a and b share no memory: two distinct arrays that own their data never do (the cheap
    test that settles the usual case), else numpy's exact test."""
    if a is b:
        return False
    if a.base is None and b.base is None:
        return True
    return not np.shares_memory(a, b)


def no_overlap(arrays, argname):
    """ValueError naming the first two of ``arrays`` (``argname[i]``) that share memory."""
    if len({id(a) for a in arrays}) == len(arrays) and all(a.base is None for a in arrays):
        return
    for i, a in enumerate(arrays):
        for j in range(i + 1, len(arrays)):
            if not disjoint(a, arrays[j]):
                raise ValueError(f"{argname}[{i}] and {argname}[{j}] share memory; every array "
                                 "must be one of its own (each is updated in place, in "
                                 "parallel: a repeated or overlapping array would be updated "
                                 "more than once)")


def integer_array(a, argname):
    """An ndarray of an integer dtype (not bool)."""
    plain_ndarray(a, argname, "numpy.ndarray of integers")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{argname} must have an integer dtype (class indices), got {a.dtype}; "
                        f"convert with {argname}.astype(np.int64)")
    return a


def out_array(out, argname, shape_, dtype):
    """A writable, C-contiguous ``out`` of the given shape and dtype (for ``out=`` arguments)."""
    writable_array(out, argname)
    if out.shape != tuple(shape_):
        raise ValueError(f"{argname} must have shape {tuple(shape_)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{argname} must have dtype {dtype}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{argname} must be C-contiguous; pass np.empty_like(...) or omit it")
    if not out.flags.aligned:
        raise ValueError(f"{argname} must be aligned (its data at a multiple of its itemsize); "
                         "pass np.empty_like(...) or omit it")
    return out


# ---- dense (matmul, linear) -----------------------------------------------------------------

def dims_match(a, aname, a_axis, b, bname, b_axis, what):
    """``a.shape[a_axis] == b.shape[b_axis]``, else a ValueError showing both shapes."""
    if a.shape[a_axis] != b.shape[b_axis]:
        raise ValueError(f"{what} do not match: {aname} has shape {a.shape} and {bname} has shape "
                         f"{b.shape}; {aname}.shape[{a_axis}] ({a.shape[a_axis]}) must equal "
                         f"{bname}.shape[{b_axis}] ({b.shape[b_axis]})")
    return a


# ---- convolution ------------------------------------------------------------------------------

def positive_int(value, argname):
    """An int >= 1 (numpy integers too, not bool)."""
    if type(value) is int and value >= 1:  # the common case, without the ABC checks below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argname} must be a positive int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{argname} must be a positive int, got {value}")
    return value


def int_pair(value, argname, minimum, what=""):
    """(a, b) from an int or a pair of ints, each >= ``minimum``; ``what`` words the bound
    (e.g. "non-positive stride is not supported")."""
    if type(value) is int and value >= minimum:  # the common case, without the ABC checks below
        return (value, value)
    items = (value, value) if isinstance(value, numbers.Integral) else value
    if isinstance(value, bool) or not isinstance(items, (tuple, list)) or len(items) != 2 or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items):
        raise TypeError(f"{argname} must be an int or a pair of ints (height, width), got "
                        f"{value!r}")
    pair = (int(items[0]), int(items[1]))
    if min(pair) < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{argname} must be {bound} (an int or a pair (height, width)), got "
                         f"{value!r}" + (f": {what}" if what else ""))
    return pair


def conv_channels(x, w, groups, xname="x", wname="w"):
    """x (N, C, H, W) and w (K, C/groups, R, S) agree on channels and groups (PyTorch's checks,
    with the numbers)."""
    k, cg = w.shape[0], w.shape[1]
    if k % groups:
        raise ValueError(f"{wname}.shape[0] (out channels, {k}) must be divisible by groups "
                         f"({groups}); got {wname} of shape {w.shape}")
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"{xname}.shape[1] (in channels, {c}) must be divisible by groups "
                         f"({groups}); got {xname} of shape {x.shape}")
    if c != cg * groups:
        raise ValueError(f"channels do not match: with groups={groups} and {wname} of shape "
                         f"{w.shape}, {xname} must have {cg} x {groups} = {cg * groups} channels "
                         f"({wname}.shape[1] x groups), but {xname} of shape {x.shape} has {c}")


def conv_kernel_fits(padded, kernel, xname="x"):
    """The dilated kernel (kh, kw) fits the padded input (hp, wp)."""
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"kernel larger than the padded input: the padded {xname} is "
                         f"{padded[0]} x {padded[1]} per channel but the (dilated) kernel is "
                         f"{kernel[0]} x {kernel[1]}; pad more, shrink the kernel or dilation, "
                         "or use a larger input")
