"""2-D convolution, forward and backward (NCHW activations, OIHW weights, as PyTorch).

``y = conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1)``
    x (N, C, H, W), w (K, C/groups, R, S), b (K,) or None -> y (N, K, OH, OW), with
    ``OH = (H + top + bottom - dh*(R-1) - 1) // sh + 1`` (likewise OW).
``dx, dw, db = conv2d_backward(dy, x, w, stride, padding, dilation, groups, *, has_bias=True,
                               need=("dx", "dw", "db"))``
    the gradients of ``y`` with respect to x, w and b in one call; only those named in ``need``
    are computed, the others are None (db is also None when ``has_bias`` is False).
``conv2d_output_shape(x_shape, w_shape, stride, padding, dilation, groups)`` -> (N, K, OH, OW)
``plan(x, w, stride, padding, dilation, groups, kind="forward")`` -> the :class:`Plan` a call
    follows: its path, blocking and a one-line reason; ``kind`` is "forward", "backward_data"
    or "backward_weights". ``last[kind]`` is the plan the latest call of that pass ran.

Arguments
---------
stride, dilation : int or pair (height, width), >= 1.
padding : int, pair (height, width), explicit ``((top, bottom), (left, right))``, ``"valid"``
    (no padding) or ``"same"``. Zero padding, every amount >= 0.

``"same"`` gives ``OH = ceil(H / sh)`` (likewise OW) for any stride: the total padding along an
axis is ``max((OH - 1)*sh + dh*(R-1) + 1 - H, 0)``, ``top = total // 2`` and the odd one goes to
the bottom (right). With stride 1 that is exactly PyTorch's ``padding="same"`` (OH = H, extra
pad at the bottom/right for even kernels); PyTorch refuses "same" with stride > 1, and
fastinit then follows TensorFlow's "SAME" (ceil(H / stride), extra at the bottom/right).

float32 or float64, every array of one dtype. Inputs are never modified; non-contiguous ones are
copied once. Outputs are fresh C-contiguous arrays.

Kernels: ``numpy`` is im2col + matmul (the oracle, :mod:`fastinit.reference.conv`). ``numba``
and ``c`` follow one planner (:func:`make_plan`, backend-neutral: the geometry, the data type,
the CPU's vector width and the thread count decide) and implement the same paths:

* ``implicit``, the general engine: per group, ``Y = W @ X`` with X the patch matrix (taps x
  pixels of the whole batch) built a block at a time and fed to the GEMM's register tile; dx
  as ``W^T @ dY`` added back into dx; dw as ``X @ dY^T`` reducing over the pixels. Any
  stride, padding, dilation and groups; 1x1 layers too (measured faster than a GEMM call per
  image, whose pixel count per call is only an image's).
* ``direct``, first layers (few input channels per group, few output channels): forward and
  dw read a padded copy of each image through a tap table, building no patch matrix.
* ``depthwise`` (one input and one output channel per group): channels along the vectors.
* ``winograd``, 3x3 / 5x5 / 7x7 stride-1 layers with enough channels; its float32 error is a
  few times the direct sum's (tests/test_conv.py measures it).

Per-thread scratch is a few blocks: bounded by the channels and the blocking, never by the
stride. :func:`plan` says which path runs and why.

Not here: transposed convolution as a forward op, padding modes other than zeros, NHWC,
float16, 1-D or 3-D convolution.
"""
import collections
import numbers

import numpy as np

from .. import _alloc, _validate, backends
from ..reference.conv import output_size

__all__ = ["conv2d", "conv2d_backward", "conv2d_output_shape", "plan", "Geometry"]

_NEEDS = ("dx", "dw", "db")
_KINDS = ("forward", "backward_data", "backward_weights")

#: A checked, normalised convolution: what every kernel receives.
Geometry = collections.namedtuple(
    "Geometry", "x_shape w_shape out_shape stride padding dilation groups")


