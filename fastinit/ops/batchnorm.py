"""Batch normalisation (Ioffe & Szegedy 2015), forward and backward, for (N, C) and NCHW input.

``y, saved = batch_norm(x, gamma, beta, running_mean, running_var, training=True)`` normalises
each channel of ``x`` (axis 1) over every other axis, then scales by ``gamma`` and shifts by
``beta``; ``dx, dgamma, dbeta = batch_norm_backward(dy, x, gamma, saved)`` is its gradient.

Statistics
    Training: the batch mean and the *biased* batch variance (divide by M = N*H*W) normalise.
    Inference: the running statistics; when none are tracked (``running_mean=None``), the batch
    statistics, as PyTorch does for ``track_running_stats=False``. Per-channel sums accumulate
    in float64 even for float32 data (a float32 sum of squares gives a wrong variance for data
    of mean 1000 and std 1), around a per-channel shift, so large means do not cancel.
Running buffers (updated in place, training only)
    ``convention="torch"`` (default): ``running = (1 - momentum) * running + momentum * batch``,
    the running variance receiving the *unbiased* estimate var * M / (M - 1); ``momentum=None``
    is the cumulative average, factor 1 / (num_batches_tracked + 1), where
    ``num_batches_tracked`` (required then) counts the batches already averaged in.
    ``convention="keras"`` (alias ``"flax"``): ``momentum`` is the decay of the old value,
    ``running = momentum * running + (1 - momentum) * batch``, with the *biased* variance
    (Keras BatchNormalization / flax.linen.BatchNorm; pass e.g. momentum=0.99).
One value per channel in training
    PyTorch's error by default (the variance of one value is 0, the output all ``beta``).
    ``single_value="running"`` normalises such a batch with the running statistics instead
    (no buffer update; needs running buffers).

The ``saved`` object (:class:`BatchNormSaved`) carries what the backward needs: the float64
mean and invstd that normalised x, and whether they were the batch's own statistics (then the
backward differentiates through them: the closed form) or fixed ones (dx = dy*gamma*invstd).

Not here: the layer object (``fastinit.nn.BatchNorm2d``), other axes than 1, float16.
"""
import math
import numbers
from typing import NamedTuple

import numpy as np

from .. import _alloc, _validate, backends
from ..reference.batchnorm import update_running_stats

__all__ = ["batch_norm", "batch_norm_backward", "BatchNormSaved"]

_CONVENTIONS = ("torch", "keras", "flax")
_SINGLE_VALUE = ("raise", "running")


class BatchNormSaved(NamedTuple):
    """What :func:`batch_norm` hands to :func:`batch_norm_backward` (read-only by convention).

    mean, var, invstd : (C,) float64
        The statistics that normalised ``x``: xhat = (x - mean) * invstd, invstd =
        1 / sqrt(var + eps); var is the biased batch variance, or the running variance.
    batch_stats : bool
        True when ``x`` was normalised with its own batch statistics (training, or inference
        without running buffers): the backward then uses the closed form through mean and var.
    eps : float
    has_gamma, has_beta : bool
        Whether gamma / beta were given; the backward returns None for the missing ones.
    """
    mean: np.ndarray
    var: np.ndarray
    invstd: np.ndarray
    batch_stats: bool
    eps: float
    has_gamma: bool
    has_beta: bool


