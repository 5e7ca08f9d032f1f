"""Batch norm: every backend against the reference, the reference against PyTorch (forward with
running buffers over several steps, autograd backward) and finite differences, numerics at
mean 1000, and every bad input."""
import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi
from conftest import c_builds, numeric_grad, rel_error

# (shape, why): 2-D, NCHW with large / small / unit spatial size, odd sizes, batch 1.
SHAPES = [(7, 5), (64, 3), (2, 1), (4, 3, 5, 6), (2, 8, 33, 17), (1, 4, 7, 9), (16, 6, 1, 1),
          (8, 70, 2, 3), (3, 2, 64, 64), (33, 129)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _data(shape, dtype, seed, mean=0.5, std=2.0):
    rng = np.random.default_rng(seed)
    x = (mean + std * rng.standard_normal(shape)).astype(dtype)
    c = shape[1]
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    return rng, x, gamma, beta


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a, copy=True))


# ---- backends against the reference ------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_and_backward_match_reference(fast_backend, dtype, shape, affine):
    rng, x, gamma, beta = _data(shape, dtype, sum(shape))
    if not affine:
        gamma = beta = None
    rm, rv = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    rm2, rv2 = rm.copy(), rv.copy()
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=True, backend=fast_backend)
    y0, s0 = fi.batch_norm(x, gamma, beta, rm2, rv2, training=True, backend="numpy")
    tol = TOL[dtype]
    np.testing.assert_allclose(y, y0, **tol)
    np.testing.assert_allclose(s.mean, s0.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.var, s0.var, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, rm2, **tol)
    np.testing.assert_allclose(rv, rv2, **tol)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dg, db = fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend)
    dx0, dg0, db0 = fi.batch_norm_backward(dy, x, gamma, s0, backend="numpy")
    # float32 dx is a difference of terms of size |gamma * invstd * dy|: scale the error by them
    g = np.ones(shape[1]) if gamma is None else gamma.astype(np.float64)
    scale = max(np.abs(dx0).max(), np.abs(dy).max() * np.abs(g * s0.invstd).max())
    np.testing.assert_allclose(dx / scale, dx0 / scale, rtol=0, atol=tol["atol"] * 4)
    if affine:
        np.testing.assert_allclose(dg, dg0, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
        np.testing.assert_allclose(db, db0, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    else:
        assert dg is None and db is None


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_forward_and_backward_match_reference(fast_backend, dtype, shape):
    rng, x, gamma, beta = _data(shape, dtype, 3 + sum(shape))
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 3.0, shape[1]).astype(dtype)
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=fast_backend)
    y0, s0 = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend="numpy")
    assert not s.batch_stats
    np.testing.assert_allclose(y, y0, **TOL[dtype])
    dy = rng.standard_normal(shape).astype(dtype)
    got = fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend)
    want = fi.batch_norm_backward(dy, x, gamma, s0, backend="numpy")
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


def test_non_contiguous_input(backend):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 5, 8, 4))
    x = base.transpose(0, 1, 3, 2)  # NCHW view with swapped strides
    y, s = fi.batch_norm(x, None, None, backend=backend)
    y0, _ = fi.batch_norm(np.ascontiguousarray(x), None, None, backend="numpy")
    np.testing.assert_allclose(y, y0, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(x.shape)[:, :, ::-1]
    dx, _, _ = fi.batch_norm_backward(dy, x, None, s, backend=backend)
    dx0, _, _ = fi.batch_norm_backward(np.ascontiguousarray(dy), np.ascontiguousarray(x), None, s,
                                       backend="numpy")
    np.testing.assert_allclose(dx, dx0, rtol=1e-12, atol=1e-12)


def test_inputs_are_not_mutated(backend):
    rng, x, gamma, beta = _data((4, 3, 5, 5), np.float32, 9)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    copies = [a.copy() for a in (x, gamma, beta)]
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=backend)
    np.testing.assert_array_equal(rm, 0)  # eval: buffers untouched
    np.testing.assert_array_equal(rv, 1)
    y, s = fi.batch_norm(x, gamma, beta, training=True, backend=backend)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dy0 = dy.copy()
    mean0 = s.mean.copy()
    fi.batch_norm_backward(dy, x, gamma, s, backend=backend)
    for a, b in zip((x, gamma, beta), copies):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dy, dy0)
    np.testing.assert_array_equal(s.mean, mean0)


