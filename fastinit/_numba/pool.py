"""Numba kernels of 2-D max and average pooling: parallel over (N*C) planes.

Same contract as :mod:`fastinit.reference.pool`: x (P, H, W), y (P, OH, OW).
"""
import numpy as np
from numba import prange

from .._config import njit, pjit


@njit
def _max_plane(y, x, kh, kw, sh, sw, ph, pw, where):
    h, w = x.shape
    oh, ow = y.shape
    for a in range(oh):
        r0 = a * sh - ph
        for b in range(ow):
            c0 = b * sw - pw
            best = -np.inf
            at = 0
            for i in range(kh):
                r = r0 + i
                if r < 0 or r >= h:
                    continue
                for j in range(kw):
                    c = c0 + j
                    if c < 0 or c >= w:
                        continue
                    v = x[r, c]
                    if v > best:
                        best = v
                        at = r * w + c
            y[a, b] = best
            where[a, b] = at


@pjit
def _max_parallel(y, x, kh, kw, sh, sw, ph, pw):
    for p in prange(x.shape[0]):
        where = np.empty(y.shape[1:], np.int64)
        _max_plane(y[p], x[p], kh, kw, sh, sw, ph, pw, where)


@pjit
def _max_backward_parallel(dx, dy, x, kh, kw, sh, sw, ph, pw):
    for p in prange(x.shape[0]):
        tmp = np.empty(dy.shape[1:], x.dtype)
        where = np.empty(dy.shape[1:], np.int64)
        _max_plane(tmp, x[p], kh, kw, sh, sw, ph, pw, where)
        flat = dx[p].reshape(-1)
        flat[:] = 0
        g = dy[p]
        for a in range(g.shape[0]):
            for b in range(g.shape[1]):
                flat[where[a, b]] += g[a, b]


@njit
def _count(r0, c0, h, w, kh, kw, ph, pw, include_pad):
    if include_pad:
        return (min(r0 + kh, h + ph) - r0) * (min(c0 + kw, w + pw) - c0)
    return (min(r0 + kh, h) - max(r0, 0)) * (min(c0 + kw, w) - max(c0, 0))


@pjit
def _avg_parallel(y, x, kh, kw, sh, sw, ph, pw, include_pad):
    h, w = x.shape[1:]
    for p in prange(x.shape[0]):
        for a in range(y.shape[1]):
            r0 = a * sh - ph
            for b in range(y.shape[2]):
                c0 = b * sw - pw
                s = 0.0
                for r in range(max(r0, 0), min(r0 + kh, h)):
                    for c in range(max(c0, 0), min(c0 + kw, w)):
                        s += x[p, r, c]
                y[p, a, b] = s / _count(r0, c0, h, w, kh, kw, ph, pw, include_pad)


@pjit
def _avg_backward_parallel(dx, dy, kh, kw, sh, sw, ph, pw, include_pad):
    h, w = dx.shape[1:]
    for p in prange(dx.shape[0]):
        dx[p] = 0
        for a in range(dy.shape[1]):
            r0 = a * sh - ph
            for b in range(dy.shape[2]):
                c0 = b * sw - pw
                g = dy[p, a, b] / _count(r0, c0, h, w, kh, kw, ph, pw, include_pad)
                for r in range(max(r0, 0), min(r0 + kh, h)):
                    for c in range(max(c0, 0), min(c0 + kw, w)):
                        dx[p, r, c] += g


def max_pool2d(y, x, kh, kw, sh, sw, ph, pw):
    _max_parallel(y, x, kh, kw, sh, sw, ph, pw)


def max_pool2d_backward(dx, dy, x, kh, kw, sh, sw, ph, pw):
    _max_backward_parallel(dx, dy, x, kh, kw, sh, sw, ph, pw)


def avg_pool2d(y, x, kh, kw, sh, sw, ph, pw, count_include_pad):
    _avg_parallel(y, x, kh, kw, sh, sw, ph, pw, bool(count_include_pad))


def avg_pool2d_backward(dx, dy, kh, kw, sh, sw, ph, pw, count_include_pad):
    _avg_backward_parallel(dx, dy, kh, kw, sh, sw, ph, pw, bool(count_include_pad))