def _as_nc_s(x):
    """x as a C-contiguous (N, C, S) array (a view when x is already C-contiguous)."""
    x = _validate.contiguous(x)
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True,
               momentum=0.1, eps=1e-5, *, convention="torch", num_batches_tracked=None,
               single_value="raise", out=None, backend=None):
    """Batch norm of ``x`` ((N, C) or (N, C, H, W)); returns ``(y, saved)``.

    gamma, beta : (C,) arrays or None (no scale / no shift).
    running_mean, running_var : (C,) arrays updated in place in training, or None (both or
        neither). See the module docstring for ``momentum``, ``convention``,
        ``num_batches_tracked`` and ``single_value``.
    eps : added to the variance; > 0 whenever batch statistics are used, >= 0 otherwise.
    out : optional C-contiguous array of x's shape and dtype that receives y (reusing one
        saves the page faults of a fresh 50 MB array on every call); may not be x.
    """
    _validate.float_array(x, "x")
    _validate.ndim_in(x, "x", (2, 4), " ((N, C) or (N, C, H, W))")
    training = _validate.boolean(training, "training")
    convention = _validate.choice(convention, "convention", _CONVENTIONS)
    convention = "keras" if convention == "flax" else convention
    single_value = _validate.choice(single_value, "single_value", _SINGLE_VALUE)
    eps = _validate.non_negative(eps, "eps")
    channels = x.shape[1]
    if gamma is not None:
        _validate.channel_vector(gamma, "gamma", channels, x)
    if beta is not None:
        _validate.channel_vector(beta, "beta", channels, x)
    if (running_mean is None) != (running_var is None):
        missing = "running_var" if running_var is None else "running_mean"
        raise ValueError(f"running_mean and running_var go together; {missing} is None "
                         "(pass both buffers, or neither)")
    tracked = running_mean is not None
    if tracked:
        _validate.channel_vector(running_mean, "running_mean", channels, x)
        _validate.channel_vector(running_var, "running_var", channels, x)
    count = x.size // channels if channels else 0  # values per channel, M

    use_batch = training or not tracked
    if training and count == 1:
        if single_value == "raise":
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {x.shape} (x); use a larger batch, training=False, or "
                             "single_value='running' to normalise with the running statistics")
        if not tracked:
            raise ValueError("single_value='running' needs running_mean and running_var, but "
                             f"none were given for x of shape {x.shape}")
        use_batch = False
    update = training and use_batch and tracked and count >= 2
    if update:
        _validate.writable_array(running_mean, "running_mean")
        _validate.writable_array(running_var, "running_var")
        if momentum is None:
            if convention != "torch":
                raise ValueError("momentum=None (cumulative average) is the torch convention; "
                                 "with convention='keras' pass the decay, e.g. momentum=0.99")
            if num_batches_tracked is None:
                raise ValueError("momentum=None (cumulative average) needs num_batches_tracked, "
                                 "the number of batches already averaged into the buffers")
            n_tracked = num_batches_tracked
            if (isinstance(n_tracked, bool) or not isinstance(n_tracked, numbers.Integral)
                    or n_tracked < 0):
                raise ValueError(f"num_batches_tracked must be an int >= 0, got "
                                 f"{num_batches_tracked!r}")
            factor = 1.0 / (int(num_batches_tracked) + 1.0)
        else:
            momentum = _validate.fraction(momentum, "momentum")
            factor = momentum if convention == "torch" else 1.0 - momentum
    elif momentum is not None:
        momentum = _validate.fraction(momentum, "momentum")
    if use_batch and not eps > 0:
        raise ValueError(f"eps must be > 0 when batch statistics normalise (training, or no "
                         f"running buffers), got {eps!r}: a constant channel would divide by 0")

    dtype = x.dtype
    has_gamma, has_beta = gamma is not None, beta is not None
    g = _validate.contiguous(gamma) if has_gamma else np.ones(channels, dtype)
    b = _validate.contiguous(beta) if has_beta else np.zeros(channels, dtype)
    x3 = _as_nc_s(x)
    y3 = _output(out, x, x3.shape)
    invstd = np.empty(channels, np.float64)
    if use_batch:
        mean = np.zeros(channels, np.float64)
        var = np.zeros(channels, np.float64)
        if count == 0:  # an empty batch: empty output, buffers untouched (as PyTorch)
            invstd[:] = 1.0 / math.sqrt(eps)
        elif x3.size:
            fn, _ = backends.kernel("batchnorm", "batch_norm_forward_train", backend)
            fn(y3, mean, var, invstd, x3, g, b, eps)
        if update:
            update_running_stats(running_mean, running_var, mean, var, count, factor, convention)
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
        fn, _ = backends.kernel("batchnorm", "batch_norm_forward_eval", backend)
        if x3.size:
            fn(y3, invstd, x3, g, b, _validate.contiguous(mean), _validate.contiguous(var), eps)
        else:
            invstd[:] = 1.0 / np.sqrt(var + eps)
    saved = BatchNormSaved(mean, var, invstd, use_batch, eps, has_gamma, has_beta)
    return (y3.reshape(x.shape) if out is None else out), saved