def _same_padding(size, kernel, stride, dilation):
    """(before, after) for "same": ceil(size / stride) outputs, the odd pad after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def _padding(padding, spatial, kernel, stride, dilation):
    """((top, bottom), (left, right)) from any accepted padding form."""
    if isinstance(padding, str):
        _validate.choice(padding, "padding", ("same", "valid"))
        if padding == "valid":
            return ((0, 0), (0, 0))
        return tuple(_same_padding(spatial[i], kernel[i], stride[i], dilation[i])
                     for i in range(2))
    if (isinstance(padding, (tuple, list)) and len(padding) == 2
            and all(isinstance(p, (tuple, list)) for p in padding)):
        top_bottom = _validate.int_pair(padding[0], "padding[0] (top, bottom)", 0,
                                        "negative padding is not supported")
        left_right = _validate.int_pair(padding[1], "padding[1] (left, right)", 0,
                                        "negative padding is not supported")
        return (top_bottom, left_right)
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        raise TypeError("padding must be an int, a pair (height, width), ((top, bottom), "
                        f"(left, right)), 'same' or 'valid', got {padding!r}")
    if not isinstance(padding, (numbers.Integral, tuple, list)):
        raise TypeError("padding must be an int, a pair (height, width), ((top, bottom), "
                        f"(left, right)), 'same' or 'valid', got {type(padding).__name__} "
                        f"{padding!r}")
    ph, pw = _validate.int_pair(padding, "padding", 0, "negative padding is not supported")
    return ((ph, ph), (pw, pw))


def _shape4(shape, argname):
    if isinstance(shape, np.ndarray):
        shape = shape.shape
    dims = _validate.shape(shape, argname)
    if len(dims) != 4:
        layout = " (N, C, H, W)" if argname.startswith("x") else " (K, C/groups, R, S)"
        raise ValueError(f"{argname} must be 4-D{layout}, got shape {dims}")
    return dims


def _plain(v):
    """An exact int or str, or a tuple of them (hashable with no 1 == 1.0 == True ambiguity)."""
    t = type(v)
    return t is int or t is str or (t is tuple and all(_plain(e) for e in v))


_GEOMETRIES = {}


def _checked_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """:func:`_geometry` for the op calls, remembered for plain arguments: a training loop
    calls the same convolution thousands of times, and checking costs more than a small
    kernel. Only successes are remembered, so bad input still raises every time."""
    if not (_plain(stride) and _plain(padding) and _plain(dilation) and type(groups) is int):
        return _geometry(x_shape, w_shape, stride, padding, dilation, groups)
    key = (x_shape, w_shape, stride, padding, dilation, groups)
    geo = _GEOMETRIES.get(key)
    if geo is None:
        geo = _geometry(x_shape, w_shape, stride, padding, dilation, groups)
        if len(_GEOMETRIES) >= 512:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = geo
    return geo


def _geometry(x_shape, w_shape, stride, padding, dilation, groups, xname="x"):
    """Check the shapes and arguments of a convolution; the normalised :class:`Geometry`."""
    groups = _validate.positive_int(groups, "groups")
    stride = _validate.int_pair(stride, "stride", 1, "non-positive stride is not supported")
    dilation = _validate.int_pair(dilation, "dilation", 1,
                                  "non-positive dilation is not supported")
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    if min(K, Cg, R, S) < 1:
        raise ValueError(f"w must have no empty dimension (K, C/groups, R, S), got shape {w_shape}")
    if min(C, H, W) < 1:
        raise ValueError(f"{xname} must have no empty channel or spatial dimension (N, C, H, W),"
                         f" got shape {x_shape}")
    _validate.conv_channels(_Shape(x_shape), _Shape(w_shape), groups, xname)
    pad = _padding(padding, (H, W), (R, S), stride, dilation)
    padded = (H + pad[0][0] + pad[0][1], W + pad[1][0] + pad[1][1])
    _validate.conv_kernel_fits(padded, (dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1),
                               xname)
    OH = output_size(H, pad[0], R, stride[0], dilation[0])
    OW = output_size(W, pad[1], S, stride[1], dilation[1])
    # Along an axis with one output the stride is never used (oy*sh = 0): 1 stands in, so that
    # any stride, 2**63 too, reaches the kernels as a small number
    stride = (stride[0] if OH > 1 else 1, stride[1] if OW > 1 else 1)
    return Geometry(tuple(x_shape), tuple(w_shape), (N, K, OH, OW), stride, pad, dilation,
                    groups)


class _Shape:
    """Just a ``.shape`` (the channel checks word their errors with shapes)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def conv2d_output_shape(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """(N, K, OH, OW) of ``conv2d`` for inputs of these shapes (arrays are accepted too)."""
    return _geometry(_shape4(x_shape, "x_shape"), _shape4(w_shape, "w_shape"), stride, padding,
                     dilation, groups, "x_shape").out_shape


def _array4(a, argname):
    _validate.float_array(a, argname)
    layout = " (K, C/groups, R, S)" if argname == "w" else " (N, C, H, W)"
    _validate.ndim_in(a, argname, (4,), layout)
    return a


def _bias(b, w):
    if b is None:
        return None
    _validate.float_array(b, "b")
    if b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},) (one value per output channel of w "
                         f"of shape {w.shape}), got {b.shape}")
    _validate.same_dtype(b, "b", w, "w")
    return _validate.contiguous(b)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None):
    """2-D cross-correlation (PyTorch's conv2d): x (N, C, H, W), w (K, C/groups, R, S),
    b (K,) or None -> (N, K, OH, OW). See the module docstring for the arguments. No ``out=``:
    y comes from the reused-output cache (fastinit/_alloc.py), which saves its page faults."""
    _array4(x, "x")
    _array4(w, "w")
    _validate.same_dtype(w, "w", x, "x")
    b = _bias(b, w)
    geo = _checked_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    y = _alloc.empty(geo.out_shape, x.dtype)
    fn, name = backends.kernel("conv", "conv2d", backend)
    if y.size == 0:
        return y
    p = _plan_for("forward", geo, x.dtype, name)
    fn(y, _validate.contiguous(x), _validate.contiguous(w), b, geo, p)
    return y


