"""conv2d's scratch is bounded by the work, not by the stride: a 3x3 input with a stride of
8000 (one output pixel) costs kilobytes, forward and backward, on every backend, and gives the
reference's result; any stride, 2**63 included, is accepted. Measured in a fresh process by
the growth of its peak resident memory (ru_maxrss) after the kernels are compiled and warm."""
import subprocess
import sys

import pytest

CODE = r"""
import resource, sys
import numpy as np
import fastinit as fi

be = sys.argv[1]
r = np.random.default_rng(0)
x = r.standard_normal((2, 3, 3, 3)).astype(np.float32)
w = r.standard_normal((4, 3, 3, 3)).astype(np.float32)
b = r.standard_normal(4).astype(np.float32)
wd = r.standard_normal((3, 1, 3, 3)).astype(np.float32)
for args in ((w, 1), (wd, 3)):           # compile and warm every pass, general and depthwise
    y = fi.conv2d(x, args[0], groups=args[1], backend=be)
    fi.conv2d_backward(np.ones_like(y), x, args[0], groups=args[1], backend=be)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for stride in (8000, 10**5, 2**40, 2**63):
    for wt, g in ((w, 1), (wd, 3)):
        y = fi.conv2d(x, wt, b[:wt.shape[0]], stride=stride, groups=g, backend=be)
        want = fi.conv2d(x, wt, b[:wt.shape[0]], stride=1, groups=g, backend="numpy")
        assert y.shape == (2, wt.shape[0], 1, 1), y.shape
        assert np.allclose(y, want, rtol=1e-5, atol=1e-5)
        dy = r.standard_normal(y.shape).astype(np.float32)
        got = fi.conv2d_backward(dy, x, wt, stride=stride, groups=g, backend=be)
        ref = fi.conv2d_backward(dy, x, wt, stride=1, groups=g, backend="numpy")
        for a, c in zip(got, ref):
            assert np.allclose(a, c, rtol=1e-5, atol=1e-5)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
def test_huge_stride_costs_kilobytes(fast_backend):
    out = subprocess.run([sys.executable, "-c", CODE, fast_backend], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    grown_kb = int(out.stdout.split()[-1])
    assert grown_kb < 2048, f"peak memory grew by {grown_kb} KB"
