"""`fastinit kernels`: the arithmetic against hand-computed cases, the shrink table, the
command end to end on a tiny input, its JSON, and `pytest --benchmark` itself."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastinit.lab import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_params_and_macs_by_hand():
    five, two3, seven, three3 = kernels.plans(batch=1, channels=64, size=56)
    assert (two3.weights, five.weights) == (2 * 3 * 3 * 64 * 64, 5 * 5 * 64 * 64) == (73_728, 102_400)
    assert (three3.weights, seven.weights) == (110_592, 200_704)
    assert five.params == 102_400 + 64 and two3.params == 73_728 + 128
    assert (five.receptive_field, two3.receptive_field) == (5, 5)
    assert (seven.receptive_field, three3.receptive_field) == (7, 7)
    assert five.macs == 56 * 56 * 64 * 64 * 25
    assert two3.macs == 2 * 56 * 56 * 64 * 64 * 9
    assert five.activation_bytes() == 2 * 64 * 56 * 56 * 4
    assert three3.activation_bytes() == 4 * 64 * 56 * 56 * 4
    mid = kernels.plans(batch=1, channels=64, size=8, channels_mid=16)[1]
    assert mid.weights == 9 * (64 * 16 + 16 * 64)


def test_shrink_table():
    sizes = kernels.shrink(199)
    assert len(sizes) - 1 == 99 and sizes[:3] == [199, 197, 195] and sizes[-1] == 1
    assert kernels.shrink(199, 5)[-1] == 3          # (199 - 1) / 4 is not an integer
    assert len(kernels.shrink(199, 7)) - 1 == 33    # 199 = 1 + 33 * 6
    assert kernels.shrink(32, 3, stride=2) == [32, 15, 7, 3, 1]
    assert kernels.shrink(64, 3, pool=2) == [64, 31, 14, 6, 2]
    with pytest.raises(ValueError, match="kernel"):
        kernels.shrink(10, 0)


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastinit", *args], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)


def test_kernels_command_end_to_end_and_json(tmp_path):
    png = tmp_path / "k.png"
    proc = run("kernels", "--batch", "1", "--channels", "4", "--size", "8", "--repeat", "1",
               "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "verdict:" in proc.stdout and "two 3x3" in proc.stdout
    assert png.stat().st_size > 1000
    proc = run("kernels", "--batch", "1", "--channels", "4", "--size", "8", "--repeat", "1",
               "--json", "--no-torch", "--relu")
    data = json.loads(proc.stdout)
    assert [r["name"] for r in data["records"]] == ["one 5x5", "two 3x3", "one 7x7", "three 3x3"]
    assert data["records"][1]["weights"] == 2 * 9 * 16
    for rec in data["records"]:
        for lib, t in rec["time"].items():
            assert t["forward_s"] > 0 and t["forward_backward_s"] > 0
    proc = run("kernels", "--shrink", "199")
    assert "199 -> 1 in 99 steps" in proc.stdout


def test_pytest_benchmark_flag_runs_and_times(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_tiny.py").write_text(
        "import numpy as np\n"
        "def test_tiny(benchmark):\n"
        "    benchmark.group = 'tiny'\n"
        "    benchmark(np.ones, 10)\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    with open(os.path.join(ROOT, "conftest.py")) as f:
        (tmp_path / "conftest.py").write_text(f.read())
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests benchmarks\n"
                                         "python_files = test_*.py bench_*.py\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--benchmark", "-q", "-p",
                           "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "tiny" in proc.stdout and "Mean" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed" in proc.stdout and "Mean" not in proc.stdout