def _need(need, has_bias):
    items = _validate.gradients(need, _NEEDS)
    has_bias = _validate.boolean(has_bias, "has_bias")
    return "dx" in items, "dw" in items, "db" in items and has_bias


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *, has_bias=True,
                    need=_NEEDS, backend=None):
    """Gradients of ``y = conv2d(x, w, b, stride, padding, dilation, groups)``:
    ``(dx, dw, db)`` shaped like x, w and (K,); only those named in ``need`` are computed,
    the others are None. db is None when ``has_bias`` is False."""
    _array4(dy, "dy")
    _array4(x, "x")
    _array4(w, "w")
    _validate.same_dtype(x, "x", dy, "dy")
    _validate.same_dtype(w, "w", dy, "dy")
    want_dx, want_dw, want_db = _need(need, has_bias)
    geo = _checked_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if dy.shape != geo.out_shape:
        raise ValueError(f"dy must have the shape of conv2d's output {geo.out_shape} (x "
                         f"{x.shape}, w {w.shape}, stride {geo.stride}, padding {geo.padding}, "
                         f"dilation {geo.dilation}), got {dy.shape}")
    dt = dy.dtype
    dx = _alloc.empty(x.shape, dt) if want_dx else None
    dw = _alloc.empty(w.shape, dt) if want_dw else None
    db = np.empty(w.shape[0], dt) if want_db else None
    fn, name = backends.kernel("conv", "conv2d_backward", backend)
    if dy.size == 0:  # no images: nothing flows back
        for a in (dx, dw, db):
            if a is not None:
                a[...] = 0
        return dx, dw, db
    if dx is None and dw is None and db is None:
        return dx, dw, db
    plan_dx = _plan_for("backward_data", geo, dt, name) if want_dx else None
    if plan_dx is not None and plan_dx.path == "winograd" and not np.isfinite(np.sum(w)):
        # Winograd's transforms mix a tile's taps: an inf weight would reach dx positions its
        # tap never reaches (as NaN); the general engine adds each tap where it lands
        plan_dx = _plan_for("backward_data", geo, dt, name, finite=False)
    plans = (plan_dx,
             _plan_for("backward_weights", geo, dt, name) if want_dw or want_db else None)
    if plans[1] is not None and plans[1].path == "gemm":
        _weights_by_gemm(dw, db, dy, x, geo, name)
        plans = (plan_dx, None)
        if dx is None:
            return dx, dw, db
    fn(dx, dw, db, _validate.contiguous(dy), _validate.contiguous(x), _validate.contiguous(w),
       geo, plans)
    return dx, dw, db


