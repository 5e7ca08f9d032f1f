"""Stochastic gradient descent with momentum, weight decay and optional gradient clipping."""
import numpy as np

import fastinit as fi
from .. import _validate
from .module import zero_grads


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

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``grad = None`` (PyTorch's default), or zeros."""
        zero_grads(self.params, set_to_none)

    def step(self):
        """One update of every parameter that has a gradient (those with ``grad`` None are
        skipped, as in PyTorch), by :func:`fastinit.sgd_step_`: one pass over memory."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:  # nothing to update; the norm of no gradients is 0 (as PyTorch's)
            return 0.0 if self.clip_norm is not None else None
        grads = [self.params[i].grad for i in live]
        total = None
        if self.clip_value is not None:
            fi.clip_grad_value_(grads, self.clip_value)
        if self.clip_norm is not None:
            total = float(fi.clip_grad_norm_(grads, self.clip_norm))
        velocity = None if self._velocity is None else [self._velocity[i] for i in live]
        fi.sgd_step_([self.params[i].data for i in live], grads, self.lr, velocity,
                     self.momentum, self.weight_decay)
        return total
