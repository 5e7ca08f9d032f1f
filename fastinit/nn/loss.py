"""Losses: ``loss = crit(pred, target)`` returns a float and caches the gradient;
``crit.backward()`` returns d loss / d pred."""
import fastinit as fi


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class labels."""

    def __call__(self, logits, labels):
        loss, self._grad = fi.softmax_cross_entropy(logits, labels)
        return float(loss)

    def backward(self):
        return self._grad


class MSE:
    """Mean squared error."""

    def __call__(self, pred, target):
        loss, self._grad = fi.mse(pred, target)
        return float(loss)

    def backward(self):
        return self._grad
