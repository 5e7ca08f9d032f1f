"""Build script: the optional C extension ``fastinit._cfast``.

The extension is built from ``csrc/`` by cffi (``fastinit/_build_ffi.py``) when a C compiler
works. It is optional: with ``FASTINIT_BUILD_C=0``, or when the compiler is missing or fails,
the install still succeeds, and ``fastinit info`` (and ``fastinit kernels``) report the C
backend unavailable with the compiler's own message, which is kept beside the package in
``fastinit/_cfast_build.txt`` because pip shows a successful build's output only with ``-v``.

The build is honest: the compiler is tried on a small file first, so a missing one is never
covered by an extension left in ``build/`` (or, for an editable install, in the source tree)
by an earlier build; and ``build/`` is reused only when it was built with the same compiler,
flags and Python, so a change of flags always rebuilds.
"""
import glob
import json
import os
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

NOTE = "_cfast_build.txt"   # why the extension is missing, read by fastinit/_c.py


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a warning instead of a failed install."""

    def run(self):
        if not self.extensions:
            return super().run()
        problem = self._compiler_problem()
        if problem is not None:
            return self._skip(problem)
        stamp_path = os.path.join(self.build_temp, "fastinit-build-stamp.json")
        stamp = self._stamp()
        try:
            with open(stamp_path) as f:
                if json.load(f) != stamp:
                    self.force = True
        except (OSError, ValueError):
            self.force = True    # no record of how build/ was made: rebuild everything
        try:
            super().run()
        except Exception as exc:  # a compile or link error
            return self._skip(f"{type(exc).__name__}: {exc}")
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp_path, "w") as f:
            json.dump(stamp, f)
        self._write_note(None)

    def _stamp(self):
        """What makes a build: the compiler and flags (ours and Python's) and the Python."""
        flags = [(e.name, e.extra_compile_args, e.extra_link_args) for e in self.extensions]
        env = {k: os.environ.get(k) for k in ("CC", "CFLAGS", "LDSHARED", "LDFLAGS", "CPPFLAGS")}
        return dict(python=sys.version, cc=sysconfig.get_config_var("CC"),
                    cflags=sysconfig.get_config_var("CFLAGS"), env=env,
                    flags=json.loads(json.dumps(flags)))

    def _compiler_problem(self):
        """None when the configured C compiler compiles and links a small file, else why not."""
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler

        cc = new_compiler(compiler=self.compiler, verbose=0, force=True)
        customize_compiler(cc)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("int fastinit_probe(int x) { return x + 1; }\n")
            try:
                objs = cc.compile([src], output_dir=tmp)
                cc.link_shared_object(objs, os.path.join(tmp, "probe.so"))
            except Exception as exc:
                return f"the C compiler does not work here ({type(exc).__name__}: {exc})"
        return None

    def _write_note(self, text):
        """Write (or, with None, remove) the note saying why the extension is missing, where
        the installed package will have it. Writing it also removes any extension an earlier
        build left there, so a wheel or an editable install never carries a stale one."""
        dirs = [os.path.join(self.build_lib, "fastinit")]
        if self.inplace:
            dirs.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastinit"))
        for d in dirs:
            path = os.path.join(d, NOTE)
            if text is None:
                if os.path.exists(path):
                    os.remove(path)
                continue
            os.makedirs(d, exist_ok=True)
            with open(path, "w") as f:
                f.write(text + "\n")
            for stale in glob.glob(os.path.join(d, "_cfast*.so")) + \
                    glob.glob(os.path.join(d, "_cfast*.pyd")):
                os.remove(stale)

    def _skip(self, why):
        why = " ".join(str(why).split())
        self._write_note(why)
        sys.stderr.write(
            "\nfastinit: the optional C extension was not built: %s\n"
            "fastinit works without it; `fastinit info` reports the C backend unavailable, "
            "and why.\n\n" % why)
        self.extensions = []


build_c = os.environ.get("FASTINIT_BUILD_C", "1").strip().lower() not in ("0", "no", "false", "off")

setup(
    cmdclass={"build_ext": OptionalBuildExt},
    cffi_modules=["fastinit/_build_ffi.py:ffibuilder"] if build_c else [],
)
