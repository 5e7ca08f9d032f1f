"""NumPy reference of the losses: each returns the loss and writes its gradient.

``softmax_cross_entropy(dlogits, logits, labels) -> loss``: logits (N, K), labels (N,) int64 in
[0, K); loss = mean_n (logsumexp(logits[n]) - logits[n, labels[n]]), computed stably (the row
maximum is subtracted first); dlogits = (softmax(logits) - onehot(labels)) / N.

``mse(dpred, pred, target) -> loss``: loss = mean((pred - target)**2) over every element;
dpred = 2 (pred - target) / numel.

Computed in float64, rounded once.
"""
import numpy as np


def softmax_cross_entropy(dlogits, logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    loss = np.log(s[:, 0]) - z[rows, labels]
    p = e / s
    p[rows, labels] -= 1.0
    dlogits[...] = p / z.shape[0]
    return float(loss.mean())


def mse(dpred, pred, target):
    d = pred.astype(np.float64) - target.astype(np.float64)
    dpred[...] = d * (2.0 / d.size)
    return float(np.mean(d * d))
