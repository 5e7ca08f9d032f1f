"""Initializers: gains, fans (against PyTorch and our documented formulas), the std/bound of
every scheme against torch.nn.init's formulas, distributions, reproducibility, bad input."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import fastinit as fi
from fastinit import init

SHAPES = [(256, 512), (64, 32, 3, 3), (128, 16, 5, 5), (10, 3, 7), (8, 4, 3, 3, 3)]


@pytest.mark.parametrize("name,param,expect", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0),
    ("tanh", None, 5.0 / 3.0), ("relu", None, math.sqrt(2.0)),
    ("leaky_relu", None, math.sqrt(2.0 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("selu", None, 0.75)])
def test_calculate_gain_exact_and_as_torch(name, param, expect):
    assert init.calculate_gain(name, param) == expect
    assert init.calculate_gain(name, param) == pytest.approx(
        torch.nn.init.calculate_gain(name, param), rel=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch_for_dense_and_conv(shape):
    t = torch.empty(shape)
    assert init.compute_fans(shape, "oihw") == torch.nn.init._calculate_fan_in_and_fan_out(t)


def test_fans_layouts_and_groups():
    assert init.compute_fans((64, 32, 3, 3)) == (288, 576)
    assert init.compute_fans((300, 100), "dense") == (100, 300)
    assert init.compute_fans((100, 300), "in_out") == (100, 300)
    assert init.compute_fans((3, 3, 32, 64), "hwio") == (288, 576)
    # grouped conv: weight (out, in/groups, k, k); each input feeds out/groups * k*k outputs
    assert init.compute_fans((64, 8, 3, 3), "oihw", groups=4) == (72, 144)
    # depthwise 3x3 on 64 channels: PyTorch says fan_out 576; exact is 9
    assert init.compute_fans((64, 1, 3, 3), groups=64) == (9, 9)
    assert torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(64, 1, 3, 3)) == (9, 576)
    # transposed conv (in, out/groups, k, k): PyTorch swaps the fans
    assert init.compute_fans((32, 16, 3, 3), "iohw") == (288, 144)
    assert torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(32, 16, 3, 3)) == (144, 288)
    assert init.compute_fans((3, 3, 16, 32), "hwoi") == (288, 144)


def _torch_scale(name, t, **kw):
    """The std (normal) or bound (uniform) torch.nn.init's formulas give for tensor t."""
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(t)
    if name == "xavier_uniform":
        return kw.get("gain", 1.0) * math.sqrt(6.0 / (fan_in + fan_out))
    if name == "xavier_normal":
        return kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    fan = fan_in if kw.get("mode", "fan_in") == "fan_in" else fan_out
    gain = torch.nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
    if name == "kaiming_uniform":
        return gain * math.sqrt(3.0 / fan)
    return gain / math.sqrt(fan)


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("name,kw", [
    ("xavier_uniform", {}), ("xavier_uniform", {"gain": 5 / 3}), ("xavier_normal", {}),
    ("kaiming_uniform", {}), ("kaiming_uniform", {"a": math.sqrt(5)}),
    ("kaiming_normal", {"nonlinearity": "relu"}),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "tanh"})])
def test_std_and_bound_equal_torch_formulas(shape, name, kw):
    info = init.describe(name, shape, **kw)
    expect = _torch_scale(name, torch.empty(shape), **kw)
    got = info.high if info.distribution == "uniform" else info.std
    assert got == pytest.approx(expect, rel=1e-12)


def test_torch_default_matches_torch_linear_and_conv():
    lin = torch.nn.Linear(300, 20)
    w = init.describe("torch_default", (20, 300))
    assert w.high == pytest.approx(1 / math.sqrt(300))
    assert float(lin.weight.detach().abs().max()) <= w.high
    b = init.describe("torch_default", (20,), fan_in=300)
    assert b.high == w.high
    conv = torch.nn.Conv2d(16, 8, 3)
    info = init.describe("torch_default", tuple(conv.weight.shape))
    assert info.high == pytest.approx(1 / math.sqrt(16 * 9))
    assert float(conv.weight.detach().abs().max()) <= info.high