def _weights_by_gemm(dw, db, dy, x, geo, backend):
    """The "gemm" path (a 1x1 kernel without padding): dw (K, C) = dy (K, N*OH*OW) @ x (C,
    N*OH*OW)^T with x subsampled by the stride, both gathered channel-major over the batch;
    db sums dy's rows. Runs on the backend's GEMM, so every fast backend has it."""
    from .dense import matmul
    N, C = geo.x_shape[:2]
    K = geo.w_shape[0]
    OH, OW = geo.out_shape[2:]
    sh, sw = geo.stride
    xt = _alloc.empty((C, N, OH, OW), x.dtype)
    xt[...] = x[:, :, :(OH - 1) * sh + 1:sh, :(OW - 1) * sw + 1:sw].transpose(1, 0, 2, 3)
    dyt = _alloc.empty((K, N, OH, OW), dy.dtype)
    dyt[...] = dy.transpose(1, 0, 2, 3)
    dyt = dyt.reshape(K, -1)
    if dw is not None:
        matmul(dyt, xt.reshape(C, -1).T, out=dw.reshape(K, C), backend=backend)
    if db is not None:
        db[...] = dyt.sum(axis=1)


# ---- the planner -----------------------------------------------------------------------------
class Plan(collections.namedtuple("Plan", "path kind blocking reason")):
    """What one convolution pass runs: ``path`` ("implicit", "direct", "winograd", "depthwise", "gemm" or
    "reference"), ``kind`` ("forward", "backward_data", "backward_weights"), ``blocking`` (a
    dict: the chunk and block sizes and the parallel split the kernels follow) and ``reason``
    (one line: why this path and this blocking)."""

    def __str__(self):
        blk = ", ".join(f"{k}={v}" for k, v in self.blocking.items())
        return f"{self.path} ({blk}): {self.reason}" if blk else f"{self.path}: {self.reason}"


#: Register tile per vector ISA: (rows, float32 lanes); a tile is 2 vectors wide.
TILES = {"avx512": (12, 16), "avx2": (6, 8), "portable": (4, 4)}
#: Values of scratch a thread's blocks may take: they stay in its L2 (1 MB on this Zen 5).
BLOCK_BYTES = 512 * 1024
#: Longest reduction block (taps or channels) one tile call runs over.
MAX_KC = 512
#: Most pixels per chunk (a chunk's block of outputs lives in the thread's scratch).
MAX_PIXELS = 1024

_PLANS = {}
#: The plan each pass ran last (kind -> Plan): what tests and benchmarks assert.
last = {}


def _plan_for(kind, geo, dtype, backend, finite=True):
    """The plan of a call (cached: a training loop repeats the same geometry); ``finite``
    False: the weights hold an inf or a NaN (see make_plan)."""
    isa_of = backends.kernel("conv", "isa", backend)[0]
    key = (kind, geo, dtype.itemsize, backend, isa_of(), backends.get_num_threads(), finite)
    p = _PLANS.get(key)
    if p is None:
        if len(_PLANS) >= 1024:
            _PLANS.clear()
        p = _PLANS[key] = make_plan(kind, geo, dtype.itemsize, key[4], key[5], backend, finite)
    last[kind] = p
    return p


