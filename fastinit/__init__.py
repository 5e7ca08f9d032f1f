"""fastinit: deep-learning kernels in Numba and C beside a NumPy reference.

This module is the public face: it re-exports, it defines nothing.
"""
from . import _config, backends
from .backends import set_num_threads, get_num_threads

__version__ = "0.1.0"

__all__ = ["backends", "set_num_threads", "get_num_threads", "__version__"]
