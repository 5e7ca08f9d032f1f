"""Gradient clipping: every backend against the reference, the reference against
torch.nn.utils (every norm type, by norm and by value), float16 accumulation, non-finite
policies, thread-count independence of the norm, and every bad input."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastinit as fi
from conftest import c_builds

NORMS = [1.0, 2.0, math.inf, 3.0, 0.5]
# A small network's parameter shapes, plus odd sizes and chunk-boundary sizes.
SHAPES = [(16, 3, 7, 7), (16,), (16,), (32, 16, 3, 3), (10, 32), (10,), (1,), (16384,), (16385,),
          (3, 5, 7)]


def _grads(dtype, seed=0, scale=1.0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in shapes]


def _copy(grads):
    return [g.copy() for g in grads]


def _torch_clip(grads, max_norm, norm_type, **kw):
    ts = [torch.from_numpy(g.copy()) for g in grads]
    for t in ts:
        t.grad = t.clone()
    total = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type, **kw)
    return float(total), [t.grad.numpy() for t in ts]


# ---- backends against the reference ------------------------------------------------------------

@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_norm_and_scale_match_reference(fast_backend, norm_type, dt):
    g = _grads(dt, seed=1)
    a, b = _copy(g), _copy(g)
    ta = fi.clip_grad_norm_(a, 0.5, norm_type, backend=fast_backend)
    tb = fi.clip_grad_norm_(b, 0.5, norm_type, backend="numpy")
    assert ta == pytest.approx(tb, rel=1e-12)
    for x, y in zip(a, b):
        if dt == np.float16:
            np.testing.assert_array_equal(x, y)  # same float32 product, same rounding
        else:
            np.testing.assert_allclose(x, y, rtol=1e-6 if dt == np.float32 else 1e-14, atol=0)


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_clip_value_matches_reference(fast_backend, dt):
    g = _grads(dt, seed=2)
    g[0].flat[:3] = [np.nan, np.inf, -np.inf]
    a, b = _copy(g), _copy(g)
    fi.clip_grad_value_(a, 0.7, backend=fast_backend)
    fi.clip_grad_value_(b, 0.7, backend="numpy")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.isnan(a[0].flat[0])


def test_nothing_clipped_leaves_arrays_bitwise_untouched(backend):
    g = _grads(np.float32, seed=3)
    a = _copy(g)
    total = fi.clip_grad_norm_(a, 1e6, backend=backend)
    assert total < 1e6
    for x, y in zip(a, g):
        np.testing.assert_array_equal(x, y)


def test_non_contiguous_and_empty_arrays(backend):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((40, 30)).astype(np.float32)
    g = [base.T, base[::2, ::3].copy()[:, ::-1], np.zeros((0, 3), np.float32)]
    ref = [np.ascontiguousarray(x) for x in g]
    t = fi.clip_grad_norm_(g, 1.0, backend=backend)
    t0 = fi.clip_grad_norm_(ref, 1.0, backend="numpy")
    assert t == pytest.approx(t0, rel=1e-12)
    for x, y in zip(g, ref):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    assert base.T is not g[0] and np.shares_memory(base, g[0])  # written back in place
    np.testing.assert_allclose(base.T, ref[0], rtol=1e-6)


# ---- against PyTorch ---------------------------------------------------------------------------

@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_matches_torch(backend, norm_type, max_norm):
    for dt in (np.float32, np.float64):
        g = _grads(dt, seed=5)
        total_t, want = _torch_clip(g, max_norm, norm_type)
        a = _copy(g)
        total = fi.clip_grad_norm_(a, max_norm, norm_type, backend=backend)
        rtol = 1e-5 if dt == np.float32 else 1e-12
        assert total == pytest.approx(total_t, rel=rtol)
        for x, y in zip(a, want):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0)


def test_clip_grad_norm_float16_matches_torch_where_torch_does_not_overflow(backend):
    g = _grads(np.float16, seed=6, scale=0.1)
    total_t, want = _torch_clip(g, 0.5, 2.0)
    a = _copy(g)
    total = fi.clip_grad_norm_(a, 0.5, 2.0, backend=backend)
    assert total == pytest.approx(total_t, rel=2e-3)   # torch's float16 total is rounded
    for x, y in zip(a, want):
        np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), rtol=4e-3,
                                   atol=1e-6)


def test_float16_norm_accumulates_in_float64(backend):
    """1e6 values of 300: the norm is 3e5 (a float16 overflows at 65504; torch returns inf)."""
    g = [np.full(1_000_000, 300.0, np.float16)]
    t_total = torch.nn.utils.get_total_norm([torch.from_numpy(g[0])], 2.0)
    assert not torch.isfinite(t_total)
    total = fi.clip_grad_norm_(g, 1.0, backend=backend)
    assert total == pytest.approx(300.0 * 1000.0, rel=1e-12)
    np.testing.assert_allclose(g[0].astype(np.float64), 300.0 / 3e5, rtol=1e-3)


@pytest.mark.parametrize("clip_value", [0.1, 1.0])
def test_clip_grad_value_matches_torch(backend, clip_value):
    g = _grads(np.float32, seed=7)
    ts = [torch.from_numpy(x.copy()) for x in g]
    for t in ts:
        t.grad = t.clone()
    torch.nn.utils.clip_grad_value_(ts, clip_value)
    a = _copy(g)
    fi.clip_grad_value_(a, clip_value, backend=backend)
    for x, t in zip(a, ts):
        np.testing.assert_array_equal(x, t.grad.numpy())


# ---- non-finite totals -------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_nonfinite_policies(backend, bad, norm_type):
    g = _grads(np.float32, seed=8)
    g[3].flat[17] = bad
    # propagate: PyTorch's behaviour, bit for bit in which elements are NaN / zero
    total_t, want = _torch_clip(g, 1.0, norm_type)
    a = _copy(g)
    total = fi.clip_grad_norm_(a, 1.0, norm_type, backend=backend)
    assert math.isnan(total) == math.isnan(total_t) and not math.isfinite(total)
    for x, y in zip(a, want):
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        np.testing.assert_array_equal(x[~np.isnan(x)], y[~np.isnan(y)])
    # raise, as error_if_nonfinite=True
    a = _copy(g)
    with pytest.raises(RuntimeError, match="non-finite"):
        fi.clip_grad_norm_(a, 1.0, norm_type, error_if_nonfinite=True, backend=backend)
    with pytest.raises(RuntimeError, match="non-finite"):
        fi.clip_grad_norm_(a, 1.0, norm_type, nonfinite="raise", backend=backend)
    for x, y in zip(a, g):
        np.testing.assert_array_equal(x, y)
    # skip: untouched, total returned
    total = fi.clip_grad_norm_(a, 1.0, norm_type, nonfinite="skip", backend=backend)
    assert not math.isfinite(total)
    for x, y in zip(a, g):
        np.testing.assert_array_equal(x, y)


# ---- thread-count independence -------------------------------------------------------------------

_PROBE = """
import math, numpy as np, fastinit as fi
rng = np.random.default_rng(11)
shapes = [(64, 3, 7, 7), (64,), (128, 64, 3, 3), (512, 256, 3, 3), (1000, 512), (77777,)]
for dt in (np.float32, np.float64, np.float16):
    g = [rng.standard_normal(s).astype(dt) for s in shapes]
    for backend in {backends!r}:
        for p in (1.0, 2.0, math.inf, 3.0):
            print(backend, dt.__name__, p, repr(fi.clip_grad_norm_(g, 1e30, p, backend=backend)))
