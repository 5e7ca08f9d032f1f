"""`fastinit kernels`: the arithmetic against hand-computed cases, the shrink table, the
command end to end on a tiny input, its JSON, and `pytest --benchmark` itself."""
import json
import os
import subprocess
import sys

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
    proc = run("kernels", "--batch", "1", "--channels", "4", "--size", "8", "--budget", "2",
               "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "verdict on " in out and "two 3x3" in out
    for word in ("RF = receptive field", "GMACs = billions of multiply-adds", "act. mem =",
                 "f+b = forward + backward"):   # every column abbreviation is explained
        assert word in out
    assert png.stat().st_size > 1000
    proc = run("kernels", "--batch", "1", "--channels", "4", "--size", "8", "--budget", "2",
               "--json", "--no-torch", "--relu", "--backend", "numba")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [r["name"] for r in data["records"]] == ["one 5x5", "two 3x3", "one 7x7", "three 3x3"]
    assert data["records"][1]["weights"] == 2 * 9 * 16
    assert data["libraries"] == ["numba"] and data["verdict_backend"] == "numba"
    for rec in data["records"]:
        for lib, t in rec["time"].items():
            assert t["forward_s"] > 0 and t["forward_backward_s"] > 0
    t = data["pairs"][0]["time_ratio"]["numba"]["forward"]
    assert set(t) == {"ratio", "low", "high", "words"}
    assert data["measurement"]["rounds"] >= 1 and "busy" in data["measurement"]
    proc = run("kernels", "--shrink", "199")
    assert "199 -> 1 in 99 steps" in proc.stdout


def _result(busy=False, ratio=(0.63, 0.6, 0.66)):
    """A compare() result without timing anything (the arithmetic is real)."""
    recs = [p.as_dict() for p in kernels.plans(8, 64, 56)]
    for r in recs:
        r["time"] = {"c": {"forward_s": 0.01, "forward_backward_s": 0.03}}
    r, lo, hi = ratio
    pairs = []
    for stack, big in ((recs[1], recs[0]), (recs[3], recs[2])):
        t = dict(ratio=r, low=lo, high=hi, words=kernels.timing.in_words(r, lo, hi))
        pairs.append(dict(stack=stack["name"], big=big["name"],
                          params_ratio=stack["params"] / big["params"],
                          macs_ratio=stack["macs"] / big["macs"],
                          activation_ratio=stack["activation_bytes"] / big["activation_bytes"],
                          time_ratio={"c": {"forward": t, "forward_backward": t}}))
    res = dict(config=dict(batch=8, channels=64, size=56, channels_mid=64, relu=False,
                           dtype="float32", threads=2, budget_s=20, precision=0.03),
               records=recs, pairs=pairs, libraries=["c"], verdict_backend="c",
               measurement=dict(rounds=9, seconds=7.0, busy=busy), warnings=[])
    res["verdict"] = kernels.verdict(res)
    return res


def test_one_ratio_convention_in_text_and_json():
    res = _result()
    text = kernels.format_table(res)
    data = json.loads(kernels.to_json(res))
    pair = data["pairs"][0]
    # JSON and text carry the same number: the 3x3 stack's value over the big kernel's
    assert pair["activation_ratio"] == pytest.approx(1.5)
    assert "activation memory 1.50" in text and "1.50x the activation memory" in text
    assert f"params {pair['params_ratio']:.2f}" in text and pair["params_ratio"] < 1
    # plain words, one backend
    assert "on c: two 3x3 see what one 5x5 sees with 1.39x fewer parameters" in text
    assert "forward 1.59x faster (1.52-1.67x)" in text
    assert "numba" not in res["verdict"] and "torch" not in res["verdict"]
    assert "saving" not in text


def test_verdict_says_no_clear_difference_and_withholds_time_when_busy():
    text = kernels.format_table(_result(ratio=(0.98, 0.9, 1.1)))
    assert "no clear difference (0.90-1.10x the time)" in text and "faster" not in text
    busy = _result(busy=True)
    assert "faster" not in busy["verdict"] and "no verdict, the machine was busy" in busy["verdict"]
    assert "1.39x fewer parameters" in busy["verdict"]   # the arithmetic still stands


def test_columns_stay_aligned_with_channels_mid():
    res = _result()
    recs = [p.as_dict() for p in kernels.plans(8, 64, 56, channels_mid=16)]
    for r, old in zip(recs, res["records"]):
        r["time"] = old["time"]
    res["records"] = recs
    res["config"]["channels_mid"] = 16
    lines = kernels.format_table(res).splitlines()
    head = next(i for i, l in enumerate(lines) if "params formula" in l)
    table = lines[head:head + 5]
    gm = [l.index("GMACs") if "GMACs" in l else None for l in table][0]
    for row in table[1:]:          # every GMACs value ends where the header does
        assert row[gm + len("GMACs") - 1] != " " and row[gm + len("GMACs")] == " ", table
    assert "M = channels between the 3x3s" in "\n".join(lines)
    assert recs[3]["params_formula"] == "9(2CM + M^2) + 2M + C"
    assert recs[3]["params"] == 9 * (2 * 64 * 16 + 16 * 16) + 2 * 16 + 64


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
