"""fastinit: deep-learning kernels in Numba and C beside a NumPy reference.

This module is the public face: it re-exports, it defines nothing.
"""
from . import _config, backends, rng, init
from .backends import set_num_threads, get_num_threads
# ops: dense
# ops: conv
# ops: batchnorm
# ops: clip
# ops: activations
# ops: loss
from .ops.pool import (max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward,
                       pool2d_output_shape)

__version__ = "0.1.0"
