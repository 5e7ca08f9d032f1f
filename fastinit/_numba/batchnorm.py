"""Numba kernels of batch norm (same contract as :mod:`fastinit.reference.batchnorm`).

x is a C-contiguous (N, C, S) array. Two layouts of the work:

* block path (all but the channel path): x in memory order, seen as rows of L = C*S, in fixed
  blocks of rows (partial sums added in block order). The sums add 4 rows at a time as a tree
  into per-position float64 accumulators (L,), reduced per channel at the end of the block.
  The output pass applies each (n, c) segment's channel coefficients when S >= SEG_S_MIN, and
  for smaller S (e.g. (N, C) input) runs over whole rows with the coefficients repeated per
  position. Segments (S >= SEG_S_MIN and output below STREAM_MIN_BYTES, as csrc/batchnorm.c)
  go in blocks of about SEG_BLOCK elements, on threads from SEG_PARALLEL_MIN elements
  (64x16x8x8 runs serially: channel by channel its rows are 4 KB apart, and a parallel launch
  costs more than it saves); other inputs in blocks of BLOCK_ELEMENTS.
* channel path (other S >= SPATIAL_MIN, large NCHW activations): one channel per task, in
  parallel over channels. A channel is read once from memory for its sums, then again, from
  cache (a channel of 64x56x56 float32 is 800 KB, L2 is 2 MB), for the output: y costs about
  one copy of x.

The forward and backward passes share each path's code: an argument ``dy`` that is None
selects the forward pass. ``dy is None`` is settled when a function compiles (Numba prunes the
backward branch for a None dy; for an array dy the test is a constant False that LLVM folds),
so each pass compiles to its own loops.

Sums are float64 whatever the data dtype, taken around a per-channel shift k = x[0, c, 0]
(sum of x - k and of (x - k)**2), so data of mean 1000 and std 1 gives its variance to float64
precision. Without 'reassoc' in the fast-math flags LLVM does not vectorise a reduction into one
scalar, so sums run "vertically" into short float64 arrays (acc[j] += ..., which vectorises)
and those are reduced once at the end. Blocks and tiles have fixed sizes, so the results do not
depend on the thread count.

The output pass computes y = (x - mh) * a + b in the data dtype, with mh = mean rounded to the
dtype, a = gamma * invstd and b = beta - (mean - mh) * a: x - mh is exact for x near the mean
(Sterbenz), so a large mean costs no accuracy in y (the plain x * a + (beta - mean * a) loses
four digits at mean 1000 in float32). The backward pass computes dx = k * dy + (x - mh) * p + q
the same way; coef[:, c] holds (k, mh, p, q) for both (k = 0, p = a, q = b forward).
"""
import numpy as np
from numba import prange

from .. import _config
from .._config import njit, pjit, serial
from ._reductions import affine2_stream, affine_stream, grad_sums_next, shifted_sums_next

#: Spatial size from which one task per channel pays (below it: the block path).
SPATIAL_MIN = 64
#: Outputs from this size are written with non-temporal stores (as csrc/batchnorm.c does).
STREAM_MIN_BYTES = 16 << 20
#: Elements per block of the block path outside segments (fixed: results do not depend on the
#: thread count).
BLOCK_ELEMENTS = 1 << 14
#: Segments (S >= SEG_S_MIN, output below STREAM_MIN_BYTES): rows go in fixed blocks of
#: about SEG_BLOCK elements, on threads from SEG_PARALLEL_MIN elements (as csrc/batchnorm.c).
SEG_S_MIN = 8
SEG_BLOCK = 1 << 16
SEG_PARALLEL_MIN = 1 << 17


# ---- per-channel coefficients ----------------------------------------------------------------

@njit(inline="always")  # in Numba's IR: the block drivers call it once per channel
def _forward_coef(coef, c, s1, s2, count, shift, mean, var, invstd, gamma, beta, eps, training):
    """Channel c's statistics, then coef[:, c] = (0, mh, a, b) in the data dtype (see the
    module docstring). Training: mean, biased variance and invstd from the shifted sums
    s1 = sum(x - shift), s2 = sum((x - shift)**2) over count values; eval: invstd from var."""
    if training:
        d = s1 / count
        v = s2 / count - d * d
        if v < 0.0:
            v = 0.0
        mean[c] = shift + d
        var[c] = v
        invstd[c] = 1.0 / np.sqrt(v + eps)
    else:
        invstd[c] = 1.0 / np.sqrt(var[c] + eps)
    coef[0, c] = 0.0
    coef[1, c] = mean[c]
    mh = np.float64(coef[1, c])
    a = np.float64(gamma[c]) * invstd[c]
    coef[2, c] = a
    coef[3, c] = np.float64(beta[c]) - (mean[c] - mh) * a


