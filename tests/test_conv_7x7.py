"""Winograd F(2x2,7x7) for 7x7 stride-1 convolutions on both fast backends (forward, and the
backward-data pass run as a forward with flipped, transposed weights): against the NumPy
reference on ragged shapes, float32 error against float64, the C backend's portable and AVX2
builds, and which layers take it (the others run on the general engine).

Tolerance as tests/test_conv.py: the elementwise bound 2 n eps * (the same convolution on
|x|, |w| and |b|), times 8 for Winograd.
"""
import numpy as np
import pytest

import fastinit as fi
from fastinit import _c
from fastinit._ckernels import conv as c_conv
from fastinit._numba import conv3x3 as numba_wino
from fastinit.ops import conv as conv_ops

needs_c = pytest.mark.skipif(_c.lib is None, reason="C backend unavailable")

EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps),
       np.dtype(np.float64): float(np.finfo(np.float64).eps)}

# (x shape, K, padding): odd and even sizes, ragged 2x2 tiles at the bottom/right, C and K not
# multiples of the vector width, one image, asymmetric and "valid" padding, tiny images (blocks
# of whole images), K within one vector (the tall GEMM tile)
SHAPES = [
    ((2, 64, 12, 12), 64, 3),
    ((1, 17, 9, 13), 33, 3),
    ((3, 20, 11, 7), 18, 2),
    ((2, 16, 15, 10), 16, ((3, 1), (0, 3))),
    ((1, 24, 14, 17), 40, "valid"),
    ((5, 16, 4, 4), 40, 3),
    ((2, 19, 1, 3), 16, 3),
    ((3, 32, 8, 5), 7 + 9, ((2, 3), (3, 3))),
]


def sid(case):
    x, k, p = case
    return f"x{'x'.join(map(str, x))}-k{k}-p{p}".replace(" ", "")


def make(x_shape, k, dtype, seed=0):
    r = np.random.default_rng([7, seed, *x_shape, k])
    C = x_shape[1]
    x = r.standard_normal(x_shape)
    w = r.standard_normal((k, C, 7, 7)) * np.sqrt(2.0 / (C * 49))
    b = r.standard_normal(k)
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


def assert_close(got, want, bound, n, dtype, factor=8.0, what=""):
    assert got.shape == want.shape and got.dtype == np.dtype(dtype), what
    tol = factor * 2 * n * EPS[np.dtype(dtype)] * bound + np.finfo(dtype).tiny * 16
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert (err <= tol).all(), f"{what}: max excess {np.max(err - tol):.3g}"


