"""Build script: the optional C extension ``fastinit._cfast``.

The extension is built from ``csrc/`` by cffi (``fastinit/_build_ffi.py``) when a C compiler
works. It is optional: with ``FASTINIT_BUILD_C=0``, or when the compiler is missing or fails,
the install still succeeds and ``fastinit info`` reports the C backend unavailable, with why.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a warning instead of a failed install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, or a compile/link error
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    @staticmethod
    def _skip(exc):
        sys.stderr.write(
            "\nfastinit: the optional C extension was not built (%s: %s).\n"
            "fastinit works without it; `fastinit info` reports the C backend unavailable.\n\n"
            % (type(exc).__name__, exc)
        )


build_c = os.environ.get("FASTINIT_BUILD_C", "1").strip().lower() not in ("0", "no", "false", "off")

setup(
    cmdclass={"build_ext": OptionalBuildExt},
    cffi_modules=["fastinit/_build_ffi.py:ffibuilder"] if build_c else [],
)