@njit(inline="always")  # as _forward_coef
def _backward_coef(coef, c, s1, s2, count, dgamma, dbeta, gamma, mean, invstd, training):
    """dbeta[c] and dgamma[c] from s1 = sum(dy), s2 = sum(dy * (x - mean)) of channel c, and
    coef[:, c] = (k, mh, p, q): dx = k * dy + (x - mh) * p + q."""
    dg = s2 * invstd[c]
    dbeta[c] = s1
    dgamma[c] = dg
    k = np.float64(gamma[c]) * invstd[c]
    coef[0, c] = k
    coef[1, c] = mean[c]
    if training:
        mh = np.float64(coef[1, c])
        k2 = k * invstd[c] * dg / count
        coef[2, c] = -k2
        coef[3, c] = -k * s1 / count + (mean[c] - mh) * k2
    else:
        coef[2, c] = 0.0
        coef[3, c] = 0.0


@njit
def _apply(out, dy, x, coef, i0, i1, c0, c1, stream):
    """out[i, c] = (x[i, c] - mh) * p + q, plus k * dy[i, c] unless dy is None, for rows i0..i1-1
    and channels c0..c1-1, coef[:, c] = (k, mh, p, q) in the data dtype; non-temporal stores if
    ``stream``."""
    for i in range(i0, i1):
        for c in range(c0, c1):
            k = coef[0, c]
            mh = coef[1, c]
            p = coef[2, c]
            q = coef[3, c]
            xr = x[i, c]
            o = out[i, c]
            if dy is None:
                if stream:
                    affine_stream(o, xr, mh, p, q)
                else:
                    for j in range(xr.shape[0]):
                        o[j] = (xr[j] - mh) * p + q
            else:
                g = dy[i, c]
                if stream:
                    affine2_stream(o, g, xr, k, mh, p, q)
                else:
                    for j in range(xr.shape[0]):
                        o[j] = k * g[j] + (xr[j] - mh) * p + q


# ---- channel path ------------------------------------------------------------------------------

@njit
def _channel_sums(dy, x, c, k):
    """Sums over channel c in float64: (sum(x - k), sum((x - k)**2)) when dy is None (k the
    shift), else (sum(dy), sum(dy * (x - k))) (k the mean)."""
    s1 = 0.0
    s2 = 0.0
    n = x.shape[0]
    for i in range(n):
        j = min(i + 1, n - 1)
        if dy is None:
            a, b = shifted_sums_next(x[i, c], k, x[j, c])
        else:
            a, b = grad_sums_next(dy[i, c], x[i, c], k, dy[j, c], x[j, c])
        s1 += a
        s2 += b
    return s1, s2


@pjit
def _forward_channels_par(y, mean, var, invstd, x, gamma, beta, eps, training, stream):
    n, c_count, s_count = x.shape
    coef = np.empty((4, c_count), x.dtype)
    for c in prange(c_count):
        shift = np.float64(x[0, c, 0])
        s1, s2 = _channel_sums(None, x, c, shift) if training else (0.0, 0.0)
        _forward_coef(coef, c, s1, s2, np.float64(n * s_count), shift, mean, var, invstd, gamma,
                      beta, eps, training)
        _apply(y, None, x, coef, 0, n, c, c + 1, stream)


_forward_channels = serial(_forward_channels_par)  # the same driver on the calling thread


@pjit
def _backward_channels_par(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training, stream):
    n, c_count, s_count = x.shape
    coef = np.empty((4, c_count), x.dtype)
    for c in prange(c_count):
        s1, s2 = _channel_sums(dy, x, c, np.float64(mean[c]))
        _backward_coef(coef, c, s1, s2, np.float64(n * s_count), dgamma, dbeta, gamma, mean,
                       invstd, training)
        _apply(dx, dy, x, coef, 0, n, c, c + 1, stream)


