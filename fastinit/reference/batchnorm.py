"""NumPy reference of batch normalisation: the oracle the Numba and C kernels are checked against.

Every kernel sees ``x`` as a C-contiguous (N, C, S) array: (N, C) input is (N, C, 1), NCHW input
is (N, C, H*W). Statistics are float64 (``mean``, ``var``, ``invstd``: (C,) float64 arrays);
data, ``gamma``, ``beta`` and the outputs share the input's dtype. The wrappers in
:mod:`fastinit.ops.batchnorm` pass ones for a missing ``gamma`` and zeros for a missing ``beta``.

Here everything is computed in float64 and rounded once at the end: the reference is the most
accurate of the three backends, not the fastest.
"""
import numpy as np


def batch_norm_forward_train(y, mean, var, invstd, x, gamma, beta, eps):
    """Training forward with batch statistics.

    x, y: (N, C, S); gamma, beta: (C,); writes y, and mean, var (biased), invstd = 1/sqrt(var+eps)
    (all (C,) float64).
    """
    x64 = x.astype(np.float64)
    m = x64.mean(axis=(0, 2))
    v = np.square(x64 - m[None, :, None]).mean(axis=(0, 2))
    mean[:] = m
    var[:] = v
    invstd[:] = 1.0 / np.sqrt(v + eps)
    xhat = (x64 - m[None, :, None]) * invstd[None, :, None]
    y[...] = xhat * gamma.astype(np.float64)[None, :, None] + beta.astype(np.float64)[None, :, None]


def batch_norm_forward_eval(y, invstd, x, gamma, beta, mean, var, eps):
    """Forward with given statistics (inference with running buffers).

    x, y: (N, C, S); gamma, beta: (C,) data dtype; mean, var: (C,) float64; writes y and
    invstd = 1/sqrt(var + eps) ((C,) float64).
    """
    invstd[:] = 1.0 / np.sqrt(var + eps)
    xhat = (x.astype(np.float64) - mean[None, :, None]) * invstd[None, :, None]
    y[...] = xhat * gamma.astype(np.float64)[None, :, None] + beta.astype(np.float64)[None, :, None]


def batch_norm_backward_train(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    """Backward when the forward normalised with batch statistics (the fused closed form).

    With M = N*S values per channel, xhat = (x - mean) * invstd:
      dbeta  = sum(dy)
      dgamma = sum(dy * xhat)
      dx     = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
    dx, dy, x: (N, C, S); dgamma, dbeta: (C,) data dtype; gamma: (C,); mean, invstd: (C,) float64.
    """
    m_count = x.shape[0] * x.shape[2]
    dy64 = dy.astype(np.float64)
    xhat = (x.astype(np.float64) - mean[None, :, None]) * invstd[None, :, None]
    db = dy64.sum(axis=(0, 2))
    dg = (dy64 * xhat).sum(axis=(0, 2))
    k = (gamma.astype(np.float64) * invstd)[None, :, None]
    dx[...] = k * (dy64 - db[None, :, None] / m_count - xhat * dg[None, :, None] / m_count)
    dgamma[:] = dg
    dbeta[:] = db


def batch_norm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    """Backward when the forward normalised with fixed (running) statistics.

    The statistics do not depend on x, so dx = dy * gamma * invstd; dgamma = sum(dy * xhat),
    dbeta = sum(dy). Same arguments as :func:`batch_norm_backward_train`.
    """
    dy64 = dy.astype(np.float64)
    xhat = (x.astype(np.float64) - mean[None, :, None]) * invstd[None, :, None]
    dx[...] = dy64 * (gamma.astype(np.float64) * invstd)[None, :, None]
    dgamma[:] = (dy64 * xhat).sum(axis=(0, 2))
    dbeta[:] = dy64.sum(axis=(0, 2))


def update_running_stats(running_mean, running_var, mean, var, count, factor, convention):
    """Fold batch statistics into the running buffers, in place (O(C); always NumPy).

    ``factor`` weights the new batch: running = (1 - factor) * running + factor * batch.
    convention "torch": the running variance receives the unbiased estimate var * M / (M - 1)
    (M = count values per channel, M >= 2); "keras": the biased var as is.
    """
    new_var = var * (count / (count - 1.0)) if convention == "torch" else var
    rm = running_mean.astype(np.float64)
    rv = running_var.astype(np.float64)
    running_mean[...] = (1.0 - factor) * rm + factor * mean
    running_var[...] = (1.0 - factor) * rv + factor * new_var
