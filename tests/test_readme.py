"""The README is true: its Python snippets run as printed (and print what their comments say),
its commands are valid, its generated outputs match the commands' defaults, its pictures exist,
CI runs its two commands, and nothing points outside the repository."""
import contextlib
import glob
import io
import os
import re
import shlex

import pytest

from fastinit import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as f:
    README = f.read()

SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)


def _expected_output(code):
    """The comment lines right after each print(...) line: what the snippet says it prints."""
    out, lines = [], code.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("print("):
            j = i + 1
            while j < len(lines) and lines[j].startswith("# "):
                out.append(lines[j][2:])
                j += 1
    return out


def test_there_are_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs_on_its_own(code):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    expected = _expected_output(code)
    if expected:
        assert buf.getvalue().splitlines() == expected


def _commands():
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            for cmd in line.split("&&"):
                cmd = cmd.split("#")[0].strip()
                if cmd.startswith("fastinit"):
                    yield cmd
    yield from re.findall(r"`(fastinit [^`]*)`", README)


def test_every_command_shown_is_valid():
    parser = cli.build_parser()
    seen = 0
    for cmd in _commands():
        argv = shlex.split(cmd)[1:]
        if any(a in ("COMMAND", "FILE.png", "...") for a in argv):
            continue                      # a pattern, not a command
        if "--help" in argv or "--version" in argv:
            with pytest.raises(SystemExit) as exc:
                with contextlib.redirect_stdout(io.StringIO()):
                    parser.parse_args(argv)
            assert exc.value.code == 0, cmd
        else:
            parser.parse_args(argv)
        seen += 1
    assert seen >= 8


def _block(name):
    m = re.search(rf"<!-- readme_{name}:begin -->\n(.*?)\n<!-- readme_{name}:end -->", README,
                  re.S)
    assert m, f"README has no readme_{name} block"
    assert "python docs/generate.py" not in m.group(1), f"readme_{name} was never generated"
    return m.group(1)


def test_generated_outputs_match_the_defaults():
    parser = cli.build_parser()
    defaults = {name: parser.parse_args([name]) for name in ("train", "kernels", "signal")}
    t = defaults["train"]
    flat = lambda text: " ".join(text.split())     # the table's heading wraps at 100 columns
    for part, argv in (("train", []), ("depth", ["--depth", "10,20,30"]), ("dynamics", ["--probe"]),
                       ("clip", ["--clip-norm", "1", "--clip-value", "0.01"]),
                       ("batchnorm", ["--batch-norm"])):
        s = cli.train_settings(parser.parse_args(["train", *argv]))
        assert (f"SGD lr {s['lr']} momentum {t.momentum}, batch {t.batch}, {s['epochs']} epochs, "
                f"seed {t.seed}") in flat(_block(part)), part
        assert f"$ fastinit train {' '.join(argv)}".strip() in _block(part), part
    assert "9-layer linear MLP" in _block("linear") and "x0.00391" in _block("linear")
    k = defaults["kernels"]
    assert f"input N={k.batch} C={k.channels} {k.size}x{k.size}, {k.dtype}" in _block("kernels")
    assert "$ fastinit kernels --plot docs/kernels.png" in _block("kernels")
    assert "10-layer tanh MLP" in _block("signal") and "30-layer relu MLP" in _block("signal")
    assert "199 -> 1 in 99 steps" in _block("shrink")
    assert "moons he_normal" in _block("moons")
    assert "CPUs" in _block("machine")
    assert "fastinit warmup" in _block("warmup")


def test_pictures_are_in_docs_and_shown():
    shown = set(re.findall(r"!\[[^\]]*\]\((docs/[^)]+\.png)\)", README))
    on_disk = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.png"))}
    assert shown == on_disk and {"docs/kernels.png", "docs/signal.png", "docs/train.png",
                                 "docs/moons.png", "docs/depth.png", "docs/dynamics.png",
                                 "docs/clip.png", "docs/batchnorm.png"} <= shown


def test_ci_runs_the_readme_commands():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    install = 'pip install -e ".[test,lab]" && fastinit kernels'
    assert f"```bash\n{install}\n```" in README and f"\n{install}\n" in ci
    assert "```bash\npytest\n```" in README and "\npytest\n" in ci


REPO_MD = {os.path.basename(p) for p in glob.glob("**/*.md", root_dir=ROOT, recursive=True)
           if not p.startswith((".venv", "build"))}


def test_nothing_points_outside_the_repository():
    mine = (["README.md", "LICENSE", "pyproject.toml", "setup.py", "fastinit/_build_ffi.py",
             "fastinit/cli.py", "fastinit/nn/probe.py"]
            + glob.glob("docs/*.md", root_dir=ROOT) + glob.glob("docs/*.py", root_dir=ROOT)
            + glob.glob("fastinit/lab/*.py", root_dir=ROOT))
    for name in mine:
        with open(os.path.join(ROOT, name)) as f:
            text = f.read()
        # no path that climbs out of the checkout, and every Markdown file named is one the
        # repository has (a reader cannot open notes that stayed on a developer's machine)
        assert not re.search(r"\.\./[\w.-]", text), (name, "a path outside the repository")
        for doc in set(re.findall(r"[\w./-]*\b[\w-]+\.md\b", text)):
            base = os.path.basename(doc)
            assert base in REPO_MD, (name, doc)
    assert os.path.exists(os.path.join(ROOT, "LICENSE"))
    assert "MIT License" in open(os.path.join(ROOT, "LICENSE")).read()