_backward_channels = serial(_backward_channels_par)  # the same driver on the calling thread


# ---- block path: x in memory order, fixed blocks of rows of L = C*S --------------------------

@njit
def _expand(v, s_count):
    """(C,) -> (C*S,) repeating each value S times (per-position values of a row of L)."""
    out = np.empty(v.shape[0] * s_count, v.dtype)
    for c in range(v.shape[0]):
        for t in range(s_count):
            out[c * s_count + t] = v[c]
    return out


@njit
def _block_sums(part, dy, x, k_l, lo, hi):
    """part[0, c], part[1, c] = channel c's sums over rows lo..hi-1, as _channel_sums gives them
    (dy None: the forward pass), with k_l the shift or mean of each of the L = C*S positions.

    4 rows at a time are added as a tree into per-position float64 accumulators, reduced per
    channel at the end. The inner loop runs over L, contiguous and long, and vectorises (over a
    short segment of S it did not)."""
    n, c_count, s_count = x.shape
    x2 = x.reshape(n, c_count * s_count)
    g2 = x2 if dy is None else dy.reshape(n, c_count * s_count)
    length = x2.shape[1]
    acc1 = np.zeros(length)
    acc2 = np.zeros(length)
    i = lo
    while i + 4 <= hi:
        r0 = x2[i]
        r1 = x2[i + 1]
        r2 = x2[i + 2]
        r3 = x2[i + 3]
        g0 = g2[i]
        g1 = g2[i + 1]
        g2_ = g2[i + 2]
        g3 = g2[i + 3]
        for j in range(length):
            k = k_l[j]
            h0 = np.float64(r0[j]) - k
            h1 = np.float64(r1[j]) - k
            h2 = np.float64(r2[j]) - k
            h3 = np.float64(r3[j]) - k
            if dy is None:  # sums of x - k and of its square
                e0, e1, e2, e3 = h0, h1, h2, h3
            else:  # sums of dy and of dy * (x - k)
                e0, e1, e2, e3 = (np.float64(g0[j]), np.float64(g1[j]), np.float64(g2_[j]),
                                  np.float64(g3[j]))
            acc1[j] += (e0 + e1) + (e2 + e3)
            acc2[j] += (e0 * h0 + e1 * h1) + (e2 * h2 + e3 * h3)
        i += 4
    for r in range(i, hi):
        xr = x2[r]
        gr = g2[r]
        for j in range(length):
            h = np.float64(xr[j]) - k_l[j]
            e = h if dy is None else np.float64(gr[j])
            acc1[j] += e
            acc2[j] += e * h
    for c in range(c_count):
        t1 = 0.0
        t2 = 0.0
        for t in range(c * s_count, (c + 1) * s_count):
            t1 += acc1[t]
            t2 += acc2[t]
        part[0, c] = t1
        part[1, c] = t2


@njit
def _block_apply(out, dy, x, coef, coef_l, lo, hi):
    """The output pass over rows lo..hi-1: per (n, c) segment when S >= SEG_S_MIN, else over
    whole rows of L = C*S with coef_l, the (4, L) coefficients of each position."""
    n, c_count, s_count = x.shape
    if s_count >= SEG_S_MIN:
        _apply(out, dy, x, coef, lo, hi, 0, c_count, False)
        return
    length = c_count * s_count
    x2 = x.reshape(n, length)
    o2 = out.reshape(n, length)
    g2 = x2 if dy is None else dy.reshape(n, length)
    k_l = coef_l[0]
    mh_l = coef_l[1]
    p_l = coef_l[2]
    q_l = coef_l[3]
    for i in range(lo, hi):
        xr = x2[i]
        o = o2[i]
        g = g2[i]
        if dy is None:
            for j in range(length):
                o[j] = (xr[j] - mh_l[j]) * p_l[j] + q_l[j]
        else:
            for j in range(length):
                o[j] = k_l[j] * g[j] + (xr[j] - mh_l[j]) * p_l[j] + q_l[j]


@njit
def _block_coef_rows(coef, s_count):
    """coef (4, C) as the (4, L) coefficients of each position for _block_apply (S small)."""
    coef_l = np.empty((4, coef.shape[1] * s_count if s_count < SEG_S_MIN else 0), coef.dtype)
    if s_count < SEG_S_MIN:
        for r in range(4):
            coef_l[r] = _expand(coef[r], s_count)
    return coef_l


