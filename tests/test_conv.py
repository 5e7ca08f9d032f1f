"""conv2d, conv2d_backward, conv2d_output_shape and plan: every backend against the NumPy
reference on seeded random configurations, the reference against PyTorch and finite
differences, the Winograd path's error against float64, and every bad input.

Tolerance: a sum of n products in floating point is off by at most about n * eps * (sum of
|products|) (the gamma_n bound); two implementations summing in different orders differ by
at most twice that. Each comparison therefore computes the bound elementwise, with the same
op on |x| and |w| (or |dy|), and allows 2 n eps of it. Winograd F(4x4,3x3) is allowed 8 times
more: its transforms scale by up to 5 and divide by up to 24 (test_winograd_error measures it).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinit as fi
from fastinit import _c, backends
from fastinit._numba import conv3x3 as wino
from fastinit.ops import conv as conv_ops

SEED = 20241125
EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps),
       np.dtype(np.float64): float(np.finfo(np.float64).eps)}


def rng(*salt):
    return np.random.default_rng([SEED, *salt])


# ---- random configurations ----------------------------------------------------------------

def random_config(seed):
    """A valid (x shape, w shape, stride, padding, dilation, groups) within the issue's ranges:
    N 1..8, C 1..70, H, W 1..40, kernel 1..7 (even too), stride 1..3, padding 0..3 / "same" /
    "valid" / asymmetric, dilation 1..3, groups 1, 2 or depthwise; small products only."""
    r = rng(seed)
    while True:
        kind = r.choice(["dense", "dense", "grouped", "depthwise"])
        groups = {"dense": 1, "grouped": 2, "depthwise": int(r.integers(1, 9))}[kind]
        if kind == "depthwise":
            cg, kg = 1, 1
        else:
            cg = int(r.choice([1, 2, 3, 5, 8, 17, 35]))
            kg = int(r.choice([1, 2, 7, 9, 16, 33]))
        C, K = cg * groups, kg * groups
        if C > 70 or K > 70:
            continue
        R, S = int(r.integers(1, 8)), int(r.integers(1, 8))
        H, W = int(r.integers(1, 41)), int(r.integers(1, 41))
        N = int(r.integers(1, 9))
        stride = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        dilation = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        form = r.choice(["int", "pair", "explicit", "same", "valid"])
        if form == "int":
            padding = int(r.integers(0, 4))
        elif form == "pair":
            padding = (int(r.integers(0, 4)), int(r.integers(0, 4)))
        elif form == "explicit":
            padding = tuple((int(r.integers(0, 4)), int(r.integers(0, 4))) for _ in range(2))
        else:
            padding = str(form)
        try:
            out = fi.conv2d_output_shape((N, C, H, W), (K, cg, R, S), stride, padding, dilation,
                                         groups)
        except ValueError:
            continue
        macs = N * K * cg * R * S * out[2] * out[3]
        if macs > 3e6:
            continue
        return (N, C, H, W), (K, cg, R, S), stride, padding, dilation, groups


CONFIGS = [random_config(s) for s in range(48)]

# Shapes that reach every kernel path: 3x3 and 5x5 stride 1 with many channels (Winograd on
# both backends, ragged tiles; with >= 64 tiles the 3x3 weight gradient too), one image (work
# split inside an image), 1x1, even kernels,
# a first layer (3 channels), depthwise, narrow groups (dot tile), stride 2 "same", large
# kernels with 32 output channels per group (the channel-vector tile).
FIXED = [
    ((2, 64, 9, 11), (64, 64, 3, 3), 1, 1, 1, 1),
    ((1, 24, 13, 7), (40, 24, 3, 3), 1, "same", 1, 1),
    ((3, 20, 10, 10), (18, 20, 3, 3), 1, ((0, 2), (1, 0)), 1, 1),
    ((1, 8, 23, 17), (16, 8, 5, 5), 1, 2, 1, 1),
    ((2, 3, 30, 30), (16, 3, 3, 3), 1, 1, 1, 1),
    ((3, 6, 12, 12), (6, 1, 3, 3), 1, 1, 1, 6),
    ((2, 8, 12, 9), (4, 2, 3, 3), 1, 1, 1, 4),
    ((2, 5, 17, 16), (7, 5, 4, 2), 2, "same", 1, 1),
    ((2, 9, 8, 8), (12, 9, 1, 1), 1, 0, 1, 1),
    ((1, 4, 15, 15), (6, 4, 3, 3), 3, 2, 2, 1),
    ((2, 6, 13, 11), (32, 6, 5, 5), 1, 2, 1, 1),
    ((4, 32, 17, 15), (32, 32, 3, 3), 1, ((1, 2), (0, 1)), 1, 1),
    ((2, 32, 11, 9), (33, 32, 5, 5), 1, ((1, 3), (4, 2)), 1, 1),
    ((1, 4, 12, 17), (64, 2, 7, 5), 2, ((1, 2), (3, 0)), (1, 2), 2),
]
ALL = CONFIGS + FIXED


def cid(cfg):
    x, w, s, p, d, g = cfg
    return f"x{'x'.join(map(str, x))}-w{'x'.join(map(str, w))}-s{s}-p{p}-d{d}-g{g}".replace(" ", "")


def make(cfg, dtype, seed=0):
    x_shape, w_shape, stride, padding, dilation, groups = cfg
    r = rng(seed, *x_shape, *w_shape)
    x = r.standard_normal(x_shape).astype(dtype)
    w = r.standard_normal(w_shape).astype(dtype)
    b = r.standard_normal(w_shape[0]).astype(dtype)
    out = fi.conv2d_output_shape(x_shape, w_shape, stride, padding, dilation, groups)
    dy = r.standard_normal(out).astype(dtype)
    return x, w, b, dy


def is_winograd(cfg, backend, kind="forward"):
    """Whether the planner sends this pass (forward, "data" or "weights") to Winograd."""
    x_shape, w_shape, stride, padding, dilation, groups = cfg
    kind = {"forward": "forward", "data": "backward_data", "weights": "backward_weights"}[kind]
    return conv_ops.plan(x_shape, w_shape, stride, padding, dilation, groups, kind=kind,
                         backend=backend).path == "winograd"


def assert_close(got, want, bound, n, dtype, factor=1.0, what=""):
    """|got - want| <= factor * 2 n eps * bound + tiny, elementwise (module docstring)."""
    assert got.shape == want.shape, what
    assert got.dtype == np.dtype(dtype), what
    tol = factor * 2 * max(n, 1) * EPS[np.dtype(dtype)] * bound + np.finfo(dtype).tiny * 16
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > tol
    assert not bad.any(), (f"{what}: {bad.sum()} of {err.size} beyond the bound; max excess "
                           f"{np.max(err - tol):.3g} (max err {err.max():.3g})")


def reference_all(cfg, x, w, b, dy):
    """The reference's y, dx, dw, db and their error bounds (same ops on absolute values)."""
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              backend="numpy")
    y = fi.conv2d(x, w, b, **kw)
    grads = fi.conv2d_backward(dy, x, w, **kw)
    ax, aw, ady = np.abs(x), np.abs(w), np.abs(dy)
    bounds = (fi.conv2d(ax, aw, np.abs(b), **kw),) + fi.conv2d_backward(ady, ax, aw, **kw)
    return (y,) + grads, bounds


