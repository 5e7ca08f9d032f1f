"""Shared fixtures: the backends to test and seeds."""
import os

import numpy as np
import pytest

import fastinit as fi

AVAILABLE = [name for name, why in fi.backends.available().items() if why is None]
#: FASTINIT_TEST_BACKENDS=numpy,c keeps only those (the sanitizer pass of .ci/run tests the C
#: kernels beside the reference, without compiling Numba's kernels under AddressSanitizer)
if os.environ.get("FASTINIT_TEST_BACKENDS"):
    AVAILABLE = [n for n in AVAILABLE if n in os.environ["FASTINIT_TEST_BACKENDS"].split(",")]
FAST = [name for name in AVAILABLE if name != "numpy"]


def c_builds():
    """The instruction sets the C kernels run on this CPU (names for ``fastinit._c.isa_cap``,
    increasing); empty without the C extension."""
    from fastinit import _c
    if _c.lib is None:
        return []
    with _c.isa_cap("avx512") as best:
        return list(_c.ISA_NAMES[:_c.ISA_NAMES.index(best) + 1])


def rel_error(a, b):
    """max |a - b| over max (|a| + |b|) (at least 1e-8): the relative error of a gradient check."""
    return np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a) + np.abs(b)))


def numeric_grad(f, a, h):
    """d f() / d a by centred differences of step ``h``, nudging each element of ``a`` in place
    (and restoring it)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        up = f()
        a[i] = old - h
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * h)
    return g


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


def _on_one_and_two_threads(run):
    """[run() on 1 thread, run() on 2 threads] (as many as Numba was started with, up to 2);
    the thread count is restored afterwards."""
    import numba
    before = fi.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            fi.set_num_threads(threads)
            results.append(run())
    finally:
        fi.set_num_threads(before)
    return results


@pytest.fixture
def on_one_and_two_threads():
    """A function: ``on_one_and_two_threads(run)`` gives run()'s results on 1 and on 2 threads
    (for the tests that results do not depend on the thread count)."""
    return _on_one_and_two_threads

