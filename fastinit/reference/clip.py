"""NumPy reference of gradient clipping: the global norm of a list of arrays, scale, clamp.

Kernels take ``grads``, a list of 1-D C-contiguous arrays of one dtype (float16, float32 or
float64), and work in place. The norm accumulates in float64 whatever the dtype (so float16
gradients do not overflow); ``norm_type`` is a float p > 0 or ``inf``:
total = (sum over every element of |g|**p) ** (1/p), or max |g| for inf (NaN if any is NaN).

The fast kernels split the list into fixed-size chunks of :data:`CHUNK` elements, sum each in
float64 and combine the partial sums in list order, so their total does not depend on the
thread count; this reference sums each array with NumPy (pairwise), agreeing to rounding.
"""
import math

import numpy as np

#: Elements per partial sum in the fast kernels (fixed, never derived from the thread count).
CHUNK = 1 << 14


def grad_norm(grads, norm_type):
    """The total norm of all elements of ``grads`` (a Python float, accumulated in float64)."""
    if math.isinf(norm_type):
        total = 0.0
        for g in grads:
            if g.size:
                total = max(total, float(np.max(np.abs(g.astype(np.float64)))))
            if np.isnan(g).any():
                return math.nan
        return total
    acc = 0.0
    for g in grads:
        a = np.abs(g.astype(np.float64))
        if norm_type == 1.0:
            acc += float(a.sum())
        elif norm_type == 2.0:
            acc += float(np.dot(a, a))
        else:
            acc += float(np.sum(a ** norm_type))
    if norm_type == 1.0:
        return acc
    if norm_type == 2.0:
        return math.sqrt(acc)
    return acc ** (1.0 / norm_type)


def _scaled(g, scale):
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as documented
        if g.dtype == np.float16:  # multiply in float32, round once to float16 (as PyTorch)
            return (g.astype(np.float32) * np.float32(scale)).astype(np.float16)
        return g * g.dtype.type(scale)


def scale_(grads, scale):
    """g *= scale for every array (scale rounded to the array's dtype; float16 via float32)."""
    for g in grads:
        g[...] = _scaled(g, scale)


def clamp_(grads, clip_value):
    """Clamp every element to [-clip_value, clip_value] in place (NaN stays NaN)."""
    for g in grads:
        if g.dtype == np.float16:
            c = np.float32(clip_value)
            g[...] = np.clip(g.astype(np.float32), -c, c).astype(np.float16)
        else:
            c = g.dtype.type(clip_value)
            np.clip(g, -c, c, out=g)
