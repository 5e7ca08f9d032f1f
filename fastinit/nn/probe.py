"""Probes: per-layer statistics of a network, recorded pass by pass.

A network without a probe pays one ``is None`` check per layer call.
"""
import numpy as np

from .layers import LeakyReLU, ReLU, Sigmoid, Tanh

#: Default histogram edges: activations, and gradients in units of their own std.
DEFAULT_BINS = (-3.0, 3.0, 61)


class Table(list):
    """Rows of ``(layer, value)`` that print as an aligned two-column table."""

    def __init__(self, rows, key="value"):
        super().__init__(rows)
        self.key = key

    def __str__(self):
        if not self:
            return "(no records)"
        width = max(len(str(layer)) for layer, _ in self)
        lines = [f"{'layer':{width}s}  {self.key}"]
        for layer, value in self:
            v = "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else value)
            lines.append(f"{str(layer):{width}s}  {v}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython and Jupyter show the table
        p.text(str(self))


class Probe:
    """Per-layer statistics of ``net``, recorded on every forward and backward pass.

    ``probe = Probe(net)`` attaches to every layer of ``net`` (``probe.detach()`` removes it).
    Each forward pass of a layer appends a record (a dict) to ``probe.records`` with:

    * ``step``, ``layer`` (``"index:Name"``), ``phase`` = ``"forward"``;
    * ``mean`` and ``std`` of the layer's output;
    * ``saturated`` (Tanh: fraction of outputs with |y| > 0.97; Sigmoid: y < 0.03 or > 0.97) or
      ``dead`` (ReLU, LeakyReLU: fraction of units that are <= 0 for every sample of the batch)
      and, for ReLU, ``zeros`` (fraction of outputs that are exactly 0);
    * ``hist``: counts of the output over ``probe.bins`` (for ReLU: of the positive outputs only,
      the zeros are in ``zeros``), with ``below`` and ``above`` the fractions of the counted
      values that fall outside the bins - they are not piled into the edge bins.

    Each backward pass appends ``phase`` = ``"backward"``, ``grad_std`` (std of the gradient
    flowing out of the layer, d loss / d input), ``weight_grad_std`` for layers with weights, and
    ``hist``/``below``/``above`` of the gradient in units of its own std over
    ``probe.grad_bins``.

    ``probe.next_step()`` advances ``step`` (call it once per training step to tell steps
    apart); :meth:`table` prints one statistic per layer.

    Parameters: ``bins`` and ``grad_bins`` are histogram edges (default: 61 edges over
    [-3, 3]); ``histograms=False`` records no histograms (cheaper).
    """

    def __init__(self, net, bins=None, histograms=True, grad_bins=None):
        self.net = net
        self.bins = np.linspace(*DEFAULT_BINS) if bins is None else np.asarray(bins, np.float64)
        self.grad_bins = (np.linspace(*DEFAULT_BINS) if grad_bins is None
                          else np.asarray(grad_bins, np.float64))
        for name, b in (("bins", self.bins), ("grad_bins", self.grad_bins)):
            if b.ndim != 1 or b.size < 2 or not np.all(np.diff(b) > 0):
                raise ValueError(f"{name} must be increasing histogram edges (at least 2)")
        self.histograms = histograms
        self.records = []         # one dict per (step, layer, phase)
        self.step = 0
        self.layers = [m for m in net.modules() if m is not net] or [net]
        for m in self.layers:
            m._probe = self

    def detach(self):
        for m in self.layers:
            m._probe = None

    def next_step(self):
        self.step += 1

    @staticmethod
    def _hist(values, bins, rec):
        """Counts of ``values`` inside ``bins``; the fractions outside go to below/above."""
        n = max(values.size, 1)
        rec["hist"] = np.histogram(values, bins)[0]
        rec["below"] = float(np.count_nonzero(values < bins[0])) / n
        rec["above"] = float(np.count_nonzero(values > bins[-1])) / n

    def _forward(self, module, x, y):
        y64 = np.asarray(y, np.float64)
        rec = dict(step=self.step, layer=module._name, phase="forward",
                   mean=float(y64.mean()) if y64.size else 0.0,
                   std=float(y64.std()) if y64.size else 0.0)
        counted = y64
        if isinstance(module, Tanh):
            rec["saturated"] = float(np.mean(np.abs(y64) > 0.97))
        elif isinstance(module, Sigmoid):
            rec["saturated"] = float(np.mean((y64 < 0.03) | (y64 > 0.97)))
        elif isinstance(module, (ReLU, LeakyReLU)) and y64.ndim >= 2:
            per_unit = (y64 <= 0).all(axis=0)
            rec["dead"] = float(per_unit.mean())
            if isinstance(module, ReLU):
                positive = y64 > 0
                rec["zeros"] = 1.0 - float(positive.mean()) if y64.size else 0.0
                counted = y64[positive]
        if self.histograms:
            self._hist(counted, self.bins, rec)
        self.records.append(rec)

    def _backward(self, module, dy, dx):
        d64 = np.asarray(dx, np.float64)
        rec = dict(step=self.step, layer=module._name, phase="backward",
                   grad_std=float(d64.std()) if d64.size else 0.0)
        w = getattr(module, "weight", None)
        if w is not None and w.grad is not None:
            rec["weight_grad_std"] = float(np.asarray(w.grad, np.float64).std())
        if self.histograms:
            self._hist(d64 / max(rec["grad_std"], 1e-30), self.grad_bins, rec)
        self.records.append(rec)

    def table(self, phase="forward", step=None, key=None):
        """One statistic per layer as a printable :class:`Table` of (layer, value) rows.

        ``key``: the statistic (default: ``"std"`` forward, ``"grad_std"`` backward).
        ``step``: which step's records (default: the latest record of each layer, i.e. the
        last pass, whether or not :meth:`next_step` was ever called)."""
        if phase not in ("forward", "backward"):
            raise ValueError(f"phase must be 'forward' or 'backward', got {phase!r}")
        key = key or ("std" if phase == "forward" else "grad_std")
        recs = [r for r in self.records if r["phase"] == phase]
        if step is not None:
            recs = [r for r in recs if r["step"] == step]
        latest = {}
        for r in recs:              # later records of a layer replace earlier ones
            latest[r["layer"]] = r
        order = [m._name for m in self.layers]
        rows = [(name, latest[name].get(key)) for name in order if name in latest]
        return Table(rows, key)
