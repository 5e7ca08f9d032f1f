"""Shared fixtures: the backends to test and seeds."""
import numpy as np
import pytest

import fastinit as fi

AVAILABLE = [name for name, why in fi.backends.available().items() if why is None]
FAST = [name for name in AVAILABLE if name != "numpy"]


@pytest.fixture(params=AVAILABLE)
def backend(request):
    """Each available backend (numpy reference included)."""
    return request.param


@pytest.fixture(params=FAST)
def fast_backend(request):
    """Each available non-reference backend (compared against the reference)."""
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param
