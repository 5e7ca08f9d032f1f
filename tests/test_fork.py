"""Fork safety (issue 14, item 1): after the parent ran parallel kernels, a child of
os.fork() - or a worker of a multiprocessing pool with the fork start method - runs every op
on every backend and gets the parent's answers (single-threaded: see the README), never a
hang and never a killed process."""
import multiprocessing
import os
import pickle
import select
import signal
import time

import numpy as np
import pytest

import fastinit as fi
from _every_op import every_op, mismatches
from conftest import AVAILABLE

#: seconds a child may take: a cold Numba cache compiles the serial kernels in the child
TIMEOUT = 600


def _run_forked(fn):
    """fn()'s return value, computed in a forked child; fails the test when the child hangs
    (killed after TIMEOUT), dies of a signal or raises."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(r)
            data = pickle.dumps(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            data = pickle.dumps(("raised", repr(exc)))
        try:
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            status = 3
        os._exit(status)
    os.close(w)
    chunks, deadline = [], time.monotonic() + TIMEOUT
    with os.fdopen(r, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung (no answer within {TIMEOUT} s)")
            chunk = os.read(f.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
        f"the forked child died: wait status {status:#x}"
        + (f" (signal {os.WTERMSIG(status)})" if os.WIFSIGNALED(status) else ""))
    kind, value = pickle.loads(b"".join(chunks))
    assert kind == "ok", f"the forked child raised {value}"
    return value


@pytest.mark.slow
@pytest.mark.parametrize("backend", AVAILABLE)
def test_fork_child_runs_every_op_single_threaded(backend):
    want = every_op(backend)  # in the parent first: its thread pools now exist
    threads = fi.get_num_threads()

    def child():
        got = every_op(backend)
        return mismatches(got, want), fi.get_num_threads()

    bad, child_threads = _run_forked(child)
    assert bad == []
    assert child_threads == 1
    assert fi.get_num_threads() == threads  # the parent keeps its threads
    assert mismatches(every_op(backend), want) == []  # and still computes


@pytest.mark.slow
@pytest.mark.parametrize("backend", AVAILABLE)
def test_fork_grandchild_and_set_num_threads(backend):
    x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
    a = np.ones((200, 200), np.float32)
    fi.relu(x, backend=backend)
    fi.matmul(a, a, backend=backend)

    def grandchild():
        fi.set_num_threads(fi.get_num_threads())  # asking for more threads in a child is a no-op
        return float(fi.relu(x, backend=backend).sum()), float(fi.matmul(a, a).max())

    def child():
        return grandchild(), _run_forked(grandchild)

    here, there = _run_forked(child)
    want = (float(np.maximum(x, 0).sum()), 200.0)
    assert np.allclose(here, want) and np.allclose(there, want)


def _pool_task(args):
    backend, names = args
    got = every_op(backend)
    return {k: got[k] for k in names}


@pytest.mark.slow
def test_fork_multiprocessing_pool_every_backend():
    """A multiprocessing pool with the fork start method (Linux's default before Python
    3.14), as a data loader or a grid search uses one."""
    wants = {b: every_op(b) for b in AVAILABLE}
    ctx = multiprocessing.get_context("fork")
    names = sorted(wants[AVAILABLE[0]])
    tasks = [(b, names[i::2]) for b in AVAILABLE for i in range(2)]
    with ctx.Pool(2) as pool:
        try:
            results = pool.map_async(_pool_task, tasks).get(TIMEOUT)
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail(f"the pool's workers hung (no answer within {TIMEOUT} s)")
    for (backend, _), got in zip(tasks, results):
        assert mismatches(got, {k: wants[backend][k] for k in got}) == [], backend
