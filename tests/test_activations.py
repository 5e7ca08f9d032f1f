"""Activations: every backend against the reference (special values included), the reference
against PyTorch (forward and autograd backward), finite differences, out=, no mutation, and
bad input."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi

# name, fastinit kwargs, torch forward
ACTS = [
    ("relu", {}, torch.relu),
    ("leaky_relu", {"negative_slope": 0.2}, lambda t: F.leaky_relu(t, 0.2)),
    ("elu", {"alpha": 1.3}, lambda t: F.elu(t, 1.3)),
    ("tanh", {}, torch.tanh),
    ("sigmoid", {}, torch.sigmoid),
    ("gelu", {}, F.gelu),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ("identity", {}, lambda t: t * 1),
]
IDS = [f"{name}-{kw.get('approximate', '')}" for name, kw, _ in ACTS]
SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 0.625, -0.625, 1.0, -1.0, 3.9, -3.9,
           5.65, -5.66, 20.0, -20.0, 44.0, -44.0, 88.5, -88.5, 100.0, -100.0, 1e30, -1e30]
# float32 kernels use their own exp/tanh/erf (a few ulp) and no fma: compare with room for that
TOL = {np.float32: dict(rtol=2e-6, atol=1.5e-6), np.float64: dict(rtol=1e-13, atol=1e-15)}


def _x(dtype, n=3001, seed=0, scale=4.0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.array(SPECIAL), scale * rng.standard_normal(n)])
    return x.astype(dtype)


def _fns(name):
    return getattr(fi, name), getattr(fi, name + "_backward")


@pytest.mark.parametrize("name,kw,_t", ACTS, ids=IDS)
@pytest.mark.parametrize("n", [1, 7, 3001, 70000])  # serial and parallel paths
def test_backends_match_reference(fast_backend, dtype, name, kw, _t, n):
    fwd, bwd = _fns(name)
    x = _x(dtype, n)
    dy = _x(dtype, n, seed=1, scale=1.0)
    np.testing.assert_allclose(fwd(x, backend=fast_backend, **kw), fwd(x, backend="numpy", **kw),
                               **TOL[dtype])
    np.testing.assert_allclose(bwd(dy, x, backend=fast_backend, **kw),
                               bwd(dy, x, backend="numpy", **kw), **TOL[dtype])


# f(nan), f(inf), f(-inf) and f'(...) with dy = 1: NaN in, NaN out for the smooth functions
# (a diverging network shows NaN, not tanh(NaN) = -1); PyTorch's choices for the piecewise
# linear ones; the limits at +-inf (where PyTorch's gelu gives inf * 0 = NaN)
NAN_INF = {
    "relu-": ([np.nan, np.inf, 0.0], [1.0, 1.0, 0.0]),
    "leaky_relu-": ([np.nan, np.inf, -np.inf], [0.2, 1.0, 0.2]),
    "elu-": ([np.nan, np.inf, -1.3], [np.nan, 1.0, 0.0]),
    "tanh-": ([np.nan, 1.0, -1.0], [np.nan, 0.0, 0.0]),
    "sigmoid-": ([np.nan, 1.0, 0.0], [np.nan, 0.0, 0.0]),
    "gelu-": ([np.nan, np.inf, 0.0], [np.nan, 1.0, 0.0]),
    "gelu-tanh": ([np.nan, np.inf, 0.0], [np.nan, 1.0, 0.0]),
    "identity-": ([np.nan, np.inf, -np.inf], [1.0, 1.0, 1.0]),
}


@pytest.mark.parametrize("name,kw,_t", ACTS, ids=IDS)
@pytest.mark.parametrize("n", [3, 70001])  # the specials in a tail and in vector bodies
def test_nan_and_inf(backend, dtype, name, kw, _t, n):
    fwd, bwd = _fns(name)
    want_y, want_d = NAN_INF[f"{name}-{kw.get('approximate', '')}"]
    x = _x(dtype, n, seed=6)
    at = np.arange(3) * (x.size // 3) + 5  # spread over the array (and over both threads)
    x[at] = [np.nan, np.inf, -np.inf]
    y = fwd(x, backend=backend, **kw)
    d = bwd(np.ones_like(x), x, backend=backend, **kw)
    np.testing.assert_array_equal(y[at], np.array(want_y, dtype))
    np.testing.assert_array_equal(d[at], np.array(want_d, dtype))
    rest = np.ones(x.size, bool)
    rest[at] = False
    assert np.all(np.isfinite(y[rest])) and np.all(np.isfinite(d[rest]))


@pytest.mark.parametrize("name,kw,_t", ACTS, ids=IDS)
def test_nan_gradient_propagates_like_the_reference(fast_backend, dtype, name, kw, _t):
    """dy = NaN gives NaN wherever the reference's dy * f'(x) does (f'(x) = 0 included, as
    NaN * 0), in the vector bodies too: x over [-100, 100]."""
    _, bwd = _fns(name)
    x = np.linspace(-100, 100, 4001).astype(dtype)
    dy = np.full_like(x, np.nan)
    got = bwd(dy, x, backend=fast_backend, **kw)
    want = bwd(dy, x, backend="numpy", **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_reference_gelu_tanh_gradient_where_x_cubed_overflows():
    """|x| > 5.6e102 overflows x**3 in float64: the gradient is still the limit 1 or 0."""
    x = np.array([1e300, -1e300, 1e103, -1e103])
    d = fi.gelu_backward(np.ones(4), x, approximate="tanh", backend="numpy")
    np.testing.assert_array_equal(d, [1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("name,kw,_t", [ACTS[0], ACTS[5]], ids=[IDS[0], IDS[5]])
def test_large_output_streaming_path(fast_backend, name, kw, _t):
    """Outputs of 16 MB or more are written with non-temporal stores (C)."""
    fwd, bwd = _fns(name)
    n = (17 << 20) // 4 + 3
    x = _x(np.float32, n - len(SPECIAL), seed=4)
    dy = _x(np.float32, n - len(SPECIAL), seed=5, scale=1.0)
    np.testing.assert_allclose(fwd(x, backend=fast_backend, **kw), fwd(x, backend="numpy", **kw),
                               **TOL[np.float32])
    np.testing.assert_allclose(bwd(dy, x, backend=fast_backend, **kw),
                               bwd(dy, x, backend="numpy", **kw), **TOL[np.float32])


@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread: its float32 tanh on two threads is sometimes off by up to 1e-4
    (relative) in the second thread's half of the tensor, about one fresh process in four here
    (torch 2.13.0 CPU, a script of torch calls alone shows it), and exact on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name,kw,tfn", ACTS, ids=IDS)
def test_reference_matches_torch_forward_and_autograd(backend, dtype, name, kw, tfn,
                                                      torch_one_thread):
    fwd, bwd = _fns(name)
    x = _x(dtype, 2800 - len(SPECIAL)).reshape(-1, 7)
    dy = _x(dtype, 2800 - len(SPECIAL), seed=2, scale=1.0).reshape(-1, 7)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = tfn(tx)
    ty.backward(torch.from_numpy(dy.copy()))
    tol = dict(rtol=1e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fwd(x, backend=backend, **kw), ty.detach().numpy(), **tol)
    got, want = bwd(dy, x, backend=backend, **kw), tx.grad.numpy()
    # torch's tanh-form gelu backward overflows x**3 at |x| = 1e30 (inf * 0 = NaN); fastinit
    # returns the limit (gelu' = 1 or 0 there)
    odd = np.isnan(want) & (np.abs(x) > 1e15) & np.isfinite(x)
    assert np.all(np.isfinite(got[odd]))
    np.testing.assert_allclose(got[~odd], want[~odd], **tol)


@pytest.mark.parametrize("name,kw,_t", ACTS, ids=IDS)
def test_reference_backward_by_finite_differences(name, kw, _t):
    fwd, bwd = _fns(name)
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 200)
    x = x[np.abs(x) > 1e-3]  # away from the kinks of relu / leaky_relu / elu
    dy = rng.standard_normal(x.size)
    h = 1e-6
    num = (fwd(x + h, backend="numpy", **kw) - fwd(x - h, backend="numpy", **kw)) / (2 * h) * dy
    ana = bwd(dy, x, backend="numpy", **kw)
    rel = np.max(np.abs(num - ana)) / max(1e-8, np.max(np.abs(num) + np.abs(ana)))
    assert rel < 1e-8


def test_nan_propagates_through_relu_like_torch(backend):
    x = np.array([np.nan, -1.0, 2.0])
    np.testing.assert_array_equal(np.isnan(fi.relu(x, backend=backend)),
                                  torch.relu(torch.from_numpy(x)).isnan().numpy())


def test_shapes_out_and_no_mutation(backend):
    x = _x(np.float32, 2 * 3 * 4 * 5 - len(SPECIAL)).reshape(2, 3, 4, 5)
    x0 = x.copy()
    dy = np.ones_like(x)
    y = fi.tanh(x, backend=backend)
    assert y.shape == x.shape and y.dtype == x.dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(x, x0)
    dx = fi.sigmoid_backward(dy, x, backend=backend)
    np.testing.assert_array_equal(dy, 1)
    out = np.empty_like(x)
    assert fi.tanh(x, out=out, backend=backend) is out
    np.testing.assert_array_equal(out, y)
    assert fi.sigmoid_backward(dy, x, out=out, backend=backend) is out
    np.testing.assert_array_equal(out, dx)
    xt = x.transpose(0, 2, 1, 3)  # non-contiguous input
    # (vector body and scalar tail of a loop may round differently: compare to an ulp)
    np.testing.assert_allclose(fi.tanh(xt, backend=backend), y.transpose(0, 2, 1, 3), rtol=2e-7)
    z = x.copy()
    fi.relu(z, out=z, backend=backend)  # in place
    np.testing.assert_array_equal(z, np.maximum(x0, 0))
    assert fi.relu(np.zeros((0, 3), np.float32), backend=backend).shape == (0, 3)


def test_bad_input():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        fi.relu(x.astype(np.int64))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        fi.tanh([1.0, 2.0])
    with pytest.raises(TypeError, match="dy has dtype float64"):
        fi.relu_backward(x.astype(np.float64), x)
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        fi.tanh_backward(np.ones((3, 2), np.float32), x)
    with pytest.raises(ValueError, match="approximate must be one of"):
        fi.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="negative_slope must be finite"):
        fi.leaky_relu(x, math.nan)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        fi.elu(x, alpha="1")
    with pytest.raises(ValueError, match="out must have shape"):
        fi.relu(x, out=np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fi.relu(x, out=np.empty((2, 3)))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        fi.relu(x, out=np.empty((3, 2), np.float32).T)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fi.relu(x, out=ro)
