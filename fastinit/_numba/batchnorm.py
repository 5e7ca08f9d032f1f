"""Numba kernels of batch norm (same contract as :mod:`fastinit.reference.batchnorm`).

x is a C-contiguous (N, C, S) array. Three layouts of the work:

* segment path (S >= SEG_S_MIN and output below STREAM_MIN_BYTES, as csrc/batchnorm.c): x in
  memory order, seen as rows of L = C*S. The sums add 4 rows at a time as a tree into
  per-position float64 accumulators (L,), reduced per channel at the end; the output pass
  applies each (n, c) segment's channel coefficients. Fixed blocks of rows (partial sums added
  in block order); threads only from SEG_PARALLEL_MIN elements (64x16x8x8 runs serially:
  channel by channel its rows are 4 KB apart, and a parallel launch costs more than it saves).
* channel path (other S >= SPATIAL_MIN, large NCHW activations): one channel per task, in
  parallel over channels. A channel is read once from memory for its sums, then again, from
  cache (a channel of 64x56x56 float32 is 800 KB, L2 is 2 MB), for the output: y costs about
  one copy of x.
* row path (other small S, e.g. (N, C) input): fixed blocks of BLOCK_ROWS rows in parallel,
  each summing into its own (C*S,) partial-sum rows, combined in block order.

Sums are float64 whatever the data dtype, taken around a per-channel shift k = x[0, c, 0]
(sum of x - k and of (x - k)**2), so data of mean 1000 and std 1 gives its variance to float64
precision. Without 'reassoc' in the fast-math flags LLVM does not vectorise a reduction into one
scalar, so sums run "vertically" into short float64 arrays (acc[j] += ..., which vectorises)
and those are reduced once at the end. Blocks and tiles have fixed sizes, so the results do not
depend on the thread count.

The output pass computes y = (x - mh) * a + b in the data dtype, with mh = mean rounded to the
dtype, a = gamma * invstd and b = beta - (mean - mh) * a: x - mh is exact for x near the mean
(Sterbenz), so a large mean costs no accuracy in y (the plain x * a + (beta - mean * a) loses
four digits at mean 1000 in float32).
"""
import numpy as np
from numba import prange

from .. import _config
from .._config import njit, pjit, serial
from ._reductions import affine2_stream, affine_stream, grad_sums_next, shifted_sums_next

#: Spatial size from which one task per channel pays (below it: the row path).
SPATIAL_MIN = 64
#: Outputs from this size are written with non-temporal stores (as csrc/batchnorm.c does).
STREAM_MIN_BYTES = 16 << 20
#: Elements per block of the row path (fixed: results do not depend on the thread count).
BLOCK_ELEMENTS = 1 << 14
#: Segment path (S >= SEG_S_MIN, output below STREAM_MIN_BYTES): rows go in fixed blocks of
#: about SEG_BLOCK elements, on threads from SEG_PARALLEL_MIN elements (as csrc/batchnorm.c).
SEG_S_MIN = 8
SEG_BLOCK = 1 << 16
SEG_PARALLEL_MIN = 1 << 17


# ---- per-channel pieces --------------------------------------------------------------------------

@njit
def _channel_sums(x, c, shift):
    """(sum(x - shift), sum((x - shift)**2)) of channel c, in float64."""
    s1 = 0.0
    s2 = 0.0
    n = x.shape[0]
    for i in range(n):
        a, b = shifted_sums_next(x[i, c], shift, x[min(i + 1, n - 1), c])
        s1 += a
        s2 += b
    return s1, s2


@njit
def _channel_grad_sums(dy, x, c, mean):
    """(sum(dy), sum(dy * (x - mean))) of channel c, in float64."""
    s1 = 0.0
    s2 = 0.0
    n = x.shape[0]
    for i in range(n):
        j = min(i + 1, n - 1)
        a, b = grad_sums_next(dy[i, c], x[i, c], mean, dy[j, c], x[j, c])
        s1 += a
        s2 += b
    return s1, s2


