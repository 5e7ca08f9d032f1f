"""Layers: Linear, Conv2d, BatchNorm1d/2d, activations, Flatten, MaxPool2d, AvgPool2d.

Every layer calls only the public ops of fastinit (so every backend serves it) and caches in
``forward`` what its ``backward`` needs. Parametrised layers take ``init=`` - the name of a
:mod:`fastinit.init` initializer ("xavier_normal", "he_normal", "zeros", "torch_default", ...),
a ``(name, kwargs)`` pair such as ``("kaiming_normal", {"nonlinearity": "relu"})``, or a callable
``f(shape, rng=stream, dtype=dtype) -> array`` - and ``seed=``/``rng=``. Without either, the
layer waits for ``initialize(seed=...)`` of the network that holds it.
"""
import math

import numpy as np

import fastinit as fi
from .. import _validate, init as _init
from ..rng import Stream, as_stream
from .module import Module, Parameter



def make_init(spec, shape, rng, dtype):
    """Draw an array of ``shape`` as ``spec`` says (see the module docstring)."""
    if callable(spec):
        arr = np.asarray(spec(shape, rng=rng, dtype=dtype), dtype=dtype)
        if arr.shape != tuple(shape):
            raise ValueError(f"init callable returned shape {arr.shape}, expected {tuple(shape)}")
        return arr
    name, kwargs = (spec, {}) if isinstance(spec, str) else spec
    fn = getattr(_init, name, None) if isinstance(name, str) and not name.endswith("_") else None
    if fn is None or name not in _init._FUNCTIONAL:
        raise ValueError(f"init must be an initializer name from fastinit.init "
                         f"({', '.join(sorted(_init._FUNCTIONAL))}), a (name, kwargs) pair or a "
                         f"callable, got {spec!r}")
    if name in ("zeros", "ones", "constant", "eye", "dirac"):
        return fn(shape, dtype=dtype, **kwargs)
    return fn(shape, rng=rng, dtype=dtype, **kwargs)


class _Parametrised(Module):
    """Shared by Linear and Conv2d: weight/bias creation from init specs and a seed."""

    def _setup(self, wshape, bias, init, bias_init, seed, rng, dtype):
        self.dtype = _validate.float_dtype(dtype)
        self.init = init
        self.bias_init = bias_init
        self.weight = Parameter(np.zeros(wshape, self.dtype), "weight")
        self.bias = Parameter(np.zeros(wshape[0], self.dtype), "bias") if bias else None
        self.initialized = False
        if seed is not None or rng is not None:
            self.reset_parameters(as_stream(seed, rng))

    def reset_parameters(self, rng):
        if not isinstance(rng, Stream):
            rng = Stream(rng)
        self.weight.data[...] = make_init(self.init, self.weight.shape, rng, self.dtype)
        if self.bias is not None:
            spec = self.bias_init
            if spec is None:
                spec = "torch_default" if self.init == "torch_default" else "zeros"
            if spec == "torch_default":
                fan_in = _init.compute_fans(self.weight.shape, **self._fan_kwargs())[0]
                self.bias.data[...] = _init.torch_default(self.bias.shape, fan_in=fan_in, rng=rng,
                                                          dtype=self.dtype)
            else:
                self.bias.data[...] = make_init(spec, self.bias.shape, rng, self.dtype)
        self.initialized = True
        return self

    def _fan_kwargs(self):
        return {}

    def _need(self):
        return ("dx", "dw", "db") if self.need_input_grad else ("dw", "db")

    def _accumulated(self, grads):
        """dx of a backward's (dx, dw, db), once dw and db are added to the parameters'."""
        dx, dw, db = grads
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def _check_ready(self, x):
        if not self.initialized:
            raise RuntimeError(f"{self._name} has no weights yet: pass seed= when building it, or "
                               "call .initialize(seed=...) on the network")
        _validate.float_array(x, "x")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but {self._name} holds {self.dtype} weights; "
                            f"convert with x.astype(np.{self.dtype})")


