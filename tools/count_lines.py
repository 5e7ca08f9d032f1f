"""Lines of the fast backends (fastinit/_numba, fastinit/_ckernels, csrc), as ``wc -l`` counts
them (comments and blank lines included), with the convolution kernels apart.

    python tools/count_lines.py

A file belongs to convolution when its name says so (conv*, *wino*, *winograd*); the register
tile and the instantiation header that GEMM and convolution share (gemm_tile.h,
instances.h, _tile.py) count under the rest.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FOLDERS = ("fastinit/_numba", "fastinit/_ckernels", "csrc")
SOURCES = (".py", ".c", ".h")


def is_conv(name):
    name = name.lower()
    return name.startswith("conv") or "wino" in name


def count(root=ROOT):
    """{folder: (lines, conv lines)} for the three folders."""
    out = {}
    for folder in FOLDERS:
        total = conv = 0
        path = os.path.join(root, folder)
        for name in sorted(os.listdir(path)):
            if not name.endswith(SOURCES):
                continue
            with open(os.path.join(path, name), encoding="utf-8") as f:
                n = sum(1 for _ in f)
            total += n
            conv += n if is_conv(name) else 0
        out[folder] = (total, conv)
    return out


def main():
    counts = count()
    print(f"{'folder':22s} {'lines':>7s} {'of which conv':>14s}")
    for folder, (total, conv) in counts.items():
        print(f"{folder:22s} {total:7d} {conv:14d}")
    total = sum(t for t, _ in counts.values())
    conv = sum(c for _, c in counts.values())
    print(f"{'all three':22s} {total:7d} {conv:14d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
