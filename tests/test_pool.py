"""Max and average pooling: every backend against the reference, the reference against
PyTorch (forward and autograd backward), finite differences, bad input."""
import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastinit import backends
from fastinit.ops import pool
from conftest import c_builds

CASES = [((2, 3, 8, 8), 2, None, 0), ((1, 2, 7, 9), 3, 2, 1), ((3, 1, 5, 6), (2, 3), (1, 2), (1, 0)),
         ((2, 4, 12, 12), 3, 1, 1), ((1, 1, 1, 1), 1, 1, 0)]


def _torch(x, dy, kind, k, s, p, include=True):
    t = torch.tensor(x, requires_grad=True)
    if kind == "max":
        y = F.max_pool2d(t, k, s, p)
    else:
        y = F.avg_pool2d(t, k, s, p, count_include_pad=include)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("shape,k,s,p", CASES)
@pytest.mark.parametrize("kind,include", [("max", True), ("avg", True), ("avg", False)])
def test_reference_matches_torch(shape, k, s, p, kind, include):
    r = np.random.default_rng(0)
    x = r.standard_normal(shape)
    oshape = pool.pool2d_output_shape(shape, k, s, p)
    dy = r.standard_normal(oshape)
    ty, tdx = _torch(x, dy, kind, k, s, p, include)
    if kind == "max":
        y = pool.max_pool2d(x, k, s, p, backend="numpy")
        dx = pool.max_pool2d_backward(dy, x, k, s, p, backend="numpy")
    else:
        y = pool.avg_pool2d(x, k, s, p, include, backend="numpy")
        dx = pool.avg_pool2d_backward(dy, x, k, s, p, include, backend="numpy")
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,k,s,p", CASES + [((4, 16, 64, 64), 2, 2, 0)])
@pytest.mark.parametrize("kind,include", [("max", True), ("avg", True), ("avg", False)])
def test_backends_match_reference(fast_backend, dtype, shape, k, s, p, kind, include):
    r = np.random.default_rng(1)
    x = r.standard_normal(shape).astype(dtype)
    dy = r.standard_normal(pool.pool2d_output_shape(shape, k, s, p)).astype(dtype)
    x0, dy0 = x.copy(), dy.copy()
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    if kind == "max":
        f = lambda b: (pool.max_pool2d(x, k, s, p, backend=b),
                       pool.max_pool2d_backward(dy, x, k, s, p, backend=b))
    else:
        f = lambda b: (pool.avg_pool2d(x, k, s, p, include, backend=b),
                       pool.avg_pool2d_backward(dy, x, k, s, p, include, backend=b))
    (y, dx), (ry, rdx) = f(fast_backend), f("numpy")
    np.testing.assert_allclose(y, ry, **tol)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_avg_pool_finite_differences():
    r = np.random.default_rng(2)
    x = r.standard_normal((1, 2, 5, 5))
    dy = r.standard_normal(pool.pool2d_output_shape(x.shape, 3, 2, 1))
    dx = pool.avg_pool2d_backward(dy, x, 3, 2, 1, backend="numpy")
    num = np.zeros_like(x)
    h = 1e-6
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = ((pool.avg_pool2d(xp, 3, 2, 1, backend="numpy") -
                   pool.avg_pool2d(xm, 3, 2, 1, backend="numpy")) * dy).sum() / (2 * h)
    assert np.max(np.abs(num - dx)) / max(1e-8, np.max(np.abs(num) + np.abs(dx))) < 1e-7


def test_bad_input():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="4-D"):
        pool.max_pool2d(np.zeros((4, 4), np.float32), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        pool.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        pool.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="half the kernel"):
        pool.avg_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match="float32 or float64"):
        pool.max_pool2d(x.astype(np.int32), 2)
    with pytest.raises(TypeError, match="mixed"):
        pool.max_pool2d_backward(np.zeros((1, 1, 2, 2)), x, 2)
    with pytest.raises(ValueError, match="pooled shape"):
        pool.avg_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), x, 2)


# ---- max pooling fast paths (stride == kernel, no padding) --------------------------------------
# The C kernels (csrc/pool.c) and Numba kernels (fastinit/_numba/pool.py) reduce 2x2 windows
# with vector steps and k x k windows without bounds checks; they must give the reference's
# exact bits: the first maximum wins, NaN never wins, an all-NaN / -inf window gives -inf and
# sends its gradient to element 0 of its plane, and dx = 0 + dy at the winner (-0 -> +0).

def _builds(backend):
    """The C builds this CPU can run (portable, AVX2, AVX-512), or [None] for Numba."""
    return c_builds() if backend == "c" else [None]


def _build(build):
    """Within the block the C kernels run the build ``build`` (None: as they are)."""
    from fastinit import _c
    return _c.isa_cap(build) if build is not None else contextlib.nullcontext()


def _pool_data(shape, dtype, mode, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape)
    if mode == "ties":  # few distinct values, both zeros: the first maximum must win
        x = r.integers(-2, 2, shape).astype(np.float64)
        x[r.random(shape) < 0.3] = -0.0
    elif mode == "nan":
        x[r.random(shape) < 0.3] = np.nan
    elif mode == "inf":
        x[r.random(shape) < 0.5] = -np.inf
        x[r.random(shape) < 0.1] = np.nan
    elif mode == "no_winner":  # whole planes of NaN / -inf: every window without a winner
        x[::2] = np.nan
        x[1::4] = -np.inf
        x[1::4, 0, 0] = 5.0
    return x.astype(dtype)


