"""Regression tests of issue 14 (adversarial testing), one per finding, on every backend.

Items 1 and 4 (fork, thread churn) are in test_fork.py and test_thread_churn.py; the fuzz
suite is test_fuzz.py.
"""
import math
import re

import numpy as np
import pytest

import fastinit as fi
from fastinit import nn

F32 = np.float32


def _misaligned(a):
    """A copy of ``a`` whose data starts at an odd byte address (writable)."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, a.dtype, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


# ---- item 2: empty batches in matmul ----------------------------------------------------------

_EMPTY = [((0, 3, 4), (4, 5)), ((0, 3, 4), (1, 4, 5)), ((3, 4), (0, 4, 5)), ((2, 3, 4), (4, 0)),
          ((1, 3, 4), (0, 4, 5)), ((2, 3, 0), (0, 5)), ((2, 0, 4), (4, 5)), ((3, 0), (0, 5)),
          ((0, 4), (4, 5)), ((2, 3, 4), (2, 4, 0)), ((0, 0), (0, 0))]


@pytest.mark.parametrize("sa, sb", _EMPTY)
def test_matmul_empty_batches_follow_numpy(backend, sa, sb):
    a, b = np.ones(sa, F32), np.ones(sb, F32)
    want = np.matmul(a, b)
    got = fi.matmul(a, b, backend=backend)
    assert got.shape == want.shape
    assert np.array_equal(got, want)  # zeros where K = 0
    out = np.full(want.shape, 7.0, F32)
    assert fi.matmul(a, b, out=out, backend=backend) is out and np.array_equal(out, want)


# ---- item 3: clip_grad_norm_ with a repeated or overlapping array ----------------------------

def test_clip_grad_norm_refuses_repeated_or_overlapping_arrays(backend):
    g = np.ones(100_000, F32)
    for grads, names in (([g, g], "grads[0] and grads[1]"),
                         ([np.ones(3, F32), g[:10], g[5:15]], "grads[1] and grads[2]")):
        with pytest.raises(ValueError, match=re.escape(names) + " share memory"):
            fi.clip_grad_norm_(grads, 1.0, backend=backend)
    assert np.all(g == 1.0)  # refused before anything was scaled
    halves = [g[:50_000], g[50_000:]]  # views that do not overlap are fine
    total = fi.clip_grad_norm_(halves, 1.0, backend=backend)
    assert total == pytest.approx(math.sqrt(100_000))
    assert np.allclose(g, 1.0 / math.sqrt(100_000), rtol=1e-5)


# ---- item 6: activation out= partially overlapping its input ----------------------------------

_ACTS = ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu", "identity"]


@pytest.mark.parametrize("name", _ACTS)
@pytest.mark.parametrize("shift", [1, -1, 7])
def test_activation_out_partially_overlapping_input(backend, name, shift):
    base = np.linspace(-3, 3, 4000, dtype=F32)
    n = 3000
    lo = max(0, -shift)
    f, df = getattr(fi, name), getattr(fi, name + "_backward")
    b = base.copy()
    want = f(b[lo:lo + n].copy(), backend="numpy")
    got = f(b[lo:lo + n], out=b[lo + shift:lo + shift + n], backend=backend)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)
    b = base.copy()  # backward: out overlapping dy, and overlapping x
    dy, x = b[lo:lo + n], b[lo + 2:lo + 2 + n]
    want = df(dy.copy(), x.copy(), backend="numpy")
    got = df(dy, x, out=b[lo + shift:lo + shift + n], backend=backend)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)
    b = base.copy()  # exact aliasing stays allowed and in place
    x = b[:n]
    assert f(x, out=x, backend=backend) is x
    assert np.allclose(x, f(base[:n], backend="numpy"), rtol=1e-5, atol=1e-6)


# ---- item 7: the float32 exact gelu's left tail -------------------------------------------------

def _gelu_grid():
    """x on [-10, 10]: a dense grid, and every float32 of the reported tail [-5.66, -5.21]."""
    tail = np.arange(np.float32(-5.66).view(np.int32), np.float32(-5.21).view(np.int32) - 1, -1,
                     dtype=np.int32).view(F32)
    return np.concatenate([np.linspace(-10, 10, 400_001, dtype=F32), tail])


def test_gelu_float32_tail_within_1e4_of_float64(backend):
    x = _gelu_grid()
    want = fi.gelu(x.astype(np.float64), backend="numpy")
    got = fi.gelu(x, backend=backend).astype(np.float64)
    assert np.all(np.sign(got) == np.sign(want))
    assert np.all(np.abs(got - want) <= 1e-4 * np.abs(want))
    dwant = fi.gelu_backward(np.ones_like(want), x.astype(np.float64), backend="numpy")
    dgot = fi.gelu_backward(np.ones_like(x), x, backend=backend).astype(np.float64)
    assert np.all(np.abs(dgot - dwant) <= 1e-4 * np.abs(dwant) + 1e-6)
    assert fi.gelu(np.array([-5.656], F32), backend=backend)[0] < 0


def test_gelu_float64_reference_tail():
    x = np.array([-10.0, -8.0, -6.0])
    phi = np.array([math.erfc(-v / math.sqrt(2)) / 2 for v in x])
    assert np.allclose(fi.gelu(x, backend="numpy"), x * phi, rtol=1e-13, atol=0)


# ---- item 8: non-finite weights from finite arguments -------------------------------------------

@pytest.mark.parametrize("call, argname", [
    (lambda: fi.init.uniform((3,), -3e38, 3e38, seed=0), "high - low"),
    (lambda: fi.init.uniform((3,), 0, 1e39, seed=0), "high"),
    (lambda: fi.init.uniform((3,), -1e39, 0, seed=0), "low"),
    (lambda: fi.init.uniform((3,), -1e308, 1e308, seed=0, dtype=np.float64), "high - low"),
    (lambda: fi.init.normal((3,), std=1e39, seed=0), "std"),
    (lambda: fi.init.normal((3,), std=1e38, seed=0), "std"),
    (lambda: fi.init.normal((3,), mean=1e39, seed=0), "mean"),
    (lambda: fi.init.trunc_normal((3,), std=3e38, a_std=-1.5, b_std=1.5, seed=0), "std"),
    (lambda: fi.init.constant((3,), 1e39), "value"),
    (lambda: fi.init.orthogonal((3, 3), gain=1e39), "gain"),
    (lambda: fi.rng.Stream(0).normal(3, std=1e308, dtype=np.float64), "std"),
])
def test_init_never_gives_inf_from_finite_arguments(backend, call, argname):
    with fi.backends.use(backend):
        with pytest.raises(ValueError, match=re.escape(argname)):
            call()


def test_init_large_finite_arguments_stay_finite(backend):
    kw = dict(seed=0, backend=backend)
    for w in (fi.init.uniform((1000,), -1.7e38, 1.7e38, **kw),
              fi.init.normal((1000,), std=5e37, **kw),
              fi.init.trunc_normal((1000,), std=1e38, **kw),
              fi.init.uniform((1000,), -8e307, 8e307, dtype=np.float64, **kw)):
        assert np.all(np.isfinite(w))


# ---- smaller findings ---------------------------------------------------------------------------

def test_stream_refuses_positions_that_would_wrap(backend):
    s = fi.rng.Stream(0, position=2 ** 64 - 2)
    last = s.uniform(4, backend=backend)
    assert last.shape == (4,) and s.position == 2 ** 64 - 1
    for draw in (lambda: s.uniform(4, backend=backend), lambda: s.normal(0, backend=backend),
                 lambda: s.trunc_normal(4, backend=backend)):
        with pytest.raises(ValueError, match="exhausted"):
            draw()
    assert s.position == 2 ** 64 - 1
    want = fi.rng.Stream(0, position=2 ** 64 - 2).uniform(4, backend="numpy")
    assert np.array_equal(last, want)


def test_misaligned_inputs_are_copied(backend):
    r = np.random.default_rng(1)
    x = r.standard_normal((2, 3, 8, 8)).astype(F32)
    w = r.standard_normal((4, 3, 3, 3)).astype(F32)
    a, b = r.standard_normal((5, 6)).astype(F32), r.standard_normal((6, 7)).astype(F32)
    g = r.standard_normal(8).astype(F32)
    kw = dict(backend=backend)
    cases = [
        lambda m: fi.relu(m(x), **kw), lambda m: fi.gelu_backward(m(x), m(x), **kw),
        lambda m: fi.matmul(m(a), m(b), **kw), lambda m: fi.matmul(m(b).T, m(a).T, **kw),
        lambda m: fi.linear(m(a), m(b.T.copy()), m(g[:7]), **kw),
        lambda m: np.concatenate([d.ravel() for d in fi.linear_backward(
            m(a @ b), m(a), m(b.T.copy()), **kw)]),
        lambda m: fi.conv2d(m(x), m(w), padding=1, **kw),
        lambda m: fi.batch_norm(m(x), m(g[:3]), m(g[3:6]), **kw)[0],
        lambda m: fi.max_pool2d(m(x), 2, **kw), lambda m: fi.avg_pool2d_backward(
            m(x[:, :, ::2, ::2].copy()), m(x), 2, **kw),
        lambda m: fi.softmax_cross_entropy(m(a), m(np.arange(5)), **kw)[1],
        lambda m: fi.mse(m(a), m(a * 2), **kw)[1],
    ]
    for i, case in enumerate(cases):
        assert np.allclose(case(_misaligned), case(np.copy), rtol=1e-5, atol=1e-6), i
    grads = [_misaligned(g), _misaligned(a)]  # in place: the result lands in the caller's arrays
    fi.clip_grad_norm_(grads, 0.5, **kw)
    assert math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in grads)) == \
        pytest.approx(0.5, rel=1e-4)
    out = _misaligned(np.zeros(9, F32))
    fi.rng.Stream(3).uniform(out=out, backend=backend)
    assert np.array_equal(out, fi.rng.Stream(3).uniform(9, backend="numpy"))
    with pytest.raises(ValueError, match=r"params\[0\] must be aligned"):
        fi.sgd_step_([_misaligned(g)], [g], 0.1, **kw)
    with pytest.raises(ValueError, match="out must be aligned"):
        fi.relu(g, out=_misaligned(g), **kw)


def test_linear_backward_need_parser_as_conv2d_backward():
    x, w, dy = np.ones((2, 3), F32), np.ones((4, 3), F32), np.ones((2, 4), F32)
    dx, dw, db = fi.linear_backward(dy, x, w, need="dx")
    assert dx.shape == (2, 3) and dw is None and db is None
    dx, dw, db = fi.linear_backward(dy, x, w, need=["dw", "db"])
    assert dx is None and dw.shape == (4, 3) and db.shape == (4,)
    with pytest.raises(TypeError, match="need must be"):
        fi.linear_backward(dy, x, w, need=None)
    with pytest.raises(ValueError, match="need must name gradients"):
        fi.linear_backward(dy, x, w, need="dz")
    xc, wc = np.ones((1, 2, 4, 4), F32), np.ones((3, 2, 3, 3), F32)
    dyc = np.ones((1, 3, 2, 2), F32)
    assert fi.conv2d_backward(dyc, xc, wc, need="dw")[1].shape == wc.shape


def test_batch_norm_backward_short_saved_statistics():
    x = np.ones((4, 3), F32)
    y, saved = fi.batch_norm(x + np.arange(3, dtype=F32), None, None)
    with pytest.raises(ValueError, match=r"for 2 channels in saved.invstd \(shape \(2,\)\) "
                                         r"but x has 3 channels"):
        fi.batch_norm_backward(y, x, None, saved._replace(invstd=saved.invstd[:2]))
    with pytest.raises(ValueError, match=r"for 4 channels in saved.mean"):
        fi.batch_norm_backward(y, x, None, saved._replace(mean=np.zeros(4)))
    with pytest.raises(TypeError, match="saved.mean must be a float"):
        fi.batch_norm_backward(y, x, None, saved._replace(mean=[0.0, 0.0, 0.0]))


def test_batch_norm_backward_float32_saved_statistics(backend):
    r = np.random.default_rng(2)
    x = r.standard_normal((6, 3, 4, 4)).astype(F32)
    y, saved = fi.batch_norm(x, None, None, backend=backend)
    s32 = saved._replace(mean=saved.mean.astype(F32), invstd=saved.invstd.astype(F32))
    got = fi.batch_norm_backward(y, x, None, s32, backend=backend)[0]
    want = fi.batch_norm_backward(y, x, None, saved, backend=backend)[0]
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_and_masked_inputs_refused(backend):
    m = np.matrix(np.ones((3, 4), F32))
    for call in (lambda: fi.relu(m, backend=backend),
                 lambda: fi.matmul(m, np.ones((4, 2), F32), backend=backend),
                 lambda: fi.linear(m, np.ones((2, 4), F32), backend=backend),
                 lambda: fi.clip_grad_norm_([m], 1.0, backend=backend),
                 lambda: fi.mse(np.ma.masked_array(np.ones(3, F32)), np.ones(3, F32),
                                backend=backend)):
        with pytest.raises(TypeError, match="plain numpy.ndarray"):
            call()
    assert np.array_equal(fi.relu(np.asarray(m), backend=backend), np.ones((3, 4), F32))


def test_nn_backward_before_forward_says_what_to_call():
    for layer in (nn.Linear(3, 4, seed=0), nn.Conv2d(1, 2, 3, seed=0), nn.ReLU(),
                  nn.BatchNorm1d(3), nn.Flatten(), nn.MaxPool2d(2), nn.AvgPool2d(2)):
        with pytest.raises(RuntimeError, match=r"backward\(\) was called before forward\(\)"):
            layer.backward(np.ones((2, 4), F32))
    for crit in (nn.SoftmaxCrossEntropy(), nn.MSE()):
        with pytest.raises(RuntimeError, match="call crit"):
            crit.backward()
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        nn.ReLU().nonsense  # noqa: B018 - other missing attributes stay AttributeError


def test_flatten_empty_batch():
    f = nn.Flatten()
    y = f(np.ones((0, 3, 4, 4), F32))
    assert y.shape == (0, 48)
    assert f.backward(y).shape == (0, 3, 4, 4)


def test_set_num_threads_takes_numpy_integers():
    before = fi.get_num_threads()
    try:
        fi.set_num_threads(np.int64(1))
        assert fi.get_num_threads() == 1
    finally:
        fi.set_num_threads(before)
    for bad in (0, 1.0, True, "1"):
        with pytest.raises(ValueError):
            fi.set_num_threads(bad)