@njit
def _channel_affine(y, x, c, mh, a, b, stream):
    """y[:, c] = (x[:, c] - mh) * a + b (mh, a, b in the data dtype)."""
    n, _, s = x.shape
    for i in range(n):
        xr = x[i, c]
        yr = y[i, c]
        if stream:
            affine_stream(yr, xr, mh, a, b)
        else:
            for j in range(s):
                yr[j] = (xr[j] - mh) * a + b


@njit
def _channel_affine2(dx, dy, x, c, k, mh, p, q, stream):
    """dx[:, c] = k * dy + (x - mh) * p + q (all in the data dtype)."""
    n, _, s = x.shape
    for i in range(n):
        xr = x[i, c]
        gr = dy[i, c]
        dr = dx[i, c]
        if stream:
            affine2_stream(dr, gr, xr, k, mh, p, q)
        else:
            for j in range(s):
                dr[j] = k * gr[j] + (xr[j] - mh) * p + q


@njit
def _stats(c, s1, s2, m_count, shift, mean, var, invstd, eps):
    """Mean, biased variance and invstd of channel c from shifted sums."""
    d = s1 / m_count
    v = s2 / m_count - d * d
    if v < 0.0:
        v = 0.0
    mean[c] = shift + d
    var[c] = v
    invstd[c] = 1.0 / np.sqrt(v + eps)


@njit
def _forward_coef(coef, c, mean, invstd, gamma, beta):
    """coef[:, c] = (mh, a, b) in the data dtype (see the module docstring)."""
    coef[0, c] = mean[c]
    mh = np.float64(coef[0, c])
    a = np.float64(gamma[c]) * invstd[c]
    coef[1, c] = a
    coef[2, c] = np.float64(beta[c]) - (mean[c] - mh) * a


@njit
def _backward_coef(coef, c, m_count, mean, invstd, gamma, sum_dy, sum_dyx, training):
    """coef[:, c] = (k, mh, p, q): dx = k * dy + (x - mh) * p + q."""
    k = np.float64(gamma[c]) * invstd[c]
    coef[0, c] = k
    coef[1, c] = mean[c]
    if training:
        mh = np.float64(coef[1, c])
        dgamma = sum_dyx * invstd[c]
        k2 = k * invstd[c] * dgamma / m_count
        coef[2, c] = -k2
        coef[3, c] = -k * sum_dy / m_count + (mean[c] - mh) * k2
    else:
        coef[2, c] = 0.0
        coef[3, c] = 0.0


# ---- channel path ------------------------------------------------------------------------------

@njit
def _fwd_train_channel(y, mean, var, invstd, coef, x, gamma, beta, eps, c, stream):
    n, _, s = x.shape
    shift = np.float64(x[0, c, 0])
    s1, s2 = _channel_sums(x, c, shift)
    _stats(c, s1, s2, np.float64(n * s), shift, mean, var, invstd, eps)
    _forward_coef(coef, c, mean, invstd, gamma, beta)
    _channel_affine(y, x, c, coef[0, c], coef[1, c], coef[2, c], stream)


@pjit
def _fwd_train_channels_par(y, mean, var, invstd, coef, x, gamma, beta, eps, stream):
    for c in prange(x.shape[1]):
        _fwd_train_channel(y, mean, var, invstd, coef, x, gamma, beta, eps, c, stream)


_fwd_train_channels = serial(_fwd_train_channels_par)  # the same driver on the calling thread


@njit
def _fwd_eval_channel(y, invstd, coef, x, gamma, beta, mean, var, eps, c, stream):
    invstd[c] = 1.0 / np.sqrt(var[c] + eps)
    _forward_coef(coef, c, mean, invstd, gamma, beta)
    _channel_affine(y, x, c, coef[0, c], coef[1, c], coef[2, c], stream)


