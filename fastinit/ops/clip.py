"""Gradient clipping over a list of arrays, in place: by global norm and by value.

``total = clip_grad_norm_(grads, max_norm, norm_type=2.0)`` computes one norm over every element
of every array (Pascanu, Mikolov & Bengio 2013) and, when it exceeds ``max_norm``, scales all
arrays by the same factor; PyTorch's rule: scale = min(1, max_norm / (total + 1e-6)). It
returns the total norm *before* clipping, as a Python float. When nothing needs clipping the
arrays are not touched at all (no scale pass).

``clip_grad_value_(grads, clip_value)`` clamps every element to [-clip_value, clip_value].

Where this differs from ``torch.nn.utils``
    * max_norm <= 0 and clip_value <= 0 are errors (PyTorch silently zeroes or flips signs).
    * A non-finite total follows ``nonfinite``: "propagate" (PyTorch's default: the arrays are
      multiplied by max_norm / (total + 1e-6), i.e. by NaN or 0), "raise" (RuntimeError, what
      ``error_if_nonfinite=True`` gives) or "skip" (arrays left unchanged; the total is still
      returned, so a training loop can skip the step).
    * The norm accumulates in float64 whatever the dtype: float16 gradients whose float16 norm
      would overflow (|g| of a few hundred over a million elements) get the right total.
    * The total is the same for any thread count: fixed-size chunks, combined in list order.
    * All arrays must share one dtype (float16, float32 or float64).
    * clip_grad_norm_ refuses a repeated or overlapping array (ValueError): its elements would
      be scaled more than once (PyTorch scales them twice, in parallel kernels a race).
"""
import math
import numbers

import numpy as np

from .. import _validate, backends

__all__ = ["clip_grad_norm_", "clip_grad_value_"]

_GRAD_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_NONFINITE = ("propagate", "raise", "skip")


def _grad_list(grads):
    """(arrays, flats): the caller's arrays and C-contiguous 1-D buffers the kernels work on.

    A flat is a view of its array when the array is C-contiguous and aligned, else a copy that
    :func:`_write_back` copies back after an in-place kernel.
    """
    if isinstance(grads, np.ndarray):
        grads = [grads]
    try:
        arrays = list(grads)
    except TypeError:
        raise TypeError(f"grads must be a list of numpy arrays, got "
                        f"{type(grads).__name__}") from None
    dtype = None
    for i, g in enumerate(arrays):
        name = f"grads[{i}]"
        _validate.plain_ndarray(g, name)
        if g.dtype not in _GRAD_DTYPES:
            raise TypeError(f"{name} must have dtype float16, float32 or float64, got {g.dtype}; "
                            f"convert with {name}.astype(np.float32)")
        if dtype is None:
            dtype = g.dtype
        elif g.dtype != dtype:
            raise TypeError(f"{name} has dtype {g.dtype} but grads[0] has {dtype}; all arrays "
                            f"must share one dtype: convert with {name}.astype(np.{dtype})")
        if not g.flags.writeable:
            raise ValueError(f"{name} is read-only; clipping works in place: pass writable arrays")
    flats = [_validate.contiguous(g).reshape(-1) for g in arrays]
    return arrays, flats


def _write_back(arrays, flats):
    for g, f in zip(arrays, flats):
        if not np.shares_memory(g, f):
            g[...] = f.reshape(g.shape)


def _norm_type(value):
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"norm_type must be a number p > 0 or inf, got {value!r}")
    value = float(value)
    if not value > 0:  # also NaN
        raise ValueError(f"norm_type must be > 0 (1, 2, any p > 0, or inf), got {value!r}")
    return value


def _positive_limit(value, argname):
    """A number > 0 (inf allowed: never clips)."""
    value = _validate.number(value, argname)
    if not value > 0:
        raise ValueError(f"{argname} must be > 0, got {value!r} (clipping to 0 would erase "
                         f"the gradient; to skip clipping do not call this function)")
    return value


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, *,
                    nonfinite=None, backend=None):
    """Scale ``grads`` in place so their global ``norm_type``-norm is at most ``max_norm``.

    grads : list of arrays (one dtype: float16, float32 or float64), or a single array.
    norm_type : p > 0 (1, 2, ...) or inf (also the string "inf").
    nonfinite : "propagate" | "raise" | "skip" (see the module docstring); default "propagate",
        or "raise" when ``error_if_nonfinite=True``.
    Returns the total norm before clipping (float).
    """
    arrays, flats = _grad_list(grads)
    max_norm = _positive_limit(max_norm, "max_norm")
    norm_type = _norm_type(norm_type)
    error_if_nonfinite = _validate.boolean(error_if_nonfinite, "error_if_nonfinite")
    if nonfinite is None:
        nonfinite = "raise" if error_if_nonfinite else "propagate"
    else:
        nonfinite = _validate.choice(nonfinite, "nonfinite", _NONFINITE)
        if error_if_nonfinite and nonfinite != "raise":
            raise ValueError(f"error_if_nonfinite=True contradicts nonfinite={nonfinite!r}; "
                             "pass only one of them")
    _validate.no_overlap(arrays, "grads")  # the scale pass would scale a shared element twice
    pairs = [(g, f) for g, f in zip(arrays, flats) if f.size]
    if not pairs:
        return 0.0
    flats = [f for _, f in pairs]
    norm, _ = backends.kernel("clip", "grad_norm", backend)
    total = float(norm(flats, norm_type))
    if math.isfinite(total):
        coef = max_norm / (total + 1e-6)
        if coef >= 1.0:
            return total  # nothing to clip: no scale pass
    elif nonfinite == "raise":
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite "
                           f"({total}), so it cannot be clipped. Use nonfinite='skip' to leave "
                           "them unchanged, or 'propagate' to scale them by the non-finite norm")
    elif nonfinite == "skip":
        return total
    else:  # propagate, as PyTorch: scale by max_norm / (nan or inf) = nan or 0
        coef = max_norm / (total + 1e-6)
    scale, _ = backends.kernel("clip", "scale_", backend)
    scale(flats, coef)
    _write_back([g for g, _ in pairs], flats)
    return total


def clip_grad_value_(grads, clip_value, *, backend=None):
    """Clamp every element of ``grads`` to [-clip_value, clip_value] in place (NaN stays NaN)."""
    arrays, flats = _grad_list(grads)
    clip_value = _positive_limit(clip_value, "clip_value")
    pairs = [(g, f) for g, f in zip(arrays, flats) if f.size]
    if pairs:
        clamp, _ = backends.kernel("clip", "clamp_", backend)
        clamp([f for _, f in pairs], clip_value)
        _write_back([g for g, _ in pairs], [f for _, f in pairs])
    return None