class Linear(_Parametrised):
    """y = x @ W.T + b with W (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, *, init="torch_default",
                 bias_init=None, seed=None, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = _validate.positive_int(in_features, "in_features")
        self.out_features = _validate.positive_int(out_features, "out_features")
        self._setup((self.out_features, self.in_features), bias, init, bias_init, seed, rng, dtype)

    def forward(self, x):
        self._check_ready(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self._name} expects x of shape (N, {self.in_features}), "
                             f"got {x.shape}")
        self._x = x
        return fi.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy):
        return self._accumulated(fi.linear_backward(dy, self._x, self.weight.data,
                                                    has_bias=self.bias is not None,
                                                    need=self._need()))

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}, init={self.init!r}"


class Conv2d(_Parametrised):
    """2-D convolution, NCHW input, OIHW weight (see fastinit.conv2d for the arguments)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, init="torch_default", bias_init=None, seed=None,
                 rng=None, dtype=np.float32):
        super().__init__()
        kh, kw = _validate.int_pair(kernel_size, "kernel_size", minimum=1)
        self.groups = _validate.positive_int(groups, "groups")
        if in_channels % self.groups or out_channels % self.groups:
            raise ValueError(f"groups={groups} must divide in_channels ({in_channels}) and "
                             f"out_channels ({out_channels})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._setup((out_channels, in_channels // self.groups, kh, kw), bias, init, bias_init,
                    seed, rng, dtype)

    def _fan_kwargs(self):
        return {"layout": "oihw"}

    def forward(self, x):
        self._check_ready(x)
        self._x = x
        return fi.conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                         **self.conv_args)

    def backward(self, dy):
        return self._accumulated(fi.conv2d_backward(dy, self._x, self.weight.data,
                                                    **self.conv_args,
                                                    has_bias=self.bias is not None,
                                                    need=self._need()))

    def extra_repr(self):
        return (f"{self.in_channels} -> {self.out_channels}, kernel {self.weight.shape[2:]}, "
                f"{self.conv_args}, init={self.init!r}")


class _BatchNorm(Module):
    _ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, dtype=np.float32):
        super().__init__()
        self.num_features = _validate.positive_int(num_features, "num_features")
        self.eps, self.momentum = eps, momentum
        dt = _validate.float_dtype(dtype)
        self.gamma = Parameter(np.ones(num_features, dt), "gamma") if affine else None
        self.beta = Parameter(np.zeros(num_features, dt), "beta") if affine else None
        self.running_mean = np.zeros(num_features, dt) if track_running_stats else None
        self.running_var = np.ones(num_features, dt) if track_running_stats else None

    def forward(self, x):
        _validate.float_array(x, "x")
        if x.ndim not in self._ndims:
            raise ValueError(f"{self._name} expects a {' or '.join(map(str, self._ndims))}-D "
                             f"input, got shape {x.shape}")
        self._x = x
        y, self._saved = fi.batch_norm(
            x, None if self.gamma is None else self.gamma.data,
            None if self.beta is None else self.beta.data, self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps)
        return y

    def backward(self, dy):
        dx, dg, db = fi.batch_norm_backward(dy, self._x, None if self.gamma is None
                                            else self.gamma.data, self._saved)
        if self.gamma is not None:
            self.gamma.accumulate(dg)
            self.beta.accumulate(db)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) features."""
    _ndims = (2,)


class BatchNorm2d(_BatchNorm):
    """Batch norm over the channels of (N, C, H, W) maps."""
    _ndims = (4,)


class _Activation(Module):
    kind = "activation"
    _f = _df = None

    def forward(self, x):
        self._x = x
        return type(self)._f(x, *self._args())

    def backward(self, dy):
        return type(self)._df(dy, self._x, *self._args())

    def _args(self):
        return ()


class ReLU(_Activation):
    _f, _df = staticmethod(fi.relu), staticmethod(fi.relu_backward)


class Tanh(_Activation):
    _f, _df = staticmethod(fi.tanh), staticmethod(fi.tanh_backward)


class Sigmoid(_Activation):
    _f, _df = staticmethod(fi.sigmoid), staticmethod(fi.sigmoid_backward)


class Identity(_Activation):
    _f, _df = staticmethod(fi.identity), staticmethod(fi.identity_backward)


class LeakyReLU(_Activation):
    _f, _df = staticmethod(fi.leaky_relu), staticmethod(fi.leaky_relu_backward)

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = _validate.finite_number(negative_slope, "negative_slope")

    def _args(self):
        return (self.negative_slope,)


class Flatten(Module):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # -1 is ambiguous when N = 0

    def backward(self, dy):
        return dy.reshape(self._shape)


class _Pool2d(Module):
    _f = _df = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.args = (kernel_size, stride, padding)

    def forward(self, x):
        self._x = x
        return type(self)._f(x, *self.args)

    def backward(self, dy):
        return type(self)._df(dy, self._x, *self.args)


class MaxPool2d(_Pool2d):
    _f, _df = staticmethod(fi.max_pool2d), staticmethod(fi.max_pool2d_backward)


class AvgPool2d(_Pool2d):
    _f, _df = staticmethod(fi.avg_pool2d), staticmethod(fi.avg_pool2d_backward)
