"""The classic experiments over training (issue 16): each published effect appears on the
digits, with bounds derived from theory or measured over several seeds; the deep linear
network against its exact prediction; the MNIST reader on small IDX files written here."""
import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastinit import nn
from fastinit.lab import signal, train

SEEDS = [0, 1, 2]
CHANCE_LOSS = math.log(10)   # cross-entropy of a uniform guess over 10 classes


def _experiment(name, **changes):
    kw = dict(train.EXPERIMENTS[name])
    kw.update(changes)
    return train.run(progress=False, **kw)


@pytest.mark.parametrize("seed", SEEDS)
def test_he_trains_deep_relu_nets_where_xavier_stalls(seed):
    # He et al. 2015: with ReLU, Xavier's n Var[W] = 1 halves the second moment every layer,
    # 2^-30 at the top of 30 layers: the logits are ~0 and the bottom layers' gradients are as
    # small, so the loss stays at ln 10. He's n Var[W] = 2 keeps the scale and the net learns.
    # Measured over seeds 0-2 after 10 epochs, on the C kernels (AVX-512 and AVX2 builds) and
    # the Numba ones: Xavier loss >= 2.302 (ln 10 = 2.3026) and accuracy <= 0.102; He loss
    # 1.01-1.73, accuracy 0.26-0.60. (The 30-layer net alone: 20 layers as well would double
    # this test's time.)
    res = _experiment("depth", depth=30, epochs=10, seed=seed)
    for r in res["runs"]:
        if r["init"] == "xavier_normal":
            assert r["loss"][-1] > CHANCE_LOSS - 0.02, r["label"]
            assert r["test_acc"][-1] < 0.15, r["label"]
        else:
            assert r["loss"][-1] < 2.0 and r["test_acc"][-1] > 0.2, r["label"]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_top_layer_saturates_during_training_tanh_does_not(seed):
    # Glorot & Bengio 2010, figure 2: with sigmoid and the standard init, the top hidden layer
    # starts at mean 0.5 (symmetric pre-activations) and is driven towards 0, where sigmoid is
    # flat, within the first epochs; tanh with Xavier's stays centred at 0 with a wide spread.
    # Measured over seeds 0-2 after 63 steps: sigmoid top mean 0.08-0.12, its std <= 0.007.
    res = _experiment("probe", epochs=3, probe_every=10, seed=seed)
    sig, tanh = res["runs"]
    m, s, p98 = (np.array(sig["dynamics"][k])[:, -1] for k in ("mean", "std", "p98"))
    assert sig["dynamics"]["steps"][:2] == [0, 10]
    assert 0.45 < m[0] < 0.55
    assert m[-1] < 0.15 and p98[-1] < 0.2 and s[-1] < 0.02
    assert s[-1] < s[0] / 4
    tm, ts = (np.array(tanh["dynamics"][k])[:, -1] for k in ("mean", "std"))
    assert np.all(np.abs(tm) < 0.1) and ts[-1] > 0.5
    assert tanh["test_acc"][-1] > 0.6 and sig["test_acc"][-1] < 0.15


def test_deep_linear_network_scales_as_the_factor_to_the_depth():
    # 9 layers of c * I: hidden layer l holds c^l times the input, so the output std is
    # c^9 times the first layer's / c, and the gradient shrinks or grows as c^(L - l) on the
    # way down; Xavier's keeps both about constant.
    res = signal.run(**signal.LINEAR, width=64, batch=128, seed=0)
    for r in res["runs"]:
        a, g = np.array(r["activation_std"]), np.array(r["gradient_std"])
        if r["factor"] is not None:
            c = r["factor"]
            assert r["exact"]
            np.testing.assert_allclose(a, r["predicted_activation_std"], rtol=1e-4)
            np.testing.assert_allclose(g, r["predicted_gradient_std"], rtol=1e-4)
            assert a[-1] / a[0] == pytest.approx(c ** 8, rel=1e-4)
            assert g[0] / g[-1] == pytest.approx(c ** 8, rel=1e-4)
        else:
            assert 0.5 < a[-1] / a[0] < 2 and 0.5 < g[0] / g[-1] < 2


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_constant_init_leaves_one_distinct_unit_per_layer(init):
    res = train.run(inits=(init, "he_normal"), depth=3, width=16, epochs=2, progress=False)
    const, he = res["runs"]
    assert const["distinct_units"] == [1, 1, 1]      # symmetry never broken
    assert he["distinct_units"] == [16, 16, 16]
    assert "1 of 16 in every layer" in train.format_table(res)


@pytest.mark.parametrize("seed", SEEDS)
def test_clipping_lets_an_unstable_net_train(seed):
    # The deep linear net with weights 1.5 I: the back-propagated gradient grows as 1.5^L (x38
    # over 9 layers), so unclipped steps overshoot and feed on each other. Measured over seeds
    # 0-2 on the C AVX-512 and AVX2 builds and the Numba kernels: unclipped, the loss is inf or
    # NaN by step 5 (gradient norm 353 -> 2.5e12); clipped, test accuracy 0.89-0.95.
    res = _experiment("clip", epochs=4, seed=seed)
    free, *clipped = res["runs"]
    assert free["clip_norm"] is None and free["clip_value"] is None
    assert free["diverged"] and not np.isfinite(free["step_loss"][-1])
    assert np.nanmax(free["grad_norm"]) > 1e6 * free["grad_norm"][0]
    assert {(r["clip_norm"], r["clip_value"]) for r in clipped} == {(1.0, None), (None, 0.01)}
    for r in clipped:
        assert not r["diverged"] and np.isfinite(r["loss"][-1])
        assert r["test_acc"][-1] > 0.8, r["label"]


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_rescues_bad_inits(seed):
    # Without batch norm, 0.01-std weights shrink the signal 10x a layer (6 layers: nothing
    # reaches the output) and N(0, 1) or 100x He weights blow it up until the loss is NaN;
    # batch norm rescales every layer's pre-activations, whatever the weights' scale.
    # Measured over seeds 0-2 after 6 epochs: with batch norm 0.34-0.96, without <= 0.102.
    res = _experiment("batch_norm", epochs=6, seed=seed)
    assert len(res["runs"]) == 6
    for r in res["runs"]:
        if r["batch_norm"]:
            assert r["test_acc"][-1] > 0.25, r["label"]
        else:
            assert r["test_acc"][-1] < 0.15, r["label"]


