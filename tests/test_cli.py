"""The fastinit command: info and warmup run end to end."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastinit", *args], capture_output=True,
                          text=True, timeout=600)


def test_info_lists_backends_threads_and_cache():
    proc = run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("numpy", "numba", "backends:", "threads:", "numba cache:", "versions:"):
        assert word in out


def test_warmup_compiles_and_reports_time():
    proc = run("warmup", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warmup: every numba kernel compiled or loaded from cache in" in proc.stdout


def test_bad_command_is_an_error():
    proc = run("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_signal_and_train_commands_end_to_end(tmp_path):
    sig = tmp_path / "sig.png"
    proc = run("signal", "--depth", "3", "--width", "16", "--batch", "32", "--activation",
               "relu", "--inits", "xavier_normal,he_normal", "--plot", str(sig))
    assert proc.returncode == 0, proc.stderr
    assert "he_normal" in proc.stdout and "predicted" in proc.stdout
    assert sig.stat().st_size > 1000
    proc = run("signal", "--json", "--depth", "2", "--width", "8", "--batch", "16")
    import json
    runs = json.loads(proc.stdout)[0]["runs"]
    assert len(runs[0]["activation_std"]) == 2
    curves = tmp_path / "train.png"
    proc = run("train", "--epochs", "1", "--inits", "he_normal,zeros", "--plot", str(curves))
    assert proc.returncode == 0, proc.stderr
    assert "he_normal" in proc.stdout and curves.stat().st_size > 1000
    toy = tmp_path / "toy.png"
    proc = run("train", "--toy", "circles", "--inits", "he_normal", "--plot", str(toy))
    assert proc.returncode == 0, proc.stderr
    assert "circles he_normal" in proc.stdout and toy.stat().st_size > 1000
    proc = run("train", "--inits", "glorot")
    assert proc.returncode == 2 and "unknown initialization" in proc.stderr
