"""NumPy reference of the SGD update (the oracle; contract in :mod:`fastinit.ops.optim`).

params, grads, velocities (or None) are lists of C-contiguous arrays of one dtype (shapes
pairwise equal; the fast kernels treat each as flat); the
scalars are applied in that dtype, one rounding per operation.
"""
import numpy as np


def sgd_step(params, grads, velocities, lr, momentum, weight_decay):
    for i, p in enumerate(params):
        t = p.dtype.type
        d = grads[i]
        if t(weight_decay) != 0:  # as the kernels decide: in the data type
            d = d + t(weight_decay) * p
        if velocities is not None:
            v = velocities[i]
            v *= t(momentum)
            v += d
            d = v
        p -= t(lr) * d