@pjit
def _fwd_eval_channels_par(y, invstd, coef, x, gamma, beta, mean, var, eps, stream):
    for c in prange(x.shape[1]):
        _fwd_eval_channel(y, invstd, coef, x, gamma, beta, mean, var, eps, c, stream)


_fwd_eval_channels = serial(_fwd_eval_channels_par)  # the same driver on the calling thread


@njit
def _bwd_channel(dx, dgamma, dbeta, coef, dy, x, gamma, mean, invstd, training, c, stream):
    n, _, s = x.shape
    s_dy, s_dyx = _channel_grad_sums(dy, x, c, mean[c])
    dbeta[c] = s_dy
    dgamma[c] = s_dyx * invstd[c]
    _backward_coef(coef, c, np.float64(n * s), mean, invstd, gamma, s_dy, s_dyx, training)
    _channel_affine2(dx, dy, x, c, coef[0, c], coef[1, c], coef[2, c], coef[3, c], stream)


@pjit
def _bwd_channels_par(dx, dgamma, dbeta, coef, dy, x, gamma, mean, invstd, training, stream):
    for c in prange(x.shape[1]):
        _bwd_channel(dx, dgamma, dbeta, coef, dy, x, gamma, mean, invstd, training, c, stream)


_bwd_channels = serial(_bwd_channels_par)  # the same driver on the calling thread


# ---- row path (small S): blocks of rows of length L = C*S ---------------------------------------

@njit
def _block_sums(x2, lo, hi, shift, p1, p2):
    """p1[j] = sum over rows lo..hi-1 of x2[i, j] - shift[j]; p2 likewise squared."""
    length = x2.shape[1]
    p1[:] = 0.0
    p2[:] = 0.0
    for i in range(lo, hi):
        row = x2[i]
        for j in range(length):
            d = np.float64(row[j]) - shift[j]
            p1[j] += d
            p2[j] += d * d


@njit
def _block_grad_sums(dy2, x2, lo, hi, mean_l, p1, p2):
    length = x2.shape[1]
    p1[:] = 0.0
    p2[:] = 0.0
    for i in range(lo, hi):
        g_row = dy2[i]
        x_row = x2[i]
        for j in range(length):
            g = np.float64(g_row[j])
            p1[j] += g
            p2[j] += g * (np.float64(x_row[j]) - mean_l[j])


@njit
def _block_affine(y2, x2, lo, hi, mh_l, a_l, b_l):
    length = x2.shape[1]
    for i in range(lo, hi):
        xr = x2[i]
        yr = y2[i]
        for j in range(length):
            yr[j] = (xr[j] - mh_l[j]) * a_l[j] + b_l[j]


@njit
def _block_affine2(dx2, dy2, x2, lo, hi, k_l, mh_l, p_l, q_l):
    length = x2.shape[1]
    for i in range(lo, hi):
        xr = x2[i]
        gr = dy2[i]
        dr = dx2[i]
        for j in range(length):
            dr[j] = k_l[j] * gr[j] + (xr[j] - mh_l[j]) * p_l[j] + q_l[j]


@njit
def _combine(partial, c_count, s_count):
    """Sum (nblocks, C*S) partial rows in block order, then over S: (C,) float64."""
    total = np.zeros(c_count * s_count)
    for b in range(partial.shape[0]):
        row = partial[b]
        for j in range(c_count * s_count):
            total[j] += row[j]
    out = np.zeros(c_count)
    for c in range(c_count):
        for t in range(s_count):
            out[c] += total[c * s_count + t]
    return out


@njit
def _expand(v, s_count):
    """(C,) -> (C*S,) repeating each value S times (per-element coefficients of the row path)."""
    out = np.empty(v.shape[0] * s_count, v.dtype)
    for c in range(v.shape[0]):
        for t in range(s_count):
            out[c * s_count + t] = v[c]
    return out


