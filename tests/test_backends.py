"""Backend registry, dispatch, threads, and the C extension's presence where CI expects it."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastinit as fi
from fastinit import backends


def test_available_reports_every_backend_with_reason_or_none():
    av = backends.available()
    assert set(av) == {"numpy", "numba", "c"}
    assert av["numpy"] is None
    for name, why in av.items():
        assert why is None or (isinstance(why, str) and why)


def test_c_backend_is_built_in_ci():
    # CI installs with a compiler: a silently failed C build must not pass as "c unavailable".
    if os.environ.get("CI") and not os.environ.get("FASTINIT_DISABLE_C"):
        assert backends.available()["c"] is None, backends.available()["c"]
    if os.environ.get("FASTINIT_DISABLE_C") == "1":
        assert "FASTINIT_DISABLE_C" in backends.available()["c"]


def test_use_set_current():
    before = backends.current()
    with backends.use("numpy"):
        assert backends.current() == "numpy"
        with backends.use("numba"):
            assert backends.current() == "numba"
        assert backends.current() == "numpy"
    assert backends.current() == before
    backends.set("numpy")
    try:
        assert backends.current() == "numpy"
    finally:
        backends.set(None)
    assert backends.current() == before


def test_unknown_and_unavailable_backends_raise_with_reason():
    with pytest.raises(ValueError, match="backend must be one of"):
        fi.init.normal((2,), seed=0, backend="cuda")
    with pytest.raises(ValueError, match="backend"):
        backends.set("tpu")


def test_unavailable_backend_names_the_reason():
    code = ("import fastinit as fi\n"
            "try:\n    fi.init.normal((2,), seed=0, backend='c')\n"
            "except fi.backends.BackendUnavailable as e:\n    print('REASON', e)\n")
    env = dict(os.environ, FASTINIT_DISABLE_C="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "REASON backend 'c' is not available: disabled at run time by FASTINIT_DISABLE_C" in out


def test_env_default_backend():
    code = "import fastinit as fi; print(fi.backends.current())"
    env = dict(os.environ, FASTINIT_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "numpy"
    env = dict(os.environ, FASTINIT_BACKEND="gpu")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "FASTINIT_BACKEND must be one of" in proc.stderr


def test_set_num_threads_validates_and_applies():
    import numba

    n = fi.get_num_threads()
    try:
        fi.set_num_threads(1)
        assert fi.get_num_threads() == 1
        from fastinit import _c
        if _c.lib is not None:
            assert _c.lib.fi_get_num_threads() == 1
    finally:
        fi.set_num_threads(n)
    for bad in (0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True):
        with pytest.raises(ValueError, match="n must be an integer"):
            fi.set_num_threads(bad)


def test_same_weights_on_every_backend():
    av = [n for n, why in backends.available().items() if why is None]
    outs = {n: fi.init.xavier_uniform((300, 200), seed=9, backend=n) for n in av}
    for n in av:
        np.testing.assert_array_equal(outs[n], outs["numpy"])
    outs = {n: fi.init.kaiming_normal((64, 32, 3, 3), seed=9, backend=n) for n in av}
    for n in av:
        np.testing.assert_array_equal(outs[n], outs["numpy"])
