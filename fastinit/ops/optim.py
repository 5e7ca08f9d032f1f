"""The SGD update, in place over a list of parameters (what ``fastinit.nn.SGD`` runs).

``sgd_step_(params, grads, lr, velocities=None, momentum=0.0, weight_decay=0.0)`` does, for
every array i and element j, PyTorch's SGD rule (dampening 0, no Nesterov)::

    d = g + weight_decay * p        (only when weight_decay != 0)
    v = momentum * v + d            (only when momentum != 0; v is velocities[i])
    p = p - lr * v                  (or p - lr * d without momentum)

in the arrays' own dtype, one rounding per operation and no fused multiply-add, so every
backend gives bit-identical results (and PyTorch's float32 arithmetic to an ulp). One pass
over memory instead of NumPy's four with temporaries; the whole list in one kernel call.
"""
import numpy as np

from .. import _validate, backends

__all__ = ["sgd_step_"]


def _arrays(items, argname, like=None):
    if isinstance(items, np.ndarray):
        items = [items]
    try:
        arrays = list(items)
    except TypeError:
        raise TypeError(f"{argname} must be a list of numpy arrays, got "
                        f"{type(items).__name__}") from None
    if like is not None and len(arrays) != len(like):
        raise ValueError(f"{argname} has {len(arrays)} arrays but params has {len(like)}; pass "
                         "one per parameter")
    for i, a in enumerate(arrays):
        name = f"{argname}[{i}]"
        _validate.float_array(a, name)
        if like is None:
            if a.dtype != arrays[0].dtype:
                raise TypeError(f"{name} has dtype {a.dtype} but {argname}[0] has "
                                f"{arrays[0].dtype}; all arrays must share one dtype")
        else:
            _validate.same_dtype(a, name, like[i], f"params[{i}]")
            _validate.same_shape(a, name, like[i], f"params[{i}]")
    return arrays


def _flat(a, argname, writable):
    if writable:
        _validate.writable_array(a, argname)
        if not a.flags.c_contiguous:
            raise ValueError(f"{argname} must be C-contiguous (it is updated in place)")
        return a.reshape(-1)
    return _validate.contiguous(a).reshape(-1)


def sgd_step_(params, grads, lr, velocities=None, momentum=0.0, weight_decay=0.0, *,
              backend=None):
    """Update ``params`` (and ``velocities``) in place; see the module docstring.

    params, grads, velocities : lists of float32/float64 arrays, one dtype, shapes pairwise
        equal; params and velocities must be C-contiguous and writable. ``velocities`` is
        required when momentum != 0 and ignored otherwise.
    lr > 0; momentum and weight_decay >= 0.
    """
    lr = _validate.positive(lr, "lr")
    momentum = _validate.non_negative(momentum, "momentum")
    weight_decay = _validate.non_negative(weight_decay, "weight_decay")
    params = _arrays(params, "params")
    grads = _arrays(grads, "grads", params)
    if momentum:
        if velocities is None:
            raise ValueError("momentum != 0 needs velocities (one zero-initialised array per "
                             "parameter, kept between steps)")
        velocities = _arrays(velocities, "velocities", params)
        vflat = [_flat(v, f"velocities[{i}]", True) for i, v in enumerate(velocities)]
    else:
        vflat = None
    pflat = [_flat(p, f"params[{i}]", True) for i, p in enumerate(params)]
    gflat = [_flat(g, f"grads[{i}]", False) for i, g in enumerate(grads)]
    for i, p in enumerate(pflat):
        if np.shares_memory(p, gflat[i]) or (vflat is not None and (
                np.shares_memory(p, vflat[i]) or np.shares_memory(vflat[i], gflat[i]))):
            raise ValueError(f"params[{i}], grads[{i}] and velocities[{i}] must not share memory")
    if pflat:
        fn, _ = backends.kernel("optim", "sgd_step", backend)
        fn(pflat, gflat, vflat, lr, momentum, weight_decay)
    return params
