"""Dense ops: matrix product and the linear layer, forward and backward.

``c = matmul(a, b)``                      a (M, K) @ b (K, N); 3-D operands are batched (a
                                          2-D operand, or a batch of 1, is shared by every
                                          batch, as in numpy.matmul)
``y = linear(x, w, b)``                   x @ w.T + b, x (N, in), w (out, in), b (out,) or None
``dx, dw, db = linear_backward(dy, x, w)`` dx = dy @ w, dw = dy.T @ x, db = dy.sum(0)
                                          (db is None with ``has_bias=False``)

float32 or float64, both operands of one dtype. The fast backends run fastinit's own blocked
GEMM (BLIS loop order, packed panels, a register-tile microkernel; see
:mod:`fastinit._numba.gemm` and ``csrc/gemm.c``); only the numpy reference calls BLAS.
Transposed (F-contiguous) operands are used as they are: the kernels pack panels from either
layout, so ``dy.T @ x`` or ``x @ w.T`` never copy. Other strided views are copied once.
``out=`` (matmul, linear) must be a writable, C-contiguous array of the result's shape and
dtype; matmul's may be one of the operands (the product then goes through a fresh array
first). linear_backward takes no ``out=``: its up to three gradients come from the
reused-output cache (fastinit/_alloc.py), which saves the page faults ``out=`` would save.
``backend=`` and ``out=`` are keyword-only, as ``has_bias`` and ``need``.

Not here: integer or complex products, other batch broadcasting than the one above, alpha/beta
scaling (BLAS gemm's), float16.
"""
import numpy as np

from .. import _alloc, _validate, backends

__all__ = ["matmul", "linear", "linear_backward"]

_FLOATS = _validate.FLOAT_DTYPES
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _operand(a, argname, ndims):
    """A float array with ndim in ``ndims`` (checks only; cheap when it passes)."""
    if type(a) is not np.ndarray or a.dtype not in _FLOATS:
        _validate.float_array(a, argname)  # (subclasses: np.matrix is refused there)
    if a.ndim not in ndims:
        _validate.ndim_in(a, argname, ndims)
    return a


def _same_dtype(a, aname, ref, refname):
    if a.dtype != ref.dtype:
        _validate.same_dtype(a, aname, ref, refname)


def _layout(a):
    """``a`` when each of its matrices is C- or F-contiguous (the kernels read both layouts,
    so a transposed operand is not copied), else a C-contiguous copy; a copy too when ``a`` is
    not aligned to its itemsize (see _validate.contiguous)."""
    if not a.flags.aligned:
        return np.array(a, order="C")
    if a.flags.c_contiguous:
        return a
    if a.ndim == 2:
        if a.flags.f_contiguous:
            return a
    elif a.ndim == 3 and a.transpose(0, 2, 1).flags.c_contiguous:
        return a  # a batch of transposed matrices, e.g. x.transpose(0, 2, 1)
    return np.ascontiguousarray(a)


def _fast_pair(a, b):
    """True when a, b are 2-D float ndarrays of one dtype (the common case, checked cheaply:
    call overhead decides small products)."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2
            and (a.dtype is _F32 or a.dtype is _F64) and b.dtype is a.dtype)


def _as_operand(a):
    flags = a.flags
    return a if (flags.c_contiguous or flags.f_contiguous) and flags.aligned else _layout(a)


def matmul(a, b, *, out=None, backend=None):
    """``a @ b`` for 2-D (M, K) @ (K, N), or batched with 3-D operands.

    With 3-D operands the batch sizes must be equal, or one of them 1 (or a 2-D operand):
    that matrix is used for every batch. ``out`` receives the result when given.
    """
    if _fast_pair(a, b) and a.shape[1] == b.shape[0]:
        shape = (a.shape[0], b.shape[1])
        if out is None:
            out = _alloc.empty(shape, a.dtype)
        else:
            if not (type(out) is np.ndarray and out.dtype is a.dtype and out.shape == shape
                    and out.flags.carray):  # C-contiguous, aligned, writable
                _validate.out_array(out, "out", shape, a.dtype)
            if np.may_share_memory(out, a) or np.may_share_memory(out, b):
                return _into(out, matmul(a, b, backend=backend))
        fn = backends.kernel("dense", "matmul", backend)[0]
        fn(out, _as_operand(a), _as_operand(b))
        return out
    return _matmul_checked(a, b, out, backend)


def _into(out, result):
    """out[...] = result: ``out`` overlapped an operand, so the product went to a fresh array
    first (the kernels write C while they still read A and B)."""
    out[...] = result
    return out


def _matmul_checked(a, b, out, backend):
    """matmul's general path: every check with its message, batched operands, copies."""
    _operand(a, "a", (2, 3))
    _operand(b, "b", (2, 3))
    _same_dtype(b, "b", a, "a")
    _validate.dims_match(a, "a", -1, b, "b", -2, "inner dimensions of a @ b")
    m, n = a.shape[-2], b.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        shape = (m, n)
    else:
        ba = a.shape[0] if a.ndim == 3 else 1
        bb = b.shape[0] if b.ndim == 3 else 1
        if ba != bb and ba != 1 and bb != 1:
            raise ValueError(f"batch sizes of a {a.shape} and b {b.shape} do not match: they must "
                             "be equal, or one of them 1 (or a 2-D operand)")
        shape = (bb if ba == 1 else ba, m, n)  # a batch of 1 broadcasts, to 0 too (numpy's rule)
    if out is None:
        out = _alloc.empty(shape, a.dtype)
    else:
        _validate.out_array(out, "out", shape, a.dtype)
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            return _into(out, _matmul_checked(a, b, None, backend))
    fn, _ = backends.kernel("dense", "matmul", backend)
    if out.size == 0 or a.shape[-1] == 0:  # an empty batch or product: no kernel call
        out[...] = 0
        return out
    a = _layout(a)
    b = _layout(b)
    if out.ndim == 2:
        fn(out, a, b)
        return out
    if a.ndim == 3 and b.ndim == 2 and a.flags.c_contiguous:
        # (B, M, K) @ (K, N) is one (B*M, K) @ (K, N) product.
        fn(out.reshape(-1, n), a.reshape(-1, a.shape[2]), b)
        return out
    for i in range(shape[0]):
        ai = a if a.ndim == 2 else a[i if a.shape[0] > 1 else 0]
        bi = b if b.ndim == 2 else b[i if b.shape[0] > 1 else 0]
        fn(out[i], ai, bi)
    return out


