"""NumPy reference of the activations, forward and backward: the oracle of the fast kernels.

Kernels take flat C-contiguous arrays: forward ``f(y, x, ...)`` writes y = f(x); backward
``f_backward(dx, dy, x, ...)`` writes dx = dy * f'(x). Everything is evaluated in float64 with
the exact elementary functions and rounded once, so this is the accurate side of every test.
The formulas, and their values at the kinks, follow PyTorch:

  relu        y = max(x, 0) (NaN stays NaN)      dy where x > 0, else 0
  leaky_relu  y = x if x > 0 else slope * x      dy where x > 0, else slope * dy
  elu         y = x if x > 0 else alpha*expm1(x) dy where x > 0, else dy * alpha * exp(x)
  tanh        y = tanh(x)                        dy * (1 - y**2)
  sigmoid     y = 1 / (1 + exp(-x))              dy * y * (1 - y)
  gelu        y = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;  dy * (Phi(x) + x * phi(x))
  gelu(tanh)  y = x/2 * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x**3)  (Hendrycks &
              Gimpel 2016); dy * (1/2 (1 + t) + x/2 (1 - t**2) sqrt(2/pi) (1 + 3*0.044715 x**2))
  identity    y = x                              dy

NaN in, NaN out for the smooth ones (forward and backward); relu and leaky_relu treat a NaN as
PyTorch does (relu' and leaky_relu' of NaN: dy and slope * dy). At +-inf every function takes its
limit: gelu(-inf) = 0 and gelu'(+-inf) = 1 or 0 (PyTorch returns NaN there: inf * 0).
"""
import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_C = 0.044715
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _ncdf(x64):
    """Phi(x) = erfc(-x / sqrt 2) / 2: accurate in the left tail, where 1 + erf(x / sqrt 2)
    cancels (at x = -10 it gives 0, not 7.6e-24)."""
    return 0.5 * _erfc(-x64 / math.sqrt(2.0))


def _f64(a):
    return a.astype(np.float64)


def relu(y, x):
    y[...] = np.where(x < 0, 0.0, _f64(x))


def relu_backward(dx, dy, x):
    dx[...] = np.where(x <= 0, 0.0, _f64(dy))


def leaky_relu(y, x, negative_slope):
    x64 = _f64(x)
    y[...] = np.where(x > 0, x64, x64 * negative_slope)


def leaky_relu_backward(dx, dy, x, negative_slope):
    dy64 = _f64(dy)
    dx[...] = np.where(x > 0, dy64, dy64 * negative_slope)


def elu(y, x, alpha):
    x64 = _f64(x)
    y[...] = np.where(x > 0, x64, alpha * np.expm1(np.minimum(x64, 0.0)))


def elu_backward(dx, dy, x, alpha):
    x64 = _f64(x)
    dy64 = _f64(dy)
    dx[...] = np.where(x > 0, dy64, dy64 * alpha * np.exp(np.minimum(x64, 0.0)))


def tanh(y, x):
    y[...] = np.tanh(_f64(x))


def tanh_backward(dx, dy, x):
    x64 = _f64(x)
    e = np.exp(-2.0 * np.abs(x64))
    dx[...] = _f64(dy) * (4.0 * e / np.square(1.0 + e))   # = 1 - tanh(x)**2, no cancellation


def _sigmoid64(x64):
    e = np.exp(-np.abs(x64))                 # in (0, 1]: never overflows
    return np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid(y, x):
    y[...] = _sigmoid64(_f64(x))


def sigmoid_backward(dx, dy, x):
    e = np.exp(-np.abs(_f64(x)))
    dx[...] = _f64(dy) * e / np.square(1.0 + e)   # = s * (1 - s), without cancellation


def gelu(y, x, approximate):
    x64 = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):  # -inf * 0 at x = -inf: the limit below
        if approximate:
            g = 0.5 * x64 * (1.0 + np.tanh(SQRT_2_OVER_PI * (x64 + GELU_C * x64 ** 3)))
        else:
            g = x64 * _ncdf(x64)
    y[...] = np.where(x64 == -np.inf, 0.0, g)


def gelu_backward(dx, dy, x, approximate):
    x64 = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 at x = +-inf: the limits below
        if approximate:
            u = SQRT_2_OVER_PI * (x64 + GELU_C * x64 ** 3)
            e = np.exp(-2.0 * np.abs(u))
            sech2 = 4.0 * e / np.square(1.0 + e)        # = 1 - tanh(u)**2, without cancellation
            d = 0.5 * (1.0 + np.tanh(u)) + 0.5 * x64 * sech2 * SQRT_2_OVER_PI * (
                1.0 + 3.0 * GELU_C * x64 * x64)
        else:
            cdf = _ncdf(x64)
            d = cdf + x64 * INV_SQRT_2PI * np.exp(-0.5 * x64 * x64)
        if approximate:  # x**3 overflowed (|x| > 5.6e102) or x = +-inf: u = +-inf, 0 * inf
            d = np.where(np.isinf(u), (x64 > 0).astype(np.float64), d)
    d = np.where(np.isinf(x64), (x64 > 0).astype(np.float64), d)
    dx[...] = _f64(dy) * d


def identity(y, x):
    y[...] = x


def identity_backward(dx, dy, x):
    dx[...] = dy