@pjit
def _rows_sums_par(x2, shift, p1, p2, rows):
    nb = p1.shape[0]
    for b in prange(nb):
        _block_sums(x2, b * rows, min(x2.shape[0], (b + 1) * rows), shift, p1[b], p2[b])


_rows_sums = serial(_rows_sums_par)  # the same driver on the calling thread


@pjit
def _rows_grad_sums_par(dy2, x2, mean_l, p1, p2, rows):
    for b in prange(p1.shape[0]):
        _block_grad_sums(dy2, x2, b * rows, min(x2.shape[0], (b + 1) * rows), mean_l, p1[b], p2[b])


_rows_grad_sums = serial(_rows_grad_sums_par)  # the same driver on the calling thread


@pjit
def _rows_affine_par(y2, x2, mh_l, a_l, b_l, rows):
    nb = (x2.shape[0] + rows - 1) // rows
    for b in prange(nb):
        _block_affine(y2, x2, b * rows, min(x2.shape[0], (b + 1) * rows), mh_l, a_l, b_l)


_rows_affine = serial(_rows_affine_par)  # the same driver on the calling thread


@pjit
def _rows_affine2_par(dx2, dy2, x2, k_l, mh_l, p_l, q_l, rows):
    nb = (x2.shape[0] + rows - 1) // rows
    for b in prange(nb):
        _block_affine2(dx2, dy2, x2, b * rows, min(x2.shape[0], (b + 1) * rows), k_l, mh_l, p_l,
                       q_l)


_rows_affine2 = serial(_rows_affine2_par)  # the same driver on the calling thread


@njit
def _fwd_train_rows_stats(mean, var, invstd, coef, x, gamma, beta, eps, p1, p2):
    n, c_count, s_count = x.shape
    s1 = _combine(p1, c_count, s_count)
    s2 = _combine(p2, c_count, s_count)
    for c in range(c_count):
        _stats(c, s1[c], s2[c], np.float64(n * s_count), np.float64(x[0, c, 0]), mean, var,
               invstd, eps)
        _forward_coef(coef, c, mean, invstd, gamma, beta)


@njit
def _eval_coef(invstd, coef, gamma, beta, mean, var, eps):
    for c in range(mean.shape[0]):
        invstd[c] = 1.0 / np.sqrt(var[c] + eps)
        _forward_coef(coef, c, mean, invstd, gamma, beta)


@njit
def _bwd_rows_coef(dgamma, dbeta, coef, x, gamma, mean, invstd, training, p1, p2):
    n, c_count, s_count = x.shape
    s_dy = _combine(p1, c_count, s_count)
    s_dyx = _combine(p2, c_count, s_count)
    for c in range(c_count):
        dbeta[c] = s_dy[c]
        dgamma[c] = s_dyx[c] * invstd[c]
        _backward_coef(coef, c, np.float64(n * s_count), mean, invstd, gamma, s_dy[c], s_dyx[c],
                       training)


# ---- segment path (as csrc/batchnorm.c): x in memory order, (n, c) segments of S ----------------

@njit
def _seg_reduce(s1, s2, acc1, acc2, s_count):
    """s1[c] = sum of acc1[c*S : (c+1)*S] (s2 likewise), in order."""
    for c in range(s1.shape[0]):
        t1 = 0.0
        t2 = 0.0
        for t in range(c * s_count, (c + 1) * s_count):
            t1 += acc1[t]
            t2 += acc2[t]
        s1[c] = t1
        s2[c] = t2


