"""Stochastic gradient descent with momentum, weight decay and optional gradient clipping."""
import numpy as np

import fastinit as fi
from .. import _validate


class SGD:
    """v = momentum * v + (g + weight_decay * w);  w -= lr * v   (PyTorch's SGD rule).

    ``clip_norm`` clips all gradients together to that global L2 norm before the step
    (``fastinit.clip_grad_norm_``); ``clip_value`` clamps each element. ``step()`` returns the
    gradient norm before clipping when ``clip_norm`` is set (else None).
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: pass net.parameters() of a network with weights")
        self.lr = _validate.positive(lr, "lr")
        self.momentum = _validate.non_negative(momentum, "momentum")
        self.weight_decay = _validate.non_negative(weight_decay, "weight_decay")
        self.clip_norm = None if clip_norm is None else _validate.positive(clip_norm, "clip_norm")
        self.clip_value = (None if clip_value is None
                           else _validate.positive(clip_value, "clip_value"))
        self._velocity = [np.zeros_like(p.data) for p in self.params] if self.momentum else None

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        grads = [p.grad for p in self.params]
        total = None
        if self.clip_value is not None:
            fi.clip_grad_value_(grads, self.clip_value)
        if self.clip_norm is not None:
            total = float(fi.clip_grad_norm_(grads, self.clip_norm))
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self._velocity is not None:
                v = self._velocity[i]
                v *= self.momentum
                v += g
                g = v
            p.data -= self.lr * g
        return total
