"""The fastinit command: info and warmup end to end; every user mistake an argparse-style error
naming the option (exit 2, no traceback) before any work; help with defaults; --version;
optional packages checked first; a closed pipe; progress that does not flood a log."""
import argparse
import json
import os
import subprocess
import sys

import pytest

from fastinit import cli


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fastinit", *args], capture_output=True,
                          text=True, timeout=600, **kw)


def test_info_lists_backends_threads_and_cache():
    proc = run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("numpy", "numba", "backends:", "threads:", "numba cache:", "versions:",
                 "lab extra"):
        assert word in out


@pytest.mark.slow
def test_warmup_compiles_and_reports_time():
    proc = run("warmup")
    assert proc.returncode == 0, proc.stderr
    assert "warmup: numba kernels ready in" in proc.stdout
    # progress: one line per group of kernels, on stderr (a pipe here: no carriage returns)
    assert "  conv2d" in proc.stderr and "\r" not in proc.stderr


def test_bad_command_is_an_error():
    proc = run("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == "fastinit 0.1.0"


# One row per mistake (argv, the option the error names, words of the message): rows alike in
# shape are the table's data, not repeated logic.
MISTAKES = [
    (["kernels", "--batch", "0"], "--batch", "positive integer"),
    (["kernels", "--size", "-3"], "--size", "positive integer"),
    (["kernels", "--channels", "x"], "--channels", "integer"),
    (["kernels", "--channels-mid", "0"], "--channels-mid", "positive integer"),
    (["kernels", "--budget", "0"], "--budget", "> 0"),
    (["kernels", "--budget", "nan"], "--budget", "finite"),
    (["kernels", "--precision", "0"], "--precision", "percentage"),
    (["kernels", "--backend", "cuda"], "--backend", "numba and c"),
    (["kernels", "--shrink", "0"], "--shrink", "positive integer"),
    (["kernels", "--shrink", "9", "--kernel", "0"], "--kernel", "positive integer"),
    (["kernels", "--shrink", "9", "--pool", "-1"], "--pool", "positive integer"),
    (["signal", "--depth", "0"], "--depth", "positive integer"),
    (["signal", "--width", "0"], "--width", "positive integer"),
    (["signal", "--batch", "-5"], "--batch", "positive integer"),
    (["signal", "--seed", "-1"], "--seed", ">= 0"),
    (["signal", "--inits", "glorot"], "--inits", "unknown initialization 'glorot'"),
    (["train", "--lr", "-1"], "--lr", "> 0"),
    (["train", "--lr", "0"], "--lr", "> 0"),
    (["train", "--momentum", "1"], "--momentum", "[0, 1)"),
    (["train", "--epochs", "0"], "--epochs", "positive integer"),
    (["train", "--batch", "0"], "--batch", "positive integer"),
    (["train", "--inits", ","], "--inits", "at least one"),
    (["train", "--plot", "/nonexistent/dir/x.png"], "--plot", "does not exist"),
    (["train", "--plot", "{tmp}"], "--plot", "is a folder"),
    (["train", "--plot", "{tmp}/x.txt"], "--plot", ".png"),
    (["signal", "--plot", "/nonexistent/x.png"], "--plot", "does not exist"),
    (["kernels", "--plot", "/nonexistent/x.png"], "--plot", "does not exist"),
    (["train", "--depth", "0"], "--depth", "positive integer"),
    (["train", "--depth", "10,x"], "--depth", "integer"),
    (["train", "--width", "0"], "--width", "positive integer"),
    (["train", "--clip-norm", "-1"], "--clip-norm", "> 0"),
    (["train", "--clip-value", "0"], "--clip-value", "> 0"),
    (["train", "--probe-every", "0"], "--probe-every", "positive integer"),
    (["train", "--activation", "relu,swish"], "--activation", "unknown activation 'swish'"),
    (["train", "--data", "mnist"], "--data-dir", "name it with --data-dir"),
    (["train", "--data-dir", "/nonexistent/mnist"], "--data-dir", "is not a folder"),
    (["train", "--data-dir", "{tmp}"], "--data-dir", "lacks the MNIST file(s)"),
    (["train", "--data", "digits", "--data-dir", "{tmp}"], "--data-dir", "only with --data mnist"),
    (["train", "--model", "cnn", "--depth", "3"], "--depth", "only for --model mlp"),
    (["train", "--model", "cnn", "--batch-norm"], "--batch-norm", "only for --model mlp"),
    (["signal", "--activation", "swish"], "--activation", "invalid choice"),
    (["bench", "frob"], "OP", "unknown op 'frob'"),
    (["bench", "--budget", "-1"], "--budget", "> 0"),
]


@pytest.mark.parametrize("argv,flag,words", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_every_mistake_is_an_error_naming_the_option(argv, flag, words, capsys, tmp_path,
                                                     monkeypatch):
    # the command would fail loudly if it started: mistakes must be caught before the work
    for name in ("cmd_kernels", "cmd_signal", "cmd_train", "cmd_bench"):
        monkeypatch.setattr(cli, name, lambda args: pytest.fail("the work started"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and words in err, err
    assert "Traceback" not in err


def test_mistakes_end_without_traceback_in_a_real_process():
    for argv in (["kernels", "--batch", "0"], ["kernels", "--repeat", "0"],
                 ["train", "--plot", "/nonexistent/dir/x.png"]):
        proc = run(*argv)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""


def test_unavailable_backend_is_named_before_the_work(capsys, monkeypatch):
    import fastinit as fi

    monkeypatch.setattr(fi.backends, "available",
                        lambda: {"numpy": None, "numba": None, "c": "not built (test)"})
    monkeypatch.setattr("fastinit.lab.kernels.compare",
                        lambda **kw: pytest.fail("the work started"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["kernels", "--backend", "c", "--no-torch"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --backend: the c backend is not available" in err
    assert "not built (test)" in err


@pytest.mark.parametrize("argv,package", [
    (["train", "--plot", "x.png"], "matplotlib"),
    (["signal", "--plot", "x.png"], "matplotlib"),
    (["kernels", "--plot", "x.png"], "matplotlib"),
    (["train"], "scikit-learn"),
    (["signal"], "scikit-learn"),
])
def test_missing_optional_package_is_named_before_the_work(argv, package, capsys, monkeypatch,
                                                           tmp_path):
    monkeypatch.chdir(tmp_path)
    hidden = {"matplotlib": "matplotlib", "scikit-learn": "sklearn"}[package]
    real = cli._missing
    monkeypatch.setattr(cli, "_missing", lambda *mods: [m for m in mods if m == hidden]
                        + real(*[m for m in mods if m != hidden]))
    for name in ("cmd_kernels", "cmd_signal", "cmd_train"):
        monkeypatch.setattr(cli, name, lambda args: pytest.fail("the work started"))
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"needs {package}" in err and 'pip install "fastinit[lab]"' in err
    assert f"pip install {package}" in err


def _options(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((name, a) for a in sub._actions)


def test_every_option_has_help_with_its_default():
    parser = cli.build_parser()
    for command, action in _options(parser):
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (command, action.dest)
        formatter = cli._Formatter("fastinit")
        text = formatter._get_help_string(action) % dict(default=action.default)
        if action.nargs != 0 and action.option_strings:
            assert "default" in text, (command, action.dest, text)
    top = parser.format_help()
    assert "``" not in top and "--version" in top
    kernels_help = run("kernels", "--help").stdout
    assert "multiply-adds" in kernels_help and "FLOPs" not in kernels_help
    assert "(default: 8)" in kernels_help


def test_closed_pipe_ends_quietly():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user has it
    for argv in (["info"], ["kernels", "--shrink", "199"]):
        proc = subprocess.Popen([sys.executable, "-m", "fastinit", *argv], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()              # the reader is gone before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=600) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_signal_and_train_commands_end_to_end(tmp_path):
    sig = tmp_path / "sig.png"
    proc = run("signal", "--depth", "3", "--width", "16", "--batch", "32", "--activation",
               "relu", "--inits", "xavier_normal,he_normal", "--plot", str(sig))
    assert proc.returncode == 0, proc.stderr
    assert "he_normal" in proc.stdout and "predicted" in proc.stdout
    assert sig.stat().st_size > 1000
    proc = run("signal", "--json", "--depth", "2", "--width", "8", "--batch", "16")
    runs = json.loads(proc.stdout)[0]["runs"]
    assert len(runs[0]["activation_std"]) == 2
    curves = tmp_path / "train.png"
    proc = run("train", "--epochs", "2", "--inits", "he_normal,zeros", "--plot", str(curves))
    assert proc.returncode == 0, proc.stderr
    assert "he_normal" in proc.stdout and curves.stat().st_size > 1000
    # stderr is a pipe: one plain line per init, no progress bar's carriage returns
    assert "\r" not in proc.stderr and "mlp he_normal: 2 epochs in" in proc.stderr
    toy = tmp_path / "toy.png"
    proc = run("train", "--toy", "circles", "--inits", "he_normal", "--plot", str(toy))
    assert proc.returncode == 0, proc.stderr
    assert "circles he_normal" in proc.stdout and toy.stat().st_size > 1000
    proc = run("train", "--inits", "glorot")
    assert proc.returncode == 2 and "unknown initialization" in proc.stderr


def test_status_line_on_a_log_and_on_a_terminal():
    import io

    from fastinit.lab.progress import Status

    log = io.StringIO()
    s = Status(stream=log, every=3600)
    for i in range(100):
        s.update(f"round {i}")
    s.line("done")
    assert log.getvalue() == "round 0\ndone\n"        # a log gets no flood

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    s = Status(stream=tty)
    s.update("round 10")
    s.update("round 9")
    s.line("done")
    assert tty.getvalue() == "\rround 10\rround 9 \r       \rdone\n"


def test_compile_watch_reports_a_cold_compile():
    import io

    import numba

    from fastinit.lab.progress import CompileWatch, Status

    log = io.StringIO()

    @numba.njit(cache=False)
    def fresh(x):
        return x + 1

    with CompileWatch(Status(stream=log, every=0)) as watch:
        fresh(1)
    out = log.getvalue()
    assert watch.count >= 1
    assert out.startswith("compiling Numba kernels (first run only")
    assert "compiled 1 kernels" in out or f"compiled {watch.count} Numba kernels" in out
    log2 = io.StringIO()
    with CompileWatch(Status(stream=log2)) as watch:
        fresh(2)                         # already compiled: nothing to say
    assert watch.count == 0 and log2.getvalue() == ""


def test_bench_command_reports_ratios_in_words():
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS")}
    proc = run("bench", "activations", "--budget", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # started again with what bench.quiet_env asks for, which the caller had not set
    threads = data["machine"]["threads"]
    assert data["machine"]["env"] == f"OPENBLAS_THREAD_TIMEOUT=4 OMP_NUM_THREADS={threads}"
    row = data["rows"][0]
    assert row["op"] == "activations" and data["backend"] in row["ratios"]
    for peer, r in row["ratios"][data["backend"]].items():
        assert peer in ("numpy", "torch") and set(r) == {"ratio", "low", "high", "words"}
        assert any(w in r["words"] for w in ("faster", "slower", "no clear difference",
                                             "not known"))
    assert row["measurement"]["rounds"] >= 1
    proc = run("bench", "activations", "--budget", "1",
               env=dict(env, OPENBLAS_THREAD_TIMEOUT="6"))   # the caller's value is kept
    assert proc.returncode == 0 and "against each peer" in proc.stdout
    assert f"OPENBLAS_THREAD_TIMEOUT=6 OMP_NUM_THREADS={threads}" in proc.stdout.splitlines()[0]
