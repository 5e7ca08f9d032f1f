"""The teaching layer: modules against PyTorch, and the classic effects of initialization,
with bounds derived from the variance recursion and checked over several seeds."""
import math

import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit import nn
from fastinit.lab import signal, train

SEEDS = [0, 1, 2]


def test_network_gradients_match_torch():
    r = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, init="he_normal"), nn.BatchNorm2d(4),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 3 * 3, 5, init="xavier_uniform"), nn.Tanh(),
                        nn.Linear(5, 3), seed=3, )
    for m in net.modules():
        for p in m.own_parameters():
            p.data = p.data.astype(np.float64)
            p.grad = p.grad.astype(np.float64)
        for name in ("dtype",):
            if hasattr(m, name):
                m.dtype = np.dtype(np.float64)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = m.running_mean.astype(np.float64)
            m.running_var = m.running_var.astype(np.float64)
    x = r.standard_normal((4, 2, 6, 6))
    labels = np.array([0, 2, 1, 2])
    crit = nn.SoftmaxCrossEntropy()
    loss = crit(net(x), labels)
    dx = net.backward(crit.backward())

    conv, bn, lin1, lin2 = net[0], net[1], net[5], net[7]
    T = lambda a: torch.tensor(a, requires_grad=True)
    tw = [T(conv.weight.data), T(conv.bias.data), T(bn.gamma.data), T(bn.beta.data),
          T(lin1.weight.data), T(lin1.bias.data), T(lin2.weight.data), T(lin2.bias.data)]
    tx = T(x)
    h = torch.nn.functional.conv2d(tx, tw[0], tw[1], padding=1)
    h = torch.nn.functional.batch_norm(h, None, None, tw[2], tw[3], training=True)
    h = torch.nn.functional.max_pool2d(torch.relu(h), 2).flatten(1)
    h = torch.tanh(h @ tw[4].T + tw[5]) @ tw[6].T + tw[7]
    tl = torch.nn.functional.cross_entropy(h, torch.tensor(labels))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    ours = [conv.weight, conv.bias, bn.gamma, bn.beta, lin1.weight, lin1.bias, lin2.weight,
            lin2.bias]
    for p, t in zip(ours, tw):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("spec", ["zeros", ("constant", {"value": 0.05})])
