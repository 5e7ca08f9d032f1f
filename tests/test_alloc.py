"""The output cache (fastinit/_alloc.py): large outputs reuse the blocks of dead ones, never a
block some view still uses; the limits and the switch work; outputs are ordinary arrays."""
import gc
import threading

import numpy as np
import pytest

import fastinit as fi
from fastinit import _alloc

BIG = (_alloc.MIN_BYTES // 4 + 1000,)  # float32 elements: just over the threshold


@pytest.fixture(autouse=True)
def fresh_cache():
    previous = fi.set_output_cache(512)
    fi.clear_output_cache()
    yield
    fi.set_output_cache(previous)
    fi.clear_output_cache()


def _x(shape=BIG, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_large_output_is_an_ordinary_array_with_the_right_values(backend):
    x = _x()
    y = fi.relu(x, backend=backend)
    assert type(y) is np.ndarray and y.shape == x.shape and y.dtype == np.float32
    assert y.flags.c_contiguous and y.flags.writeable and y.ctypes.data % 64 == 0
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert not np.shares_memory(y, x)


def test_a_dead_output_block_is_reused():
    x = _x()
    y = fi.tanh(x)
    address = y.ctypes.data
    del y
    gc.collect()
    assert fi.output_cache_info()["idle_blocks"] == 1
    y2 = fi.sigmoid(x)
    assert y2.ctypes.data == address
    assert fi.output_cache_info()["idle_blocks"] == 0
    np.testing.assert_allclose(y2, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5)


def test_a_block_with_a_live_view_is_not_handed_out_again():
    x = _x()
    y = fi.relu(x).reshape(2, -1)
    view = y[1, ::3]
    kept = view.copy()
    del y
    gc.collect()
    assert fi.output_cache_info()["idle_blocks"] == 0  # the view holds the block
    z = fi.identity(-x)  # an output of the same size while the view lives
    assert not np.shares_memory(z, view)
    np.testing.assert_array_equal(view, kept)
    del view
    gc.collect()
    assert fi.output_cache_info()["idle_blocks"] == 1


def test_small_outputs_bypass_the_cache():
    y = fi.relu(_x((1000,)))
    assert y.flags.owndata
    del y
    assert fi.output_cache_info()["idle_blocks"] == 0


def test_switched_off_the_outputs_are_plain_arrays():
    assert fi.set_output_cache(0) == 512
    y = fi.relu(_x())
    assert y.flags.owndata
    del y
    gc.collect()
    assert fi.output_cache_info() == {"max_bytes": 0, "idle_bytes": 0, "idle_blocks": 0}


def test_the_limit_bounds_the_idle_bytes_and_clear_frees_them():
    fi.set_output_cache(40)  # room for two 17 MB blocks, not three
    ys = [fi.relu(_x(seed=s)) for s in range(3)]
    del ys
    gc.collect()
    info = fi.output_cache_info()
    assert info["idle_blocks"] == 2 and info["idle_bytes"] <= 40 << 20
    fi.set_output_cache(20)  # lowering the limit frees blocks beyond it
    assert fi.output_cache_info()["idle_blocks"] == 1
    assert fi.clear_output_cache() == 17 << 20
    assert fi.output_cache_info()["idle_bytes"] == 0


def test_outputs_released_from_other_threads():
    x = _x()
    outs = [fi.relu(x) for _ in range(4)]

    def drop(i):
        outs[i] = None

    threads = [threading.Thread(target=drop, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert fi.output_cache_info()["idle_blocks"] == 4
    ys = [fi.relu(x) for _ in range(4)]
    assert len({y.ctypes.data for y in ys}) == 4  # four live outputs: four blocks


def test_every_op_with_a_large_output_uses_it():
    """batch norm, conv, linear, pool, the losses: large outputs come from the cache."""
    x = _x((16, 16, 128, 128))  # 16.8 MB
    y, saved = fi.batch_norm(x, None, None)
    dx, _, _ = fi.batch_norm_backward(x, x, None, saved)
    p = fi.max_pool2d(x, 1)
    for a in (y, dx, p):
        assert not a.flags.owndata
    w = _x((16, 16, 1, 1), seed=1)
    c = fi.conv2d(x, w)
    assert not c.flags.owndata
    np.testing.assert_allclose(c, fi.conv2d(x, w, backend="numpy"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64", None])
def test_bad_limit(bad):
    with pytest.raises(ValueError, match="max_mb"):
        fi.set_output_cache(bad)


def test_bad_environment_limit_names_the_variable():
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTINIT_OUTPUT_CACHE_MB="1G")
    run = subprocess.run([sys.executable, "-c", "import fastinit"], env=env, capture_output=True,
                         text=True)
    assert run.returncode != 0 and "FASTINIT_OUTPUT_CACHE_MB" in run.stderr
