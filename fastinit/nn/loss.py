"""Losses: ``loss = crit(pred, target)`` returns a float and caches the gradient;
``crit.backward()`` returns d loss / d pred."""
import fastinit as fi


class _Loss:
    _grad = None  # set by __call__

    def backward(self):
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() was called before the loss: "
                               "call crit(pred, target) first")
        return self._grad


class SoftmaxCrossEntropy(_Loss):
    """Mean cross-entropy of softmax(logits) against integer class labels."""

    def __call__(self, logits, labels):
        loss, self._grad = fi.softmax_cross_entropy(logits, labels)
        return float(loss)


class MSE(_Loss):
    """Mean squared error."""

    def __call__(self, pred, target):
        loss, self._grad = fi.mse(pred, target)
        return float(loss)