N = 400 * 500


@pytest.mark.parametrize("name,kw,dist", [
    ("xavier_uniform", {}, "uniform"), ("xavier_normal", {}, "normal"),
    ("kaiming_uniform", {"nonlinearity": "relu"}, "uniform"),
    ("kaiming_normal", {"nonlinearity": "relu"}, "normal"), ("he_normal", {}, "normal"),
    ("lecun_uniform", {}, "uniform"), ("lecun_normal", {}, "normal"),
    ("torch_default", {}, "uniform"), ("variance_scaling", {"scale": 2.0}, "truncated_normal")])
def test_initializer_distribution_ks(name, kw, dist):
    shape = (400, 500)
    w = getattr(init, name)(shape, seed=1, **kw).astype(np.float64).ravel()
    info = init.describe(name, shape, **kw)
    if dist == "uniform":
        ref = stats.uniform(info.low, info.high - info.low)
    elif dist == "normal":
        ref = stats.norm(0, info.std)
    else:
        ref = stats.truncnorm(-2, 2, scale=info.std)
        assert w.var() == pytest.approx(info.scale / info.fan_in, rel=0.02)
    assert stats.kstest(w, ref.cdf).pvalue > 1e-4
    assert w.std() == pytest.approx(ref.std(), rel=5 * math.sqrt(2.0 / N) + 1e-3)


def test_trunc_normal_bounds_named_explicitly():
    w = init.trunc_normal((200000,), 0.0, 0.02, seed=0)  # default: +-2 std
    assert np.abs(w).max() <= np.float32(0.04)
    assert stats.kstest(w, stats.truncnorm(-2, 2, scale=0.02).cdf).pvalue > 1e-4
    w = init.trunc_normal((200000,), 1.0, 1.0, a=0.0, b=1.5, seed=0)  # absolute bounds
    assert w.min() >= 0 and w.max() <= 1.5
    w = init.trunc_normal((200000,), 0.0, 1.0, a_std=-2, b_std=2, correct_variance=True, seed=0)
    assert w.std() == pytest.approx(1.0, rel=0.01)
    with pytest.raises(ValueError, match="not both"):
        init.trunc_normal((3,), a=-1, b_std=1, seed=0)
    with pytest.raises(ValueError, match="a_std"):
        init.trunc_normal((3,), a_std=1, b_std=-1, seed=0)
    with pytest.raises(ValueError, match="bound"):
        init.trunc_normal((3,), a=1.0, b=0.5, seed=0)
    with pytest.raises(ValueError, match="std units"):
        init.trunc_normal((3,), a=-1, b=1, correct_variance=True, seed=0)


def test_orthogonal_is_orthogonal_with_gain():
    for shape in [(64, 64), (32, 100), (100, 32), (16, 8, 3, 3)]:
        w = init.orthogonal(shape, gain=2.0, seed=0, dtype=np.float64).reshape(shape[0], -1)
        small = min(w.shape)
        g = w @ w.T if w.shape[0] == small else w.T @ w
        np.testing.assert_allclose(g, 4.0 * np.eye(small), atol=1e-10)


def test_constants_eye_dirac():
    assert np.all(init.zeros((3, 4)) == 0) and np.all(init.ones((2, 2), dtype=np.float64) == 1)
    assert np.all(init.constant((5,), 0.25) == np.float32(0.25))
    np.testing.assert_array_equal(init.eye((3, 5)), np.eye(3, 5, dtype=np.float32))
    for shape, groups in [((6, 4, 3, 3), 1), ((4, 2, 3, 3), 2), ((4, 4, 5), 1), ((2, 2, 3, 3, 3), 1)]:
        t = torch.empty(shape)
        torch.nn.init.dirac_(t, groups=groups)
        np.testing.assert_array_equal(init.dirac(shape, groups), t.numpy())