"""


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_every_c_build_of_the_norm_matches_reference(dt):
    """The C norm's portable, AVX2 and AVX-512 builds (those this CPU runs), every norm type,
    NaN and inf included, chunk-boundary sizes and tails shorter than a vector."""
    from fastinit import _c
    if _c.lib is None:
        pytest.skip("the C extension is not built")
    g = _grads(dt, seed=7) + _grads(dt, seed=8, shapes=[(15,), (17,), (16383,), (32769,)])
    bad = _copy(g)
    bad[3].flat[5], bad[9].flat[-1] = np.nan, np.inf
    for build in c_builds():
        with _c.isa_cap(build):
            for grads in (g, bad):
                for p in NORMS:
                    got = fi.clip_grad_norm_(_copy(grads), 1e30, p, backend="c")
                    want = fi.clip_grad_norm_(_copy(grads), 1e30, p, backend="numpy")
                    if math.isnan(want):
                        assert math.isnan(got), (build, p)
                    else:
                        assert got == pytest.approx(want, rel=1e-12), (build, p)


def test_norm_is_the_same_for_one_and_two_threads():
    fast = [b for b, why in fi.backends.available().items() if why is None and b != "numpy"]
    out = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, FASTINIT_NUM_THREADS=threads,
                   OMP_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", _PROBE.format(backends=fast)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        out.append(res.stdout)
    assert out[0] == out[1]
    assert len(out[0].splitlines()) == 3 * 4 * len(fast)


# ---- bad input ----------------------------------------------------------------------------------

def test_bad_limits():
    g = _grads(np.float32)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm must be > 0"):
            fi.clip_grad_norm_(g, bad)
        with pytest.raises(ValueError, match="clip_value must be > 0"):
            fi.clip_grad_value_(g, bad)
    with pytest.raises(TypeError, match="max_norm"):
        fi.clip_grad_norm_(g, "1")
    for bad in (0.0, -2.0, float("nan"), -math.inf):
        with pytest.raises(ValueError, match="norm_type"):
            fi.clip_grad_norm_(g, 1.0, bad)
    with pytest.raises(TypeError, match="norm_type"):
        fi.clip_grad_norm_(g, 1.0, "fro")
    assert fi.clip_grad_norm_(_copy(g), 1e9, "inf") == pytest.approx(
        max(float(np.abs(x).max()) for x in g))


def test_bad_grads():
    with pytest.raises(TypeError, match="grads must be a list"):
        fi.clip_grad_norm_(3.0, 1.0)
    with pytest.raises(TypeError, match=r"grads\[1\] must be a numpy.ndarray"):
        fi.clip_grad_norm_([np.ones(3), [1.0]], 1.0)
    with pytest.raises(TypeError, match=r"grads\[0\] must have dtype float16, float32 or"):
        fi.clip_grad_norm_([np.ones(3, np.int32)], 1.0)
    with pytest.raises(TypeError, match=r"grads\[1\] has dtype float64 but grads\[0\] has"):
        fi.clip_grad_value_([np.ones(3, np.float32), np.ones(3)], 1.0)
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"grads\[0\] is read-only"):
        fi.clip_grad_norm_([ro], 1.0)
    assert fi.clip_grad_norm_([], 1.0) == 0.0
    single = np.full(4, 2.0)
    assert fi.clip_grad_norm_(single, 1.0) == pytest.approx(4.0)  # one array, like torch
    np.testing.assert_allclose(single, 0.5, rtol=1e-6)


def test_bad_policy_arguments():
    g = _grads(np.float32)
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        fi.clip_grad_norm_(g, 1.0, nonfinite="ignore")
    with pytest.raises(ValueError, match="error_if_nonfinite=True contradicts"):
        fi.clip_grad_norm_(g, 1.0, error_if_nonfinite=True, nonfinite="skip")
    with pytest.raises(TypeError, match="error_if_nonfinite"):
        fi.clip_grad_norm_(g, 1.0, error_if_nonfinite="no")