def linear(x, w, b=None, *, out=None, backend=None):
    """``x @ w.T + b``: x (N, in), w (out, in) (PyTorch's layout), b (out,) or None.

    ``out``: an optional C-contiguous (N, out) array of x's dtype that receives the result
    (it may not overlap x, w or b)."""
    if not (_fast_pair(x, w) and x.shape[1] == w.shape[1] and
            (b is None or (type(b) is np.ndarray and b.dtype is x.dtype and b.shape == w.shape[:1]
                           and b.flags.carray))):
        _operand(x, "x", (2,))
        _operand(w, "w", (2,))
        _same_dtype(w, "w", x, "x")
        _validate.dims_match(x, "x", 1, w, "w", 1, "in_features of x and w")
        if b is not None:
            _operand(b, "b", (1,))
            _same_dtype(b, "b", x, "x")
            _validate.dims_match(b, "b", 0, w, "w", 0, "out_features of b and w")
            b = _validate.contiguous(b)
    shape = (x.shape[0], w.shape[0])
    if out is None:
        y = _alloc.empty(shape, x.dtype)
    else:
        if not (type(out) is np.ndarray and out.dtype is x.dtype and out.shape == shape
                and out.flags.carray):
            _validate.out_array(out, "out", shape, x.dtype)
        if any(a is not None and np.may_share_memory(out, a) for a in (x, w, b)):
            raise ValueError("linear: out may not overlap x, w or b")
        y = out
    fn = backends.kernel("dense", "linear", backend)[0]
    fn(y, _as_operand(x), _as_operand(w), b)
    return y


_NEEDS = ("dx", "dw", "db")
_needs_seen = set()   # tuples of names from _NEEDS already checked (short ones: a bounded set)


def _need_checked(need):
    try:
        return type(need) is tuple and need in _needs_seen
    except TypeError:  # an unhashable element: not a valid need, the full check says why
        return False


def linear_backward(dy, x, w, *, has_bias=True, need=_NEEDS, backend=None):
    """Gradients of ``y = x @ w.T + b``: ``(dx, dw, db)`` with dx = dy @ w (N, in),
    dw = dy.T @ x (out, in), db = dy.sum(0) (out,), or None when ``has_bias`` is False.

    ``need``: which of "dx", "dw", "db" to compute (one name, or a collection of them); the
    others are returned as None (a first layer needs no dx: skipping it saves a third of the
    backward's work)."""
    if not (_fast_pair(dy, x) and _fast_pair(x, w) and dy.shape[0] == x.shape[0]
            and dy.shape[1] == w.shape[0] and x.shape[1] == w.shape[1]
            and (has_bias is True or has_bias is False)):
        _operand(dy, "dy", (2,))
        _operand(x, "x", (2,))
        _operand(w, "w", (2,))
        _same_dtype(x, "x", dy, "dy")
        _same_dtype(w, "w", dy, "dy")
        _validate.dims_match(dy, "dy", 0, x, "x", 0, "batch sizes of dy and x")
        _validate.dims_match(dy, "dy", 1, w, "w", 0, "out_features of dy and w")
        _validate.dims_match(x, "x", 1, w, "w", 1, "in_features of x and w")
        has_bias = _validate.boolean(has_bias, "has_bias")
    if need is not _NEEDS and not _need_checked(need):
        need = _validate.gradients(need, _NEEDS)
        if len(need) <= len(_NEEDS):
            _needs_seen.add(need)
    dt = dy.dtype
    dx = _alloc.empty(x.shape, dt) if "dx" in need else None
    dw = _alloc.empty(w.shape, dt) if "dw" in need else None
    db = np.empty(w.shape[0], dt) if has_bias and "db" in need else None
    fn = backends.kernel("dense", "linear_backward", backend)[0]
    fn(dx, dw, db, _as_operand(dy), _as_operand(x), _as_operand(w))
    return dx, dw, db
