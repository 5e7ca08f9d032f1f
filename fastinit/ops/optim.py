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


def _as_list(items, argname):
    if isinstance(items, np.ndarray):
        return [items]
    try:
        return list(items)
    except TypeError:
        raise TypeError(f"{argname} must be a list of numpy arrays, got "
                        f"{type(items).__name__}") from None


def _check(arrays, argname, params, writable):
    """Every array a float array of params' dtype and shapes; writable and C-contiguous when
    updated in place. Raises naming the first bad one."""
    if len(arrays) != len(params):
        raise ValueError(f"{argname} has {len(arrays)} arrays but params has {len(params)}; "
                         "pass one per parameter")
    for i, a in enumerate(arrays):
        name = f"{argname}[{i}]"
        _validate.float_array(a, name)
        if argname == "params":
            if a.dtype != params[0].dtype:
                raise TypeError(f"{name} has dtype {a.dtype} but params[0] has "
                                f"{params[0].dtype}; all arrays must share one dtype")
        else:
            _validate.same_dtype(a, name, params[i], f"params[{i}]")
            _validate.same_shape(a, name, params[i], f"params[{i}]")
        if writable:
            _validate.writable_array(a, name)
            if not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
            if not a.flags.aligned:
                raise ValueError(f"{name} must be aligned (its data at a multiple of its "
                                 "itemsize; it is updated in place)")


def _check_disjoint(params, grads, velocities):
    """No array written (a parameter or a velocity) shares memory with any other array of the
    call, at any index (the kernels update them in parallel, in any order)."""
    written = [(f"params[{i}]", p) for i, p in enumerate(params)]
    written += [(f"velocities[{i}]", v) for i, v in enumerate(velocities)]
    others = written + [(f"grads[{i}]", g) for i, g in enumerate(grads)]
    for j, (name, a) in enumerate(written):
        for name2, b in others[j + 1:]:
            if not _validate.disjoint(a, b):
                raise ValueError(f"{name} and {name2} share memory; every parameter and velocity "
                                 "must be an array of its own (gradients may share with each "
                                 "other)")


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
    params = _as_list(params, "params")
    grads = _as_list(grads, "grads")
    use_v = bool(momentum)
    if use_v:
        if velocities is None:
            raise ValueError("momentum != 0 needs velocities (one zero-initialised array per "
                             "parameter, kept between steps)")
        velocities = _as_list(velocities, "velocities")
    n = len(params)
    dtype = params[0].dtype if n and type(params[0]) is np.ndarray else None
    fine = dtype in _validate.FLOAT_DTYPES and len(grads) == n and (
        not use_v or len(velocities) == n)
    if fine:  # the cheap test of everything _check checks, and of overlaps (_check_disjoint)
        nd = np.ndarray
        for p, g, v in zip(params, grads, velocities if use_v else params):
            if not (type(p) is nd and type(g) is nd and type(v) is nd and p.dtype is dtype
                    and g.dtype is dtype and v.dtype is dtype and p.base is None
                    and g.base is None and v.base is None and g.shape == p.shape
                    and v.shape == p.shape and g.flags.c_contiguous):
                fine = False
                break
            f = p.flags
            if not (f.c_contiguous and f.writeable):
                fine = False
                break
            if use_v:
                f = v.flags
                if not (f.c_contiguous and f.writeable):
                    fine = False
                    break
        if fine:  # arrays that own their data share memory only by being the same object
            written = {id(a) for a in params}
            if use_v:
                written.update(id(v) for v in velocities)
            fine = (len(written) == n * (1 + use_v)
                    and not any(id(g) in written for g in grads))
    if not fine:
        _check(params, "params", params, True)
        _check(grads, "grads", params, False)
        if use_v:
            _check(velocities, "velocities", params, True)
        _check_disjoint(params, grads, velocities if use_v else [])
        grads = [_validate.contiguous(g) for g in grads]
    if n:
        fn, _ = backends.kernel("optim", "sgd_step", backend)
        fn(params, grads, velocities if use_v else None, lr, momentum, weight_decay)
    return params
