"""Dense ops: matmul, linear, linear_backward on every backend against the NumPy reference,
the reference against PyTorch and finite differences, the register tiles on their own, and
every bad input.

Tolerance: a product of k terms in floating point is off by at most about k * eps * (|A| @ |B|)
elementwise (the classic gamma_k bound); two implementations that sum in different orders
differ by at most twice that, so that is what every comparison allows.
"""
import numba
import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit import _c
from conftest import c_builds, numeric_grad, rel_error

SEED = 20240611
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}

# (M, N, K): the scalar case, primes, tails around the tile sizes (14 x 32 / 14 x 16 on
# AVX-512, 6 x 16 / 6 x 8 on AVX2, 4 x 8 portable), around 1024, tall-skinny, short-wide,
# empty, and past the blocking depth (K > 256) and the direct/packed threshold.
SHAPES = [
    (1, 1, 1), (7, 13, 17), (17, 31, 13), (31, 7, 29),
    (13, 31, 5), (14, 32, 9), (15, 33, 11), (5, 15, 3), (6, 16, 8), (7, 17, 6),
    (28, 64, 40), (29, 65, 257), (43, 47, 300),
    (1023, 33, 65), (97, 1025, 13), (33, 31, 1023),
    (2000, 3, 7), (3, 2000, 7), (500, 2, 300), (2, 500, 300),
    (0, 5, 3), (5, 0, 3), (4, 6, 0),
]
BIG = [(257, 130, 513), (300, 301, 400), (130, 512, 300), (200, 301, 96), (120, 130, 140), (300, 10, 700),
       (128, 256, 784), (256, 784, 128),  # past the MACs bound, direct by A's size
       (5, 40, 9000), (33, 7, 4500),  # direct with K in 2-3 blocks
       (1, 1, 20000), (4, 4, 3000)]  # dot products over K chunks (when the layouts allow)


def rng(*salt):
    return np.random.default_rng([SEED, *salt])


