"""Parameters, the Module base class and Sequential.

A module's ``forward(x)`` computes and caches what its ``backward(dy)`` needs; ``backward``
returns dx and *adds* the parameter gradients into ``param.grad`` (call ``zero_grad()`` between
steps, as in PyTorch). As in PyTorch, ``zero_grad()`` sets every ``grad`` to None by default and
the next backward then stores its gradient array as ``grad`` (no zero fill, no addition);
``zero_grad(set_to_none=False)`` fills zeros instead. There is no autograd engine: every backward is explicit and calls the
public ops of fastinit, so a learner can read what each layer does.
"""
import numpy as np

from ..rng import as_stream


class Parameter:
    """A trainable array and its gradient (``grad`` has the same shape and dtype; zeros until
    a ``zero_grad()``, None after one until a backward stores the gradient)."""

    __slots__ = ("data", "grad", "name")

    def __init__(self, data, name=""):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name

    def accumulate(self, g):
        """Add gradient ``g`` (a fresh array the caller gives away) into ``grad``; when
        ``grad`` is None, ``g`` becomes it."""
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


def zero_grads(params, set_to_none=True):
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is None:
            p.grad = np.zeros_like(p.data)
        else:
            p.grad[...] = 0


#: Attributes a layer's forward stores for its backward.
_FORWARD_CACHE = frozenset({"_x", "_shape", "_saved"})


class Module:
    """Base class: parameters, train/eval mode, probes, and the call protocol."""

    def __init__(self):
        self.training = True
        self.need_input_grad = True   # False: backward may skip dx (nothing below wants it)
        self._probe = None   # a nn.Probe when attached; checked once per call (free when off)
        self._name = type(self).__name__

    # -- structure ----------------------------------------------------------------------------
    def children(self):
        return [v for v in vars(self).values() if isinstance(v, Module)]

    def modules(self):
        """This module and every module below it, depth first, in definition order."""
        out = [self]
        for c in self.children():
            out.extend(c.modules())
        return out

    def own_parameters(self):
        return [v for v in vars(self).values() if isinstance(v, Parameter)]

    def parameters(self):
        return [p for m in self.modules() for p in m.own_parameters()]

    def named_parameters(self):
        return [(f"{m._name}.{p.name}", p) for m in self.modules() for p in m.own_parameters()]

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``grad = None`` (PyTorch's default), or zeros."""
        zero_grads(self.parameters(), set_to_none)

    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def initialize(self, seed=None, rng=None):
        """(Re)initialize every parametrised layer below, each from its own child stream of
        ``Stream(seed)`` (or of ``rng``), in definition order: one seed, one network."""
        stream = as_stream(seed, rng)
        for m in self.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters(stream.spawn(1)[0])
        return self

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, x):
        y = self.forward(x)
        if self._probe is not None:
            self._probe._forward(self, x, y)
        return y

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, dy):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define backward(dy)")

    def __getattr__(self, name):
        # only for attributes not found the normal way: what forward caches for backward
        if name in _FORWARD_CACHE:
            raise RuntimeError(f"{type(self).__name__}.backward() was called before forward(): "
                               "call the module on an input (module(x)) first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _backward_probed(self, dy):
        dx = self.backward(dy)
        if self._probe is not None:
            self._probe._backward(self, dy, dx)
        return dx

    def extra_repr(self):
        return ""

    def __repr__(self):
        kids = self.children()
        if not kids:
            return f"{self._name}({self.extra_repr()})"
        inner = "\n".join("  " + repr(k).replace("\n", "\n  ") for k in kids)
        return f"{self._name}(\n{inner}\n)"


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    ``Sequential(*layers, seed=0)`` initializes every layer that has parameters from one seed.
    ``input_grad=False`` lets the first layer skip the gradient with respect to the network's
    input (``backward`` then returns None), as PyTorch does for inputs that do not require grad.
    """

    def __init__(self, *layers, seed=None, rng=None, input_grad=True):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layer {i} must be a fastinit.nn.Module, got "
                                f"{type(layer).__name__}")
            setattr(self, f"layer{i}", layer)
            layer._name = f"{i}:{type(layer).__name__}"
        self.layers = list(layers)
        if self.layers and not input_grad:
            self.layers[0].need_input_grad = False
        if seed is not None or rng is not None:
            self.initialize(seed=seed, rng=rng)

    def children(self):
        return list(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer._backward_probed(dy)
            if dy is None:  # the first layer skipped the input gradient
                break
        return dy
