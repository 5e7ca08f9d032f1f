"""The kernel-size comparison as its own benchmark group: one 5x5 against two stacked 3x3,
one 7x7 against three, same channels and "same" padding, forward and forward+backward, each
fastinit backend beside PyTorch. (``fastinit kernels`` prints the same comparison as a table.)
"""
import numpy as np
import pytest

import fastinit as fi
from fastinit.lab import kernels

FAST = [n for n, why in fi.backends.available().items() if why is None and n != "numpy"]
CONFIG = dict(batch=8, channels=64, size=56)
PLANS = {p.name: p for p in kernels.plans(**CONFIG)}


def _check(plan, backend):
    """The stack's output on ``backend`` equals the reference's before anything is timed."""
    small = kernels.ConvPlan(plan.name, plan.kernel, plan.layers, 8, 8, 2, 12)
    fwd, _ = kernels._stack_fns(small, backend, np.float32, False, 0)
    ref, _ = kernels._stack_fns(small, "numpy", np.float32, False, 0)
    np.testing.assert_allclose(fwd()[-1], ref()[-1], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("pass_", ["forward", "forward+backward"])
@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("lib", FAST + ["torch"])
def test_kernel_size(benchmark, lib, plan, pass_):
    p = PLANS[plan]
    if lib == "torch":
        fwd, bwd = kernels._torch_fns(p, np.float32, False, 0)
    else:
        _check(p, lib)
        fwd, bwd = kernels._stack_fns(p, lib, np.float32, False, 0)
    fn = fwd if pass_ == "forward" else bwd
    benchmark.group = f"kernel size {pass_}: N8 C64 56x56 (3x3 stacks vs 5x5/7x7)"
    benchmark.extra_info.update(library=lib, plan=plan, params=p.params, macs=p.macs, **CONFIG)
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
