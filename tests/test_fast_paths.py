"""The call-overhead shortcuts keep every check: a remembered convolution geometry, the int and
float fast paths of the argument checks and the per-thread default backend."""
import threading

import numpy as np
import pytest

import fastinit as fi


def test_remembered_conv_geometry_still_rejects_bad_arguments():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    want = fi.conv2d(x, w, padding=1, backend="numpy")
    np.testing.assert_array_equal(fi.conv2d(x, w, padding=1), want)  # remembered now
    for kwargs, err, match in [(dict(padding=True), TypeError, "padding"),
                               (dict(padding=1.0), TypeError, "padding"),
                               (dict(padding=-1), ValueError, "padding"),
                               (dict(padding=1, stride=True), TypeError, "stride"),
                               (dict(padding=1, stride=0), ValueError, "stride"),
                               (dict(padding=1, dilation=0), ValueError, "dilation"),
                               (dict(padding=1, groups=2), ValueError, "groups")]:
        with pytest.raises(err, match=match):
            fi.conv2d(x, w, **kwargs)
    with pytest.raises(ValueError, match="channels"):  # another x shape, same arguments
        fi.conv2d(np.ones((1, 4, 5, 5), np.float32), w, padding=1)
    # equal arguments of other forms give the same result
    np.testing.assert_array_equal(fi.conv2d(x, w, padding=(1, 1), stride=(1, 1)), want)
    np.testing.assert_array_equal(fi.conv2d(x, w, padding=[1, 1]), want)
    np.testing.assert_array_equal(fi.conv2d(x, w, padding=np.int64(1)), want)


def test_number_fast_paths_keep_the_bounds():
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel_size"):
        fi.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="eps"):
        fi.batch_norm(np.ones((4, 2), np.float32), None, None, eps=-1.0)
    with pytest.raises(TypeError, match="training"):
        fi.batch_norm(np.ones((4, 2), np.float32), None, None, training=1)


def test_default_backend_is_per_thread():
    outside = fi.backends.current()
    other = "numpy" if outside != "numpy" else "numba"
    seen = []
    with fi.backends.use(other):
        t = threading.Thread(target=lambda: seen.append(fi.backends.current()))
        t.start()
        t.join()
        assert fi.backends.current() == other
    assert seen == [outside]  # the other thread kept its own default
    assert fi.backends.current() == outside
