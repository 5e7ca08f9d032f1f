"""The random stream's fast kernels (Numba, C) against the NumPy reference, bit for bit.

Promise (fastinit.rng): uniform (both dtypes), normal float32 and truncated normal float32 give
the reference's bits on every backend, build and thread count. float64 normal and truncated
normal call the platform's log/exp/erfc: NumPy's own SIMD log and exp differ from the C
library's by an ulp now and then, so those are checked two ways: bit for bit against the
reference evaluated with the C library's functions (the same algorithm, op for op), and
within 4 ulp of the plain reference on the distribution's scale (see _assert_ulps).
Distribution shapes and the Stream's own semantics are tested in test_rng.py.
"""
import hashlib
import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import fastinit as fi
from fastinit import _c, backends
from fastinit.reference import rng as ref
from fastinit.rng import Stream, _phi
from conftest import c_builds

CHUNK = 1 << 16  # elements per parallel chunk in both fast backends
# 1 and 3: less than a block; 4097: serial path with a partial block; the last: parallel path,
# more than two chunks and not a multiple of the chunk (or of a block).
SIZES = [1, 3, 5, 4097, 2 * CHUNK + 4099]
# (k0, k1, d0, d1): the zero key, nonzero high words, and all-ones words.
KEYS = [(0, 0, 0, 0), (0x12345678, 0x9ABCDEF0, 7, 0xDEADBEEF),
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)]
BOUNDS = [(-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0), (-math.inf, 1.0), (2.0, math.inf)]
DEEP_F64 = [(8.0, 9.0), (-36.0, -35.0), (30.0, math.inf)]  # span down to 1e-198
UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _kernel(backend, name):
    return backends.kernel("rng", name, backend)[0]


def _tn_args(a, b, mean=0.0, std=1.0):
    """The truncated-normal kernel's arguments after (k0, k1, d0, d1), as Stream computes them."""
    pa, qb = _phi(a), _phi(-b)
    if pa + qb < 0.5:
        span = 1.0 - pa - qb
    elif a >= 0.0:
        span = _phi(-a) - qb
    else:
        span = _phi(b) - pa
    return (mean, std, a, b, pa, qb, span, max(mean + a * std, -math.inf),
            min(mean + b * std, math.inf))


_REF_CACHE = {}


def _reference(name, dtype, n, keys, args):
    """Reference output (cached: every fast backend is compared with the same array)."""
    key = (name, np.dtype(dtype).str, n, keys, args)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = getattr(ref, name)(np.empty(n, dtype), *keys, *args)
    return _REF_CACHE[key]


def _draw(backend, name, dtype, n, keys, args):
    out = np.full(n, np.nan, dtype)
    got = _kernel(backend, name)(out, *keys, *args)
    assert got is out  # filled in place
    return out


def _assert_bits(got, expect):
    assert got.dtype == expect.dtype and got.shape == expect.shape
    u = UINT[got.dtype]
    bad = np.flatnonzero(got.view(u) != expect.view(u))
    assert bad.size == 0, (f"{bad.size} of {got.size} elements differ, first at {bad[0]}: "
                           f"{got[bad[0]]!r} vs {expect[bad[0]]!r}")


def _assert_ulps(got, expect, scale, nulp=4):
    """|got - expect| <= nulp ulp of max(|expect|, scale).

    scale is std: near z = 0 the reference's quantile (Newton steps on ln Phi) carries an
    absolute error of about one ulp of ln Phi ~ ulp(1), so an ulp of the value itself would
    be the wrong yardstick there (measured: up to 120 ulp of z at |z| ~ 0.01, under 2 ulp of 1).
    """
    tol = nulp * np.spacing(np.maximum(np.abs(expect), scale))
    err = np.abs(got - expect)
    bad = np.flatnonzero(~(err <= tol))
    worst = np.argmax(err / tol)
    assert bad.size == 0, (f"{bad.size} elements beyond {nulp} ulp, worst "
                           f"{err[worst] / tol[worst] * nulp:.1f} ulp at {expect[worst]!r}")


class _LibmNumpy(types.ModuleType):
    """numpy with log, exp, sin, cos from the C library (math), elementwise, for the reference."""

    def __init__(self):
        super().__init__("numpy_with_libm")
        for name in ("log", "exp", "sin", "cos"):
            f = np.frompyfunc(getattr(math, name), 1, 1)
            setattr(self, name, lambda x, f=f: np.asarray(f(x), dtype=np.float64))

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.fixture
def libm_reference(monkeypatch):
    """The reference module evaluated with the C library's log/exp/sin/cos (as the kernels)."""
    monkeypatch.setattr(ref, "np", _LibmNumpy())
    return ref


