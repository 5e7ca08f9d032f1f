"""fastinit: deep-learning kernels in Numba and C beside a NumPy reference.

This module is the public face: it re-exports, it defines nothing.
"""
from . import _config, backends, rng, init
from .backends import set_num_threads, get_num_threads
from ._alloc import set_output_cache, clear_output_cache, output_cache_info
from .ops.dense import matmul, linear, linear_backward
from .ops.conv import conv2d, conv2d_backward, conv2d_output_shape
from .ops.batchnorm import batch_norm, batch_norm_backward, BatchNormSaved
from .ops.clip import clip_grad_norm_, clip_grad_value_
from .ops.optim import sgd_step_
from .ops.activations import (relu, relu_backward, leaky_relu, leaky_relu_backward, elu,
                              elu_backward, tanh, tanh_backward, sigmoid, sigmoid_backward, gelu,
                              gelu_backward, identity, identity_backward)
from .ops.loss import softmax_cross_entropy, mse
from .ops.pool import (max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward,
                       pool2d_output_shape)

__version__ = "0.1.0"
