"""Seeded fuzz suite (issue 14): random valid configurations of every op, small shapes, compared
across backends and against PyTorch; random invalid ones, which must raise ValueError or
TypeError (never another exception, a crash or a wrong answer).

Each op draws CASES configurations from its own seeded generator, so a failure names the op
and the case index and reproduces exactly. The numpy reference is the oracle: every fast
backend must match it within the dtype's tolerance, and it must match PyTorch (float64
cases tightly).
"""
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

import fastinit as fi
from conftest import FAST

SEED = 14
CASES = 64
ACTS = ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu", "identity"]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _rng(*key):
    return np.random.default_rng([SEED, zlib.crc32(repr(key).encode())])


def _arr(r, shape, dtype, layout=True):
    """Random normal values; sometimes a non-contiguous view (transposed or strided)."""
    a = r.standard_normal(shape).astype(dtype)
    if layout and a.ndim >= 2 and r.random() < 0.25:
        a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)  # F-ordered view
    elif layout and a.size and r.random() < 0.15:
        big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype)
        big[..., ::2] = a
        a = big[..., ::2]  # strided view
    return a


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _close(got, want, dtype, what):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, f"{what}: output {i} should be None"
            continue
        g = np.asarray(g, np.float64)
        w = np.asarray(w, np.float64)
        assert g.shape == w.shape, f"{what}: output {i} shape {g.shape} != {w.shape}"
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        tol = TOL[dtype]
        ok = np.isclose(g, w, rtol=tol["rtol"], atol=tol["atol"] * scale, equal_nan=True)
        assert ok.all(), f"{what}: output {i} differs at {np.argwhere(~ok)[:3].tolist()}"


# ---- valid configurations: (run(backend) -> outputs, torch() -> outputs) ------------------------

def _matmul(r, dtype):
    m, k, n = (int(v) for v in r.integers(0, 7, 3))
    ba, bb = (int(r.choice([0, 1, 2, 3])) for _ in range(2))  # batch sizes (0: empty)
    if ba != bb and min(ba, bb) != 1:
        bb = 1
    a = _arr(r, ((ba,) if r.random() < 0.6 else ()) + (m, k), dtype)
    b = _arr(r, ((bb,) if r.random() < 0.6 else ()) + (k, n), dtype)
    return (lambda be: fi.matmul(a, b, backend=be)), (lambda: torch.matmul(_t(a), _t(b)))


def _linear(r, dtype):
    n, i, o = (int(v) for v in r.integers(1, 9, 3))
    x, w, dy = _arr(r, (n, i), dtype), _arr(r, (o, i), dtype), _arr(r, (n, o), dtype)
    b = _arr(r, (o,), dtype) if r.random() < 0.7 else None

    def run(be):
        y = fi.linear(x, w, b, backend=be)
        return (y,) + fi.linear_backward(dy, x, w, has_bias=b is not None, backend=be)

    def ref():
        tx, tw = _t(x).requires_grad_(), _t(w).requires_grad_()
        tb = None if b is None else _t(b).requires_grad_()
        y = tF.linear(tx, tw, tb)
        y.backward(_t(dy))
        return y.detach(), tx.grad, tw.grad, None if tb is None else tb.grad
    return run, ref


