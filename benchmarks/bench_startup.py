"""First use: a fresh process's ``import fastinit`` plus the first call of every initializer,
with the Numba cache already built (run ``fastinit warmup`` once first). Target: under 1 s.

    python benchmarks/bench_startup.py          # prints the table
    pytest --benchmark benchmarks/bench_startup.py
"""
import os
import statistics
import subprocess
import sys

import pytest

INITIALIZERS = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "torch_default",
                "variance_scaling", "uniform", "normal", "trunc_normal", "orthogonal")

CODE = """
import time
t0 = time.perf_counter()
import fastinit as fi
t1 = time.perf_counter()
for name in %r:
    getattr(fi.init, name)((64, 32, 3, 3), seed=0)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, fi.backends.current())
""" % (INITIALIZERS,)


def first_use(backend):
    env = dict(os.environ)
    if backend:
        env["FASTINIT_BACKEND"] = backend
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def _warm():
    subprocess.run([sys.executable, "-m", "fastinit", "warmup", "--quiet"], check=True,
                   capture_output=True)


@pytest.mark.parametrize("backend", [None, "numba", "numpy"], ids=["default", "numba", "numpy"])
def test_first_use(benchmark, backend):
    _warm()
    benchmark.group = "startup: import + first call of every initializer"
    imp, first, used = benchmark.pedantic(first_use, args=(backend,), rounds=5, iterations=1)
    benchmark.extra_info.update(backend=used, import_s=imp, first_calls_s=first)
    assert used == (backend or used)


if __name__ == "__main__":
    _warm()
    for backend in (None, "numba", "numpy"):
        runs = [first_use(backend) for _ in range(7)]
        imp = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        print(f"{runs[0][2]:6s} import {imp * 1e3:6.0f} ms + first calls {first * 1e3:6.0f} ms"
              f" = {(imp + first) * 1e3:6.0f} ms (median of 7 fresh processes)")