def check_forward_and_dx(x, w, b, padding, backend="c"):
    dt = x.dtype
    xd, wd, bd = (a.astype(np.float64) for a in (x, w, b))
    want = fi.conv2d(xd, wd, bd, padding=padding, backend="numpy")
    bound = fi.conv2d(np.abs(xd), np.abs(wd), np.abs(bd), padding=padding, backend="numpy")
    got = fi.conv2d(x, w, b, padding=padding, backend=backend)
    n = x.shape[1] * 49 + 1
    assert_close(got, want, bound, n, dt, what="y")
    dy = np.random.default_rng(1).standard_normal(want.shape)
    want_dx, want_dw, want_db = fi.conv2d_backward(dy, xd, wd, padding=padding, backend="numpy")
    bound_dx, _, _ = fi.conv2d_backward(np.abs(dy), np.abs(xd), np.abs(wd), padding=padding,
                                        need=("dx",), backend="numpy")
    dx, dw, db = fi.conv2d_backward(dy.astype(dt), x, w, padding=padding, backend=backend)
    assert_close(dx, want_dx, bound_dx, w.shape[0] * 49, dt, what="dx")
    # dw, db run on the general engine: plain agreement
    np.testing.assert_allclose(dw, want_dw, rtol=0, atol=1e-4 * np.abs(want_dw).max()
                               if dt == np.float32 else 1e-11 * np.abs(want_dw).max())
    np.testing.assert_allclose(db, want_db, rtol=1e-5 if dt == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", SHAPES, ids=sid)
def test_matches_reference(fast_backend, case, dtype):
    x_shape, k, padding = case
    x, w, b = make(x_shape, k, dtype)
    plan = conv_ops.plan(x, w, padding=padding, backend=fast_backend)
    assert plan.path == "winograd" and "F(2x2,7x7)" in plan.reason, plan
    check_forward_and_dx(x, w, b, padding, fast_backend)


@pytest.mark.parametrize("backend, module", [
    pytest.param("c", c_conv._wino, marks=needs_c), ("numba", numba_wino)])
def test_path_is_taken(monkeypatch, backend, module):
    """conv2d and the dx pass really call the Winograd kernel (the plan is not enough)."""
    calls = []
    real = module._run

    def spy(*args):
        calls.append(args[2].shape)
        return real(*args)

    monkeypatch.setattr(module, "_run", spy)
    x, w, b = make((2, 16, 9, 9), 16, np.float32)
    fi.conv2d(x, w, b, padding=3, backend=backend)
    fi.conv2d_backward(np.ones((2, 16, 9, 9), np.float32), x, w, padding=3, need=("dx",),
                       backend=backend)
    assert calls == [(16, 16, 7, 7), (16, 16, 7, 7)]


@pytest.mark.parametrize("kw", [dict(stride=2, padding=3), dict(dilation=2, padding=6),
                                dict(groups=2, padding=3), dict(padding=3, c=8),
                                dict(padding=3, k=8)],
                         ids=["stride2", "dilation2", "groups2", "C8", "K8"])
def test_falls_back_where_it_does_not_apply(fast_backend, kw):
    """Strided, dilated, grouped and narrow 7x7 layers run (correctly) on the general engine."""
    kw = dict(kw)
    C, K = kw.pop("c", 32), kw.pop("k", 32)
    g = kw.get("groups", 1)
    r = np.random.default_rng(3)
    x = r.standard_normal((2, C, 13, 11)).astype(np.float32)
    w = r.standard_normal((K, C // g, 7, 7)).astype(np.float32) * 0.05
    assert conv_ops.plan(x, w, backend=fast_backend, **kw).path != "winograd"
    assert conv_ops.plan(x, w, backend=fast_backend, kind="backward_data", **kw).path != "winograd"
    want = fi.conv2d(x.astype(np.float64), w.astype(np.float64), backend="numpy", **kw)
    got = fi.conv2d(x, w, backend=fast_backend, **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_backward_data_needs_padding_within_the_kernel(fast_backend):
    """dx runs as a forward padded by 6 - top / 6 - left: more than 6 leaves it to the general
    engine."""
    x, w, b = make((1, 16, 4, 4), 16, np.float32)
    assert conv_ops.plan(x, w, padding=6, backend=fast_backend).path == "winograd"
    assert conv_ops.plan(x, w, padding=7, kind="backward_data",
                         backend=fast_backend).path != "winograd"
    check_forward_and_dx(x, w, b, 7, fast_backend)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_winograd_error(fast_backend, dt):
    """F(2x2,7x7) y and dx against a float64 reference: max error / max |result|, the measure
    of tests/test_conv.py::test_winograd_error (3x3, 5x5), with the same limits. Measured, both
    backends alike: float32 y 4.8e-6, dx 6.0e-6 (3x3 and 5x5: 4e-6 - 5e-6; the general engine:
    6e-7); float64 about 1e-14."""
    r = np.random.default_rng([11, 7])
    x = r.standard_normal((4, 64, 16, 16))
    w = r.standard_normal((64, 64, 7, 7)) * np.sqrt(2 / (64 * 49))
    dy = r.standard_normal((4, 64, 16, 16))
    assert "F(2x2,7x7)" in conv_ops.plan(x, w, padding=3, dtype=dt, backend=fast_backend).reason
    want = fi.conv2d(x, w, padding=3, backend="numpy")
    want_dx, _, _ = fi.conv2d_backward(dy, x, w, padding=3, need=("dx",), backend="numpy")
    got = fi.conv2d(x.astype(dt), w.astype(dt), padding=3, backend=fast_backend)
    got_dx, _, _ = fi.conv2d_backward(dy.astype(dt), x.astype(dt), w.astype(dt), padding=3,
                                      need=("dx",), backend=fast_backend)
    errs = [np.abs(g - wt).max() / np.abs(wt).max() for g, wt in ((got, want), (got_dx, want_dx))]
    limit = 1e-5 if dt == np.float32 else 1e-13
    assert max(errs) < limit, errs


@needs_c
@pytest.mark.parametrize("path", ["portable", "avx2"])
def test_vector_paths(path):
    """The portable and AVX2 builds of the 7x7 kernels (_c.isa_cap caps the ISA)."""
    with _c.isa_cap(path) as name:   # a cap: AVX2 stays portable on a portable build
        assert name == "portable" or (path == "avx2" and name == "avx2")
        for case, dtype in ((SHAPES[0], np.float32), (SHAPES[1], np.float32),
                            (SHAPES[2], np.float64), (SHAPES[5], np.float32),
                            (SHAPES[6], np.float64)):
            x_shape, k, padding = case
            x, w, b = make(x_shape, k, dtype, seed=1 if path == "portable" else 2)
            plan = conv_ops.plan(x, w, padding=padding, backend="c")
            assert plan.path == "winograd" and "F(2x2,7x7)" in plan.reason, plan
            check_forward_and_dx(x, w, b, padding)