# ---- the reference against PyTorch -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 4, 7)])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_running_buffers_over_steps_match_torch(backend, dtype, shape, momentum):
    """Several training steps then inference, buffers compared after each (both modes)."""
    rng, _, gamma, beta = _data(shape, dtype, 21)
    c = shape[1]
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    trm, trv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    ndim = len(shape)
    layer = (torch.nn.BatchNorm1d if ndim == 2 else torch.nn.BatchNorm2d)(
        c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():
        layer.weight.copy_(_t(gamma))
        layer.bias.copy_(_t(beta))
    tol = TOL[dtype] if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for step in range(4):
        x = (1.5 + 3.0 * rng.standard_normal(shape)).astype(dtype)
        layer.train()
        ty = layer(_t(x).double())
        y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=momentum,
                             num_batches_tracked=step, backend=backend)
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        np.testing.assert_allclose(rm, layer.running_mean.numpy(), **tol)
        np.testing.assert_allclose(rv, layer.running_var.numpy(), **tol)
        if momentum is not None:  # the functional form agrees too
            F.batch_norm(_t(x).double(), trm, trv, _t(gamma).double(), _t(beta).double(),
                         training=True, momentum=momentum)
            np.testing.assert_allclose(rm, trm.numpy(), **tol)
            np.testing.assert_allclose(rv, trv.numpy(), **tol)
    layer.eval()
    x = (1.5 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=backend)
    np.testing.assert_allclose(y, layer(_t(x).double()).detach().numpy(), **tol)


def test_keras_convention_running_update(backend):
    rng, x, gamma, beta = _data((10, 3, 4, 4), np.float64, 4)
    rm, rv = rng.standard_normal(3), rng.uniform(1, 2, 3)
    rm0, rv0 = rm.copy(), rv.copy()
    _, s = fi.batch_norm(x, gamma, beta, rm, rv, momentum=0.99, convention="keras",
                         backend=backend)
    bm = x.mean(axis=(0, 2, 3))
    bv = x.var(axis=(0, 2, 3))  # biased
    np.testing.assert_allclose(rm, 0.99 * rm0 + 0.01 * bm, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.99 * rv0 + 0.01 * bv, rtol=1e-12)
    rm2, rv2 = rm0.copy(), rv0.copy()
    fi.batch_norm(x, gamma, beta, rm2, rv2, momentum=0.99, convention="flax", backend=backend)
    np.testing.assert_array_equal(rm2, rm)


def test_inference_without_buffers_uses_batch_statistics_like_torch(backend):
    rng, x, gamma, beta = _data((8, 3, 5, 5), np.float64, 8)
    y, s = fi.batch_norm(x, gamma, beta, training=False, backend=backend)
    assert s.batch_stats
    layer = torch.nn.BatchNorm2d(3, track_running_stats=False).double().eval()
    with torch.no_grad():
        layer.weight.copy_(_t(gamma))
        layer.bias.copy_(_t(beta))
        ty = layer(_t(x))
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(9, 4), (4, 3, 5, 6)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_backward_matches_torch_autograd(backend, dtype, shape, training, affine):
    rng, x, gamma, beta = _data(shape, dtype, 5)
    if not affine:
        gamma = beta = None
    c = shape[1]
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    y, s = fi.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training=training, backend=backend)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dg, db = fi.batch_norm_backward(dy, x, gamma, s, backend=backend)
    tx = _t(x).double().requires_grad_()
    tg = None if gamma is None else _t(gamma).double().requires_grad_()
    tb = None if beta is None else _t(beta).double().requires_grad_()
    ty = F.batch_norm(tx, _t(rm).double(), _t(rv).double(), tg, tb, training=training)
    ty.backward(_t(dy).double())
    tol = dict(rtol=3e-4, atol=3e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    if affine:
        np.testing.assert_allclose(dg, tg.grad.numpy(), **tol)
        np.testing.assert_allclose(db, tb.grad.numpy(), **tol)


# ---- finite differences on the reference ------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_reference_backward_by_finite_differences(shape, training):
    rng, x, gamma, beta = _data(shape, np.float64, 13)
    c = shape[1]
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    w = rng.standard_normal(shape)

    def loss():
        y, _ = fi.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                             backend="numpy")
        return float(np.sum(y * w))

    _, s = fi.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                         backend="numpy")
    dx, dg, db = fi.batch_norm_backward(w, x, gamma, s, backend="numpy")
    assert rel_error(dx, numeric_grad(loss, x, 1e-5)) < 1e-7
    assert rel_error(dg, numeric_grad(loss, gamma, 1e-5)) < 1e-7
    assert rel_error(db, numeric_grad(loss, beta, 1e-5)) < 1e-7


