"""Losses: ``loss = crit(pred, target)`` returns a float and caches the gradient;
``crit.backward()`` returns d loss / d pred."""
import fastinit as fi


def _cached(crit):
    if crit._grad is None:
        raise RuntimeError(f"{type(crit).__name__}.backward() was called before the loss: call "
                           "crit(pred, target) first")
    return crit._grad


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class labels."""
    _grad = None

    def __call__(self, logits, labels):
        loss, self._grad = fi.softmax_cross_entropy(logits, labels)
        return float(loss)

    def backward(self):
        return _cached(self)


class MSE:
    """Mean squared error."""
    _grad = None

    def __call__(self, pred, target):
        loss, self._grad = fi.mse(pred, target)
        return float(loss)

    def backward(self):
        return _cached(self)
