"""Losses: every backend against the reference, the reference against PyTorch (value and
autograd gradient), finite differences, stability, no mutation, and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi

TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}


def _ce_data(n, k, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, k))).astype(dtype), rng.integers(0, k, n)


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 3), (64, 10), (65, 10), (300, 1000)])
def test_cross_entropy_backends_match_reference(fast_backend, dtype, n, k):
    z, lab = _ce_data(n, k, dtype, seed=n + k)
    loss, d = fi.softmax_cross_entropy(z, lab, backend=fast_backend)
    loss0, d0 = fi.softmax_cross_entropy(z, lab, backend="numpy")
    assert loss == pytest.approx(loss0, rel=TOL[dtype]["rtol"], abs=1e-12)
    np.testing.assert_allclose(d, d0, **TOL[dtype])


@pytest.mark.parametrize("n", [1, 1000, 100003])
def test_mse_backends_match_reference(fast_backend, dtype, n):
    rng = np.random.default_rng(n)
    p, t = (rng.standard_normal((2, n)) * 3).astype(dtype)
    loss, d = fi.mse(p, t, backend=fast_backend)
    loss0, d0 = fi.mse(p, t, backend="numpy")
    assert loss == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(d, d0, **TOL[dtype])


def test_cross_entropy_matches_torch(backend, dtype):
    z, lab = _ce_data(33, 12, dtype, seed=4)
    tz = torch.from_numpy(z.copy()).requires_grad_()
    tl = F.cross_entropy(tz, torch.from_numpy(lab))
    tl.backward()
    loss, d = fi.softmax_cross_entropy(z, lab, backend=backend)
    tol = dict(rtol=2e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(tl.detach()), rel=tol["rtol"])
    np.testing.assert_allclose(d, tz.grad.numpy(), **tol)


def test_mse_matches_torch(backend, dtype):
    rng = np.random.default_rng(5)
    p, t = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    tp = torch.from_numpy(p.copy()).requires_grad_()
    tl = F.mse_loss(tp, torch.from_numpy(t.copy()))
    tl.backward()
    loss, d = fi.mse(p, t, backend=backend)
    tol = dict(rtol=2e-6, atol=1e-8) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(tl.detach()), rel=tol["rtol"])
    np.testing.assert_allclose(d, tp.grad.numpy(), **tol)


def test_reference_gradients_by_finite_differences():
    z, lab = _ce_data(4, 5, np.float64, seed=6)
    _, d = fi.softmax_cross_entropy(z, lab, backend="numpy")
    h = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        num[i] = (fi.softmax_cross_entropy(zp, lab, backend="numpy")[0]
                  - fi.softmax_cross_entropy(zm, lab, backend="numpy")[0]) / (2 * h)
    assert np.max(np.abs(num - d)) / max(1e-8, np.max(np.abs(num) + np.abs(d))) < 1e-7
    rng = np.random.default_rng(7)
    p, t = rng.standard_normal((2, 6))
    _, d = fi.mse(p, t, backend="numpy")
    num = np.array([(fi.mse(p + h * e, t, backend="numpy")[0]
                     - fi.mse(p - h * e, t, backend="numpy")[0]) / (2 * h) for e in np.eye(6)])
    assert np.max(np.abs(num - d)) / max(1e-8, np.max(np.abs(num) + np.abs(d))) < 1e-7


def test_cross_entropy_is_stable_for_huge_logits(backend, dtype):
    z = np.array([[1e4, 0.0, -1e4], [-3e4, -3e4, -3e4 + 2.0]], dtype)
    lab = np.array([1, 2])
    loss, d = fi.softmax_cross_entropy(z, lab, backend=backend)
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    tz = torch.from_numpy(z.copy()).double()
    assert loss == pytest.approx(float(F.cross_entropy(tz, torch.from_numpy(lab))), rel=1e-6)


def test_inputs_not_mutated(backend):
    z, lab = _ce_data(9, 4, np.float32, seed=8)
    z0, lab0 = z.copy(), lab.copy()
    fi.softmax_cross_entropy(z, lab, backend=backend)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(lab, lab0)
    p, t = z.copy(), z[::-1].copy()
    p0, t0 = p.copy(), t.copy()
    fi.mse(p, t, backend=backend)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(t, t0)
    zt = np.asfortranarray(z)  # non-contiguous logits, int32 labels
    loss, d = fi.softmax_cross_entropy(zt, lab.astype(np.int32), backend=backend)
    loss0, d0 = fi.softmax_cross_entropy(z, lab, backend="numpy")
    assert loss == pytest.approx(loss0, rel=1e-6)


def test_bad_input():
    z, lab = _ce_data(3, 4, np.float32)
    with pytest.raises(ValueError, match="logits must be 2-D"):
        fi.softmax_cross_entropy(z.reshape(-1), lab)
    with pytest.raises(ValueError, match="logits must have at least one row"):
        fi.softmax_cross_entropy(np.zeros((0, 4), np.float32), lab[:0])
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        fi.softmax_cross_entropy(z, lab.astype(np.float32))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        fi.softmax_cross_entropy(z, lab[:2])
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 4\)"):
        fi.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="labels must be class indices"):
        fi.softmax_cross_entropy(z, np.array([0, -1, 1]))
    with pytest.raises(TypeError, match="logits must have dtype"):
        fi.softmax_cross_entropy(z.astype(np.int64), lab)
    with pytest.raises(TypeError, match="target has dtype float64"):
        fi.mse(z, z.astype(np.float64))
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        fi.mse(z, z.T.copy())
    with pytest.raises(ValueError, match="pred is empty"):
        fi.mse(z[:0], z[:0])


def test_out_of_range_label_is_reported_as_given():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="found 18446744073709551615"):
        fi.softmax_cross_entropy(z, np.array([0, 2**64 - 1], np.uint64))