@njit
def _seg_sums(s1, s2, x, k_l, lo, hi):
    """Per channel, over rows lo..hi-1: s1 = sum(x - k), s2 = sum((x - k)**2), float64.

    x is seen as rows of L = C*S (k_l: the shift of each of the L positions); 4 rows at a
    time are added as a tree into per-position float64 accumulators. The inner loop runs over
    L, contiguous and long, and vectorises (over a short segment of S it did not)."""
    n, c_count, s_count = x.shape
    x2 = x.reshape(n, c_count * s_count)
    length = x2.shape[1]
    acc1 = np.zeros(length)
    acc2 = np.zeros(length)
    i = lo
    while i + 4 <= hi:
        r0 = x2[i]
        r1 = x2[i + 1]
        r2 = x2[i + 2]
        r3 = x2[i + 3]
        for j in range(length):
            kk = k_l[j]
            d0 = np.float64(r0[j]) - kk
            d1 = np.float64(r1[j]) - kk
            d2 = np.float64(r2[j]) - kk
            d3 = np.float64(r3[j]) - kk
            acc1[j] += (d0 + d1) + (d2 + d3)
            acc2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        i += 4
    for r in range(i, hi):
        row = x2[r]
        for j in range(length):
            d = np.float64(row[j]) - k_l[j]
            acc1[j] += d
            acc2[j] += d * d
    _seg_reduce(s1, s2, acc1, acc2, s_count)


@njit
def _seg_grad_sums(s1, s2, dy, x, m_l, lo, hi):
    """Per channel, over rows lo..hi-1: s1 = sum(dy), s2 = sum(dy * (x - mean)), float64
    (m_l: the mean of each of the L = C*S positions); as _seg_sums."""
    n, c_count, s_count = x.shape
    x2 = x.reshape(n, c_count * s_count)
    g2 = dy.reshape(n, c_count * s_count)
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
            m = m_l[j]
            e0 = np.float64(g0[j])
            e1 = np.float64(g1[j])
            e2 = np.float64(g2_[j])
            e3 = np.float64(g3[j])
            acc1[j] += (e0 + e1) + (e2 + e3)
            acc2[j] += ((e0 * (np.float64(r0[j]) - m) + e1 * (np.float64(r1[j]) - m))
                        + (e2 * (np.float64(r2[j]) - m) + e3 * (np.float64(r3[j]) - m)))
        i += 4
    for r in range(i, hi):
        row = x2[r]
        grow = g2[r]
        for j in range(length):
            e = np.float64(grow[j])
            acc1[j] += e
            acc2[j] += e * (np.float64(row[j]) - m_l[j])
    _seg_reduce(s1, s2, acc1, acc2, s_count)


@njit
def _seg_apply(y, x, coef, lo, hi):
    """y = (x - mh) * a + b over rows lo..hi-1, coef = (mh, a, b) per channel (data dtype)."""
    for i in range(lo, hi):
        for c in range(x.shape[1]):
            mh = coef[0, c]
            a = coef[1, c]
            b = coef[2, c]
            xr = x[i, c]
            yr = y[i, c]
            for j in range(x.shape[2]):
                yr[j] = (xr[j] - mh) * a + b


@njit
def _seg_apply2(dx, dy, x, coef, lo, hi):
    """dx = k * dy + (x - mh) * p + q over rows lo..hi-1, coef = (k, mh, p, q) per channel."""
    for i in range(lo, hi):
        for c in range(x.shape[1]):
            k = coef[0, c]
            mh = coef[1, c]
            p = coef[2, c]
            q = coef[3, c]
            xr = x[i, c]
            gr = dy[i, c]
            dr = dx[i, c]
            for j in range(x.shape[2]):
                dr[j] = k * gr[j] + (xr[j] - mh) * p + q


