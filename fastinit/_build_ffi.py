"""cffi builder for the optional C extension ``fastinit._cfast`` (named in setup.py).

Sources: every ``csrc/*.c``; declarations: ``csrc/fastinit.h`` (the part between the
``FI_CDEF_BEGIN``/``FI_CDEF_END`` markers is what Python sees).

Flags (docs/performance.md explains them): ``-O3 -fno-wrapv`` (Python's default ``-fwrapv``
keeps gcc from proving loop counters cannot wrap, which blocks vectorisation in these kernels),
``-fno-math-errno`` (lets gcc vectorise sqrtf; fastinit never reads errno),
``-ffp-contract=off`` (no silent FMA: the random stream is promised bit-for-bit across
backends; kernels that want FMA call it explicitly), OpenMP for threads, and ``-g0``: Python's
own CFLAGS carry ``-g``, which made the extension ten times its size in debug info that no user
reads (a later flag wins). Vector code is chosen at run time (``csrc/dispatch.h``); never
``-march=native``.
"""
import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


def _cdef():
    with open(os.path.join(CSRC, "fastinit.h")) as f:
        text = f.read()
    m = re.search(r"FI_CDEF_BEGIN\s*\*/(.*)/\*\s*FI_CDEF_END", text, re.S)
    if m is None:
        raise RuntimeError("csrc/fastinit.h lacks the FI_CDEF_BEGIN/FI_CDEF_END markers")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))


# FASTINIT_SANITIZE=1: build for the sanitizer pass of .ci/run (AddressSanitizer and UBSan,
# any report aborts the process; load with LD_PRELOAD of libasan). Never for an install.
_SANITIZE = (["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
              "-fno-omit-frame-pointer", "-g"]
             if os.environ.get("FASTINIT_SANITIZE", "0").strip() not in ("", "0") else [])

ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "fastinit._cfast",
    '#include "fastinit.h"',
    sources=sorted(os.path.relpath(p) for p in glob.glob(os.path.join(CSRC, "*.c"))),
    include_dirs=[os.path.relpath(CSRC)],
    # the headers (fastinit.h, dispatch.h, the per-ISA *_isa.h bodies): a change rebuilds
    depends=sorted(os.path.relpath(p) for p in glob.glob(os.path.join(CSRC, "*.h"))),
    extra_compile_args=["-std=gnu11", "-O3", "-fno-wrapv", "-ffp-contract=off", "-fopenmp",
                        "-fno-strict-aliasing", "-fno-math-errno", "-g0"] + _SANITIZE,
    extra_link_args=["-fopenmp"] + _SANITIZE,
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