def test_seed_reproducibility_and_inplace_equals_functional(backend):
    a = init.kaiming_normal((64, 32, 3, 3), seed=42, backend=backend)
    b = init.kaiming_normal((64, 32, 3, 3), seed=42, backend=backend)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, init.kaiming_normal((64, 32, 3, 3), seed=43, backend=backend))
    w = np.empty((64, 32, 3, 3), np.float32)
    assert init.kaiming_normal_(w, seed=42, backend=backend) is w
    np.testing.assert_array_equal(w, a)
    s1, s2 = fi.rng.Stream(5), fi.rng.Stream(5)
    np.testing.assert_array_equal(init.xavier_uniform((30, 40), rng=s1, backend=backend),
                                  init.xavier_uniform((30, 40), rng=s2, backend=backend))
    assert s1.position == 1


def test_inplace_on_non_contiguous_view_fills_only_the_view():
    base = np.zeros((20, 30), np.float32)
    view = base[::2, 1::3]
    init.normal_(view, 0.0, 1.0, seed=3)
    np.testing.assert_array_equal(view, init.normal(view.shape, 0.0, 1.0, seed=3))
    mask = np.ones_like(base, bool)
    mask[::2, 1::3] = False
    assert np.all(base[mask] == 0)


def test_describe_records_the_numbers():
    info = init.describe("xavier_normal", (256, 512), gain=2.0, seed=7)
    assert (info.fan_in, info.fan_out, info.gain, info.seed) == (512, 256, 2.0, 7)
    assert info.std == pytest.approx(2.0 * math.sqrt(2.0 / 768))
    assert "fan_in=512" in str(info) and "std" in str(info)
    with pytest.raises(ValueError, match="unknown initializer"):
        init.describe("glorot", (2, 2))


def test_zero_size_warns_and_is_a_no_op():
    with pytest.warns(UserWarning, match="no-op"):
        w = init.xavier_uniform((0, 5), seed=0)
    assert w.shape == (0, 5)
    with pytest.warns(UserWarning, match="no-op"):
        init.normal_(np.empty((0,), np.float32), seed=0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform((5,), seed=0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.compute_fans(())
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal((4, 4), nonlinearity="swish", seed=0)
    with pytest.raises(ValueError, match="param"):
        init.calculate_gain("tanh", 0.2)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal((4, 4), mode="fan_sum", seed=0)
    with pytest.raises(ValueError, match="distribution"):
        init.variance_scaling((4, 4), distribution="cauchy", seed=0)
    with pytest.raises(ValueError, match="std"):
        init.normal((4, 4), std=-0.1, seed=0)
    with pytest.raises(ValueError, match="scale"):
        init.variance_scaling((4, 4), scale=-1.0, seed=0)
    with pytest.raises(ValueError, match="low"):
        init.uniform((4,), 1.0, -1.0, seed=0)
    with pytest.raises(TypeError, match="dtype"):
        init.xavier_uniform((4, 4), dtype=np.int64, seed=0)
    with pytest.raises(TypeError, match="float32 or float64"):
        init.xavier_uniform_(np.zeros((4, 4), np.int32), seed=0)
    ro = np.zeros((4, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.xavier_uniform_(ro, seed=0)
    with pytest.raises(ValueError, match="groups"):
        init.compute_fans((6, 2, 3, 3), groups=4)
    with pytest.raises(ValueError, match="layout"):
        init.compute_fans((6, 2), layout="nchw")
    with pytest.raises(ValueError, match="seed"):
        init.normal((2, 2))
    with pytest.raises(ValueError, match="fan_in"):
        init.torch_default((10,), seed=0)


@pytest.mark.parametrize("name", ["xavier_uniform", "kaiming_normal", "orthogonal", "zeros"])
def test_missing_shape_names_the_initializer(name):
    """A call without its shape is a TypeError that names the initializer, as a plain function's."""
    with pytest.raises(TypeError, match=rf"^{name}\(\) missing 1 required positional argument: 'shape'"):
        getattr(init, name)()