# ---- numerics -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4096, 3), (32, 4, 16, 16), (4, 2, 128, 128)])
def test_mean_1000_std_1_float32(backend, shape):
    """float32 sums of squares break here (E[x^2] - E[x]^2 cancels); float64 sums do not."""
    rng = np.random.default_rng(0)
    x = (1000.0 + rng.standard_normal(shape)).astype(np.float32)
    x64 = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    y, s = fi.batch_norm(x, None, None, backend=backend)
    np.testing.assert_allclose(s.mean, x64.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(s.var, x64.var(axis=axes), rtol=1e-9)
    want = (x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True)
                                                                 + 1e-5)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5)  # not 1e-4: no cancellation in y
    dy = rng.standard_normal(shape).astype(np.float32)
    dx, _, _ = fi.batch_norm_backward(dy, x, None, s, backend=backend)
    dx0, _, _ = ref_backward(dy, x, s)
    np.testing.assert_allclose(dx, dx0, rtol=0, atol=2e-5 * np.abs(dx0).max())


def ref_backward(dy, x, s):
    return fi.batch_norm_backward(dy.astype(np.float64), x.astype(np.float64), None,
                                  s, backend="numpy")


def test_empty_batch_like_torch(backend):
    x = np.zeros((0, 3, 4, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, s = fi.batch_norm(x, None, None, rm, rv, backend=backend)
    assert y.shape == x.shape
    np.testing.assert_array_equal(rv, 1)
    dx, _, _ = fi.batch_norm_backward(y, x, None, s, backend=backend)
    assert dx.shape == x.shape


def test_single_value_policy_running(backend):
    rng, x, gamma, beta = _data((1, 4), np.float32, 3)
    rm = rng.standard_normal(4).astype(np.float32)
    rv = rng.uniform(0.5, 2, 4).astype(np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y, s = fi.batch_norm(x, gamma, beta, rm, rv, training=True, single_value="running",
                         backend=backend)
    y_eval, _ = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=backend)
    np.testing.assert_array_equal(y, y_eval)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    assert not s.batch_stats


# ---- bad input ----------------------------------------------------------------------------------

def test_one_value_per_channel_in_training_raises_like_torch():
    x = np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        fi.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        fi.batch_norm(np.ones((1, 3, 1, 1)), None, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="single_value='running' needs running_mean"):
        fi.batch_norm(x, None, None, single_value="running")
    with pytest.raises(ValueError, match="single_value"):
        fi.batch_norm(x, None, None, single_value="zero")
    fi.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), training=False)


