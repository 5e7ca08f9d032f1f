"""Data sets: scikit-learn's handwritten digits (real data, shipped with the package) and small
2-D sets generated from a seed. Nothing is downloaded.
"""
import math

import numpy as np

from ..rng import Stream


def digits(test_fraction=0.25, seed=0, dtype=np.float32, image=False):
    """The 1,797 8x8 digits of scikit-learn (UCI optdigits test set), scaled to [0, 1].

    Returns (x_train, y_train, x_test, y_test); a fixed split (stratified, from ``seed``).
    ``image=True`` gives (N, 1, 8, 8) arrays for convolutions, else (N, 64).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - sklearn is in the lab extra
        raise ImportError('the digits need scikit-learn: pip install "fastinit[lab]" '
                          "(or pip install scikit-learn)") from exc
    d = load_digits()
    x = (d.data / 16.0).astype(dtype)
    y = d.target.astype(np.int64)
    order = np.argsort(Stream(seed).uniform(len(y), dtype=np.float64), kind="stable")
    test = np.zeros(len(y), bool)
    for c in range(10):
        idx = order[y[order] == c]
        test[idx[: int(round(len(idx) * test_fraction))]] = True
    xtr, ytr, xte, yte = x[~test], y[~test], x[test], y[test]
    if image:
        xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    return xtr, ytr, xte, yte


def _two_d(kind, n, noise, seed, dtype):
    s = Stream(seed)
    t = s.uniform(n, dtype=np.float64)
    labels = (s.uniform(n, dtype=np.float64) < 0.5).astype(np.int64)
    eps = s.normal((n, 2), 0.0, noise, dtype=np.float64)
    if kind == "moons":
        a = math.pi * t
        x = np.where(labels[:, None] == 0, np.c_[np.cos(a), np.sin(a)],
                     np.c_[1 - np.cos(a), 0.5 - np.sin(a)])
    elif kind == "circles":
        a = 2 * math.pi * t
        r = np.where(labels == 0, 1.0, 0.5)
        x = np.c_[r * np.cos(a), r * np.sin(a)]
    elif kind == "spirals":
        r = t * 3.0
        a = t * 3.0 * math.pi + labels * math.pi
        x = np.c_[r * np.cos(a), r * np.sin(a)] / 3.0
    elif kind == "xor":
        x = s.uniform((n, 2), -1.0, 1.0, dtype=np.float64)
        labels = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    else:
        raise ValueError(f"kind must be one of moons, circles, spirals, xor; got {kind!r}")
    return (x + eps).astype(dtype), labels


def toy(kind="moons", n=512, noise=0.1, seed=0, dtype=np.float32):
    """A 2-D two-class set: "moons", "circles", "spirals" or "xor" -> (x (n, 2), labels (n,))."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    return _two_d(kind, n, noise, seed, dtype)
