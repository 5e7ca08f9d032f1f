"""Arrays whose float32 dtype equals np.float32 without being that object (an unpickled array,
as multiprocessing hands them over; a dtype with metadata) give the same results as ordinary
ones on every backend. A kernel chosen by the dtype object's identity would run the float64
code over a float32 buffer: twice its bytes, read and written past its end."""
import pickle

import numpy as np
import pytest

import fastinit as fi

F32 = np.dtype(np.float32)


def odd_dtype_copies(a, how):
    """a's values in an array whose dtype == a.dtype but is another object."""
    if how == "pickled":
        b = pickle.loads(pickle.dumps(a))
    else:
        b = np.empty(a.shape, np.dtype(a.dtype, metadata={"why": "test"}))
        b[...] = a
    assert b.dtype == a.dtype and b.dtype is not a.dtype
    return b


def ops(r):
    x = r.standard_normal((64, 40)).astype(np.float32)
    w = r.standard_normal((24, 40)).astype(np.float32)
    b = r.standard_normal(24).astype(np.float32)
    dy = r.standard_normal((64, 24)).astype(np.float32)
    img = r.standard_normal((2, 3, 9, 9)).astype(np.float32)
    k = r.standard_normal((4, 3, 3, 3)).astype(np.float32)
    labels = r.integers(0, 24, 64)
    return {
        "relu": (lambda x: fi.relu(x), (x,)),
        "tanh_backward": (lambda dy, x: fi.tanh_backward(dy, x), (x, x)),
        "matmul": (lambda a, b: fi.matmul(a, b), (x, w.T.copy())),
        "linear": (lambda x, w, b: fi.linear(x, w, b), (x, w, b)),
        "linear_backward": (lambda dy, x, w: fi.linear_backward(dy, x, w), (dy, x, w)),
        "softmax_cross_entropy": (lambda z: fi.softmax_cross_entropy(z, labels), (dy,)),
        "conv2d": (lambda x, k: fi.conv2d(x, k, padding=1), (img, k)),
        "max_pool2d": (lambda x: fi.max_pool2d(x, 2), (img,)),
    }


@pytest.mark.parametrize("how", ["pickled", "metadata"])
@pytest.mark.parametrize("name", list(ops(np.random.default_rng(0))))
def test_equal_but_distinct_float32_dtype(fast_backend, name, how):
    fn, args = ops(np.random.default_rng(1))[name]
    with fi.backends.use(fast_backend):
        want = fn(*args)
        got = fn(*(odd_dtype_copies(a, how) for a in args))
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
        if isinstance(w, np.ndarray):
            assert g.dtype == F32