def test_bad_eps():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="eps"):
        fi.batch_norm(x, None, None, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        fi.batch_norm(x, None, None, np.zeros(3), np.ones(3), training=False, eps=-1e-5)
    with pytest.raises(ValueError, match="eps"):
        fi.batch_norm(x, None, None, training=False, eps=0.0)  # batch stats: eps > 0
    with pytest.raises(ValueError, match="eps"):
        fi.batch_norm(x, None, None, eps=float("nan"))
    fi.batch_norm(x, None, None, np.zeros(3), np.ones(3), training=False, eps=0.0)


@pytest.mark.parametrize("shape", [(4,), (4, 3, 5), (2, 3, 4, 5, 6), ()])
def test_wrong_ndim(shape):
    with pytest.raises(ValueError, match="x must be 2-D or 4-D"):
        fi.batch_norm(np.ones(shape), None, None)


def test_bad_buffers_and_parameters():
    x = np.ones((4, 3), np.float32)
    f32 = np.float32
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        fi.batch_norm(x, None, None, np.zeros(4, f32), np.ones(3, f32))
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\)"):
        fi.batch_norm(x, None, None, np.zeros(3, f32), np.ones((3, 1), f32))
    with pytest.raises(ValueError, match="running_var is None"):
        fi.batch_norm(x, None, None, np.zeros(3, f32), None)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        fi.batch_norm(x, np.ones(2, f32), None)
    with pytest.raises(ValueError, match=r"beta must have shape \(3,\)"):
        fi.batch_norm(x, None, np.ones(5, f32))
    with pytest.raises(ValueError, match="momentum"):
        fi.batch_norm(x, None, None, np.zeros(3, f32), np.ones(3, f32), momentum=1.5)
    with pytest.raises(ValueError, match="num_batches_tracked"):
        fi.batch_norm(x, None, None, np.zeros(3, f32), np.ones(3, f32), momentum=None)
    with pytest.raises(ValueError, match="convention"):
        fi.batch_norm(x, None, None, convention="caffe")
    with pytest.raises(TypeError, match="training"):
        fi.batch_norm(x, None, None, training="yes")
    ro = np.zeros(3, f32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean is read-only"):
        fi.batch_norm(x, None, None, ro, np.ones(3, f32))


def test_mixed_dtypes():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(TypeError, match="gamma has dtype float64"):
        fi.batch_norm(x, np.ones(3), None)
    with pytest.raises(TypeError, match="running_var has dtype float64"):
        fi.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        fi.batch_norm(x.astype(np.int32), None, None)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        fi.batch_norm([[1.0, 2.0]], None, None)
    _, s = fi.batch_norm(np.arange(12.0).reshape(4, 3), None, None)
    with pytest.raises(TypeError, match="dy has dtype float32"):
        fi.batch_norm_backward(x, np.arange(12.0).reshape(4, 3), None, s)


def test_bad_backward_arguments():
    rng, x, gamma, beta = _data((4, 3), np.float64, 0)
    _, s = fi.batch_norm(x, gamma, beta)
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        fi.batch_norm_backward(np.ones((4, 2)), x, gamma, s)
    with pytest.raises(TypeError, match="saved must be the BatchNormSaved"):
        fi.batch_norm_backward(x, x, gamma, (s.mean, s.invstd))
    with pytest.raises(ValueError, match="gamma is None but the forward had a gamma"):
        fi.batch_norm_backward(x, x, None, s)
    _, s2 = fi.batch_norm(np.ones((4, 5)) + np.arange(5), None, None)
    with pytest.raises(ValueError, match="saved holds statistics for 5 channels"):
        fi.batch_norm_backward(x, x, gamma, s2)


def test_out_argument(backend):
    rng, x, gamma, beta = _data((4, 3, 9, 9), np.float32, 12)
    y0, s0 = fi.batch_norm(x, gamma, beta, backend=backend)
    out = np.empty_like(x)
    y, s = fi.batch_norm(x, gamma, beta, out=out, backend=backend)
    assert y is out
    np.testing.assert_array_equal(y, y0)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx0, _, _ = fi.batch_norm_backward(dy, x, gamma, s0, backend=backend)
    dx, _, _ = fi.batch_norm_backward(dy, x, gamma, s0, out=out, backend=backend)
    assert dx is out
    np.testing.assert_array_equal(dx, dx0)
    with pytest.raises(ValueError, match="out must not overlap x"):
        fi.batch_norm(x, gamma, beta, out=x, backend=backend)
    with pytest.raises(ValueError, match="out must not overlap dy"):
        fi.batch_norm_backward(dy, x, gamma, s0, out=dy, backend=backend)
    with pytest.raises(ValueError, match="out must have shape"):
        fi.batch_norm(x, gamma, beta, out=np.empty((4, 3, 81), np.float32), backend=backend)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fi.batch_norm(x, gamma, beta, out=np.empty(x.shape), backend=backend)


def test_large_output_streaming_path(fast_backend):
    """Outputs of 16 MB or more take the non-temporal-store path in both kernels."""
    rng, x, gamma, beta = _data((16, 4, 256, 257), np.float32, 14)
    assert x.nbytes >= 16 << 20
    y, s = fi.batch_norm(x, gamma, beta, backend=fast_backend)
    y0, s0 = fi.batch_norm(x, gamma, beta, backend="numpy")
    np.testing.assert_allclose(y, y0, rtol=2e-5, atol=2e-5)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for got, want in zip(fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend),
                         fi.batch_norm_backward(dy, x, gamma, s0, backend="numpy")):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * np.abs(want).max())
    rm, rv = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    y, _ = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=fast_backend)
    y0, _ = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend="numpy")
    np.testing.assert_allclose(y, y0, rtol=2e-5, atol=2e-5)


# ---- the group path (training forward and backward, outputs of 16 MB or more, S >= 64) ---------
# Each thread its own share of the channels, one at a time, sums in fixed blocks of 8 rows.
# Cases: float32 13 channels (odd share per thread) and a short last block (20 rows); float64
# 11 channels and 25 rows; float32 4 channels of 8.4 MB; 39 channels, 9 rows, S = 12100.
GROUP_CASES = [((20, 13, 128, 130), np.float32), ((25, 11, 90, 90), np.float64),
               ((16, 4, 256, 257), np.float32)]