def _conv(r, dtype):
    groups = int(r.choice([1, 1, 2, 3]))
    c, k = groups * int(r.integers(1, 4)), groups * int(r.integers(1, 4))
    kh, kw = int(r.integers(1, 6)), int(r.integers(1, 6))
    stride = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    dil = (int(r.integers(1, 3)), int(r.integers(1, 3)))
    pad = (int(r.integers(0, 3)), int(r.integers(0, 3)))
    h = int(r.integers(dil[0] * (kh - 1) + 1 - 2 * pad[0], 12))
    wd = int(r.integers(dil[1] * (kw - 1) + 1 - 2 * pad[1], 12))
    h, wd = max(h, 1), max(wd, 1)
    n = int(r.integers(1, 4))
    x, w = _arr(r, (n, c, h, wd), dtype), _arr(r, (k, c // groups, kh, kw), dtype)
    b = _arr(r, (k,), dtype) if r.random() < 0.7 else None
    geo = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    oh, ow = fi.conv2d_output_shape(x.shape, w.shape, **geo)[2:]
    dy = _arr(r, (n, k, oh, ow), dtype)

    def run(be):
        y = fi.conv2d(x, w, b, backend=be, **geo)
        return (y,) + fi.conv2d_backward(dy, x, w, has_bias=b is not None, backend=be, **geo)

    def ref():
        tx, tw = _t(x).requires_grad_(), _t(w).requires_grad_()
        tb = None if b is None else _t(b).requires_grad_()
        y = tF.conv2d(tx, tw, tb, **geo)
        y.backward(_t(dy))
        return y.detach(), tx.grad, tw.grad, None if tb is None else tb.grad
    return run, ref


def _batch_norm(r, dtype):
    shape = (int(r.integers(2, 6)), int(r.integers(1, 5)))
    if r.random() < 0.6:
        shape += (int(r.integers(1, 5)), int(r.integers(1, 5)))
    c = shape[1]
    x, dy = _arr(r, shape, dtype) * 3 + 1, _arr(r, shape, dtype)
    gamma, beta = _arr(r, (c,), dtype), _arr(r, (c,), dtype)
    training = r.random() < 0.7
    rm, rv = _arr(r, (c,), dtype), np.abs(_arr(r, (c,), dtype)) + 0.5

    def run(be):
        m, v = rm.copy(), rv.copy()
        y, saved = fi.batch_norm(x, gamma, beta, m, v, training=training, backend=be)
        return (y, m, v) + fi.batch_norm_backward(dy, x, gamma, saved, backend=be)

    def ref():
        tx, tg, tb = _t(x).requires_grad_(), _t(gamma).requires_grad_(), _t(beta).requires_grad_()
        m, v = _t(rm.copy()), _t(rv.copy())
        y = tF.batch_norm(tx, m, v, tg, tb, training=training, eps=1e-5)
        y.backward(_t(dy))
        return y.detach(), m, v, tx.grad, tg.grad, tb.grad
    return run, ref


def _activation(r, dtype):
    name = str(r.choice(ACTS))
    shape = tuple(int(v) for v in r.integers(0, 6, int(r.integers(1, 4))))
    x = _arr(r, shape, dtype) * float(r.choice([1, 4, 12]))
    dy = _arr(r, shape, dtype)
    args, targs = (), {}
    if name == "leaky_relu":
        args = (float(r.uniform(0, 0.3)),)
        tfun = lambda t: tF.leaky_relu(t, args[0])  # noqa: E731
    elif name == "elu":
        args = (float(r.uniform(0.1, 2)),)
        tfun = lambda t: tF.elu(t, args[0])  # noqa: E731
    elif name == "gelu":
        args = (str(r.choice(["none", "tanh"])),)
        tfun = lambda t: tF.gelu(t, approximate=args[0])  # noqa: E731
    else:
        tfun = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                "identity": lambda t: t * 1}[name]

    def run(be):
        return (getattr(fi, name)(x, *args, backend=be),
                getattr(fi, name + "_backward")(dy, x, *args, backend=be))

    def ref():
        tx = _t(x).requires_grad_()
        y = tfun(tx)
        y.backward(_t(dy))
        return y.detach(), tx.grad
    return run, ref


def _pool(r, dtype):
    kind = str(r.choice(["max", "avg"]))
    kh, kw = int(r.integers(1, 4)), int(r.integers(1, 4))
    stride = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    pad = (int(r.integers(0, kh // 2 + 1)), int(r.integers(0, kw // 2 + 1)))
    x = _arr(r, (int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(kh, 9)),
                 int(r.integers(kw, 9))), dtype)
    geo = ((kh, kw), stride, pad)
    oh, ow = fi.pool2d_output_shape(x.shape, *geo)[2:]
    dy = _arr(r, x.shape[:2] + (oh, ow), dtype)
    f, df = getattr(fi, kind + "_pool2d"), getattr(fi, kind + "_pool2d_backward")
    tf = getattr(tF, kind + "_pool2d")

    def run(be):
        return f(x, *geo, backend=be), df(dy, x, *geo, backend=be)

    def ref():
        tx = _t(x).requires_grad_()
        y = tf(tx, *geo)
        y.backward(_t(dy))
        return y.detach(), tx.grad
    return run, ref


def _loss(r, dtype):
    n, k = int(r.integers(1, 7)), int(r.integers(1, 7))
    logits = _arr(r, (n, k), dtype) * float(r.choice([1, 10, 100]))
    labels = r.integers(0, k, n)
    pred, target = _arr(r, (n, k), dtype), _arr(r, (n, k), dtype)

    def run(be):
        ce, dl = fi.softmax_cross_entropy(logits, labels, backend=be)
        se, dp = fi.mse(pred, target, backend=be)
        return np.float64(ce), dl, np.float64(se), dp

    def ref():
        tl, tp = _t(logits).requires_grad_(), _t(pred).requires_grad_()
        ce = tF.cross_entropy(tl, torch.from_numpy(labels))
        ce.backward()
        se = tF.mse_loss(tp, _t(target))
        se.backward()
        return ce.detach(), tl.grad, se.detach(), tp.grad
    return run, ref


def _clip(r, dtype):
    shapes = [tuple(int(v) for v in r.integers(0, 6, int(r.integers(1, 3))))
              for _ in range(int(r.integers(1, 5)))]
    grads = [_arr(r, s, dtype) for s in shapes]
    max_norm = float(r.choice([0.1, 1.0, 100.0]))
    norm_type = float(r.choice([1.0, 2.0, 3.0, np.inf]))
    clip_value = float(r.uniform(0.05, 2))

    def run(be):
        g = [a.copy() for a in grads]
        total = fi.clip_grad_norm_(g, max_norm, norm_type, backend=be)
        v = [a.copy() for a in grads]
        fi.clip_grad_value_(v, clip_value, backend=be)
        return (np.float64(total),) + tuple(g) + tuple(v)

    def ref():
        ts = [_t(a.copy()).requires_grad_() for a in grads]
        for t, a in zip(ts, grads):
            t.grad = _t(a.copy())
        full = [t for t in ts if t.numel()]  # torch has no inf-norm of an empty tensor
        total = torch.nn.utils.clip_grad_norm_(full, max_norm, norm_type) if full else \
            torch.tensor(0.0)
        vs = [_t(a.copy()).requires_grad_() for a in grads]
        for t, a in zip(vs, grads):
            t.grad = _t(a.copy())
        torch.nn.utils.clip_grad_value_(vs, clip_value)
        return (total,) + tuple(t.grad for t in ts) + tuple(t.grad for t in vs)
    return run, ref


def _sgd(r, dtype):
    shapes = [tuple(int(v) for v in r.integers(1, 6, int(r.integers(1, 3))))
              for _ in range(int(r.integers(1, 4)))]
    params = [np.ascontiguousarray(_arr(r, s, dtype)) for s in shapes]
    grads = [_arr(r, s, dtype) for s in shapes]
    lr, mom, wd = float(r.uniform(0.01, 1)), float(r.choice([0.0, 0.9])), float(
        r.choice([0.0, 1e-2]))

    def run(be):
        p = [a.copy() for a in params]
        v = [np.zeros_like(a) for a in params]
        for _ in range(2):
            fi.sgd_step_(p, grads, lr, v, momentum=mom, weight_decay=wd, backend=be)
        return tuple(p)

    def ref():
        ts = [_t(a.copy()).requires_grad_() for a in params]
        opt = torch.optim.SGD(ts, lr=lr, momentum=mom, weight_decay=wd)
        for _ in range(2):
            for t, g in zip(ts, grads):
                t.grad = _t(g)
            opt.step()
        return tuple(t.detach() for t in ts)
    return run, ref


def _rng_draws(r, dtype):
    seed, n = int(r.integers(0, 2 ** 63)), int(r.integers(0, 40))
    lo = float(r.uniform(-3, 0))

    def run(be):
        s = fi.rng.Stream(seed)
        return (s.uniform(n, lo, lo + 2, dtype=dtype, backend=be),
                s.normal(n, 0.5, 2.0, dtype=dtype, backend=be),
                s.trunc_normal(n, 1.0, 0.5, -1.0, 2.5, dtype=dtype, backend=be))
    return run, None  # the reference is the oracle (PyTorch has no Philox stream of ours)


VALID = {"matmul": _matmul, "linear": _linear, "conv2d": _conv, "batch_norm": _batch_norm,
         "activations": _activation, "pool": _pool, "loss": _loss, "clip": _clip, "sgd": _sgd,
         "rng": _rng_draws}


@pytest.mark.parametrize("op", sorted(VALID))
def test_fuzz_valid_matches_reference_and_torch(op):
    for case in range(CASES):
        r = _rng(op, case)
        dtype = np.float64 if case % 3 == 2 else np.float32
        run, ref = VALID[op](r, dtype)
        what = f"{op} case {case} ({np.dtype(dtype).name})"
        want = run("numpy")
        for be in FAST:
            _close(run(be), want, dtype, f"{what} on {be}")
        if ref is not None:
            theirs = ref()
            theirs = theirs if isinstance(theirs, tuple) else (theirs,)
            _close(tuple(None if t is None else t.detach().numpy() for t in theirs), want, dtype,
                   f"{what}: the reference against PyTorch")


# ---- invalid configurations: each must raise ValueError or TypeError ---------------------------

def _bad_arrays(r, shape, fixed_ndim=True):
    """Arrays wrong in one way for a float32/float64 input of ``shape`` (with ``fixed_ndim``
    also one with an extra axis)."""
    good = r.standard_normal(shape).astype(np.float32)
    bad = [good.astype(np.int32), good.astype(np.float16), good.astype(np.complex64),
           good > 0, good.tolist(), "x", None, np.matrix(good.reshape(shape[0], -1))]
    return bad + ([good[None, None]] if fixed_ndim else [])


def _invalid_cases(r):
    """(name, call) pairs, every call invalid."""
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    x4, w4, a2 = f(2, 3, 6, 6), f(4, 3, 3, 3), f(3, 4)
    g3 = f(3)
    cases = []
    for bad in _bad_arrays(r, (3, 4)):
        cases += [("matmul b", lambda bad=bad: fi.matmul(f(2, 3), bad)),
                  ("linear x", lambda bad=bad: fi.linear(bad, f(5, 4))),
                  ("mse pred", lambda bad=bad: fi.mse(bad, a2))]
    for bad in _bad_arrays(r, (3, 4), fixed_ndim=False):
        if not (isinstance(bad, np.ndarray) and bad.dtype == np.float16):  # clip takes float16
            cases += [("clip grads", lambda bad=bad: fi.clip_grad_norm_([bad], 1.0))]
    for bad in _bad_arrays(r, (2, 3, 6, 6)):
        cases += [("conv2d x", lambda bad=bad: fi.conv2d(bad, w4)),
                  ("max_pool2d x", lambda bad=bad: fi.max_pool2d(bad, 2)),
                  ("batch_norm x", lambda bad=bad: fi.batch_norm(bad, g3, g3))]
    for bad in _bad_arrays(r, (2, 3, 6, 6), fixed_ndim=False):
        cases += [("relu x", lambda bad=bad: fi.relu(bad))]
    for v in (0, -1, 2.5, "2", (1, 2, 3), True, None, float("nan")):
        cases += [("conv2d stride", lambda v=v: fi.conv2d(x4, w4, stride=v)),
                  ("max_pool2d kernel", lambda v=v: fi.max_pool2d(x4, v))]
    for v in (-1, 0, float("nan"), "x", None, True):
        cases += [("clip max_norm", lambda v=v: fi.clip_grad_norm_([a2], v))]
    for v in (-1, float("nan"), float("inf"), "x", None, True):
        cases += [("sgd lr", lambda v=v: fi.sgd_step_([a2.copy()], [a2], v)),
                  ("batch_norm eps", lambda v=v: fi.batch_norm(x4, g3, g3, eps=v))]
    for v in (2.0, float("nan"), float("inf"), "x", None, True):
        cases += [("uniform low", lambda v=v: fi.init.uniform((3,), v, 1.0, seed=0))]
    cases += [
        ("matmul inner", lambda: fi.matmul(f(3, 4), f(5, 2))),
        ("matmul batch", lambda: fi.matmul(f(2, 3, 4), f(3, 4, 2))),
        ("matmul dtypes", lambda: fi.matmul(a2, a2.T.astype(np.float64))),
        ("matmul out", lambda: fi.matmul(a2, f(4, 2), out=np.empty((3, 3), np.float32))),
        ("conv2d channels", lambda: fi.conv2d(x4, f(4, 2, 3, 3))),
        ("conv2d groups", lambda: fi.conv2d(x4, w4, groups=2)),
        ("conv2d padding", lambda: fi.conv2d(x4, w4, padding="valid-ish")),
        ("conv2d kernel too big", lambda: fi.conv2d(x4, f(4, 3, 9, 9))),
        ("conv2d_backward dy", lambda: fi.conv2d_backward(f(2, 4, 5, 5), x4, w4)),
        ("conv2d_backward need", lambda: fi.conv2d_backward(f(2, 4, 4, 4), x4, w4, need=1)),
        ("linear_backward need", lambda: fi.linear_backward(f(3, 5), a2, f(5, 4), need=None)),
        ("linear_backward need name", lambda: fi.linear_backward(f(3, 5), a2, f(5, 4),
                                                                 need="dz")),
        ("batch_norm gamma", lambda: fi.batch_norm(x4, f(4), g3)),
        ("batch_norm one value", lambda: fi.batch_norm(f(1, 3), g3, g3)),
        ("batch_norm_backward saved", lambda: fi.batch_norm_backward(x4, x4, g3, "saved")),
        ("softmax labels range", lambda: fi.softmax_cross_entropy(a2, np.array([0, 1, 4]))),
        ("softmax labels dtype", lambda: fi.softmax_cross_entropy(a2, np.zeros(3))),
        ("relu out shape", lambda: fi.relu(a2, out=np.empty((4, 3), np.float32))),
        ("relu out dtype", lambda: fi.relu(a2, out=np.empty((3, 4)))),
        ("gelu approximate", lambda: fi.gelu(a2, approximate="fast")),
        ("clip overlap", lambda: fi.clip_grad_norm_([a2, a2[1:]], 1.0)),
        ("clip norm_type", lambda: fi.clip_grad_norm_([a2], 1.0, norm_type=0)),
        ("sgd overlap", lambda: fi.sgd_step_([a2, a2], [a2, a2], 0.1)),
        ("sgd momentum", lambda: fi.sgd_step_([a2.copy()], [a2], 0.1, momentum=0.9)),
        ("stream position", lambda: fi.rng.Stream(0, position=2 ** 64 - 1)),
        ("stream exhausted", _exhaust),
        ("uniform range", lambda: fi.init.uniform((3,), -3e38, 3e38, seed=0)),
        ("normal std", lambda: fi.init.normal((3,), std=1e39, seed=0)),
        ("init shape", lambda: fi.init.he_normal((-1, 3), seed=0)),
        ("set_num_threads", lambda: fi.set_num_threads(0)),
    ]
    return cases


def _exhaust():
    s = fi.rng.Stream(0, position=2 ** 64 - 2)
    s.uniform(1)
    s.uniform(1)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", [None] + FAST + ["numpy"])
def test_fuzz_invalid_raises_value_or_type_error(backend):
    r = _rng("invalid", backend)
    cases = _invalid_cases(r)
    order = r.permutation(len(cases))
    ctx = fi.backends.use(backend) if backend else _nothing()
    with ctx:
        accepted, wrong = [], []
        for i in order:
            name, call = cases[i]
            try:
                call()
                accepted.append(f"{name} (case {i})")
            except (ValueError, TypeError):
                pass
            except Exception as exc:  # noqa: BLE001 - any other exception is a finding
                wrong.append(f"{name} (case {i}): {type(exc).__name__}: {exc}")
    assert not accepted, f"invalid arguments accepted: {accepted}"
    assert not wrong, f"not a ValueError or TypeError: {wrong}"


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
