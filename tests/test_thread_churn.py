"""Thread churn (issue 14, item 4): short-lived threads that each run a kernel leave no memory
behind. The C kernels keep per-thread scratch between calls (csrc/scratch.h) and must free it
when the thread exits; before that fix 40 threads of one 1024^3 matmul each grew the process
by ~190 MB."""
import os
import threading

import numpy as np
import pytest

import fastinit as fi
from conftest import FAST

THREADS = 40
#: allowed growth over THREADS threads: a few malloc arenas' worth, far below one leaked
#: scratch buffer per thread (~4.7 MB each for the matmul, ~3.7 MB for the conv)
LIMIT_MB = 40


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _churn(work, n):
    for _ in range(n):
        t = threading.Thread(target=work)
        t.start()
        t.join()


def _matmul(backend):
    a = np.ones((1024, 1024), np.float32)
    return lambda: fi.matmul(a, a, backend=backend)


def _conv(backend):
    x = np.ones((8, 64, 56, 56), np.float32)
    w = np.ones((64, 64, 3, 3), np.float32)
    return lambda: fi.conv2d(x, w, padding=1, backend=backend)


def _conv_strided(backend):   # the general engine (a stride-2 layer)
    x = np.ones((8, 64, 56, 56), np.float32)
    w = np.ones((128, 64, 3, 3), np.float32)
    return lambda: fi.conv2d(x, w, stride=2, padding=1, backend=backend)


_CASES = [pytest.param(b, _matmul, id=f"{b}-matmul") for b in FAST]
_CASES += [pytest.param(b, _conv_strided, id=f"{b}-conv2d-general") for b in FAST]
_CASES += [pytest.param(b, _conv, id=f"{b}-conv2d") for b in FAST]   # Winograd


@pytest.mark.slow
@pytest.mark.parametrize("backend, make", _CASES)
def test_thread_churn_leaves_no_scratch_behind(backend, make):
    work = make(backend)
    work()
    _churn(work, 4)  # malloc's per-thread arenas and the kernels' first buffers settle
    before = _rss_mb()
    _churn(work, THREADS)
    grown = _rss_mb() - before
    assert grown < LIMIT_MB, f"{THREADS} short-lived threads grew the process by {grown:.0f} MB"
