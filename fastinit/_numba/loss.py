"""Numba kernels of the losses (contract of :mod:`fastinit.reference.loss`).

Softmax cross-entropy runs over fixed blocks of ROWS rows (in parallel for large inputs), each
row: max, exp(z - max) into dlogits (float32: fastinit's vectorisable exp), the sum in float64,
then scaling; row losses are summed per block, blocks in order. MSE sums squares in float64
over fixed chunks, combined in order. So both values are independent of the thread count.
"""
import math

import numpy as np
from numba import prange

from .. import _config
from .._config import njit, pjit, serial
from .activations import exp_, like

ROWS = 64
CHUNK = 1 << 14


@njit
def _ce_row(d, z, label, inv_n):
    k = z.shape[0]
    m = z[0]
    for j in range(1, k):
        m = z[j] if z[j] > m else m
    for j in range(k):
        d[j] = exp_(z[j] - m)
    s = 0.0
    for j in range(k):
        s += np.float64(d[j])
    scale = like(inv_n, 1.0 / s) * inv_n
    for j in range(k):
        d[j] = d[j] * scale
    d[label] -= inv_n
    return math.log(s) - (np.float64(z[label]) - np.float64(m))


@pjit
def _ce_par(part, dlogits, logits, labels, inv_n):
    n = logits.shape[0]
    for b in prange(part.shape[0]):
        acc = 0.0
        for i in range(b * ROWS, min(n, (b + 1) * ROWS)):
            acc += _ce_row(dlogits[i], logits[i], labels[i], inv_n)
        part[b] = acc


_ce = serial(_ce_par)  # the same driver on the calling thread


@pjit
def _mse_par(part, dpred, pred, target, two_n):
    n = pred.shape[0]
    for c in prange(part.shape[0]):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        p = pred[lo:hi]
        t = target[lo:hi]
        d = dpred[lo:hi]
        for j in range(hi - lo):
            d[j] = (p[j] - t[j]) * two_n
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        m = (hi - lo) - (hi - lo) % 4
        for j in range(0, m, 4):
            d0 = np.float64(p[j]) - np.float64(t[j])
            d1 = np.float64(p[j + 1]) - np.float64(t[j + 1])
            d2 = np.float64(p[j + 2]) - np.float64(t[j + 2])
            d3 = np.float64(p[j + 3]) - np.float64(t[j + 3])
            a0 += d0 * d0
            a1 += d1 * d1
            a2 += d2 * d2
            a3 += d3 * d3
        for j in range(m, hi - lo):
            d0 = np.float64(p[j]) - np.float64(t[j])
            a0 += d0 * d0
        part[c] = (a0 + a1) + (a2 + a3)


_mse = serial(_mse_par)  # the same driver on the calling thread


@njit
def _ordered_sum(part):
    total = 0.0
    for b in range(part.shape[0]):
        total += part[b]
    return total


def softmax_cross_entropy(dlogits, logits, labels):
    n = logits.shape[0]
    part = np.empty((n + ROWS - 1) // ROWS)
    inv_n = logits.dtype.type(1.0 / n)
    run = _ce_par if logits.size >= _config.PARALLEL_MIN_ELEMENTS else _ce
    run(part, dlogits, logits, labels, inv_n)
    return _ordered_sum(part) / n


def mse(dpred, pred, target):
    n = pred.size
    part = np.empty((n + CHUNK - 1) // CHUNK)
    two_n = pred.dtype.type(2.0 / n)
    run = _mse_par if n >= _config.PARALLEL_MIN_ELEMENTS else _mse
    run(part, dpred, pred, target, two_n)
    return _ordered_sum(part) / n