# ---- MNIST from IDX files -----------------------------------------------------------------

def _idx(path, array, gz=False):
    a = np.asarray(array, np.uint8)
    raw = bytes([0, 0, 0x08, a.ndim]) + b"".join(n.to_bytes(4, "big") for n in a.shape)
    raw += a.tobytes()
    with (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(raw)


def _fake_mnist(folder, n_train=120, n_test=40, side=6, gz=False):
    r = np.random.default_rng(0)
    ytr, yte = np.arange(n_train) % 10, np.arange(n_test) % 10
    # each class lights up its own pixel, so a net can learn it in an epoch or two
    xtr = r.integers(0, 60, (n_train, side, side))
    xte = r.integers(0, 60, (n_test, side, side))
    for x, y in ((xtr, ytr), (xte, yte)):
        x.reshape(len(x), -1)[np.arange(len(x)), y] = 255
    for name, a in zip(nn.data.MNIST_FILES, (xtr, ytr, xte, yte)):
        _idx(folder / name, a, gz)
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    xtr, ytr, xte, yte = _fake_mnist(tmp_path, gz=gz)
    a, b, c, d = nn.data.mnist(tmp_path)
    assert a.shape == (120, 36) and a.dtype == np.float32 and c.shape == (40, 36)
    np.testing.assert_allclose(a, xtr.reshape(120, 36) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(b, ytr)
    np.testing.assert_array_equal(d, yte)
    img = nn.data.mnist(tmp_path, image=True)[0]
    assert img.shape == (120, 1, 6, 6)


def test_mnist_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks the MNIST file"):
        nn.data.mnist(tmp_path)
    _fake_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        nn.data.mnist(tmp_path)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(39) % 10)   # one label short
    with pytest.raises(ValueError, match="expected 40 labels"):
        nn.data.mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x28abc")
    with pytest.raises(ValueError, match="the header says"):
        nn.data.mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        nn.data.mnist(tmp_path)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastinit", *args], capture_output=True,
                          text=True, timeout=600)


def test_train_experiment_options_end_to_end(tmp_path):
    _fake_mnist(tmp_path, gz=True)
    proc = _cli("train", "--data-dir", str(tmp_path), "--depth", "4", "--width", "16",
                "--inits", "zeros,uniform,xavier_normal,normal", "--epochs", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["config"]["data"] == "mnist" and res["config"]["n_in"] == 36
    assert [r["init"] for r in res["runs"]] == ["zeros", "uniform", "xavier_normal", "normal"]
    assert res["runs"][0]["distinct_units"] == [1, 1, 1, 1]
    fig = tmp_path / "dyn.png"
    proc = _cli("train", "--probe", "--epochs", "1", "--probe-every", "7", "--plot", str(fig))
    assert proc.returncode == 0, proc.stderr
    assert "standard, sigmoid" in proc.stdout and "activations every 7 steps" in proc.stdout
    assert fig.stat().st_size > 10000
    curves = tmp_path / "clip.png"
    proc = _cli("train", "--clip-value", "0.01", "--epochs", "1", "--plot", str(curves))
    assert proc.returncode == 0, proc.stderr
    assert "no clipping" in proc.stdout and "clip value 0.01" in proc.stdout
    assert "clip norm" not in proc.stdout.split("gradient norm per step")[0]
    assert curves.stat().st_size > 10000
    proc = _cli("train", "--batch-norm", "--depth", "3", "--width", "16", "--epochs", "1",
                "--inits", "too_small")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert any(l.startswith("no batch norm ") for l in table)
    assert any(l.startswith("batch norm ") for l in table)
    proc = _cli("signal", "--activation", "linear", "--width", "32", "--batch", "64")
    assert proc.returncode == 0, proc.stderr
    assert "identity_0.5" in proc.stdout and "identity_1.5" in proc.stdout
    assert "x0.00391" in proc.stdout and "x25.6" in proc.stdout       # 0.5^8 and 1.5^8


def test_settings_take_the_experiment_defaults_and_options_win():
    from fastinit import cli

    parse = cli.build_parser().parse_args
    s = cli.train_settings(parse(["train", "--depth", "10,20,30"]))
    assert s["depth"] == (10, 20, 30) and s["inits"] == ("xavier_normal", "he_normal")
    s = cli.train_settings(parse(["train", "--depth", "5", "--lr", "0.01", "--inits", "zeros"]))
    assert s["depth"] == 5 and s["lr"] == 0.01 and s["inits"] == ("zeros",)
    s = cli.train_settings(parse(["train", "--clip-norm", "2"]))
    assert s["clip_norm"] == (None, 2.0) and s["clip_value"] == ()
    s = cli.train_settings(parse(["train", "--probe", "--activation", "relu"]))
    assert s["activation"] == "relu" and "runs" not in s and s["probe_every"] == 5
    s = cli.train_settings(parse(["train"]))
    assert s["depth"] is None and s["width"] == 128 and len(s["inits"]) == 7