def test_constant_init_keeps_hidden_units_identical(spec):
    data = nn.data.digits()
    net = nn.Sequential(nn.Linear(64, 16, init=spec, bias_init="zeros"), nn.Tanh(),
                        nn.Linear(16, 10, init=spec, bias_init="zeros"), seed=0)
    train.fit(net, data, epochs=2, batch=64, lr=0.1, momentum=0.9, seed=0)
    w1 = net[0].weight.data
    np.testing.assert_allclose(w1, np.broadcast_to(w1[:1], w1.shape), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(net[0].bias.data, net[0].bias.data[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_xavier_keeps_deep_tanh_alive_where_standard_shrinks(seed):
    # Recursion: standard U(+-1/sqrt n) has n Var[W] = 1/3, so in the linear regime the
    # activation std shrinks by about sqrt(1/3) = 0.58 a layer (until the bias floor, std of
    # U(+-1/16) ~ 0.036); Xavier has n Var[W] = 1: it only loses tanh's curvature.
    res = signal.run(depth=10, width=256, activation="tanh", inits=("standard", "xavier_uniform"),
                     batch=256, seed=seed)
    std, xav = (np.array(r["activation_std"]) for r in res["runs"])
    assert np.all(np.diff(std[:5]) < 0)
    assert np.all(std[1:5] / std[:4] < 0.75)
    assert std[-1] / std[0] < 0.2
    assert xav[-1] / xav[0] > 0.35
    for r in res["runs"]:  # the recursion predicts what the kernels measure
        np.testing.assert_allclose(r["activation_std"], r["predicted_activation_std"], rtol=0.25)


@pytest.mark.parametrize("seed", SEEDS)
def test_he_keeps_deep_relu_scale_where_xavier_decays(seed):
    # ReLU halves the second moment: Xavier (n Var[W] = 1) loses a factor sqrt(1/2) a layer,
    # 0.707**29 ~ 4e-5 over 30 layers; He (n Var[W] = 2) keeps it.
    res = signal.run(depth=30, width=256, activation="relu", inits=("xavier_normal", "he_normal"),
                     batch=256, seed=seed)
    xav, he = (np.array(r["activation_std"]) for r in res["runs"])
    per_layer = (xav[-1] / xav[0]) ** (1 / 29)
    assert 0.6 < per_layer < 0.8
    assert xav[-1] / xav[0] < 1e-3
    assert 0.5 < he[-1] / he[0] < 2.0
    g_xav, g_he = (np.array(r["gradient_std"]) for r in res["runs"])
    assert g_xav[0] / g_xav[-1] < 1e-3
    assert 0.5 < g_he[0] / g_he[-1] < 2.0


@pytest.mark.parametrize("seed", SEEDS)
def test_too_large_init_saturates_tanh(seed):
    res = signal.run(depth=5, width=256, activation="tanh", inits=("normal", "xavier_uniform"),
                     batch=256, seed=seed)
    big, xav = res["runs"]
    # N(0,1) weights: pre-activation std ~ sqrt(256) * 0.76 ~ 12: nearly every unit at +-1
    assert min(big["saturated"][1:]) > 0.85
    assert max(xav["saturated"]) < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_restores_the_scale(seed):
    res = signal.run(depth=10, width=128, activation="tanh", inits=("standard",),
                     batch_norm=True, batch=256, seed=seed)
    std = np.array(res["runs"][0]["activation_std"])
    # with unit-variance pre-activations, tanh's output std is E[tanh(z)^2]^0.5 ~ 0.63
    np.testing.assert_allclose(std, 0.628, rtol=0.08)


def test_clipping_caps_the_update_norm():
    net = nn.Sequential(nn.Linear(8, 8, init="he_normal"), seed=0)
    before = net[0].weight.data.copy(), net[0].bias.data.copy()
    net[0].weight.grad[...] = 100.0
    net[0].bias.grad[...] = -100.0
    opt = nn.SGD(net.parameters(), lr=0.1, clip_norm=1.0)
    total = opt.step()
    assert total == pytest.approx(100.0 * math.sqrt(72), rel=1e-5)
    step = np.concatenate([(net[0].weight.data - before[0]).ravel(),
                           (net[0].bias.data - before[1]).ravel()])
    assert np.linalg.norm(step) == pytest.approx(0.1, rel=1e-4)


def test_sgd_matches_torch_momentum_and_weight_decay():
    w = np.arange(6, dtype=np.float64).reshape(2, 3) / 10
    p = nn.Parameter(w.copy())
    t = torch.tensor(w, requires_grad=True)
    opt = nn.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    topt = torch.optim.SGD([t], lr=0.1, momentum=0.9, weight_decay=0.01)
    for k in range(3):
        g = np.full((2, 3), 0.5 * (k + 1))
        p.grad[...] = g
        t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


def test_training_on_digits_reaches_good_accuracy():
    res = train.run("mlp", inits=("he_normal", "zeros"), epochs=8, progress=False)
    he, zeros = res["runs"]
    assert he["test_acc"][-1] >= 0.93
    assert zeros["test_acc"][-1] <= 0.2  # zero init never breaks symmetry


def test_same_seed_same_numbers():
    a = train.run("mlp", inits=("xavier_normal",), epochs=2, progress=False)["runs"][0]
    b = train.run("mlp", inits=("xavier_normal",), epochs=2, progress=False)["runs"][0]
    assert a["loss"] == b["loss"] and a["test_acc"] == b["test_acc"]


def test_layer_errors_are_clear():
    with pytest.raises(RuntimeError, match="initialize"):
        nn.Linear(3, 2)(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="init must be"):
        nn.Linear(3, 2, init="glorot", seed=0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        nn.Linear(3, 2, seed=0)(np.zeros((1, 4), np.float32))
    with pytest.raises(TypeError, match="float64"):
        nn.Linear(3, 2, seed=0)(np.zeros((1, 3), np.float64))
    with pytest.raises(ValueError, match="lr"):
        nn.SGD(nn.Linear(3, 2, seed=0).parameters(), lr=0)


def test_probe_off_costs_nothing_and_on_records():
    net = nn.Sequential(nn.Linear(4, 4, seed=0), nn.ReLU())
    assert all(m._probe is None for m in net.modules())
    probe = nn.Probe(net)
    net(np.ones((3, 4), np.float32))
    net.backward(np.ones((3, 4), np.float32))
    phases = [(r["layer"], r["phase"]) for r in probe.records]
    assert ("0:Linear", "forward") in phases and ("1:ReLU", "backward") in phases
    assert "dead" in [r for r in probe.records if r["layer"] == "1:ReLU"][0]
    probe.detach()
    assert all(m._probe is None for m in net.modules())


def test_toy_sets_are_reproducible_and_balanced():
    for kind in ("moons", "circles", "spirals", "xor"):
        x, y = nn.data.toy(kind, n=300, seed=4)
        x2, y2 = nn.data.toy(kind, n=300, seed=4)
        np.testing.assert_array_equal(x, x2)
        assert x.shape == (300, 2) and 0.3 < y.mean() < 0.7