# ---- bit-identical paths -----------------------------------------------------------------------

def test_known_answer_first_block(fast_backend):
    # philox(counter 0, key 0) = 6627e8d5 e169c58d bc57ac4c 9b00dbd8 -> uniform float32 m * 2^-24
    got = _draw(fast_backend, "uniform", np.float32, 4, (0, 0, 0, 0), (0.0, 1.0))
    words = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    np.testing.assert_array_equal(got, np.array([(x >> 8) * 2.0 ** -24 for x in words],
                                                np.float32))


@pytest.mark.parametrize("keys", KEYS, ids=["zero", "mixed", "ones"])
@pytest.mark.parametrize("n", SIZES)
def test_uniform_is_bit_identical(fast_backend, dtype, n, keys):
    args = (-0.3, 2.7)
    _assert_bits(_draw(fast_backend, "uniform", dtype, n, keys, args),
                 _reference("uniform", dtype, n, keys, args))


@pytest.mark.parametrize("keys", KEYS, ids=["zero", "mixed", "ones"])
@pytest.mark.parametrize("n", SIZES)
def test_normal_float32_is_bit_identical(fast_backend, n, keys):
    for args in [(0.0, 1.0), (0.25, 0.02)]:
        _assert_bits(_draw(fast_backend, "normal", np.float32, n, keys, args),
                     _reference("normal", np.float32, n, keys, args))


@pytest.mark.parametrize("n", [5, 4097, 2 * CHUNK + 4099])
@pytest.mark.parametrize("a,b", BOUNDS)
def test_truncated_normal_float32_is_bit_identical(fast_backend, a, b, n):
    keys = KEYS[1]
    for args in [_tn_args(a, b), _tn_args(a, b, mean=-0.5, std=0.1)]:
        _assert_bits(_draw(fast_backend, "truncated_normal", np.float32, n, keys, args),
                     _reference("truncated_normal", np.float32, n, keys, args))


def test_truncated_normal_float32_edges_are_bit_identical(fast_backend):
    # zero std (every value is mean), a = b side by side with a signed-zero mean, tiny spans
    keys = KEYS[2]
    for args in [_tn_args(-2.0, 2.0, mean=1.5, std=0.0), _tn_args(0.0, 1e-3, mean=-0.0),
                 _tn_args(-1e-4, 1e-4), _tn_args(-5.0, 5.0)]:
        _assert_bits(_draw(fast_backend, "truncated_normal", np.float32, 1001, keys, args),
                     _reference("truncated_normal", np.float32, 1001, keys, args))


# ---- float64 normal and truncated normal (libm) ------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 4097, 2 * CHUNK + 4099])
def test_normal_float64(fast_backend, n, libm_reference):
    keys, args = KEYS[1], (0.3, 2.0)
    got = _draw(fast_backend, "normal", np.float64, n, keys, args)
    _assert_bits(got, libm_reference.normal(np.empty(n), *keys, *args))
    _assert_ulps(got, _reference("normal", np.float64, n, keys, args), scale=2.0)


@pytest.mark.parametrize("a,b", BOUNDS + DEEP_F64)
def test_truncated_normal_float64(fast_backend, a, b, libm_reference):
    n, keys = 3001, KEYS[1]
    for args in [_tn_args(a, b), _tn_args(a, b, mean=0.3, std=2.0)]:
        got = _draw(fast_backend, "truncated_normal", np.float64, n, keys, args)
        _assert_bits(got, libm_reference.truncated_normal(np.empty(n), *keys, *args))
        _assert_ulps(got, _reference("truncated_normal", np.float64, n, keys, args),
                     scale=args[1])


def test_truncated_normal_float64_parallel_path(fast_backend, libm_reference):
    n, keys, args = 2 * CHUNK + 4099, KEYS[2], _tn_args(-1.0, 3.0)
    got = _draw(fast_backend, "truncated_normal", np.float64, n, keys, args)
    _assert_bits(got, libm_reference.truncated_normal(np.empty(n), *keys, *args))


