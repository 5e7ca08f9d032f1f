"""Data sets: scikit-learn's handwritten digits (real data, shipped with the package), MNIST
from IDX files the user already has, and small 2-D sets generated from a seed. Nothing is
downloaded.
"""
import gzip
import math
import os

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


#: the four files of MNIST (and of Fashion-MNIST, which has the same format), in the order
#: mnist() returns them; each may also be gzipped (name + ".gz")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")

# IDX: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
# uint32 and the data in C order. MNIST uses only type 0x08 (unsigned bytes).
_IDX_UBYTE = 0x08


def mnist_paths(path):
    """The four MNIST files in folder ``path`` (each plain or gzipped; a plain one wins);
    raises FileNotFoundError naming every file that is missing."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"path: {path!r} is not a folder (it must hold the MNIST files "
                                f"{', '.join(MNIST_FILES)}, each plain or .gz)")
    found, missing = [], []
    for name in MNIST_FILES:
        for candidate in (name, name + ".gz"):
            full = os.path.join(path, candidate)
            if os.path.isfile(full):
                found.append(full)
                break
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(f"path: {path!r} lacks the MNIST file(s) {', '.join(missing)} "
                                f"(plain or .gz); fastinit downloads nothing")
    return found


def read_idx(filename):
    """An IDX file of unsigned bytes (plain or gzipped) as a uint8 array of its shape."""
    opener = gzip.open if filename.endswith(".gz") else open
    try:
        with opener(filename, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:   # a truncated or corrupt gzip stream
        raise ValueError(f"{filename}: cannot read it ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{filename}: not an IDX file (it must start with two zero bytes)")
    if raw[2] != _IDX_UBYTE:
        raise ValueError(f"{filename}: IDX type 0x{raw[2]:02x}, expected 0x08 (unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{filename}: IDX header cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(shape)
    if len(raw) - header != size:
        raise ValueError(f"{filename}: the header says {shape} = {size} bytes of data, the file "
                         f"holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def mnist(path, dtype=np.float32, image=False):
    """MNIST from the folder ``path``: the standard IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    plain or gzipped), as the user has them: nothing is downloaded.

    Returns (x_train, y_train, x_test, y_test), pixels scaled to [0, 1]; ``image=True`` gives
    (N, 1, H, W) arrays for convolutions, else (N, H*W). The split is the files' own
    (60,000 / 10,000 for MNIST).
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dt}")
    arrays = [read_idx(f) for f in mnist_paths(path)]
    xtr, ytr, xte, yte = arrays
    for x, y, which in ((xtr, ytr, "train"), (xte, yte, "t10k")):
        if x.ndim != 3:
            raise ValueError(f"{which} images: expected 3 dimensions (N, H, W), got {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{which} labels: expected {len(x)} labels (one per image), got "
                             f"shape {y.shape}")
        if y.size and y.max() > 9:
            raise ValueError(f"{which} labels: expected digits 0-9, found {int(y.max())}")
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(f"train images are {xtr.shape[1:]}, t10k images {xte.shape[1:]}")

    def scale(x):
        x = x.astype(dt) / dt.type(255)
        return x[:, None] if image else x.reshape(len(x), -1)

    return scale(xtr), ytr.astype(np.int64), scale(xte), yte.astype(np.int64)
