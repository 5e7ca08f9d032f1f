"""Probes: per-layer statistics of a network, recorded step by step.

``probe = Probe(net)`` attaches to every layer of ``net``; each forward records the layer
output's mean, std, the fraction of saturated units (tanh |y| > 0.97, sigmoid y < 0.03 or
> 0.97) or dead units (ReLU: zero for every sample of the batch) and a histogram; each backward
records the std of the gradient flowing out of the layer (d loss / d input) and of its weight
gradient. ``probe.detach()`` removes it. A network without a probe pays one ``is None`` check
per layer call.
"""
import numpy as np

from .layers import LeakyReLU, ReLU, Sigmoid, Tanh


class Probe:
    def __init__(self, net, bins=np.linspace(-3.0, 3.0, 61), histograms=True,
                 grad_bins=np.linspace(-3.0, 3.0, 61)):
        self.net = net
        self.bins = np.asarray(bins, np.float64)             # activation histograms
        self.grad_bins = np.asarray(grad_bins, np.float64)   # gradients, in units of their std
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

    def _forward(self, module, x, y):
        y64 = np.asarray(y, np.float64)
        rec = dict(step=self.step, layer=module._name, phase="forward",
                   mean=float(y64.mean()) if y64.size else 0.0,
                   std=float(y64.std()) if y64.size else 0.0)
        if isinstance(module, Tanh):
            rec["saturated"] = float(np.mean(np.abs(y64) > 0.97))
        elif isinstance(module, Sigmoid):
            rec["saturated"] = float(np.mean((y64 < 0.03) | (y64 > 0.97)))
        elif isinstance(module, (ReLU, LeakyReLU)) and y64.ndim >= 2:
            per_unit = (y64 <= 0).all(axis=0)
            rec["dead"] = float(per_unit.mean())
        if self.histograms:
            rec["hist"] = np.histogram(np.clip(y64, self.bins[0], self.bins[-1]), self.bins)[0]
        self.records.append(rec)

    def _backward(self, module, dy, dx):
        d64 = np.asarray(dx, np.float64)
        rec = dict(step=self.step, layer=module._name, phase="backward",
                   grad_std=float(d64.std()) if d64.size else 0.0)
        w = getattr(module, "weight", None)
        if w is not None and w.grad is not None:
            rec["weight_grad_std"] = float(np.asarray(w.grad, np.float64).std())
        if self.histograms:
            scale = max(rec["grad_std"], 1e-30)
            rec["hist"] = np.histogram(np.clip(d64 / scale, self.grad_bins[0],
                                               self.grad_bins[-1]), self.grad_bins)[0]
        self.records.append(rec)

    def table(self, phase="forward", step=None, key="std"):
        """[(layer, value)] of one statistic at one step (default: the last recorded)."""
        recs = [r for r in self.records if r["phase"] == phase]
        if not recs:
            return []
        step = recs[-1]["step"] if step is None else step
        return [(r["layer"], r.get(key)) for r in recs if r["step"] == step]