def _output(out, x, shape3):
    """A fresh (N, C, S) output, or ``out`` (validated) viewed that way."""
    if out is None:
        return _alloc.empty(shape3, x.dtype)
    _validate.out_array(out, "out", x.shape, x.dtype)
    if np.shares_memory(out, x):
        raise ValueError("out must not overlap x (both passes read x after writing starts)")
    return out.reshape(shape3)


def _saved_statistic(a, argname, channels):
    """A (channels,) float array of ``saved`` as the C-contiguous float64 the kernels take."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        raise TypeError(f"{argname} must be a float numpy array (batch_norm makes it float64), "
                        f"got {type(a).__name__} {getattr(a, 'dtype', '')}")
    if a.shape != (channels,):
        raise ValueError(f"saved holds statistics for {a.size} channels in {argname} (shape "
                         f"{a.shape}) but x has {channels} channels; pass the saved object of "
                         "this x's forward")
    return np.ascontiguousarray(a, dtype=np.float64)


def batch_norm_backward(dy, x, gamma, saved, *, out=None, backend=None):
    """Gradient of :func:`batch_norm`: ``(dx, dgamma, dbeta)`` from ``dy`` and ``saved``.

    ``gamma`` is the array given to the forward (None if none was); dgamma / dbeta are None
    where the forward had no gamma / beta. With ``saved.batch_stats`` the gradient flows
    through the batch mean and variance (training); otherwise dx = dy * gamma * invstd.
    ``out`` (optional, C-contiguous, x's shape and dtype, not overlapping dy or x) receives dx.
    """
    _validate.float_array(x, "x")
    _validate.ndim_in(x, "x", (2, 4), " ((N, C) or (N, C, H, W))")
    _validate.float_array(dy, "dy")
    _validate.same_dtype(dy, "dy", x, "x")
    _validate.same_shape(dy, "dy", x, "x")
    if not isinstance(saved, BatchNormSaved):
        raise TypeError(f"saved must be the BatchNormSaved returned by batch_norm, got "
                        f"{type(saved).__name__}")
    channels = x.shape[1]
    mean = _saved_statistic(saved.mean, "saved.mean", channels)
    invstd = _saved_statistic(saved.invstd, "saved.invstd", channels)
    if gamma is None:
        if saved.has_gamma:
            raise ValueError("gamma is None but the forward had a gamma; pass the same gamma")
        g = np.ones(channels, x.dtype)
    else:
        _validate.channel_vector(gamma, "gamma", channels, x)
        if not saved.has_gamma:
            raise ValueError("gamma was given but the forward had none (gamma=None); pass None")
        g = _validate.contiguous(gamma)
    x3 = _as_nc_s(x)
    dy3 = _as_nc_s(dy)
    dx3 = _output(out, x, x3.shape)
    if out is not None and np.shares_memory(out, dy):
        raise ValueError("out must not overlap dy (both passes read dy after writing starts)")
    dgamma = np.zeros(channels, x.dtype)
    dbeta = np.zeros(channels, x.dtype)
    if x3.size:
        name = "batch_norm_backward_train" if saved.batch_stats else "batch_norm_backward_eval"
        fn, _ = backends.kernel("batchnorm", name, backend)
        fn(dx3, dgamma, dbeta, dy3, x3, g, mean, invstd)
    return (dx3.reshape(x.shape) if out is None else out, dgamma if saved.has_gamma else None,
            dbeta if saved.has_beta else None)
