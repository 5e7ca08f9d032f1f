"""Losses that return their gradient with the value: softmax cross-entropy and mean squared error.

``loss, dlogits = softmax_cross_entropy(logits, labels)``: logits (N, K) float, labels (N,)
integer class indices in [0, K); loss = mean over the batch of -log softmax(logits)[label],
computed stably (each row's maximum is subtracted before exp; log-sum-exp in float64), and
dlogits = (softmax(logits) - onehot(labels)) / N, the gradient of that mean.

``loss, dpred = mse(pred, target)``: loss = mean((pred - target)**2) over all elements,
dpred = 2 (pred - target) / pred.size.

The loss is a Python float accumulated in float64; the gradient has the input's dtype.
Reductions are the mean (PyTorch's default); there are no class weights or ignore_index.
No ``out=``: the gradient comes from the reused-output cache (fastinit/_alloc.py), which saves
the page faults of a fresh array as ``out=`` would.
"""
import numpy as np

from .. import _alloc, _validate, backends

__all__ = ["softmax_cross_entropy", "mse"]


def softmax_cross_entropy(logits, labels, *, backend=None):
    """Mean softmax cross-entropy of ``logits`` (N, K) against integer ``labels`` (N,)."""
    _validate.float_array(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    n, k = logits.shape
    if n == 0 or k == 0:
        raise ValueError(f"logits must have at least one row and one class, got shape "
                         f"{logits.shape}")
    _validate.integer_array(labels, "labels")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) (one class index per row of logits), "
                         f"got {labels.shape}")
    lab = _validate.contiguous(np.ascontiguousarray(labels, dtype=np.int64))
    if int(lab.view(np.uint64).max()) >= k:  # one pass: a negative label is huge as uint64
        lo, hi = int(labels.min()), int(labels.max())  # the caller's values, not the int64 cast
        bad = lo if lo < 0 else hi
        raise ValueError(f"labels must be class indices in [0, {k}) (K = logits.shape[1]), "
                         f"found {bad}")
    z = _validate.contiguous(logits)
    dlogits = _alloc.empty((n, k), logits.dtype)
    fn, _ = backends.kernel("loss", "softmax_cross_entropy", backend)
    loss = fn(dlogits, z, lab)
    return float(loss), dlogits


def mse(pred, target, *, backend=None):
    """Mean squared error of ``pred`` against ``target`` (same shape and dtype)."""
    _validate.float_array(pred, "pred")
    _validate.float_array(target, "target")
    _validate.same_dtype(target, "target", pred, "pred")
    _validate.same_shape(target, "target", pred, "pred")
    if pred.size == 0:
        raise ValueError("pred is empty: the mean squared error of no values is undefined")
    p = _validate.contiguous(pred).reshape(-1)
    t = _validate.contiguous(target).reshape(-1)
    dpred = _alloc.empty(pred.shape, pred.dtype)
    fn, _ = backends.kernel("loss", "mse", backend)
    loss = fn(dpred.reshape(-1), p, t)
    return float(loss), dpred
