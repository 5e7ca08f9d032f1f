"""NumPy reference of 2-D max and average pooling (the oracle).

x is viewed as (P, H, W) planes (P = N*C), y as (P, OH, OW). Windows start at
(oh*sh - ph, ow*sw - pw); padded positions never win a max and count for the average only
when ``count_include_pad`` (PyTorch's default). The max takes the first maximum in row-major
window order, as PyTorch does; its backward sends dy there (overlapping windows add up).
"""
import numpy as np


def _windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw):
    """For each window offset (i, j): rows and cols it reads, and where they are in bounds."""
    for i in range(kh):
        rows = np.arange(oh) * sh - ph + i
        for j in range(kw):
            cols = np.arange(ow) * sw - pw + j
            valid = (rows[:, None] >= 0) & (rows[:, None] < h) & (cols[None, :] >= 0) & (cols[None, :] < w)
            yield i, j, np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1), valid


def _argmax(x, oh, ow, kh, kw, sh, sw, ph, pw):
    p, h, w = x.shape
    best = np.full((p, oh, ow), -np.inf, x.dtype)
    where = np.zeros((p, oh, ow), np.int64)
    for i, j, rows, cols, valid in _windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw):
        v = np.where(valid, x[:, rows[:, None], cols[None, :]], -np.inf)
        better = v > best  # strict: the first maximum wins
        best = np.where(better, v, best)
        where = np.where(better, rows[:, None] * w + cols[None, :], where)
    return best, where


def max_pool2d(y, x, kh, kw, sh, sw, ph, pw):
    best, _ = _argmax(x, y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw)
    y[...] = best


def max_pool2d_backward(dx, dy, x, kh, kw, sh, sw, ph, pw):
    p, h, w = x.shape
    _, where = _argmax(x, dy.shape[1], dy.shape[2], kh, kw, sh, sw, ph, pw)
    flat = np.zeros((p, h * w), dx.dtype)
    for plane in range(p):
        np.add.at(flat[plane], where[plane].ravel(), dy[plane].ravel())
    dx[...] = flat.reshape(p, h, w)


def _counts(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad):
    if count_include_pad:
        # PyTorch counts padded positions but not positions past the padding
        rows = np.arange(oh) * sh - ph
        cols = np.arange(ow) * sw - pw
        rh = np.minimum(rows + kh, h + ph) - rows
        rw = np.minimum(cols + kw, w + pw) - cols
        return (rh[:, None] * rw[None, :]).astype(np.float64)
    n = np.zeros((oh, ow))
    for _, _, _, _, valid in _windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw):
        n += valid
    return n


def avg_pool2d(y, x, kh, kw, sh, sw, ph, pw, count_include_pad):
    p, h, w = x.shape
    oh, ow = y.shape[1:]
    total = np.zeros((p, oh, ow), np.float64)
    for _, _, rows, cols, valid in _windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw):
        total += np.where(valid, x[:, rows[:, None], cols[None, :]], 0.0)
    y[...] = total / _counts(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad)


def avg_pool2d_backward(dx, dy, kh, kw, sh, sw, ph, pw, count_include_pad):
    p, h, w = dx.shape
    oh, ow = dy.shape[1:]
    g = dy / _counts(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad)
    acc = np.zeros((p, h, w), np.float64)
    for _, _, rows, cols, valid in _windows(h, w, oh, ow, kh, kw, sh, sw, ph, pw):
        for a in range(oh):
            for b in range(ow):
                if valid[a, b]:
                    acc[:, rows[a], cols[b]] += g[:, a, b]
    dx[...] = acc
