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