def _ceil(a, b):
    return -(-a // b)


#: Winograd algorithms per kernel size (Lavin & Gray 2016): F(m x m, r x r) computes m x m outputs
#: from (m + r - 1)^2 products per channel pair instead of m^2 r^2.
WINOGRAD = {3: "F(4x4,3x3)", 5: "F(2x2,5x5)", 7: "F(2x2,7x7)"}
#: Fewest input and output channels for Winograd: below, its transforms cost more than the
#: products save (against the general engine, both backends: even at 16-24, ahead from 32).
WINOGRAD_MIN_CHANNELS = 16
#: Fewest tiles (over the batch) for Winograd once its transformed weights U (a*a*C*K values)
#: outgrow WINOGRAD_SMALL_U: U is made and read once per call, its products reused per tile
#: (with fewer tiles the general engine wins; the measurement is in benchmarks/records/).
WINOGRAD_MIN_TILES = 128
WINOGRAD_SMALL_U = 1 << 18


def _winograd(kind, geo, backend):
    """Why the pass runs Winograd, or None: stride 1, dilation 1, groups 1, square 3x3, 5x5 or
    7x7 kernels, enough channels, and enough tiles unless U is small; dx also needs top and
    left padding <= R-1; dw only 3x3, by F(3x3,4x4), with >= 64 tiles, K*C <= 16384 (its
    per-thread 36 K C sums; C=K=256: even with the general engine) and more than 2x2 output
    pixels. The same rule for both fast backends."""
    N = geo.x_shape[0]
    K, Cg, R, S = geo.w_shape
    OH, OW = geo.out_shape[2:]
    if not (R == S and R in WINOGRAD and geo.stride == (1, 1) and geo.dilation == (1, 1)
            and geo.groups == 1 and min(Cg, K) >= WINOGRAD_MIN_CHANNELS):
        return None
    if kind == "backward_weights":
        if not (R == 3 and N * _ceil(OH, 4) * _ceil(OW, 4) >= 64 and K * Cg <= 16384
                and OH * OW > 4):
            return None
        return "winograd F(3x3,4x4) (weight gradient), summed over tiles"
    m = 4 if R == 3 else 2
    H, W = geo.x_shape[2:] if kind == "backward_data" else (OH, OW)
    tiles = N * _ceil(H, m) * _ceil(W, m)
    if tiles < WINOGRAD_MIN_TILES and (m + R - 1) ** 2 * Cg * K > WINOGRAD_SMALL_U:
        return None
    if kind == "backward_data":
        if geo.padding[0][0] > R - 1 or geo.padding[1][0] > R - 1:
            return None
        return f"winograd {WINOGRAD[R]} on dy with the weights flipped and transposed"
    return f"winograd {WINOGRAD[R]}"


#: Most output channels per group for the direct path (forward and dw): with few, building
#: the patch matrix costs as much as the products it feeds.
DIRECT_MAX_KG = 32


#: ... and at most this many input channels per group (first layers: few taps per pixel).
DIRECT_MAX_CG = 8


def _direct(kind, geo, lanes):
    """Whether the forward or dw pass runs the direct path: few input channels per group (a
    first layer: the patch matrix is cheap to read but costs as much to build as its
    products), few output channels (forward: lanes/2..DIRECT_MAX_KG, and stride 1 along the
    rows; dw: up to twice that), and output rows of at least 4 pixels (the tile's rows are
    pixels). Faster than the general engine on first layers of 6x6 to 32x32 maps, both
    backends (benchmarks/records/)."""
    K, Cg, R, S = geo.w_shape
    Kg = K // geo.groups
    if kind == "forward" and not (lanes // 2 <= Kg <= DIRECT_MAX_KG and geo.stride[1] == 1):
        return False   # (strided rows: as fast on the general engine, measured)
    return (kind != "backward_data" and Cg <= DIRECT_MAX_CG and Kg <= 2 * DIRECT_MAX_KG
            and geo.out_shape[3] >= 4)


#: Most output pixels per image for the "gemm" weight gradient of a 1x1 convolution.
GEMM_MAX_PIXELS = 64


def _gemm_weights(geo, itemsize):
    """Whether the weight gradient runs as one GEMM over the batch: a 1x1 kernel, no padding,
    one group, small output maps and a dW larger than a thread's L2 block. The general engine
    reduces image by image, so with 49 pixels per image it streams a dW that does not stay in
    L2 once per 49 multiply-adds per value; measured on 7x7 maps with dW of 0.5-4 MB: the GEMM
    in 0.4-0.57x the time on both backends; with dW in L2 (128 x 64) the general engine wins."""
    OH, OW = geo.out_shape[2:]
    K, Cg = geo.w_shape[:2]
    return (geo.w_shape[2:] == (1, 1) and geo.groups == 1 and OH * OW <= GEMM_MAX_PIXELS
            and geo.padding == ((0, 0), (0, 0)) and K * Cg * itemsize > BLOCK_BYTES)


def make_plan(kind, geo, itemsize, isa, threads, backend="c", finite=True):
    """The plan of one pass (``kind``) of the convolution ``geo`` (a :class:`Geometry`) for
    elements of ``itemsize`` bytes on a CPU with vector ISA ``isa`` ("avx512", "avx2",
    "portable") and ``threads`` threads. Backend-neutral: both fast backends implement every
    path and follow the blocking; ``backend`` only tells the reference apart; ``finite`` False
    (weights with an inf or a NaN) keeps the dx pass off Winograd."""
    if backend == "numpy":
        return Plan("reference", kind, {}, "im2col + matmul in NumPy (the oracle)")
    N, C, H, W = geo.x_shape
    K, Cg, R, S = geo.w_shape
    _, _, OH, OW = geo.out_shape
    G = geo.groups
    Kg, T, J = K // G, Cg * R * S, N * OH * OW
    mr, lanes = TILES[isa]
    lanes = lanes * 4 // itemsize
    nr = 2 * lanes
    values = BLOCK_BYTES // itemsize
    shape = f"{R}x{S}, stride {geo.stride}, dilation {geo.dilation}, groups {G}, Cg={Cg}, Kg={Kg}"
    wino = _winograd(kind, geo, backend) if finite else None
    if wino:
        return Plan("winograd", kind, {}, wino + "; " + shape)
    if kind == "backward_weights" and _gemm_weights(geo, itemsize):
        return Plan("gemm", kind, {}, (
            f"gemm: one GEMM dy (K x N*OH*OW) times x^T over the whole batch, x (subsampled by "
            f"the stride) and dy gathered channel-major first (per image the reduction would "
            f"be only {OH * OW} pixels long); {shape}"))
    if Cg == 1 and Kg == 1:
        nblk = _ceil(C, lanes)
        parts = N if kind != "backward_weights" else min(N, max(threads, _ceil(4 * threads, nblk)))
        why = (f"depthwise: {lanes} channels along the vectors, each image's planes moved into a "
               f"padded channel-interleaved buffer and back, {parts} part(s) of the batch; {shape}")
        return Plan("depthwise", kind, dict(parts=parts), why)
    if _direct(kind, geo, lanes):
        if kind == "forward":
            parts = 1 if N * G >= 2 * threads else min(OH, _ceil(2 * threads, N * G))
            nr = lanes if Kg <= lanes else nr   # one vector wide when Kg fits in one
            why = (f"direct: rows of {mr} output pixels x {nr} output channels over all {T} "
                   f"taps, read from a padded copy of each image through a tap table (no patch "
                   f"matrix), {parts} part(s) of the rows; {shape}")
        else:
            parts = min(N, threads)
            why = (f"direct: per output row, panels of {mr} taps x {nr} output channels reduce "
                   f"over the row's pixels, read from a padded copy of each image; {parts} "
                   f"part(s) of the batch, partial sums added in order; {shape}")
        return Plan("direct", kind, dict(parts=parts), why)
    if kind == "forward":
        kc = T if T <= MAX_KC else _ceil(T, _ceil(T, MAX_KC))
        npan = _ceil(Kg, mr)
        mp = _ceil(J, nr)                       # pixel vectors-of-tiles (micro-panels)
        # the patch block (kc x nc) stays in L2 while every weight panel runs over it; the
        # block of y it makes is written once per block of taps
        per_mp = max(1, min(values // (kc * nr), MAX_PIXELS // nr))
        chunks = _ceil(mp, per_mp)
        parts = 1
        if G * chunks < 4 * threads:
            chunks = min(mp, _ceil(max(G * chunks, threads), threads) * threads // G or 1)
            if G * chunks < 2 * threads:
                parts = min(npan, _ceil(2 * threads, G * chunks))
        nc = _ceil(mp, chunks) * nr
        blk = dict(nc=nc, kc=kc, chunks=chunks, parts=parts)
        why = (f"implicit GEMM: Y_g (Kg x N*OH*OW) = W_g @ patches, {chunks} chunk(s) of <= {nc}"
               f" pixels x {parts} part(s) of Kg per group, taps in blocks of {kc}; {shape}")
        return Plan("implicit", kind, blk, why)
    if kind == "backward_data":
        kc = Kg if Kg <= MAX_KC else _ceil(Kg, _ceil(Kg, MAX_KC))
        P = OH * OW
        tb = min(_ceil(T, mr) * mr, 16 * mr)
        # a block of dy (kc x nc) stays in L2 while every panel of taps runs over it
        per_pix = max(nr, min(values // (kc + tb), MAX_PIXELS) // nr * nr)
        nc = min(per_pix, _ceil(J, nr) * nr)
        imgs = N
        if N >= threads:
            imgs = min(N, max(threads, _ceil(J, threads * nc) * threads))
            imgs = max(1, imgs - imgs % threads) if imgs >= threads else imgs
        parts = 1
        if (G * imgs) % threads and G * imgs < 4 * threads:
            parts = min(Cg, threads)
        nc = min(nc, _ceil(_ceil(N, imgs) * P, nr) * nr)
        blk = dict(nc=nc, kc=kc, tb=tb, imgs=imgs, parts=parts)
        why = (f"implicit GEMM: dX_g = W_g^T @ dY_g added back (col2im), {imgs} image range(s) x"
               f" {parts} channel part(s), chunks of <= {nc} pixels, {tb} taps at a time; {shape}")
        return Plan("implicit", kind, blk, why)
    # backward_weights
    ldk = _ceil(Kg, 32) * 32
    split = 0 if G * T * ldk * itemsize <= (1 << 20) else 1
    tpan = _ceil(T, mr)
    if split == 1 and tpan * G < 2 * threads:
        split = 0
    parts = threads if split == 0 else min(tpan, threads)
    tb = min(tpan * mr, 16 * mr)
    # per chunk of pixels, a block of dy^T (nc x kc output channels) stays in L2 while every
    # panel of taps runs over it; the partial dW tiles are read and written once per chunk
    kc = min(ldk, 8 * nr)
    nc = max(nr, min(values // kc, MAX_PIXELS, _ceil(J, nr) * nr) // nr * nr)
    blk = dict(nc=nc, kc=kc, tb=tb, parts=parts, split=split)
    how = (f"{parts} pixel range(s), partial sums added in order" if split == 0 else
           f"{parts} tap range(s)")
    why = (f"implicit GEMM: dW_g^T = patches @ dY_g^T reducing over N*OH*OW in chunks of {nc}, "
           f"{how}, {tb} taps at a time; {shape}")
    return Plan("implicit", kind, blk, why)


def plan(x, w, stride=1, padding=0, dilation=1, groups=1, kind="forward", dtype=None,
         backend=None):
    """The :class:`Plan` ``conv2d`` (kind "forward") or ``conv2d_backward`` (kinds
    "backward_data", "backward_weights") follows for these inputs: the path, its blocking and
    why (``str(plan)`` is one line).

    ``x`` and ``w`` are arrays or shapes; with shapes, ``dtype`` (default float32) names the
    data type."""
    kind = _validate.choice(kind, "kind", _KINDS)
    if dtype is None:
        dtype = x.dtype if isinstance(x, np.ndarray) else np.float32
    dt = _validate.float_dtype(dtype)
    geo = _geometry(_shape4(x, "x"), _shape4(w, "w"), stride, padding, dilation, groups)
    _, name = backends.kernel("conv", "conv2d", backend)
    saved = last.get(kind)
    p = _plan_for(kind, geo, dt, name)
    if saved is None:
        last.pop(kind, None)
    else:
        last[kind] = saved
    return p