def test_stream_deep_tail_float32_goes_through_float64(fast_backend):
    # bounds beyond ~5.6 std: Stream runs the float64 kernel and rounds (same promise)
    for a, b in [(6.0, 7.0), (-9.0, -8.5), (7.0, math.inf)]:
        got = Stream(3).trunc_normal(2001, a_std=a, b_std=b, backend=fast_backend)
        expect = Stream(3).trunc_normal(2001, a_std=a, b_std=b, backend="numpy")
        assert got.dtype == np.float32 and np.all((got >= a) & (got <= b))
        np.testing.assert_array_max_ulp(got, expect, maxulp=1)


# ---- every C build, every thread count ---------------------------------------------------------

@pytest.mark.skipif(_c.lib is None, reason="C extension not built")
def test_every_c_build_gives_the_same_bits():
    n, keys, tn = 2 * CHUNK + 4099, KEYS[1], _tn_args(-1.0, 3.0)
    cases = [("uniform", np.float32, (-1.0, 1.0)), ("uniform", np.float64, (-1.0, 1.0)),
             ("normal", np.float32, (0.0, 1.0)), ("truncated_normal", np.float32, tn)]
    builds = c_builds()
    for build in builds:
        with _c.isa_cap(build) as used:
            assert used == build
            for name, dt, args in cases:
                _assert_bits(_draw("c", name, dt, n, keys, args),
                             _reference(name, dt, n, keys, args))
            for name, args in [("normal", (0.0, 1.0)), ("truncated_normal", tn)]:
                got = _draw("c", name, np.float64, 5001, keys, args)
                with _c.isa_cap(builds[-1]):
                    _assert_bits(got, _draw("c", name, np.float64, 5001, keys, args))


_THREAD_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import fastinit as fi
from fastinit import _c, backends
n = int(sys.argv[1])
fi.set_num_threads(int(sys.argv[2]))
threads = {"numba": fi.get_num_threads(), "c": _c.lib.fi_get_num_threads() if _c.lib else None}
hashes = {}
for backend in [b for b, why in backends.available().items() if why is None and b != "numpy"]:
    for dt in (np.float32, np.float64):
        s = fi.rng.Stream(2024)
        draws = {"uniform": s.uniform(n, -1.0, 3.0, dtype=dt, backend=backend),
                 "normal": s.normal(n, 0.1, 2.0, dtype=dt, backend=backend),
                 "truncated_normal": s.trunc_normal(n, 0.0, 1.0, -1.0, 3.0, dtype=dt,
                                                        backend=backend)}
        for name, x in draws.items():
            digest = hashlib.sha256(x.tobytes()).hexdigest()
            hashes[f"{backend} {np.dtype(dt).name} {name}"] = digest
print(json.dumps({"threads": threads, "hashes": hashes}))
"""


def _draw_hashes(n, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), FASTINIT_NUM_THREADS=str(threads))
    env.pop("FASTINIT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, str(n), str(threads)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_bits_for_one_and_two_threads():
    n = 300_001
    one, two = _draw_hashes(n, 1), _draw_hashes(n, 2)
    assert one["threads"]["numba"] == 1 and two["threads"]["numba"] == 2
    if _c.lib is not None:
        assert one["threads"]["c"] == 1 and two["threads"]["c"] == 2
    assert one["hashes"] and one["hashes"] == two["hashes"]
    # and the draws promised bit for bit across backends are the reference's
    for dt in (np.float32, np.float64):
        s = Stream(2024)  # the same draw order as the script: uniform, normal, truncated normal
        expect = {"uniform": s.uniform(n, -1.0, 3.0, dtype=dt, backend="numpy")}
        if dt == np.float32:
            expect["normal"] = s.normal(n, 0.1, 2.0, dtype=dt, backend="numpy")
            expect["truncated_normal"] = s.trunc_normal(n, 0.0, 1.0, -1.0, 3.0, dtype=dt,
                                                            backend="numpy")
        for name, x in expect.items():
            digest = hashlib.sha256(x.tobytes()).hexdigest()
            for key, h in one["hashes"].items():
                if key.endswith(f" {np.dtype(dt).name} {name}"):
                    assert h == digest, key


def test_c_thread_count_in_process():
    if _c.lib is None:
        pytest.skip("C extension not built")
    n, keys, args = 5 * CHUNK + 3, KEYS[1], (0.0, 1.0)
    before = fi.get_num_threads()
    try:
        results = []
        for t in (1, 2) if before >= 2 else (1,):
            fi.set_num_threads(t)
            results.append(_draw("c", "normal", np.float32, n, keys, args))
    finally:
        fi.set_num_threads(before)
    for r in results:
        _assert_bits(r, _reference("normal", np.float32, n, keys, args))
