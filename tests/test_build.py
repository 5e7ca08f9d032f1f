"""The install works without the C extension: with FASTINIT_BUILD_C=0 and with no working C
compiler, a wheel still builds, installs and runs, and says why the C backend is missing; an
extension left in build/ by an earlier build is never installed in its place; the built
extension carries no debug info."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source_copy(tmp_path):
    """The project's files as a fresh clone has them (no build products of this checkout)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "src"
    for name in files:
        if os.path.isfile(os.path.join(ROOT, name)):
            dest = src / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), dest)
    return src


def _stale_build(src):
    """An extension where an earlier build would have left it in build/ (and a stamp that
    matches nothing)."""
    tag = f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    for lib in ("lib", tag):
        d = src / "build" / lib / "fastinit"
        d.mkdir(parents=True)
        (d / "_cfast.abi3.so").write_bytes(b"stale")


def _build_wheel(tmp_path, env_extra, stale=False):
    env = dict(os.environ, **env_extra)
    out = tmp_path / "wheel"
    src = _source_copy(tmp_path)
    if stale:
        _stale_build(src)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                           "--no-build-isolation", "-w", str(out), str(src)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = list(out.glob("fastinit-*.whl"))
    assert len(wheels) == 1
    return wheels[0], proc


@pytest.mark.slow
@pytest.mark.parametrize("env_extra,why", [
    ({"FASTINIT_BUILD_C": "0"}, "FASTINIT_BUILD_C=0"),
    ({"CC": "/bin/false", "LDSHARED": "/bin/false"}, "compiler"),
    ({"CC": "/bin/false"}, "compiler, stale build"),
], ids=["build-c-off", "no-compiler", "no-compiler-stale-build"])
def test_wheel_without_c_installs_and_reports_why(tmp_path, env_extra, why):
    wheel, proc = _build_wheel(tmp_path, env_extra, stale="stale" in why)
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.endswith((".so", ".pyd")) for n in names), names
    if why.startswith("compiler"):
        assert "the optional C extension was not built" in proc.stderr + proc.stdout
        assert "fastinit/_cfast_build.txt" in names   # the compiler's message, for `info`
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=600)
    # Drop the editable install's import hook (it would find the source tree's _cfast).
    code = ("import sys; sys.path.insert(0, %r); "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in repr(f)]; "
            "import fastinit as fi; "
            "print(fi.__file__); print(fi.backends.available()['c']); "
            "print(fi.init.xavier_uniform((3, 3), seed=0).shape)" % str(target))
    env = {k: v for k, v in os.environ.items() if k != "FASTINIT_DISABLE_C"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), check=True, timeout=600).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert "not built" in out[1]
    if why.startswith("compiler"):
        assert "does not work here" in out[1]
    assert out[2] == "(3, 3)"


def test_built_extension_has_no_debug_info():
    import importlib.util

    spec = importlib.util.find_spec("fastinit._cfast")
    if spec is None:
        pytest.skip("this install has no C extension to inspect (built without a compiler)")
    with open(spec.origin, "rb") as f:
        data = f.read()
    # an ELF section named .debug_* would be debug info (Python's CFLAGS carry -g)
    assert b".debug_info" not in data and b".debug_line" not in data, spec.origin