def assert_product_close(got, want, a, b, dtype):
    """|got - want| <= 2 k eps (|a| @ |b|) + tiny, elementwise (see the module docstring)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    k = a.shape[-1]
    bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    tol = 2 * max(k, 1) * EPS[dtype] * bound + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert np.all(err <= tol), f"max excess {np.max(err - tol)} (max err {err.max()})"


def views(x, kind):
    """x as a C-contiguous, transposed (F-contiguous) or non-contiguous (strided) array of
    the same values."""
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "f":
        return np.asfortranarray(x)
    big = np.zeros((x.shape[0] * 2 + 1, x.shape[1] * 3 + 2), x.dtype)
    v = big[1::2, 2::3]
    v[...] = x
    return v


# ---- matmul --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_matches_reference(fast_backend, dtype, shape):
    m, n, k = shape
    r = rng(m, n, k)
    a = r.standard_normal((m, k)).astype(dtype)
    b = r.standard_normal((k, n)).astype(dtype)
    want = fi.matmul(a, b, backend="numpy")
    got = fi.matmul(a, b, backend=fast_backend)
    assert got.flags.c_contiguous
    assert_product_close(got, want, a, b, dtype)


@pytest.mark.parametrize("kinds", ["cc", "fc", "cf", "ff", "sc", "cs", "sf", "fs"])
@pytest.mark.parametrize("shape", BIG + [(29, 33, 17)], ids=lambda s: "x".join(map(str, s)))
def test_matmul_layouts(fast_backend, dtype, shape, kinds):
    """Transposed (F-contiguous) and strided operands give the same product."""
    m, n, k = shape
    r = rng(m, n, k, ord(kinds[0]))
    a0 = r.standard_normal((m, k)).astype(dtype)
    b0 = r.standard_normal((k, n)).astype(dtype)
    a, b = views(a0, kinds[0]), views(b0, kinds[1])
    a_before, b_before = a.copy(), b.copy()
    got = fi.matmul(a, b, backend=fast_backend)
    assert_product_close(got, a0 @ b0, a0, b0, dtype)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


def test_transposed_operands_not_copied(monkeypatch, fast_backend):
    """x @ w.T and dy.T @ x reach the GEMM as the original arrays plus a flag: no copy."""
    seen = []
    if fast_backend == "numba":
        from fastinit._numba import gemm as mod
        real = mod.gemm

        def spy(*args, **kwargs):
            seen.extend(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(mod, "gemm", spy)
    else:
        from fastinit._ckernels import dense as mod

        class FfiSpy:
            def from_buffer(self, ctype, arr):
                seen.append(arr)
                return _c.ffi.from_buffer(ctype, arr)

            def __getattr__(self, name):
                return getattr(_c.ffi, name)

        class CSpy:
            ffi, lib, check = FfiSpy(), _c.lib, staticmethod(_c.check)

        monkeypatch.setattr(mod, "_c", CSpy)
    x = np.ones((5, 7), np.float32)
    w = np.ones((3, 7), np.float32)
    dy = np.ones((5, 3), np.float32)
    fi.matmul(x, w.T, backend=fast_backend)
    fi.linear(x, w, backend=fast_backend)
    fi.linear_backward(dy, x, w, backend=fast_backend)
    arrays = [a for a in seen if isinstance(a, np.ndarray)]
    for src in (w, dy):
        assert any(a is src or (a.base is src and a.flags.c_contiguous) for a in arrays)
    assert not any(a.shape == (7, 3) and a.flags.c_contiguous and a.base is None for a in arrays)


def test_matmul_out(backend, dtype):
    r = rng(1)
    a = r.standard_normal((20, 30)).astype(dtype)
    b = r.standard_normal((30, 40)).astype(dtype)
    out = np.full((20, 40), np.nan, dtype)
    res = fi.matmul(a, b, out=out, backend=backend)
    assert res is out
    assert_product_close(out, a @ b, a, b, dtype)


def test_linear_out(backend, dtype):
    r = rng(2)
    x = r.standard_normal((20, 30)).astype(dtype)
    w = r.standard_normal((40, 30)).astype(dtype)
    b = r.standard_normal(40).astype(dtype)
    out = np.full((20, 40), np.nan, dtype)
    assert fi.linear(x, w, b, out=out, backend=backend) is out
    assert_product_close(out - b, x @ w.T, x, w.T, dtype)
    with pytest.raises(ValueError, match="overlap"):
        fi.linear(x, np.ones((30, 30), dtype), out=x, backend=backend)


def test_backend_and_out_are_keyword_only():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError):
        fi.matmul(a, a, None, "numpy")
    with pytest.raises(TypeError):
        fi.linear(a, a, None, "numpy")
    with pytest.raises(TypeError):
        fi.linear_backward(a, a, a, True)


def test_matmul_out_overlapping_an_operand(backend, dtype):
    """out= may be an operand itself (as in numpy): the result is still the product."""
    r = rng(5)
    for n in (9, 300):
        a = r.standard_normal((n, n)).astype(dtype)
        b = r.standard_normal((n, n)).astype(dtype)
        want = a @ b
        a2, b2 = a.copy(), b.copy()
        assert fi.matmul(a2, b2, out=a2, backend=backend) is a2
        assert_product_close(a2, want, a, b, dtype)
        assert fi.matmul(a, b2, out=b2, backend=backend) is b2
        assert_product_close(b2, want, a, b, dtype)


def test_matmul_batched(fast_backend, dtype):
    r = rng(2)
    a = r.standard_normal((3, 9, 20)).astype(dtype)
    b = r.standard_normal((3, 20, 11)).astype(dtype)
    w = r.standard_normal((20, 11)).astype(dtype)
    b1 = r.standard_normal((1, 20, 11)).astype(dtype)
    cases = [(a, b), (a, w), (a[0], b), (a, b1), (a.transpose(0, 2, 1).copy().transpose(0, 2, 1), b),
             (a[:, ::2], b)]
    for x, y in cases:
        got = fi.matmul(x, y, backend=fast_backend)
        want = np.matmul(x, y)
        assert got.shape == want.shape
        for i in range(got.shape[0]):
            xi = x if x.ndim == 2 else x[min(i, x.shape[0] - 1)]
            yi = y if y.ndim == 2 else y[min(i, y.shape[0] - 1)]
            assert_product_close(got[i], want[i], xi, yi, dtype)


def test_matmul_large_and_threads(fast_backend):
    """A product big enough for the packed, threaded path at 1 and 2 threads, both dtypes."""
    r = rng(3)
    before = fi.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            fi.set_num_threads(threads)
            for dtype in (np.float32, np.float64):
                a = r.standard_normal((301, 600)).astype(dtype)
                b = r.standard_normal((600, 1100)).astype(dtype)
                assert_product_close(fi.matmul(a, b, backend=fast_backend), a @ b, a, b, dtype)
    finally:
        fi.set_num_threads(before)


@pytest.mark.skipif(_c.lib is None, reason="C extension not built")
@pytest.mark.parametrize("build", ["portable", "avx2", "avx512"])
def test_c_gemm_every_vector_path(build, dtype):
    """The C GEMM on each instruction set (those the CPU lacks are skipped, saying so)."""
    if build not in c_builds():
        pytest.skip(f"this CPU cannot run the {build} build")
    with _c.isa_cap(build):
        for m, n, k in [(1, 1, 1), (7, 13, 17), (15, 33, 11), (29, 65, 257), (130, 301, 300)]:
            r = rng(m, n, k, len(build))
            a = r.standard_normal((m, k)).astype(dtype)
            b = r.standard_normal((k, n)).astype(dtype)
            for x, y in [(a, b), (np.asfortranarray(a), np.asfortranarray(b))]:
                assert_product_close(fi.matmul(x, y, backend="c"), a @ b, a, b, dtype)


def test_matmul_reference_matches_torch(dtype):
    r = rng(4)
    a = r.standard_normal((37, 53)).astype(dtype)
    b = r.standard_normal((53, 19)).astype(dtype)
    want = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    assert_product_close(fi.matmul(a, b, backend="numpy"), want, a, b, dtype)


# ---- linear ----------------------------------------------------------------------------------

# K in 2-3 blocks (the bias must be added once): (300, 1100, 40) on the large path, (4, 5000, 6)
# on the direct one; (6, 0, 5): K = 0; the last two: dot products over K chunks
LINEAR_SHAPES = [(1, 1, 1), (7, 13, 17), (64, 784, 256), (64, 256, 10), (50, 20, 3), (129, 31, 33),
                 (5, 3, 0), (300, 1100, 40), (4, 5000, 6), (6, 0, 5), (1, 20000, 1), (3, 3000, 2)]


def linear_data(n, fin, fout, dtype, salt=0):
    r = rng(n, fin, fout, salt)
    x = r.standard_normal((n, fin)).astype(dtype)
    w = (r.standard_normal((fout, fin)) / np.sqrt(max(fin, 1))).astype(dtype)
    b = r.standard_normal(fout).astype(dtype)
    dy = r.standard_normal((n, fout)).astype(dtype)
    return x, w, b, dy


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_matches_reference(fast_backend, dtype, shape):
    x, w, b, _ = linear_data(*shape, dtype)
    for bias in (b, None):
        want = fi.linear(x, w, bias, backend="numpy")
        got = fi.linear(x, w, bias, backend=fast_backend)
        # the bias adds one more rounding per element
        assert_product_close(got, want, np.c_[x, np.ones(len(x), dtype)],
                             np.c_[w, np.ones(len(w), dtype)].T, dtype)


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_backward_matches_reference(fast_backend, dtype, shape):
    x, w, _, dy = linear_data(*shape, dtype, salt=1)
    want = fi.linear_backward(dy, x, w, backend="numpy")
    got = fi.linear_backward(dy, x, w, backend=fast_backend)
    assert_product_close(got[0], want[0], dy, w, dtype)
    assert_product_close(got[1], want[1], dy.T, x, dtype)
    assert_product_close(got[2][None], want[2][None], np.ones((1, len(dy)), dtype), dy, dtype)
    dx, dw, db = fi.linear_backward(dy, x, w, has_bias=False, backend=fast_backend)
    assert db is None
    np.testing.assert_array_equal(dx, got[0])
    np.testing.assert_array_equal(dw, got[1])


def test_linear_transposed_and_strided_inputs(fast_backend, dtype):
    x, w, b, dy = linear_data(70, 45, 33, dtype, salt=2)
    want = fi.linear(x, w, b, backend="numpy")
    wantb = fi.linear_backward(dy, x, w, backend="numpy")
    for kind in ("f", "s"):
        xs, ws, dys = views(x, kind), views(w, kind), views(dy, kind)
        copies = [a.copy() for a in (xs, ws, dys)]
        got = fi.linear(xs, ws, b[::-1].copy()[::-1], backend=fast_backend)
        np.testing.assert_allclose(got, want, rtol=0, atol=200 * EPS[dtype] * np.abs(want).max())
        gotb = fi.linear_backward(dys, xs, ws, backend=fast_backend)
        for g, h in zip(gotb, wantb):
            np.testing.assert_allclose(g, h, rtol=0, atol=400 * EPS[dtype] * np.abs(h).max())
        for arr, before in zip((xs, ws, dys), copies):
            np.testing.assert_array_equal(arr, before)


@pytest.mark.parametrize("shape", [(8, 5, 3), (64, 30, 10)], ids=lambda s: "x".join(map(str, s)))
def test_linear_reference_matches_torch(dtype, shape):
    x, w, b, dy = linear_data(*shape, dtype, salt=3)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.from_numpy(dy))
    y = fi.linear(x, w, b, backend="numpy")
    dx, dw, db = fi.linear_backward(dy, x, w, backend="numpy")
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dw, tw.grad.numpy(), **tol)
    np.testing.assert_allclose(db, tb.grad.numpy(), **tol)


def test_fast_linear_matches_torch(fast_backend):
    x, w, b, dy = linear_data(100, 784, 256, np.float32, salt=4)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(fi.linear(x, w, b, backend=fast_backend), ty.detach().numpy(),
                               rtol=1e-4, atol=1e-4)
    for g, t in zip(fi.linear_backward(dy, x, w, backend=fast_backend), (tx, tw, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=2e-4)


def test_linear_backward_finite_differences():
    """The reference gradients against centred differences of L = sum(linear(x, w, b) * dy)."""
    x, w, b, dy = linear_data(4, 5, 3, np.float64, salt=5)

    def loss():
        return float(np.sum(fi.linear(x, w, b, backend="numpy") * dy))

    dx, dw, db = fi.linear_backward(dy, x, w, backend="numpy")
    assert rel_error(dx, numeric_grad(loss, x, 1e-6)) < 1e-7
    assert rel_error(dw, numeric_grad(loss, w, 1e-6)) < 1e-7
    assert rel_error(db, numeric_grad(loss, b, 1e-6)) < 1e-7


# ---- the register tiles on their own (every vector width and addressing) --------------------

@pytest.mark.parametrize("vector_bytes", [16, 32, 64])
def test_numba_tile_factory(vector_bytes, dtype):
    """make_tile at each vector width: packed, strided and offset-table addressing, edge
    masks and beta (LLVM lowers widths the CPU lacks to narrower vectors: slower, still exact)."""
    from fastinit._numba._tile import make_tile

    rows = 3
    tiles = {mode: make_tile(rows, 2, a_mode, mode, vector_bytes=vector_bytes)
             for mode, a_mode in (("packed", "packed"), ("strided", "strided"),
                                  ("table", "packed"))}
    cols = tiles["packed"].cols(dtype)
    k = 7
    r = rng(vector_bytes, k)
    A = r.standard_normal((rows, k)).astype(dtype)
    B = r.standard_normal((k, cols)).astype(dtype)
    ap = np.ascontiguousarray(A.T).reshape(-1)
    order = r.permutation(k)
    table = (order * (cols + 3)).astype(np.int64)
    bt = np.zeros(k * (cols + 3), dtype)
    for kk in range(k):
        bt[table[kk]:table[kk] + cols] = B[kk]
    packed, strided, tabled = (tiles[m].fn for m in ("packed", "strided", "table"))

    @numba.njit
    def run(c, m, n, beta, mode, ap, a, bp, bt, table):
        ldc = c.shape[1]
        cf = c.reshape(-1)
        if mode == 0:
            packed(k, ap, 0, 0, 0, bp, 0, 0, cf, 0, ldc, m, n, beta)
        elif mode == 1:
            strided(k, a, 0, k, 1, bp, 0, cols, cf, 0, ldc, m, n, beta)
        else:
            tabled(k, ap, 0, 0, 0, bt, 0, table, cf, 0, ldc, m, n, beta)

    full = A.astype(np.float64) @ B.astype(np.float64)
    for mode in (0, 1, 2):
        for m, n in ((rows, cols), (1, cols), (rows, 1), (2, cols - 3), (1, 1)):
            c = np.full((rows, cols + 2), 7.0, dtype)
            run(c, m, n, 0, mode, ap, A.reshape(-1), B.reshape(-1), bt, table)
            want = np.full_like(c, 7.0)
            want[:m, :n] = full[:m, :n]
            np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-5)
            run(c, m, n, 1, mode, ap, A.reshape(-1), B.reshape(-1), bt, table)
            want[:m, :n] += full[:m, :n]
            np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-5)


# ---- bad input -------------------------------------------------------------------------------

def test_matmul_bad_input(backend):
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"a has shape \(3, 4\) and b has shape \(5, 6\)"):
        fi.matmul(a, b, backend=backend)
    with pytest.raises(ValueError, match="a must be 2-D or 3-D"):
        fi.matmul(np.ones(4, np.float32), b, backend=backend)
    with pytest.raises(ValueError, match="b must be 2-D or 3-D"):
        fi.matmul(a, np.ones((1, 1, 4, 2), np.float32), backend=backend)
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        fi.matmul(a, np.ones((4, 2)), backend=backend)
    with pytest.raises(TypeError, match="a must have dtype float32 or float64, got int64"):
        fi.matmul(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64), backend=backend)
    with pytest.raises(TypeError, match="a must be a numpy.ndarray"):
        fi.matmul([[1.0]], np.ones((1, 1)), backend=backend)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 2\)"):
        fi.matmul(a, np.ones((4, 2), np.float32), out=np.empty((2, 3), np.float32), backend=backend)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fi.matmul(a, np.ones((4, 2), np.float32), out=np.empty((3, 2)), backend=backend)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        fi.matmul(a, np.ones((4, 2), np.float32), out=np.empty((2, 3), np.float32).T,
                  backend=backend)
    with pytest.raises(ValueError, match="batch sizes"):
        fi.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)), backend=backend)


def test_linear_bad_input(backend):
    x = np.ones((5, 4), np.float32)
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"x has shape \(5, 4\) and w has shape \(3, 5\)"):
        fi.linear(x, np.ones((3, 5), np.float32), backend=backend)
    with pytest.raises(ValueError, match="x must be 2-D"):
        fi.linear(np.ones(4, np.float32), w, backend=backend)
    with pytest.raises(ValueError, match="b has shape"):
        fi.linear(x, w, np.ones(4, np.float32), backend=backend)
    with pytest.raises(ValueError, match="b must be 1-D"):
        fi.linear(x, w, np.ones((1, 3), np.float32), backend=backend)
    with pytest.raises(TypeError, match="w has dtype float64"):
        fi.linear(x, w.astype(np.float64), backend=backend)
    with pytest.raises(TypeError, match="b has dtype float64"):
        fi.linear(x, w, np.ones(3), backend=backend)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int32"):
        fi.linear(x.astype(np.int32), w, backend=backend)
    dy = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"dy has shape \(5, 3\) and x has shape \(6, 4\)"):
        fi.linear_backward(dy, np.ones((6, 4), np.float32), w, backend=backend)
    with pytest.raises(ValueError, match=r"dy has shape \(5, 3\) and w has shape \(2, 4\)"):
        fi.linear_backward(dy, x, np.ones((2, 4), np.float32), backend=backend)
    with pytest.raises(ValueError, match=r"x has shape \(5, 4\) and w has shape \(3, 2\)"):
        fi.linear_backward(dy, x, np.ones((3, 2), np.float32), backend=backend)
    with pytest.raises(TypeError, match="x has dtype float64"):
        fi.linear_backward(dy, x.astype(np.float64), w, backend=backend)
    with pytest.raises(TypeError, match="has_bias must be True or False"):
        fi.linear_backward(dy, x, w, has_bias=1, backend=backend)
    with pytest.raises(TypeError, match="dy must have dtype float32 or float64, got uint8"):
        fi.linear_backward(dy.astype(np.uint8), x, w, backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        fi.matmul(np.ones((2, 2)), np.ones((2, 2)), backend="blas")


def test_dot_products_do_not_depend_on_threads(fast_backend, dtype, on_one_and_two_threads):
    """A long (1, K) @ (K, 1) or (2, K) @ (K, 3) runs as dot products over fixed K chunks added
    in order: the same bits on 1 and 2 threads, and within the product bound of float64."""
    r = np.random.default_rng(7)
    cases = [(r.standard_normal((1, 50000)), r.standard_normal((50000, 1))),
             (r.standard_normal((2, 30001)), r.standard_normal((3, 30001)).T)]
    for a, b in cases:
        a, b = a.astype(dtype), b.astype(dtype)
        runs = on_one_and_two_threads(lambda: fi.matmul(a, b, backend=fast_backend))
        np.testing.assert_array_equal(runs[0], runs[1])
        assert_product_close(runs[0], (a.astype(np.float64) @ b).astype(dtype), a, b, dtype)


@pytest.mark.parametrize("shape", [(7, 13), (129, 33), (300, 1500)])
def test_bias_gradient_is_float64_row_order_sums(fast_backend, dtype, shape):
    """db: each column summed in float64 in row order, then rounded once: the same bits on every
    fast backend and vector build (1500 columns: past the C kernel's stack accumulators)."""
    r = np.random.default_rng(6)
    n, fout = shape
    dy = (r.standard_normal(shape) * r.uniform(0.1, 1e3, fout)).astype(dtype)
    x = r.standard_normal((n, 3)).astype(dtype)
    w = r.standard_normal((fout, 3)).astype(dtype)
    _, _, db = fi.linear_backward(dy, x, w, need=("db",), backend=fast_backend)
    want = np.zeros(fout)
    for row in dy.astype(np.float64):
        want += row
    np.testing.assert_array_equal(db, want.astype(dtype))


def test_linear_backward_computes_only_what_is_needed(backend):
    r = np.random.default_rng(5)
    x = r.standard_normal((7, 13)).astype(np.float32)
    w = r.standard_normal((5, 13)).astype(np.float32)
    dy = r.standard_normal((7, 5)).astype(np.float32)
    full = fi.linear_backward(dy, x, w, backend=backend)
    dx, dw, db = fi.linear_backward(dy, x, w, need=("dw", "db"), backend=backend)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])
    dx, dw, db = fi.linear_backward(dy, x, w, need=("dx",), backend=backend)
    assert dw is None and db is None
    np.testing.assert_array_equal(dx, full[0])
    with pytest.raises(ValueError, match="need"):
        fi.linear_backward(dy, x, w, need=("dz",), backend=backend)
    with pytest.raises(ValueError, match="need"):  # unhashable: still the same message
        fi.linear_backward(dy, x, w, need=(["dx"],), backend=backend)
