"""fastinit.sgd_step_: every backend bit-identical to the reference, the reference equal to
torch.optim.SGD, the zero_grad/accumulate protocol of fastinit.nn, and bad input."""
import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit import nn

SHAPES = [(7, 13), (1,), (70000,), (3, 1, 5), (0,), (16,)]


def _lists(dtype, seed=0):
    r = np.random.default_rng(seed)
    return ([r.standard_normal(s).astype(dtype) for s in SHAPES],
            [r.standard_normal(s).astype(dtype) for s in SHAPES],
            [r.standard_normal(s).astype(dtype) for s in SHAPES])


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 0.0), (0.9, 1e-2), (0.0, 0.0),
                                                   (0.0, 1e-3)])
def test_backends_bit_identical_to_reference(fast_backend, dtype, momentum, weight_decay):
    ps, gs, vs = _lists(dtype)
    want_p, want_v = [p.copy() for p in ps], [v.copy() for v in vs]
    got_p, got_v = [p.copy() for p in ps], [v.copy() for v in vs]
    g_before = [g.copy() for g in gs]
    for _ in range(3):
        fi.sgd_step_(want_p, gs, 0.05, want_v, momentum, weight_decay, backend="numpy")
        fi.sgd_step_(got_p, gs, 0.05, got_v, momentum, weight_decay, backend=fast_backend)
    for a, b in zip(got_p + got_v, want_p + want_v):
        np.testing.assert_array_equal(a, b)
    for g, g0 in zip(gs, g_before):  # gradients are read, never written
        np.testing.assert_array_equal(g, g0)
    if not momentum:  # velocities are ignored without momentum
        for v, v0 in zip(got_v, vs):
            np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 0.0), (0.5, 1e-2), (0.0, 1e-3)])
def test_reference_matches_torch_sgd(dtype, momentum, weight_decay):
    ps, gs, _ = _lists(dtype, seed=1)
    vs = [np.zeros_like(p) for p in ps]
    tps = [torch.tensor(p.copy(), requires_grad=True) for p in ps]
    topt = torch.optim.SGD(tps, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for k in range(4):
        step_g = [g * (k + 1) for g in gs]
        for t, g in zip(tps, step_g):
            t.grad = torch.tensor(g)
        topt.step()
        fi.sgd_step_(ps, step_g, 0.1, vs, momentum, weight_decay, backend="numpy")
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p, t.detach().numpy(), **tol)


def test_nn_zero_grad_sets_none_and_backward_stores_the_gradient():
    net = nn.Sequential(nn.Linear(3, 4, init="he_normal"), nn.ReLU(), nn.Linear(4, 2), seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(x)
    net.backward(np.ones((5, 2), np.float32))
    first = [p.grad.copy() for p in net.parameters()]
    net(x)
    net.backward(np.ones((5, 2), np.float32))  # no zero_grad: gradients add up
    for p, g in zip(net.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6)
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())


def test_sgd_skips_parameters_without_gradient():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = nn.SGD([a, b], lr=0.5, momentum=0.9)
    opt.zero_grad()
    a.grad = np.full(3, 2.0)
    opt.step()
    np.testing.assert_array_equal(a.data, np.zeros(3))
    np.testing.assert_array_equal(b.data, np.ones(2))


def test_bad_input_is_named():
    p, g, v = np.zeros(3, np.float32), np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="lr"):
        fi.sgd_step_([p], [g], 0.0)
    with pytest.raises(ValueError, match="momentum"):
        fi.sgd_step_([p], [g], 0.1, [v], momentum=-0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        fi.sgd_step_([p], [g], 0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="velocities"):
        fi.sgd_step_([p], [g], 0.1, None, momentum=0.9)
    with pytest.raises(ValueError, match="grads has 2 arrays"):
        fi.sgd_step_([p], [g, g], 0.1)
    with pytest.raises(TypeError, match=r"grads\[0\]"):
        fi.sgd_step_([p], [g.astype(np.float64)], 0.1)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        fi.sgd_step_([p], [np.ones(4, np.float32)], 0.1)
    with pytest.raises(TypeError, match=r"params\[1\]"):
        fi.sgd_step_([p, p.astype(np.float64)], [g, g.astype(np.float64)], 0.1)
    with pytest.raises(TypeError, match="params"):
        fi.sgd_step_([p.astype(np.int64)], [g], 0.1)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        fi.sgd_step_([ro], [g], 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        fi.sgd_step_([np.zeros(6, np.float32)[::2]], [g], 0.1)
    with pytest.raises(ValueError, match="share memory"):
        fi.sgd_step_([p], [p], 0.1)


def test_arrays_shared_across_indices_are_refused():
    a, g = np.zeros(8, np.float32), np.ones(8, np.float32)
    v = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        fi.sgd_step_([a, a], [g, g], 1.0)
    with pytest.raises(ValueError, match=r"velocities\[0\] and velocities\[1\] share memory"):
        fi.sgd_step_([a, a.copy()], [g, g], 1.0, [v, v], momentum=0.5)
    with pytest.raises(ValueError, match=r"params\[0\] and grads\[1\] share memory"):
        fi.sgd_step_([a, np.zeros(4, np.float32)], [g, a[:4]], 1.0)
    b = np.zeros(8, np.float32)
    fi.sgd_step_([a, b], [g, g], 1.0)  # gradients may be shared: they are only read
    np.testing.assert_array_equal(a, -g)
    np.testing.assert_array_equal(b, -g)


def test_backends_agree_when_a_coefficient_rounds_to_zero(fast_backend):
    for momentum, weight_decay in [(1e-46, 0.0), (0.0, 1e-46)]:
        out = {}
        for be in ("numpy", fast_backend):
            p = np.array([np.inf, 1.0, -2.0], np.float32)
            v = np.full(3, 3.0, np.float32)
            fi.sgd_step_([p], [np.ones(3, np.float32)], 0.1, [v], momentum, weight_decay,
                         backend=be)
            out[be] = (p, v)
        for a, b in zip(out["numpy"], out[fast_backend]):
            np.testing.assert_array_equal(a, b)


def test_sgd_step_with_clipping_and_no_gradient_returns_zero_norm():
    p = nn.Parameter(np.ones(3))
    opt = nn.SGD([p], lr=0.1, clip_norm=1.0)
    opt.zero_grad()
    assert opt.step() == 0.0