@pytest.mark.parametrize("shape, dt", GROUP_CASES + [((9, 39, 100, 121), np.float32)])
def test_group_path_training_forward_every_build(fast_backend, shape, dt):
    """Odd sizes: rows not a multiple of the 8-row block, channels not a multiple of the group
    or of the thread count, S not a multiple of any vector length."""
    rng, x, gamma, beta = _data(shape, dt, 41 + sum(shape))
    assert x.nbytes >= 16 << 20
    rm, rv = rng.standard_normal(shape[1]).astype(dt), rng.uniform(0.5, 3, shape[1]).astype(dt)
    rm0, rv0 = rm.copy(), rv.copy()
    y0, s0 = fi.batch_norm(x, gamma, beta, rm0, rv0, backend="numpy")
    tol = TOL[dt]
    for build in _bn_builds(fast_backend):
        with _bn_build(build):
            rm1, rv1 = rm.copy(), rv.copy()
            y, s = fi.batch_norm(x, gamma, beta, rm1, rv1, backend=fast_backend)
            np.testing.assert_allclose(y, y0, **tol)
            np.testing.assert_allclose(s.mean, s0.mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s.var, s0.var, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(s.invstd, s0.invstd, rtol=1e-10)
            np.testing.assert_allclose(rm1, rm0, **tol)
            np.testing.assert_allclose(rv1, rv0, **tol)


@pytest.mark.parametrize("shape", [(9, 39, 100, 121), (20, 13, 128, 130)])
def test_group_path_forward_mean_1000_every_build(fast_backend, shape):
    """float64 sums around x[0, c, 0]: the variance of mean-1000, std-1 float32 data to 1e-9."""
    rng = np.random.default_rng(6)
    x = (1000.0 + rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    x64 = x.astype(np.float64)
    m = x64.mean(axis=(0, 2, 3), keepdims=True)
    v = x64.var(axis=(0, 2, 3), keepdims=True)
    for build in _bn_builds(fast_backend):
        with _bn_build(build):
            y, s = fi.batch_norm(x, None, None, backend=fast_backend)
            np.testing.assert_allclose(s.mean, m.ravel(), rtol=1e-12)
            np.testing.assert_allclose(s.var, v.ravel(), rtol=1e-9)
            np.testing.assert_allclose(y, (x64 - m) / np.sqrt(v + 1e-5), rtol=0, atol=2e-5)


@pytest.mark.parametrize("shape, dt", GROUP_CASES + [((9, 39, 100, 121), np.float32)])
def test_group_path_backward_every_build(fast_backend, shape, dt):
    rng, x, gamma, beta = _data(shape, dt, 31 + sum(shape))
    assert x.nbytes >= 16 << 20
    dy = rng.standard_normal(shape).astype(dt)
    rm = rng.standard_normal(shape[1]).astype(dt)
    rv = rng.uniform(0.5, 3.0, shape[1]).astype(dt)
    _, s = fi.batch_norm(x, gamma, beta, backend="numpy")
    _, se = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend="numpy")
    want = fi.batch_norm_backward(dy, x, gamma, s, backend="numpy")
    want_eval = fi.batch_norm_backward(dy, x, gamma, se, backend="numpy")
    tol = TOL[dt]
    scale = max(np.abs(want[0]).max(), np.abs(dy).max() * np.abs(gamma * s.invstd).max())
    for build in _bn_builds(fast_backend):
        with _bn_build(build):
            dx, dg, db = fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend)
            np.testing.assert_allclose(dx / scale, want[0] / scale, rtol=0, atol=tol["atol"] * 4)
            np.testing.assert_allclose(dg, want[1], rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
            np.testing.assert_allclose(db, want[2], rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
            got = fi.batch_norm_backward(dy, x, gamma, se, backend=fast_backend)
            for a, b in zip(got, want_eval):
                np.testing.assert_allclose(a, b, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_group_path_does_not_depend_on_threads(fast_backend, dt, on_one_and_two_threads):
    """Fixed blocks of rows, summed in block order: the same bits on 1 and 2 threads."""
    rng, x, gamma, beta = _data((20, 13, 128, 130), dt, 12)
    dy = rng.standard_normal(x.shape).astype(dt)
    _, s = fi.batch_norm(x, gamma, beta, backend="numpy")

    def run():
        y, sf = fi.batch_norm(x, gamma, beta, backend=fast_backend)
        return ((y, sf.mean, sf.var, sf.invstd)
                + fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend))

    runs = on_one_and_two_threads(run)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ---- the segment path (S >= 8, output below 16 MB) ---------------------------------------------
# Both fast backends walk x in memory order, (n, c) segments of S, 4 rows at a time, in fixed
# blocks of rows (threads from 2**17 elements). Shapes: the small CNN's activations, rows not a
# multiple of 4, S not a multiple of any vector length, C above the C kernel's 64 stack channels,
# several blocks on threads with a short last block, S = 8 (the smallest) and S = 7 (row path).
SEGMENT_SHAPES = [(64, 16, 8, 8), (64, 32, 4, 4), (5, 70, 3, 3), (7, 3, 5, 5), (9, 2, 2, 4),
                  (130, 16, 8, 8), (66, 8, 16, 17), (6, 5, 1, 7)]


def _bn_builds(backend):
    """The C builds this CPU can run (portable, AVX2, AVX-512), or [None] for Numba."""
    return c_builds() if backend == "c" else [None]


def _bn_build(build):
    """Within the block the C kernels run the build ``build`` (None: as they are)."""
    from fastinit import _c
    return _c.isa_cap(build) if build is not None else contextlib.nullcontext()


@pytest.mark.parametrize("shape", SEGMENT_SHAPES)
def test_segment_path_matches_reference(fast_backend, dtype, shape):
    rng, x, gamma, beta = _data(shape, dtype, 20 + sum(shape))
    dy = rng.standard_normal(shape).astype(dtype)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 3.0, shape[1]).astype(dtype)
    tol = TOL[dtype]
    y0, s0 = fi.batch_norm(x, gamma, beta, backend="numpy")
    dx0, dg0, db0 = fi.batch_norm_backward(dy, x, gamma, s0, backend="numpy")
    ye0, se0 = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend="numpy")
    want_eval = fi.batch_norm_backward(dy, x, gamma, se0, backend="numpy")
    scale = max(np.abs(dx0).max(), np.abs(dy).max() * np.abs(gamma * s0.invstd).max())
    for build in _bn_builds(fast_backend):
        with _bn_build(build):
            y, s = fi.batch_norm(x, gamma, beta, backend=fast_backend)
            np.testing.assert_allclose(y, y0, **tol)
            np.testing.assert_allclose(s.mean, s0.mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s.var, s0.var, rtol=1e-10, atol=1e-12)
            dx, dg, db = fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend)
            np.testing.assert_allclose(dx / scale, dx0 / scale, rtol=0, atol=tol["atol"] * 4)
            np.testing.assert_allclose(dg, dg0, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
            np.testing.assert_allclose(db, db0, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
            ye, se = fi.batch_norm(x, gamma, beta, rm, rv, training=False, backend=fast_backend)
            np.testing.assert_allclose(ye, ye0, **tol)
            got = fi.batch_norm_backward(dy, x, gamma, se, backend=fast_backend)
            for a, b in zip(got, want_eval):
                np.testing.assert_allclose(a, b, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


@pytest.mark.parametrize("shape", [(64, 16, 8, 8), (130, 16, 8, 8)])
def test_segment_path_mean_1000_every_build(fast_backend, shape):
    rng = np.random.default_rng(5)
    x = (1000.0 + rng.standard_normal(shape)).astype(np.float32)
    x64 = x.astype(np.float64)
    for build in _bn_builds(fast_backend):
        with _bn_build(build):
            y, s = fi.batch_norm(x, None, None, backend=fast_backend)
            np.testing.assert_allclose(s.mean, x64.mean(axis=(0, 2, 3)), rtol=1e-12)
            np.testing.assert_allclose(s.var, x64.var(axis=(0, 2, 3)), rtol=1e-9)
            want = ((x64 - x64.mean(axis=(0, 2, 3), keepdims=True))
                    / np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5))
            np.testing.assert_allclose(y, want, rtol=0, atol=2e-5)


def test_segment_path_does_not_depend_on_threads(fast_backend, on_one_and_two_threads):
    """Fixed blocks of rows, summed in block order: the same bits on 1 and 2 threads."""
    rng, x, gamma, beta = _data((130, 16, 8, 8), np.float32, 9)
    dy = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        y, s = fi.batch_norm(x, gamma, beta, backend=fast_backend)
        return (y, s.mean, s.var) + fi.batch_norm_backward(dy, x, gamma, s, backend=fast_backend)

    runs = on_one_and_two_threads(run)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