# ---- every backend against the reference ----------------------------------------------------

@pytest.mark.parametrize("cfg", ALL, ids=cid)
def test_matches_reference(fast_backend, dtype, cfg):
    check_against_reference(cfg, fast_backend, dtype)


def check_against_reference(cfg, backend, dtype):
    """y, dx, dw, db of ``backend`` within the error bounds of the reference's."""
    x, w, b, dy = make(cfg, dtype)
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    want, bounds = reference_all(cfg, x, w, b, dy)
    fast_backend = backend
    y = fi.conv2d(x, w, b, backend=fast_backend, **kw)
    dx, dw, db = fi.conv2d_backward(dy, x, w, backend=fast_backend, **kw)
    K, Cg, R, S = w.shape
    N, OH, OW = dy.shape[0], dy.shape[2], dy.shape[3]
    fwd_f = 8.0 if is_winograd(cfg, fast_backend) else 1.0
    dx_f = 8.0 if is_winograd(cfg, fast_backend, "data") else 1.0
    dw_f = 8.0 if is_winograd(cfg, fast_backend, "weights") else 1.0
    assert y.flags.c_contiguous and dx.flags.c_contiguous and dw.flags.c_contiguous
    assert_close(y, want[0], bounds[0], Cg * R * S + 1, dtype, fwd_f, "y")
    assert_close(dx, want[1], bounds[1], K // groups * R * S, dtype, dx_f, "dx")
    assert_close(dw, want[2], bounds[2], N * OH * OW, dtype, dw_f, "dw")
    assert_close(db, want[3], bounds[3], N * OH * OW, dtype, 1.0, "db")


# ---- the direct forward one vector wide --------------------------------------------------

@pytest.mark.parametrize("K,groups", [(4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1)])
def test_direct_forward_tile_width(fast_backend, dtype, K, groups):
    """A first layer whose output channels per group fit in one vector (16 float32, 8 float64)
    runs the direct forward's one-vector tile (the plan says so), one that does not the
    NVEC-wide tile; both within the reference's bounds, bias and groups included."""
    cfg = ((3, 6, 14, 13), (K, 6 // groups, 5, 5), 1, 1, 1, groups)
    x, w, b, dy = make(cfg, dtype)
    p = conv_ops.plan(x, w, padding=1, groups=groups, backend=fast_backend)
    if p.path != "direct":        # Kg below half a vector: not a first-layer shape for it
        assert K // groups < 32 // np.dtype(dtype).itemsize
        return
    isa = backends.kernel("conv", "isa", fast_backend)[0]()
    lanes = conv_ops.TILES[isa][1] * 4 // np.dtype(dtype).itemsize
    nr = lanes if K // groups <= lanes else 2 * lanes
    assert f"x {nr} output channels" in p.reason
    y = fi.conv2d(x, w, b, padding=1, groups=groups, backend=fast_backend)
    assert conv_ops.last["forward"].path == "direct"
    want, bounds = reference_all(cfg, x, w, b, dy)
    assert_close(y, want[0], bounds[0], 6 // groups * 25 + 1, dtype, 1.0, "y")


# ---- 1x1 weight gradients on small maps: one GEMM over the batch ---------------------------

@pytest.mark.parametrize("cfg", [((3, 208, 7, 7), (640, 208, 1, 1), 1, 0, 1, 1),
                                 ((2, 520, 13, 13), (272, 520, 1, 1), 2, 0, 1, 1)], ids=cid)
def test_gemm_weight_gradient(fast_backend, dtype, cfg):
    """A 1x1 convolution's dW larger than a thread's L2 block, on maps of at most 64 pixels
    (strided too), runs as one GEMM over the batch: within the reference's bounds, for every
    subset of the gradients, from strided views, inputs untouched."""
    x, w, b, dy = make(cfg, dtype)
    _, _, stride, padding, dilation, groups = cfg
    want, bounds = reference_all(cfg, x, w, b, dy)
    kw = dict(stride=stride, backend=fast_backend)
    assert conv_ops.plan(x, w, stride=stride, kind="backward_weights",
                         backend=fast_backend).path == "gemm"
    N, OH, OW = dy.shape[0], dy.shape[2], dy.shape[3]
    xs = np.zeros((N, x.shape[1] * 2) + x.shape[2:], dtype)[:, ::2]
    xs[...] = x
    copies = (xs.copy(), dy.copy())
    for need in (("dx", "dw", "db"), ("dw",), ("db",), ("dw", "db")):
        dx, dw, db = fi.conv2d_backward(dy, xs, w, need=need, **kw)
        assert conv_ops.last["backward_weights"].path == "gemm"
        assert (dx is not None) == ("dx" in need) and (dw is not None) == ("dw" in need)
        if dx is not None:
            assert_close(dx, want[1], bounds[1], w.shape[0], dtype, 1.0, "dx")
        if dw is not None:
            assert_close(dw, want[2], bounds[2], N * OH * OW, dtype, 1.0, "dw")
        if db is not None:
            assert_close(db, want[3], bounds[3], N * OH * OW, dtype, 1.0, "db")
    np.testing.assert_array_equal(xs, copies[0])
    np.testing.assert_array_equal(dy, copies[1])


def test_gemm_weight_gradient_rule():
    """The rule's edges: padding, groups, larger maps and a dW that fits in L2 keep the general
    engine; the reason names the path."""
    def path(xs, ws, stride=1, padding=0, groups=1, itemsize=4):
        g = conv_ops._geometry(xs, ws, stride, padding, 1, groups)
        return conv_ops.make_plan("backward_weights", g, itemsize, "avx512", 2, "c").path
    assert path((8, 512, 7, 7), (1024, 512, 1, 1)) == "gemm"
    assert path((8, 512, 14, 14), (1024, 512, 1, 1), stride=2) == "gemm"
    assert path((8, 512, 9, 9), (1024, 512, 1, 1)) == "implicit"       # 81 pixels
    assert path((8, 512, 7, 7), (1024, 512, 1, 1), padding=1) == "implicit"
    assert path((8, 512, 7, 7), (1024, 256, 1, 1), groups=2) == "implicit"
    assert path((64, 64, 8, 8), (128, 64, 1, 1)) == "implicit"          # dW in L2
    assert path((8, 256, 7, 7), (320, 256, 1, 1), itemsize=8) == "gemm"  # 640 KB of doubles
    assert path((8, 256, 7, 7), (320, 256, 1, 1), itemsize=4) == "implicit"  # 320 KB


# ---- small images: the im2col + GEMM path, Winograd in blocks of whole images ---------------

# Tiny images, as in the teaching CNN of `fastinit train --model cnn` (its two layers first):
# N not a multiple of any block or thread count, C = 1 and 3, odd K, padding 0 / 1 / "same",
# stride 2, dilation 2, 1x1 and 5x5 kernels, 2x2 images (weight gradient on the small path,
# not Winograd), 6x6 images (4 Winograd tiles each), up to the forward's 144 pixels and the
# weight gradient's 1024. Rows alike in shape to FIXED's are data (one case each, the tests
# pick theirs by index), not repeated logic.
SMALL = [
    ((64, 1, 8, 8), (16, 1, 3, 3), 1, 1, 1, 1),
    ((64, 16, 4, 4), (32, 16, 3, 3), 1, 1, 1, 1),
    ((37, 1, 8, 8), (7, 1, 3, 3), 1, 0, 1, 1),
    ((5, 3, 7, 6), (9, 3, 3, 3), 2, 1, 1, 1),
    ((3, 2, 5, 5), (5, 2, 5, 5), 1, 2, 1, 1),
    ((65, 16, 4, 4), (32, 16, 3, 3), 1, 1, 1, 1),
    ((9, 24, 2, 2), (17, 24, 3, 3), 1, 1, 1, 1),
    ((3, 32, 4, 4), (16, 32, 3, 3), 1, 1, 1, 1),
    ((2, 8, 12, 12), (16, 8, 3, 3), 1, 1, 1, 1),
    ((1, 4, 3, 9), (33, 4, 1, 1), 1, 0, 1, 1),
    ((6, 16, 6, 6), (32, 16, 3, 3), 1, "same", 1, 1),
    ((4, 1, 30, 30), (8, 1, 3, 3), 1, 1, 2, 1),
    ((7, 5, 8, 8), (3, 5, 2, 3), (2, 1), ((1, 0), (0, 2)), 1, 1),
]


@pytest.mark.parametrize("cfg", SMALL, ids=cid)
def test_small_images_match_reference(fast_backend, dtype, cfg):
    check_against_reference(cfg, fast_backend, dtype)


@pytest.mark.parametrize("cfg", SMALL[:2] + SMALL[6:7], ids=cid)
def test_small_images_bias_gradient_beside_dw(fast_backend, cfg):
    """db computed beside dw (the small path's row of ones, Winograd's tile sums) equals db
    computed alone."""
    x, w, b, dy = make(cfg, np.float64)
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              backend=fast_backend)
    _, dw, db = fi.conv2d_backward(dy, x, w, need=("dw", "db"), **kw)
    _, dw_alone, _ = fi.conv2d_backward(dy, x, w, need=("dw",), **kw)
    _, _, db_alone = fi.conv2d_backward(dy, x, w, need=("db",), **kw)
    np.testing.assert_allclose(db, db_alone, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dw, dw_alone)


def _path(x, w, kind="forward", backend="c", **kw):
    return conv_ops.plan(x, w, kind=kind, backend=backend, **kw).path


def test_planner_chooses_the_path(fast_backend):
    """One planner for both fast backends: Winograd for 3x3 stride-1 layers with enough
    channels, the depthwise path for one channel per group, the direct path for first layers,
    the general engine for the rest (strided, dilated, grouped, 1x1, tiny images); the
    reference plans itself."""
    def path(x, w, kind="forward", **kw):
        return _path(x, w, kind, fast_backend, **kw)

    x, w3 = (4, 64, 56, 56), (64, 64, 3, 3)
    for kind in ("forward", "backward_data", "backward_weights"):
        assert path(x, w3, kind, padding=1) == "winograd"
        assert path(x, (64, 1, 3, 3), kind, padding=1, groups=64) == "depthwise"
        assert path(x, w3, kind, padding=1, stride=2) == "implicit"
        assert path(x, w3, kind, padding=2, dilation=2) == "implicit"
        assert path(x, (64, 16, 3, 3), kind, padding=1, groups=4) == "implicit"
        assert path(x, (128, 64, 1, 1), kind) == "implicit"
        assert path((64, 1, 3, 3), (16, 1, 3, 3), kind, padding=1) == "implicit"   # 3 wide
        assert path((64, 16, 16, 16), (16, 16, 3, 3), kind, padding=1, stride=2) == "implicit"
        # a first layer (3 input channels, 32 output channels, rows of 32 pixels): forward and
        # dw read the image directly, dx stays on the general engine
        first = path((50, 3, 32, 32), (32, 3, 7, 7), kind, padding=3)
        assert first == ("implicit" if kind == "backward_data" else "direct")
    # strided rows and many output channels: the forward on the general engine, dw direct
    assert path((8, 3, 224, 224), (64, 3, 7, 7), padding=3, stride=2) == "implicit"
    assert path((8, 3, 224, 224), (64, 3, 7, 7), "backward_weights", padding=3,
                stride=2) == "direct"
    assert path(x, w3, "backward_data", padding=3) == "implicit"   # pad > R-1: no Winograd dx
    assert path(x, (64, 64, 5, 5), padding=2) == "winograd"
    assert path(x, (64, 64, 5, 5), "backward_weights", padding=2) == "implicit"
    # Winograd's U (36 C K values) is made per call: few tiles of large layers go elsewhere
    assert path((8, 512, 7, 7), (512, 512, 3, 3), padding=1) == "implicit"
    assert path((64, 512, 7, 7), (512, 512, 3, 3), "backward_data", padding=1) == "winograd"
    assert path((1, 64, 8, 8), (96, 64, 3, 3), padding=1) == "winograd"   # U small
    assert _path(x, w3, backend="numpy", padding=1) == "reference"
    with pytest.raises(ValueError, match="kind"):
        conv_ops.plan(x, w3, kind="sideways")


def test_plan_says_why_and_ran(fast_backend):
    """plan() gives the blocking and a one-line reason; conv_ops.last records the plan each
    pass really ran (what a test of a path asserts)."""
    x = np.ones((2, 16, 9, 9), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    p = conv_ops.plan(x, w, stride=2, padding=1, backend=fast_backend)
    assert p.path == "implicit" and p.kind == "forward"
    assert {"nc", "kc", "chunks", "parts"} <= set(p.blocking) and "\n" not in str(p)
    assert "stride (2, 2)" in p.reason
    y = fi.conv2d(x, w, stride=2, padding=1, backend=fast_backend)
    assert conv_ops.last["forward"] == p
    fi.conv2d_backward(np.ones_like(y), x, w, stride=2, padding=1, need=("dw",),
                       backend=fast_backend)
    assert conv_ops.last["backward_weights"].path == "implicit"
    fi.conv2d(x, w[:, :1], padding=1, groups=16, backend=fast_backend)
    assert conv_ops.last["forward"].path == "depthwise"


def test_plan_is_backend_neutral():
    """Given the same CPU, thread count and geometry, the planner gives both fast backends the
    same plan, Winograd F(2x2,7x7) included."""
    for geo in [((4, 64, 56, 56), (64, 64, 3, 3), 1, 1), ((8, 3, 32, 32), (32, 3, 7, 7), 1, 3),
                ((8, 256, 14, 14), (512, 256, 3, 3), 2, 1), ((8, 32, 112, 112), (32, 1, 3, 3),
                                                             1, 1),
                ((4, 64, 56, 56), (64, 64, 7, 7), 1, 3)]:
        xs, ws, stride, pad = geo
        g = conv_ops._geometry(xs, ws, stride, pad, 1, ws[0] if ws[1] == 1 else 1)
        for kind in ("forward", "backward_data", "backward_weights"):
            for isa in ("avx512", "avx2", "portable"):
                a = conv_ops.make_plan(kind, g, 4, isa, 2, "c")
                b = conv_ops.make_plan(kind, g, 4, isa, 2, "numba")
                assert a == b
    g7 = conv_ops._geometry((4, 64, 56, 56), (64, 64, 7, 7), 1, 3, 1, 1)
    assert conv_ops.make_plan("forward", g7, 4, "avx512", 2, "numba").path == "winograd"


@pytest.mark.parametrize("cfg", FIXED[:4] + FIXED[5:8], ids=cid)
def test_non_contiguous_and_not_mutated(backend, cfg):
    """Strided views give the result of their contiguous copies; inputs are left alone."""
    x, w, b, dy = make(cfg, np.float32, seed=1)
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend=backend)

    def strided(a):
        big = np.zeros(tuple(2 * d + 1 for d in a.shape), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view

    xs, ws, bs, dys = strided(x), np.asfortranarray(w), strided(b), strided(dy)
    assert not xs.flags.c_contiguous and not ws.flags.c_contiguous
    copies = [a.copy() for a in (xs, ws, bs, dys)]
    y = fi.conv2d(xs, ws, bs, **kw)
    grads = fi.conv2d_backward(dys, xs, ws, **kw)
    np.testing.assert_array_equal(y, fi.conv2d(x, w, b, **kw))
    for g, want in zip(grads, fi.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_array_equal(g, want)
    for a, c in zip((xs, ws, bs, dys), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("need", [("dx",), ("dw",), ("db",), ("dx", "db"), "dw", ()])
def test_need_computes_only_what_is_asked(backend, need):
    cfg = FIXED[1]
    x, w, b, dy = make(cfg, np.float64)
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend=backend)
    full = fi.conv2d_backward(dy, x, w, **kw)
    got = fi.conv2d_backward(dy, x, w, need=need, **kw)
    names = (need,) if isinstance(need, str) else need
    for name, g, f in zip(("dx", "dw", "db"), got, full):
        if name in names:
            np.testing.assert_allclose(g, f, rtol=1e-12, atol=1e-12)
        else:
            assert g is None
    assert fi.conv2d_backward(dy, x, w, has_bias=False, **kw)[2] is None


def test_no_bias_and_empty_batch(backend):
    x = rng(5).standard_normal((0, 3, 6, 6))
    w = rng(6).standard_normal((4, 3, 3, 3))
    y = fi.conv2d(x, w, padding=1, backend=backend)
    assert y.shape == (0, 4, 6, 6)
    dx, dw, db = fi.conv2d_backward(y, x, w, padding=1, backend=backend)
    assert dx.shape == x.shape and not dw.any() and not db.any()
    x1 = rng(7).standard_normal((2, 3, 6, 6))
    np.testing.assert_allclose(fi.conv2d(x1, w, None, padding=1, backend=backend),
                               fi.conv2d(x1, w, np.zeros(4), padding=1, backend=backend))


# ---- the Winograd path -----------------------------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k", [3, 5])
def test_winograd_error(fast_backend, dt, k):
    """Winograd F(4x4,3x3) / F(2x2,5x5) (y, dx) and F(3x3,4x4) (dw) against a float64
    reference: max error / max |result|. Measured, both backends alike: float32 3x3 y 5.4e-6,
    dx 5.3e-6, dw 4.1e-6; 5x5 y 4.2e-6, dx 3.9e-6 (the general engine: 6e-7); float64 about
    1e-14."""
    r = rng(11, k)
    p = k // 2
    x = r.standard_normal((4, 64, 16, 16))
    w = r.standard_normal((64, 64, k, k)) * np.sqrt(2 / (64 * k * k))
    dy = r.standard_normal((4, 64, 16, 16))
    assert _path(x, w, padding=p, backend=fast_backend) == "winograd"
    want = fi.conv2d(x, w, padding=p, backend="numpy")
    want_dx, want_dw, _ = fi.conv2d_backward(dy, x, w, padding=p, need=("dx", "dw"),
                                             backend="numpy")
    got = fi.conv2d(x.astype(dt), w.astype(dt), padding=p, backend=fast_backend)
    got_dx, got_dw, _ = fi.conv2d_backward(dy.astype(dt), x.astype(dt), w.astype(dt), padding=p,
                                           need=("dx", "dw"), backend=fast_backend)
    assert conv_ops.last["backward_weights"].path == ("winograd" if k == 3 else "implicit")
    errs = [np.abs(g - wt).max() / np.abs(wt).max()
            for g, wt in ((got, want), (got_dx, want_dx), (got_dw, want_dw))]
    limit = 1e-5 if dt == np.float32 else 1e-13
    assert max(errs) < limit, errs


def test_c_vector_paths_agree():
    """The portable and AVX2 builds of the C kernels give the reference's results too."""
    if _c.lib is None:
        pytest.skip(f"C backend unavailable: {_c.reason}")
    for path in ("portable", "avx2"):
        with _c.isa_cap(path):
            for cfg in (FIXED[0], FIXED[3], FIXED[5], FIXED[6], FIXED[7], SMALL[0], SMALL[1],
                        SMALL[3], SMALL[6], SMALL[7]):
                x, w, b, dy = make(cfg, np.float32, seed=3)
                _, _, stride, padding, dilation, groups = cfg
                kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
                want, bounds = reference_all(cfg, x, w, b, dy)
                got = (fi.conv2d(x, w, b, backend="c", **kw),) + fi.conv2d_backward(
                    dy, x, w, backend="c", **kw)
                K, Cg, R, S = w.shape
                n = (Cg * R * S + 1, K * R * S, dy.size, dy.size)
                for g, wnt, bd, nn in zip(got, want, bounds, n):
                    assert_close(g, wnt, bd, nn, np.float32, 8.0, f"path {path}")


# ---- the reference against PyTorch and finite differences ------------------------------------

def torch_conv(x, w, b, stride, padding, dilation, groups):
    """PyTorch's conv2d with our explicit padding (F.pad first: asymmetric and "same" with
    stride > 1 are beyond F.conv2d's own padding argument)."""
    (pt, pb), (pl, pr) = padding
    xp = F.pad(x, (pl, pr, pt, pb))
    return F.conv2d(xp, w, b, stride=stride, padding=0, dilation=dilation, groups=groups)


@pytest.mark.parametrize("cfg", CONFIGS[:24] + FIXED, ids=cid)
def test_reference_matches_torch(cfg):
    x, w, b, dy = make(cfg, np.float64, seed=2)
    _, _, stride, padding, dilation, groups = cfg
    geo = conv_ops._geometry(x.shape, w.shape, stride, padding, dilation, groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    stride2 = (stride, stride) if isinstance(stride, int) else tuple(stride)   # (geo's is 1
    ty = torch_conv(tx, tw, tb, stride2, geo.padding, geo.dilation, groups)   # on 1-out axes)
    ty.backward(torch.tensor(dy))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend="numpy")
    y = fi.conv2d(x, w, b, **kw)
    dx, dw, db = fi.conv2d_backward(dy, x, w, **kw)
    assert y.shape == tuple(ty.shape)
    for got, want in ((y, ty.detach()), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


def test_fast_backends_match_torch_float32(fast_backend):
    """Directly against PyTorch in float32 for the benchmark's kinds of layer (small)."""
    torch.manual_seed(0)
    for (xs, ws, pad, g) in [((2, 32, 14, 14), (32, 32, 3, 3), 1, 1),
                             ((2, 16, 14, 14), (16, 16, 5, 5), 2, 1),
                             ((2, 16, 14, 14), (16, 16, 7, 7), 3, 1),
                             ((2, 3, 28, 28), (16, 3, 3, 3), 1, 1),
                             ((2, 16, 14, 14), (16, 1, 3, 3), 1, 16)]:
        tx, tw = torch.randn(xs, requires_grad=True), torch.randn(ws, requires_grad=True)
        ty = F.conv2d(tx, tw, padding="same", groups=g)
        tdy = torch.randn(ty.shape)
        ty.backward(tdy)
        y = fi.conv2d(tx.detach().numpy(), tw.detach().numpy(), padding="same", groups=g,
                      backend=fast_backend)
        dx, dw, db = fi.conv2d_backward(tdy.numpy(), tx.detach().numpy(), tw.detach().numpy(),
                                        padding="same", groups=g, backend=fast_backend)
        for got, want in ((y, ty.detach()), (dx, tx.grad), (dw, tw.grad), (db, tdy.sum((0, 2, 3)))):
            want = want.numpy()
            assert np.abs(got - want).max() <= 2e-5 * max(1.0, np.abs(want).max())


FD_CONFIGS = [
    ((2, 3, 5, 6), (4, 3, 3, 2), 1, 1, 1, 1),
    ((1, 4, 7, 5), (4, 2, 2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2), 2),
    ((2, 2, 6, 6), (2, 1, 3, 3), 2, "same", 1, 2),
]


@pytest.mark.parametrize("cfg", FD_CONFIGS, ids=cid)
def test_reference_backward_finite_differences(cfg):
    """Centred differences (h = 1e-6, float64) of L = sum(y * g) on sampled elements."""
    x, w, b, g = make(cfg, np.float64, seed=4)
    _, _, stride, padding, dilation, groups = cfg
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend="numpy")

    def loss(x_, w_, b_):
        return float(np.sum(fi.conv2d(x_, w_, b_, **kw) * g))

    dx, dw, db = fi.conv2d_backward(g, x, w, **kw)
    h = 1e-6
    r = rng(9)
    for name, arr, grad in (("x", x, dx), ("w", w, dw), ("b", b, db)):
        for flat in r.choice(arr.size, size=min(arr.size, 12), replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args_p = {"x": (plus, w, b), "w": (x, plus, b), "b": (x, w, plus)}[name]
            args_m = {"x": (minus, w, b), "w": (x, minus, b), "b": (x, w, minus)}[name]
            num = (loss(*args_p) - loss(*args_m)) / (2 * h)
            rel = abs(num - grad[idx]) / max(1e-8, abs(num) + abs(grad[idx]))
            assert rel < 1e-6, (name, idx, num, grad[idx])


# ---- output shapes and "same" ------------------------------------------------------------------

@pytest.mark.parametrize("size,kernel,stride,dilation", [
    (7, 3, 1, 1), (8, 4, 1, 1), (7, 3, 2, 1), (8, 3, 2, 1), (9, 5, 3, 2), (1, 7, 3, 1),
    (10, 2, 3, 3)])
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_same_padding_convention(size, kernel, stride, dilation):
    """'same': ceil(in / stride) outputs for any stride, the odd pad at the bottom/right; with
    stride 1 exactly PyTorch's padding='same'."""
    shape = fi.conv2d_output_shape((1, 1, size, size + 1), (1, 1, kernel, kernel), stride,
                                   "same", dilation)
    assert shape == (1, 1, -(-size // stride), -(-(size + 1) // stride))
    geo = conv_ops._geometry((1, 1, size, size), (1, 1, kernel, kernel), stride, "same",
                             dilation, 1)
    (top, bottom), _ = geo.padding
    assert bottom - top in (0, 1)
    if stride == 1:
        x = torch.randn(1, 1, size, size)
        w = torch.randn(1, 1, kernel, kernel)
        want = F.conv2d(x, w, padding="same", dilation=dilation).numpy()
        got = fi.conv2d(x.numpy(), w.numpy(), padding="same", dilation=dilation,
                        backend="numpy")
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_output_shape_forms():
    x, w = (2, 4, 10, 12), (6, 4, 3, 5)
    assert fi.conv2d_output_shape(x, w) == (2, 6, 8, 8)
    assert fi.conv2d_output_shape(x, w, padding="valid") == (2, 6, 8, 8)
    assert fi.conv2d_output_shape(x, w, padding=(1, 2)) == (2, 6, 10, 12)
    assert fi.conv2d_output_shape(x, w, padding=((0, 1), (2, 0))) == (2, 6, 9, 10)
    assert fi.conv2d_output_shape(x, w, stride=(2, 3), dilation=(1, 2)) == (2, 6, 4, 2)
    assert fi.conv2d_output_shape(np.zeros(x), np.zeros(w), padding="same") == (2, 6, 10, 12)


# ---- bad input -----------------------------------------------------------------------------------

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(x=np.zeros((2, 5, 8, 8), np.float32)), ValueError, r"channels do not match.*4 x 1"),
    (dict(w=np.zeros((6, 2, 3, 3), np.float32), groups=3), ValueError,
     r"in channels, 4\) must be divisible by groups \(3\)"),
    (dict(w=np.zeros((5, 2, 3, 3), np.float32), groups=2), ValueError,
     r"out channels, 5\) must be divisible by groups \(2\)"),
    (dict(w=np.zeros((6, 4, 9, 3), np.float32)), ValueError, r"kernel larger.*8 x 8.*9 x 3"),
    (dict(dilation=5), ValueError, r"kernel larger.*11 x 11"),
    (dict(padding=-1), ValueError, r"padding must be >= 0.*negative padding"),
    (dict(padding=((0, -1), (0, 0))), ValueError, r"padding\[0\].*negative padding"),
    (dict(stride=0), ValueError, r"stride must be positive.*non-positive stride"),
    (dict(stride=(1, -2)), ValueError, r"stride must be positive"),
    (dict(dilation=(0, 1)), ValueError, r"dilation must be positive"),
    (dict(x=np.zeros((4, 8, 8), np.float32)), ValueError, r"x must be 4-D \(N, C, H, W\)"),
    (dict(w=np.zeros((6, 4, 3), np.float32)), ValueError, r"w must be 4-D"),
    (dict(w=W.astype(np.float64)), TypeError, r"w has dtype float64 but x has dtype float32"),
    (dict(x=X.astype(np.int64), w=W.astype(np.int64)), TypeError, r"x must have dtype float32"),
    (dict(padding="full"), ValueError, r"padding must be one of 'same', 'valid', got 'full'"),
    (dict(padding=(1, 2, 3)), TypeError, r"padding must be an int or a pair"),
    (dict(padding=1.5), TypeError, r"padding must be an int"),
    (dict(groups=0), ValueError, r"groups must be a positive int"),
    (dict(groups=1.0), TypeError, r"groups must be a positive int"),
    (dict(b=np.zeros(5, np.float32)), ValueError, r"b must have shape \(6,\)"),
    (dict(b=np.zeros(6, np.float64)), TypeError, r"b has dtype float64"),
    (dict(x=[[1.0]]), TypeError, r"x must be a numpy.ndarray"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(x=X, w=W, b=None, stride=1, padding=0, dilation=1, groups=1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        fi.conv2d(**args)


def test_bad_backward_input():
    dy = np.zeros((2, 6, 6, 6), np.float32)
    fi.conv2d_backward(dy, X, W)
    with pytest.raises(ValueError, match=r"dy must have the shape of conv2d's output \(2, 6, 6, 6"):
        fi.conv2d_backward(np.zeros((2, 6, 8, 8), np.float32), X, W)
    with pytest.raises(TypeError, match="x has dtype float64 but dy has dtype float32"):
        fi.conv2d_backward(dy, X.astype(np.float64), W)
    with pytest.raises(ValueError, match="need"):
        fi.conv2d_backward(dy, X, W, need=("dx", "dz"))
    with pytest.raises(TypeError, match="has_bias"):
        fi.conv2d_backward(dy, X, W, has_bias=1)
    with pytest.raises(ValueError, match="channels do not match"):
        fi.conv2d_backward(dy, X, W, groups=2)
    with pytest.raises(ValueError, match="x_shape must be 4-D"):
        fi.conv2d_output_shape((4, 8, 8), (6, 4, 3, 3))


def test_torch_refuses_what_we_check():
    """Our errors cover what PyTorch refuses (its messages for comparison)."""
    with pytest.raises(RuntimeError, match="expected input.*to have 4 channels"):
        F.conv2d(torch.zeros(2, 5, 8, 8), torch.zeros(6, 4, 3, 3))
    with pytest.raises(RuntimeError, match="padding='same' is not supported for strided"):
        F.conv2d(torch.zeros(2, 4, 8, 8), torch.zeros(6, 4, 3, 3), stride=2, padding="same")


@pytest.mark.parametrize("case", [
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),                       # general engine
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1, stride=2)),
    ((2, 4, 9, 9), (4, 1, 3, 3), dict(padding=1, groups=4)),             # depthwise
    ((2, 4, 9, 9), (4, 1, 3, 3), dict(padding=1, stride=2, groups=4)),
    ((2, 64, 9, 9), (64, 64, 3, 3), dict(padding=1))],                   # Winograd's shape
    ids=["general", "general-s2", "depthwise", "depthwise-s2", "winograd-shape"])
def test_inf_weight_reaches_only_its_taps(fast_backend, case):
    """dx with an inf weight is non-finite exactly where that tap lands, as in the reference:
    no NaN where it never reaches (Winograd's transforms would spread it over a tile, and
    the depthwise forward form would meet the padding's zeros: both step aside)."""
    xs, ws, kw = case
    r = rng(31)
    x, w = r.standard_normal(xs), r.standard_normal(ws)
    w[0, 0, 0, 0] = np.inf
    dy = r.standard_normal(conv_ops.conv2d_output_shape(xs, ws, **kw))
    with np.errstate(invalid="ignore"):
        want = fi.conv2d_backward(dy, x, w, need="dx", backend="numpy", **kw)[0]
    got = fi.conv2d_backward(dy, x, w, need="dx", backend=fast_backend, **kw)[0]
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m, r", [(4, 3), (2, 5), (2, 7), (3, 4)])
def test_winograd_tables_are_cook_toom(m, r):
    """B^T, G, A^T of F(m, r) (fastinit._numba.conv3x3.transforms: Cook-Toom on the planned
    points) give the 1-D correlation y[i] = sum_k d[i + k] g[k]."""
    bt, g, at = wino.transforms(m, r, wino.POINTS[7 if r == 7 else 3])
    a = m + r - 1
    assert bt.shape == (a, a) and g.shape == (a, r) and at.shape == (m, a)
    d, f = rng(13, m, r).standard_normal((2, a))
    want = [np.dot(d[i:i + r], f[:r]) for i in range(m)]
    np.testing.assert_allclose(at @ ((g @ f[:r]) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


def test_winograd_splits_output_channels_when_blocks_are_few(fast_backend, dtype,
                                                            on_one_and_two_threads):
    """One block of tiles on two threads: the output channels are split too (blocking's
    kparts), and y, dx are the same as on one thread and the reference's."""
    x, w, b, dy = make(((1, 64, 8, 8), (96, 64, 3, 3), 1, 1, 1, 1), dtype)
    assert wino.blocking(1, 64, 96, 8, 8, 3, 4, 64, 8, 2)[1] == 2
    assert wino.blocking(1, 64, 96, 8, 8, 3, 4, 64, 8, 1)[1] == 1
    assert _path(x, w, padding=1, backend=fast_backend) == "winograd"

    def run():
        return (fi.conv2d(x, w, b, padding=1, backend=fast_backend),
                fi.conv2d_backward(dy, x, w, padding=1, need=("dx",),
                                   backend=fast_backend)[0])
    one, two = on_one_and_two_threads(run)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)
    want = fi.conv2d(x, w, b, padding=1, backend="numpy")
    np.testing.assert_allclose(one[0], want, rtol=0, atol=1e-4 * np.abs(want).max()
                               if dtype == np.float32 else 1e-12 * np.abs(want).max())


def test_winograd_scratch_is_bounded_by_a_block():
    """A thread's Winograd scratch depends on the channels and the blocking, not on the batch
    or the image size."""
    dt = np.dtype(np.float32)
    sizes = {wino._geo((n, 64, h, h), 64, (h, h), 3, 1, 1, dt)[1] for n in (8, 64)
             for h in (56, 224)}
    assert len(sizes) == 1 and sizes.pop() < 4 * 1024 * 1024