def _same_bits(got, want):
    u = f"u{got.dtype.itemsize}"
    np.testing.assert_array_equal(got.view(u), want.view(u))


def _check_fast_max(backend, x, k):
    p, h, w = x.shape
    oh, ow = h // k, w // k
    r = np.random.default_rng(p + h + w)
    dy = r.standard_normal((p, oh, ow)).astype(x.dtype)
    dy[r.random(dy.shape) < 0.1] = -0.0
    want_y = np.empty((p, oh, ow), x.dtype)
    want_dx = np.empty(x.shape, x.dtype)
    from fastinit.reference import pool as ref
    ref.max_pool2d(want_y, x, k, k, k, k, 0, 0)
    ref.max_pool2d_backward(want_dx, dy, x, k, k, k, k, 0, 0)
    fwd, _ = backends.kernel("pool", "max_pool2d", backend)
    bwd, _ = backends.kernel("pool", "max_pool2d_backward", backend)
    y = np.full((p, oh, ow), 7.0, x.dtype)
    dx = np.full(x.shape, np.nan, x.dtype)  # the kernels write every element of dx
    fwd(y, x, k, k, k, k, 0, 0)
    bwd(dx, dy, x, k, k, k, k, 0, 0)
    _same_bits(y, want_y)
    _same_bits(dx, want_dx)
    # and through the public API, on the (N, C, H, W) view
    x4 = x.reshape(1, p, h, w)
    _same_bits(pool.max_pool2d(x4, k, backend=backend), want_y.reshape(1, p, oh, ow))
    _same_bits(pool.max_pool2d_backward(dy.reshape(1, p, oh, ow), x4, k, backend=backend),
               want_dx.reshape(x4.shape))


# (P, H, W), k: 2x2 with OW below, at and above the vector lengths (4 .. 16), whole row pairs
# (W == 2*OW) or not, odd H / W (floor: the last row / column belongs to no window), 3x3.
FAST_CASES = [((6, 8, 8), 2), ((5, 4, 4), 2), ((3, 2, 2), 2), ((7, 2, 4), 2), ((2, 16, 16), 2),
              ((2, 4, 32), 2), ((2, 6, 64), 2), ((2, 4, 66), 2), ((4, 9, 8), 2), ((4, 8, 9), 2),
              ((3, 7, 7), 2), ((3, 5, 34), 2), ((6, 9, 9), 3), ((4, 10, 11), 3), ((3, 3, 3), 3)]


@pytest.mark.parametrize("shape,k", FAST_CASES)
@pytest.mark.parametrize("mode", ["normal", "ties", "nan", "inf", "no_winner"])
def test_max_pool_fast_paths_bit_exact(fast_backend, dtype, shape, k, mode):
    x = _pool_data(shape, dtype, mode, sum(shape))
    for build in _builds(fast_backend):
        with _build(build):
            _check_fast_max(fast_backend, x, k)


# Both sides of the serial / threads thresholds (C: 2**16 inputs backward, 2**17 forward;
# Numba: 2**17 / 2**18), an odd height on threads, planes not a multiple of the block of 64.
@pytest.mark.parametrize("shape,k", [((1000, 8, 8), 2), ((1030, 8, 8), 2), ((2100, 8, 8), 2),
                                     ((1030, 9, 8), 2), ((4200, 8, 8), 2), ((600, 9, 9), 3)])
def test_max_pool_fast_paths_threads_bit_exact(fast_backend, shape, k):
    x = _pool_data(shape, np.float32, "nan", 7)
    x[1::3] = _pool_data((len(x[1::3]),) + shape[1:], np.float32, "ties", 8)
    x[5::50] = -np.inf
    for build in _builds(fast_backend):
        with _build(build):
            _check_fast_max(fast_backend, x, k)


@pytest.mark.parametrize("shape,k,s,p", CASES)
@pytest.mark.parametrize("mode", ["ties", "inf", "no_winner"])
def test_max_pool_generic_path_nan_inf_ties_bit_exact(fast_backend, shape, k, s, p, mode):
    """Overlapping windows and padding (the generic kernels) keep the same semantics."""
    x = _pool_data(shape, np.float64, mode, 3).reshape(shape)
    dy = np.random.default_rng(4).standard_normal(pool.pool2d_output_shape(shape, k, s, p))
    _same_bits(pool.max_pool2d(x, k, s, p, backend=fast_backend),
               pool.max_pool2d(x, k, s, p, backend="numpy"))
    _same_bits(pool.max_pool2d_backward(dy, x, k, s, p, backend=fast_backend),
               pool.max_pool2d_backward(dy, x, k, s, p, backend="numpy"))


def test_output_shape_allocates_nothing():
    """pool2d_output_shape checks a shape as the ops check x's, without an array of it."""
    assert pool.pool2d_output_shape((10**6, 10**6, 64, 64), 2) == (10**6, 10**6, 32, 32)
    with pytest.raises(ValueError, match="4-D"):
        pool.pool2d_output_shape((2, 3, 4), 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        pool.pool2d_output_shape((1, 1, 2, 2), 3)