@njit
def _totals(part):
    """The (2, C) sums of the (nblocks, 2, C) block sums, added in block order."""
    total = np.zeros((2, part.shape[2]))
    for b in range(part.shape[0]):
        total += part[b]
    return total


@pjit
def _forward_blocks_par(y, mean, var, invstd, x, gamma, beta, eps, training, rb):
    n, c_count, s_count = x.shape
    nb = (n + rb - 1) // rb
    shift = np.empty(c_count)
    for c in range(c_count):
        shift[c] = x[0, c, 0]
    part = np.empty((nb if training else 0, 2, c_count))  # no sums in eval
    if training:
        shift_l = _expand(shift, s_count)
        for b in prange(nb):
            _block_sums(part[b], None, x, shift_l, b * rb, min(n, (b + 1) * rb))
    total = _totals(part)
    coef = np.empty((4, c_count), x.dtype)
    for c in range(c_count):
        _forward_coef(coef, c, total[0, c], total[1, c], np.float64(n * s_count), shift[c], mean,
                      var, invstd, gamma, beta, eps, training)
    coef_l = _block_coef_rows(coef, s_count)
    for b in prange(nb):
        _block_apply(y, None, x, coef, coef_l, b * rb, min(n, (b + 1) * rb))


_forward_blocks = serial(_forward_blocks_par)  # the same driver on the calling thread


@pjit
def _backward_blocks_par(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training, rb):
    n, c_count, s_count = x.shape
    nb = (n + rb - 1) // rb
    mean_l = _expand(mean, s_count)
    part = np.empty((nb, 2, c_count))
    for b in prange(nb):
        _block_sums(part[b], dy, x, mean_l, b * rb, min(n, (b + 1) * rb))
    total = _totals(part)
    coef = np.empty((4, c_count), x.dtype)
    for c in range(c_count):
        _backward_coef(coef, c, total[0, c], total[1, c], np.float64(n * s_count), dgamma, dbeta,
                       gamma, mean, invstd, training)
    coef_l = _block_coef_rows(coef, s_count)
    for b in prange(nb):
        _block_apply(dx, dy, x, coef, coef_l, b * rb, min(n, (b + 1) * rb))


_backward_blocks = serial(_backward_blocks_par)  # the same driver on the calling thread


# ---- the kernels (contract of fastinit.reference.batchnorm) -------------------------------------

#: The drivers of each pass by path, named: in a forked child the names are bound to serial twins.
_FORWARD = ("_forward_blocks", "_forward_blocks_par", "_forward_channels", "_forward_channels_par")
_BACKWARD = ("_backward_blocks", "_backward_blocks_par", "_backward_channels",
             "_backward_channels_par")


def _driver(names, out, x):
    """(the driver of x's path among ``names``, its last argument: rows per block or stream)."""
    n, c_count, s_count = x.shape
    size = x.size
    if s_count >= SEG_S_MIN and x.nbytes < STREAM_MIN_BYTES:  # segments, as csrc/batchnorm.c
        rows = SEG_BLOCK // (c_count * s_count) // 4 * 4
        return globals()[names[size >= SEG_PARALLEL_MIN]], rows if rows > 4 else 4
    if s_count >= SPATIAL_MIN:  # non-temporal stores for outputs larger than the caches
        return globals()[names[2 + (size >= _config.PARALLEL_MIN_ELEMENTS)]], \
            out.nbytes >= STREAM_MIN_BYTES
    rows = BLOCK_ELEMENTS // (c_count * s_count) or 1
    return globals()[names[size >= _config.PARALLEL_MIN_ELEMENTS and n > rows]], rows


def batch_norm_forward_train(y, mean, var, invstd, x, gamma, beta, eps):
    run, last = _driver(_FORWARD, y, x)
    run(y, mean, var, invstd, x, gamma, beta, eps, True, last)


def batch_norm_forward_eval(y, invstd, x, gamma, beta, mean, var, eps):
    run, last = _driver(_FORWARD, y, x)
    run(y, mean, var, invstd, x, gamma, beta, eps, False, last)


def _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training):
    run, last = _driver(_BACKWARD, dx, x)
    run(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training, last)


def batch_norm_backward_train(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, True)


def batch_norm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, False)
