"""fastinit.nn: a small layer API for teaching, built only on fastinit's public ops.

Forward caches, backward is explicit (no autograd engine), every layer takes ``init=`` and a
seed, and a :class:`Probe` records per-layer statistics.
"""
from .module import Module, Parameter, Sequential
from .layers import (Linear, Conv2d, BatchNorm1d, BatchNorm2d, ReLU, LeakyReLU, Tanh, Sigmoid,
                     Identity, Flatten, MaxPool2d, AvgPool2d, make_init)
from .loss import SoftmaxCrossEntropy, MSE
from .optim import SGD
from .probe import Probe
from . import data
