"""Max and average pooling: every backend against the reference, the reference against
PyTorch (forward and autograd backward), finite differences, bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastinit.ops import pool

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