@njit
def _seg_rows_per_block(row_length):
    """Rows per block: a multiple of 4 near SEG_BLOCK elements, fixed by the shape."""
    return max(4, SEG_BLOCK // max(1, row_length) // 4 * 4)


@njit
def _seg_finish_fwd(mean, var, invstd, coef, x, gamma, beta, eps, part, shift):
    n, c_count, s_count = x.shape
    for c in range(c_count):
        t1 = part[0, 0, c]
        t2 = part[0, 1, c]
        for b in range(1, part.shape[0]):
            t1 += part[b, 0, c]
            t2 += part[b, 1, c]
        _stats(c, t1, t2, np.float64(n * s_count), shift[c], mean, var, invstd, eps)
        _forward_coef(coef, c, mean, invstd, gamma, beta)


@njit
def _seg_finish_bwd(dgamma, dbeta, coef, x, gamma, mean, invstd, training, part):
    n, c_count, s_count = x.shape
    for c in range(c_count):
        t1 = part[0, 0, c]
        t2 = part[0, 1, c]
        for b in range(1, part.shape[0]):
            t1 += part[b, 0, c]
            t2 += part[b, 1, c]
        dbeta[c] = t1
        dgamma[c] = t2 * invstd[c]
        _backward_coef(coef, c, np.float64(n * s_count), mean, invstd, gamma, t1, t2, training)


@pjit
def _seg_fwd_train_par(y, mean, var, invstd, x, gamma, beta, eps):
    n, c_count, s_count = x.shape
    rb = _seg_rows_per_block(c_count * s_count)
    nb = (n + rb - 1) // rb
    shift = np.empty(c_count)
    for c in range(c_count):
        shift[c] = x[0, c, 0]
    shift_l = _expand(shift, s_count)
    part = np.empty((nb, 2, c_count))
    for b in prange(nb):
        _seg_sums(part[b, 0], part[b, 1], x, shift_l, b * rb, min(n, (b + 1) * rb))
    coef = np.empty((3, c_count), x.dtype)
    _seg_finish_fwd(mean, var, invstd, coef, x, gamma, beta, eps, part, shift)
    for b in prange(nb):
        _seg_apply(y, x, coef, b * rb, min(n, (b + 1) * rb))


_seg_fwd_train = serial(_seg_fwd_train_par)  # the same driver on the calling thread


@pjit
def _seg_fwd_eval_par(y, invstd, x, gamma, beta, mean, var, eps):
    n = x.shape[0]
    rb = _seg_rows_per_block(x.shape[1] * x.shape[2])
    coef = np.empty((3, x.shape[1]), x.dtype)
    _eval_coef(invstd, coef, gamma, beta, mean, var, eps)
    for b in prange((n + rb - 1) // rb):
        _seg_apply(y, x, coef, b * rb, min(n, (b + 1) * rb))


_seg_fwd_eval = serial(_seg_fwd_eval_par)  # the same driver on the calling thread


@pjit
def _seg_backward_par(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training):
    n, c_count, s_count = x.shape
    rb = _seg_rows_per_block(c_count * s_count)
    nb = (n + rb - 1) // rb
    mean_l = _expand(mean, s_count)
    part = np.empty((nb, 2, c_count))
    for b in prange(nb):
        _seg_grad_sums(part[b, 0], part[b, 1], dy, x, mean_l, b * rb, min(n, (b + 1) * rb))
    coef = np.empty((4, c_count), x.dtype)
    _seg_finish_bwd(dgamma, dbeta, coef, x, gamma, mean, invstd, training, part)
    for b in prange(nb):
        _seg_apply2(dx, dy, x, coef, b * rb, min(n, (b + 1) * rb))


_seg_backward = serial(_seg_backward_par)  # the same driver on the calling thread


# ---- the kernels (contract of fastinit.reference.batchnorm) -------------------------------------

def _parallel(x):
    return x.size >= _config.PARALLEL_MIN_ELEMENTS


def _stream(out):
    """Non-temporal stores for outputs of STREAM_MIN_BYTES or more (larger than the caches)."""
    return out.nbytes >= STREAM_MIN_BYTES


def _rows_per_block(length):
    return max(1, BLOCK_ELEMENTS // max(1, length))


def _shift_row(x):
    """Per-element shift of the row path: x[0, c, 0] repeated S times."""
    return _expand(np.ascontiguousarray(x[0, :, 0]).astype(np.float64), x.shape[2])


def _segment(x):
    """The segment path applies (as csrc/batchnorm.c)."""
    return x.shape[2] >= SEG_S_MIN and x.nbytes < STREAM_MIN_BYTES


def batch_norm_forward_train(y, mean, var, invstd, x, gamma, beta, eps):
    if _segment(x):
        (_seg_fwd_train_par if x.size >= SEG_PARALLEL_MIN else _seg_fwd_train)(
            y, mean, var, invstd, x, gamma, beta, eps)
        return
    n, c_count, s_count = x.shape
    coef = np.empty((3, c_count), x.dtype)
    par = _parallel(x)
    if s_count >= SPATIAL_MIN:
        (_fwd_train_channels_par if par else _fwd_train_channels)(
            y, mean, var, invstd, coef, x, gamma, beta, eps, _stream(y))
        return
    x2 = x.reshape(n, c_count * s_count)
    rows = _rows_per_block(x2.shape[1])
    nb = (n + rows - 1) // rows
    p1 = np.empty((nb, x2.shape[1]))
    p2 = np.empty((nb, x2.shape[1]))
    (_rows_sums_par if par and nb > 1 else _rows_sums)(x2, _shift_row(x), p1, p2, rows)
    _fwd_train_rows_stats(mean, var, invstd, coef, x, gamma, beta, eps, p1, p2)
    (_rows_affine_par if par else _rows_affine)(
        y.reshape(x2.shape), x2, _expand(coef[0], s_count), _expand(coef[1], s_count),
        _expand(coef[2], s_count), rows)


def batch_norm_forward_eval(y, invstd, x, gamma, beta, mean, var, eps):
    if _segment(x):
        (_seg_fwd_eval_par if x.size >= SEG_PARALLEL_MIN else _seg_fwd_eval)(
            y, invstd, x, gamma, beta, mean, var, eps)
        return
    n, c_count, s_count = x.shape
    coef = np.empty((3, c_count), x.dtype)
    par = _parallel(x)
    if s_count >= SPATIAL_MIN:
        (_fwd_eval_channels_par if par else _fwd_eval_channels)(
            y, invstd, coef, x, gamma, beta, mean, var, eps, _stream(y))
        return
    _eval_coef(invstd, coef, gamma, beta, mean, var, eps)
    x2 = x.reshape(n, c_count * s_count)
    (_rows_affine_par if par else _rows_affine)(
        y.reshape(x2.shape), x2, _expand(coef[0], s_count), _expand(coef[1], s_count),
        _expand(coef[2], s_count), _rows_per_block(x2.shape[1]))


def _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training):
    if _segment(x):
        (_seg_backward_par if x.size >= SEG_PARALLEL_MIN else _seg_backward)(
            dx, dgamma, dbeta, dy, x, gamma, mean, invstd, training)
        return
    n, c_count, s_count = x.shape
    coef = np.empty((4, c_count), x.dtype)
    par = _parallel(x)
    if s_count >= SPATIAL_MIN:
        (_bwd_channels_par if par else _bwd_channels)(
            dx, dgamma, dbeta, coef, dy, x, gamma, mean, invstd, training, _stream(dx))
        return
    x2 = x.reshape(n, c_count * s_count)
    dy2 = dy.reshape(x2.shape)
    rows = _rows_per_block(x2.shape[1])
    nb = (n + rows - 1) // rows
    p1 = np.empty((nb, x2.shape[1]))
    p2 = np.empty((nb, x2.shape[1]))
    (_rows_grad_sums_par if par and nb > 1 else _rows_grad_sums)(
        dy2, x2, _expand(mean, s_count), p1, p2, rows)
    _bwd_rows_coef(dgamma, dbeta, coef, x, gamma, mean, invstd, training, p1, p2)
    (_rows_affine2_par if par else _rows_affine2)(
        dx.reshape(x2.shape), dy2, x2, _expand(coef[0], s_count), _expand(coef[1], s_count),
        _expand(coef[2], s_count), _expand(coef[3], s_count), rows)


def batch_norm_backward_train(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, True)


def batch_norm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    _backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, False)
