"""Vector intrinsics of Winograd F(4x4,3x3) for Numba: the 6x6 transforms, on whole vectors.

Plain Numba loops over channels did not vectorise here (12 arrays per 1-D transform exceed
the vectoriser's alias checks; strided views take its scalar path): the transforms ran at
a fifth of the C code. These intrinsics emit the LLVM IR directly, as the tile factory of
:mod:`fastinit._numba._tile` does: ``<lanes x float>`` values, ``llvm.fma``, unaligned loads.

``input_tile(xh, x_off, px, row, V, v_off, xs, nchunk)``
    for q < nchunk, c = q*lanes: d[i][j] = xh[x_off + i*row + j*px + c : +lanes];
    V[v_off + (i*6 + j)*xs + c : +lanes] = (B^T d B)[i][j]
``output_tile(M, m_off, xs, bias, out, out_off, ps, nchunk)``
    for q < nchunk, c = q*lanes: m[xi] = M[m_off + xi*xs + c : +lanes];
    out[out_off + (i*4 + j)*ps + c : +lanes] = (A^T m A)[i][j] + bias[c : +lanes]
``store_tile16(out, out_off, ps, y, y_off, plane, ow, nl)`` (16 lanes only: float32 on
    AVX-512): the 16 pixel vectors out[out_off + p*ps : +16] transposed in registers, then
    y[y_off + l*plane + i*ow + j] = pixel (i, j) of channel l, for l < nl (a full 4x4 tile).

``hwc_block16``: 16 channels x 16 pixels of an NCHW image, transposed into channels-last rows;
``hwc_scatter16`` the same into rows at table offsets (small images into their padded copy).
``output_tile2``: the output transform of F(2x2,5x5) (A^T 2x6), the same input transform.
``filter_tile``: the filter transform G g G^T of F(4x4,3x3), ``lanes`` filters at once;
``weight_out_tile``: G^T m G, the output transform of the weight gradient, likewise.
``load_tile16`` / ``dy_tile``: the same for the weight gradient F(3x3,4x4): 4x4 dy tiles read
    from NCHW (transposed in registers), then A d A^T with A = (A^T)^T (6x4).

Matrices (Lavin & Gray 2016): B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0;
0 1 1 4 4 0; 0 1 -1 8 -8 1]. Offsets and strides count elements; nothing is validated.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._tile import VECTOR_BYTES

__all__ = ["input_tile", "output_tile", "store_tile16", "load_tile16", "dy_tile", "output_tile2",
           "hwc_block16", "hwc_scatter16", "filter_tile", "weight_out_tile"]


def _declare(module, name, fnty):
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, fnty, name=name)


class _Vec:
    """Vector helpers bound to one builder and element type."""

    def __init__(self, context, builder, dt):
        self.b = builder
        self.elt = context.get_value_type(dt)
        self.width = VECTOR_BYTES // (dt.bitwidth // 8)
        self.ty = ir.VectorType(self.elt, self.width)
        self.ptr = self.ty.as_pointer()
        self.align = dt.bitwidth // 8
        self.fma_fn = _declare(builder.module, f"llvm.fma.v{self.width}f{dt.bitwidth}",
                            ir.FunctionType(self.ty, [self.ty] * 3))

    def const(self, value):
        return ir.Constant(self.ty, [ir.Constant(self.elt, float(value))] * self.width)

    def load(self, base, off):
        return self.b.load(self.b.bitcast(self.b.gep(base, [off]), self.ptr), align=self.align)

    def store(self, value, base, off):
        self.b.store(value, self.b.bitcast(self.b.gep(base, [off]), self.ptr), align=self.align)

    def add(self, x, y):
        return self.b.fadd(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y)

    def mul(self, c, x):
        return self.b.fmul(self.const(c), x)

    def fma(self, c, x, y):
        """c*x + y"""
        return self.b.call(self.fma_fn, [self.const(c), x, y])

    def bt(self, d):
        """B^T d for 6 vectors"""
        a = self.fma(-4, d[2], d[4])
        b = self.fma(-4, d[1], d[3])
        e = self.sub(d[4], d[2])
        f = self.mul(2, self.sub(d[3], d[1]))
        return [self.fma(4, d[0], self.fma(-5, d[2], d[4])), self.add(a, b), self.sub(a, b),
                self.add(e, f), self.sub(e, f), self.fma(4, d[1], self.fma(-5, d[3], d[5]))]

    def g3(self, g):
        """G g for 3 vectors -> 6 (G of F(4x4,3x3)): [g0/4, -(g0+g1+g2)/6, -(g0-g1+g2)/6,
        g0/24 + g1/12 + g2/6, g0/24 - g1/12 + g2/6, g2]"""
        e = self.add(g[0], g[2])
        f = self.fma(1.0 / 24, g[0], self.mul(1.0 / 6, g[2]))
        h = self.mul(1.0 / 12, g[1])
        return [self.mul(0.25, g[0]), self.mul(-1.0 / 6, self.add(e, g[1])),
                self.mul(-1.0 / 6, self.sub(e, g[1])), self.add(f, h), self.sub(f, h), g[2]]

    def gt3(self, m):
        """G^T m for 6 vectors -> 3: [m0/4 - (m1+m2)/6 + (m3+m4)/24, (m2-m1)/6 + (m3-m4)/12,
        -(m1+m2)/6 + (m3+m4)/6 + m5]"""
        p = self.mul(1.0 / 6, self.add(m[1], m[2]))
        q = self.add(m[3], m[4])
        return [self.fma(1.0 / 24, q, self.sub(self.mul(0.25, m[0]), p)),
                self.fma(1.0 / 12, self.sub(m[3], m[4]), self.mul(1.0 / 6, self.sub(m[2], m[1]))),
                self.add(self.fma(1.0 / 6, q, m[5]), self.mul(-1.0, p))]

    def at(self, m):
        """A^T m for 6 vectors -> 4"""
        p, q = self.add(m[1], m[2]), self.sub(m[1], m[2])
        r, s = self.add(m[3], m[4]), self.sub(m[3], m[4])
        return [self.add(self.add(m[0], p), r), self.fma(2, s, q), self.fma(4, r, p),
                self.add(self.fma(8, s, q), m[5])]


def _data(context, builder, ty, value):
    return context.make_array(ty)(context, builder, value).data


def _ints(context, builder, sig, args, idx):
    return [context.cast(builder, args[i], sig.args[i], types.intp) for i in idx]


def _float_arrays(*tys):
    if not all(isinstance(t, types.Array) for t in tys):
        return None
    dt = tys[0].dtype
    if dt not in (types.float32, types.float64) or any(t.dtype != dt for t in tys):
        return None
    return dt


@intrinsic
def input_tile(typingctx, xh, x_off, px, row, V, v_off, xs, nchunk):
    dt = _float_arrays(xh, V)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (x_off, px, row, v_off, xs, nchunk)):
        return None
    sig = types.void(xh, x_off, px, row, V, v_off, xs, nchunk)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        x_off_v, px_v, row_v, v_off_v, xs_v, n_v = _ints(context, builder, signature, args,
                                                         (1, 2, 3, 5, 6, 7))
        x0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [x_off_v])
        v0 = builder.gep(_data(context, builder, signature.args[4], args[4]), [v_off_v])
        with cgutils.for_range(builder, n_v, intp=i64) as loop:
            c = builder.mul(loop.index, ir.Constant(i64, v.width))
            rows = []
            for i in range(6):
                ri = builder.add(c, builder.mul(row_v, ir.Constant(i64, i)))
                d = [v.load(x0, builder.add(ri, builder.mul(px_v, ir.Constant(i64, j))))
                     for j in range(6)]
                rows.append(v.bt(d))                                   # rows[i][j]
            for j in range(6):
                col = v.bt([rows[i][j] for i in range(6)])
                for i in range(6):
                    off = builder.add(c, builder.mul(xs_v, ir.Constant(i64, i * 6 + j)))
                    v.store(col[i], v0, off)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def output_tile(typingctx, M, m_off, xs, bias, out, out_off, ps, nchunk):
    dt = _float_arrays(M, bias, out)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (m_off, xs, out_off, ps, nchunk)):
        return None
    sig = types.void(M, m_off, xs, bias, out, out_off, ps, nchunk)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        m_off_v, xs_v, out_off_v, ps_v, n_v = _ints(context, builder, signature, args,
                                                    (1, 2, 5, 6, 7))
        m0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [m_off_v])
        b0 = _data(context, builder, signature.args[3], args[3])
        o0 = builder.gep(_data(context, builder, signature.args[4], args[4]), [out_off_v])
        with cgutils.for_range(builder, n_v, intp=i64) as loop:
            c = builder.mul(loop.index, ir.Constant(i64, v.width))
            cols = []
            for j in range(6):
                m = [v.load(m0, builder.add(c, builder.mul(xs_v, ir.Constant(i64, i * 6 + j))))
                     for i in range(6)]
                cols.append(v.at(m))                                   # cols[j][i]
            bias_v = v.load(b0, c)
            for i in range(4):
                ys = v.at([cols[j][i] for j in range(6)])
                for j in range(4):
                    off = builder.add(c, builder.mul(ps_v, ir.Constant(i64, i * 4 + j)))
                    v.store(v.add(ys[j], bias_v), o0, off)
        return context.get_dummy_value()

    return sig, codegen


def _shuffle(builder, a, b, mask):
    i32 = ir.IntType(32)
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, len(mask)),
                                                    [ir.Constant(i32, m) for m in mask]))


def _transpose16(builder, r):
    """The 16 x 16 transpose of the AVX-512 unpack / shuffle / shuffle_f32x4 sequence, as
    shufflevector masks (LLVM picks the instructions)."""
    def per_lane(f):
        return [f(lane, e) for lane in range(4) for e in range(4)]

    unlo = per_lane(lambda L, e: (4 * L + e // 2) + (16 if e % 2 else 0))
    unhi = per_lane(lambda L, e: (4 * L + 2 + e // 2) + (16 if e % 2 else 0))
    s44 = per_lane(lambda L, e: 4 * L + (e if e < 2 else 16 + e - 2))
    sEE = per_lane(lambda L, e: 4 * L + (2 + e if e < 2 else 16 + e))

    def f32x4(sel):  # 128-bit lanes: 0-3 from a, 4-7 from b (lane s - 4)
        return [(4 * s if s < 4 else 16 + 4 * (s - 4)) + e for s in sel for e in range(4)]

    m88 = f32x4([0, 2, 4, 6])
    mDD = f32x4([1, 3, 5, 7])
    t = [None] * 16
    for i in range(8):
        t[2 * i] = _shuffle(builder, r[2 * i], r[2 * i + 1], unlo)
        t[2 * i + 1] = _shuffle(builder, r[2 * i], r[2 * i + 1], unhi)
    r = [None] * 16
    for i in range(4):
        r[4 * i + 0] = _shuffle(builder, t[4 * i], t[4 * i + 2], s44)
        r[4 * i + 1] = _shuffle(builder, t[4 * i], t[4 * i + 2], sEE)
        r[4 * i + 2] = _shuffle(builder, t[4 * i + 1], t[4 * i + 3], s44)
        r[4 * i + 3] = _shuffle(builder, t[4 * i + 1], t[4 * i + 3], sEE)
    t = [None] * 16
    for i in range(4):
        t[i] = _shuffle(builder, r[i], r[i + 4], m88)
        t[i + 4] = _shuffle(builder, r[i], r[i + 4], mDD)
        t[i + 8] = _shuffle(builder, r[i + 8], r[i + 12], m88)
        t[i + 12] = _shuffle(builder, r[i + 8], r[i + 12], mDD)
    r = [None] * 16
    for i in range(4):
        r[i] = _shuffle(builder, t[i], t[i + 8], m88)
        r[i + 4] = _shuffle(builder, t[i + 4], t[i + 12], m88)
        r[i + 8] = _shuffle(builder, t[i], t[i + 8], mDD)
        r[i + 12] = _shuffle(builder, t[i + 4], t[i + 12], mDD)
    return r


def _scalar_tile(builder, buf, ps, img, plane, ow, nl, to_image):
    """Element-by-element move between 16 pixel vectors buf[p*ps + l] and the 4x4 pixels of
    channels l < nl in the image (rows ow apart, channels plane apart): runtime loops."""
    i64 = ir.IntType(64)
    with cgutils.for_range(builder, nl, intp=i64) as ch:
        base = builder.gep(img, [builder.mul(plane, ch.index)])
        with cgutils.for_range(builder, ir.Constant(i64, 16), intp=i64) as px:
            p = px.index
            row = builder.sdiv(p, ir.Constant(i64, 4))
            col = builder.sub(p, builder.mul(row, ir.Constant(i64, 4)))
            at_img = builder.gep(base, [builder.add(builder.mul(ow, row), col)])
            at_buf = builder.gep(buf, [builder.add(builder.mul(ps, p), ch.index)])
            src, dst = (at_buf, at_img) if to_image else (at_img, at_buf)
            builder.store(builder.load(src), dst)


@intrinsic
def store_tile16(typingctx, out, out_off, ps, y, y_off, plane, ow, nl):
    dt = _float_arrays(out, y)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (out_off, ps, y_off, plane, ow, nl)):
        return None
    sig = types.void(out, out_off, ps, y, y_off, plane, ow, nl)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        out_off_v, ps_v, y_off_v, plane_v, ow_v, nl_v = _ints(context, builder, signature, args,
                                                              (1, 2, 4, 5, 6, 7))
        o0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [out_off_v])
        y0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [y_off_v])
        if v.width != 16:  # element by element (callers use it with 16 lanes only)
            _scalar_tile(builder, o0, ps_v, y0, plane_v, ow_v, nl_v, to_image=True)
            return context.get_dummy_value()
        r = [v.load(o0, builder.mul(ps_v, ir.Constant(i64, p))) for p in range(16)]
        r = _transpose16(builder, r)
        quad = ir.VectorType(v.elt, 4)
        rows4 = builder.icmp_signed("==", ow_v, ir.Constant(i64, 4))
        for ch in range(16):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, ch), nl_v)):
                base = builder.gep(y0, [builder.mul(plane_v, ir.Constant(i64, ch))])
                with builder.if_else(rows4) as (contiguous, rows):
                    with contiguous:   # 4x4 images: the tile's rows are contiguous
                        v.store(r[ch], base, ir.Constant(i64, 0))
                    with rows:
                        for i in range(4):
                            part = _shuffle(builder, r[ch], r[ch],
                                            [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3])
                            p = builder.gep(base, [builder.mul(ow_v, ir.Constant(i64, i))])
                            builder.store(part, builder.bitcast(p, quad.as_pointer()),
                                          align=v.align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_tile16(typingctx, y, y_off, plane, ow, nl, out, out_off, ps):
    """The inverse of store_tile16: the 4x4 pixels of channels l < nl (rows ow apart, channels
    plane apart) transposed into 16 pixel vectors out[out_off + p*ps : +lanes] (16 lanes: in
    registers; other widths element by element). Channels l >= nl are not read (their lanes
    hold whatever the transpose gives: callers pass nl = 16 or zero-fill themselves)."""
    dt = _float_arrays(y, out)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (y_off, plane, ow, nl, out_off, ps)):
        return None
    sig = types.void(y, y_off, plane, ow, nl, out, out_off, ps)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        y_off_v, plane_v, ow_v, nl_v, out_off_v, ps_v = _ints(context, builder, signature, args,
                                                              (1, 2, 3, 4, 6, 7))
        y0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [y_off_v])
        o0 = builder.gep(_data(context, builder, signature.args[5], args[5]), [out_off_v])
        if v.width != 16:
            _scalar_tile(builder, o0, ps_v, y0, plane_v, ow_v, nl_v, to_image=False)
            return context.get_dummy_value()
        quad = ir.VectorType(v.elt, 4).as_pointer()
        rows4 = builder.icmp_signed("==", ow_v, ir.Constant(i64, 4))
        r = []
        for ch in range(16):
            base = builder.gep(y0, [builder.mul(plane_v, ir.Constant(i64, ch))])
            with builder.if_else(rows4) as (contiguous, rows):
                with contiguous:   # 4x4 images: the tile's rows are contiguous
                    whole = v.load(base, ir.Constant(i64, 0))
                    bb_whole = builder.block
                with rows:
                    parts = [builder.load(builder.bitcast(
                        builder.gep(base, [builder.mul(ow_v, ir.Constant(i64, i))]), quad),
                        align=v.align) for i in range(4)]
                    lo = _shuffle(builder, parts[0], parts[1], list(range(8)))
                    hi = _shuffle(builder, parts[2], parts[3], list(range(8)))
                    joined = _shuffle(builder, lo, hi, list(range(16)))
                    bb_rows = builder.block
            phi = builder.phi(v.ty)
            phi.add_incoming(whole, bb_whole)
            phi.add_incoming(joined, bb_rows)
            r.append(phi)
        r = _transpose16(builder, r)
        for p in range(16):
            v.store(r[p], o0, builder.mul(ps_v, ir.Constant(i64, p)))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def dy_tile(typingctx, src, s_off, ps, Wd, w_off, xs, nchunk):
    """Wd[w_off + (i*6 + j)*xs + c : +lanes] = (A d A^T)[i][j] for the 4x4 pixel vectors
    d[p] = src[s_off + p*ps + c : +lanes], A = (A^T)^T of F(4x4,3x3) (6x4): the dy transform
    of the weight gradient F(3x3,4x4)."""
    dt = _float_arrays(src, Wd)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (s_off, ps, w_off, xs, nchunk)):
        return None
    sig = types.void(src, s_off, ps, Wd, w_off, xs, nchunk)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        s_off_v, ps_v, w_off_v, xs_v, n_v = _ints(context, builder, signature, args,
                                                  (1, 2, 4, 5, 6))
        s0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [s_off_v])
        w0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [w_off_v])

        def a6(d):
            e, o = v.add(d[0], d[2]), v.add(d[1], d[3])
            e4 = v.fma(4, d[2], d[0])
            o4 = v.fma(8, d[3], v.mul(2, d[1]))
            return [d[0], v.add(e, o), v.sub(e, o), v.add(e4, o4), v.sub(e4, o4), d[3]]

        with cgutils.for_range(builder, n_v, intp=i64) as loop:
            c = builder.mul(loop.index, ir.Constant(i64, v.width))
            px = [v.load(s0, builder.add(c, builder.mul(ps_v, ir.Constant(i64, p))))
                  for p in range(16)]
            cols = [a6([px[i * 4 + j] for i in range(4)]) for j in range(4)]   # cols[j][i6]
            for i in range(6):
                row = a6([cols[j][i] for j in range(4)])
                for j in range(6):
                    off = builder.add(c, builder.mul(xs_v, ir.Constant(i64, i * 6 + j)))
                    v.store(row[j], w0, off)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def output_tile2(typingctx, M, m_off, xs, bias, out, out_off, ps, nchunk):
    """F(2x2,5x5): out[out_off + (i*2 + j)*ps + c : +lanes] = (A^T m A)[i][j] + bias[c:] with
    A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1] (2x6), m[xi] = M[m_off + xi*xs + c : +lanes]."""
    dt = _float_arrays(M, bias, out)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (m_off, xs, out_off, ps, nchunk)):
        return None
    sig = types.void(M, m_off, xs, bias, out, out_off, ps, nchunk)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        m_off_v, xs_v, out_off_v, ps_v, n_v = _ints(context, builder, signature, args,
                                                    (1, 2, 5, 6, 7))
        m0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [m_off_v])
        b0 = _data(context, builder, signature.args[3], args[3])
        o0 = builder.gep(_data(context, builder, signature.args[4], args[4]), [out_off_v])

        def at2(m):
            return [v.add(v.add(m[0], v.add(m[1], m[2])), v.add(m[3], m[4])),
                    v.add(v.fma(2, v.sub(m[3], m[4]), v.sub(m[1], m[2])), m[5])]

        with cgutils.for_range(builder, n_v, intp=i64) as loop:
            c = builder.mul(loop.index, ir.Constant(i64, v.width))
            cols = [at2([v.load(m0, builder.add(c, builder.mul(xs_v, ir.Constant(i64, i * 6 + j))))
                         for i in range(6)]) for j in range(6)]          # cols[j][i]
            bias_v = v.load(b0, c)
            for i in range(2):
                ys = at2([cols[j][i] for j in range(6)])
                for j in range(2):
                    off = builder.add(c, builder.mul(ps_v, ir.Constant(i64, i * 2 + j)))
                    v.store(v.add(ys[j], bias_v), o0, off)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def hwc_block16(typingctx, x, x_off, plane, xh, xh_off, ld):
    """16 channels x 16 consecutive pixels of an NCHW image (x[x_off + l*plane + j]) transposed
    in registers into channels-last rows xh[xh_off + j*ld + l] (16 lanes only; other widths
    element by element): the padding copy of the Winograd path."""
    dt = _float_arrays(x, xh)
    if dt is None or not all(isinstance(t, types.Integer)
                             for t in (x_off, plane, xh_off, ld)):
        return None
    sig = types.void(x, x_off, plane, xh, xh_off, ld)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        x_off_v, plane_v, xh_off_v, ld_v = _ints(context, builder, signature, args, (1, 2, 4, 5))
        x0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [x_off_v])
        h0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [xh_off_v])
        if v.width != 16:
            with cgutils.for_range(builder, ir.Constant(i64, 16), intp=i64) as lo:
                with cgutils.for_range(builder, ir.Constant(i64, 16), intp=i64) as jo:
                    src = builder.gep(x0, [builder.add(builder.mul(plane_v, lo.index), jo.index)])
                    dst = builder.gep(h0, [builder.add(builder.mul(ld_v, jo.index), lo.index)])
                    builder.store(builder.load(src), dst)
            return context.get_dummy_value()
        r = [v.load(x0, builder.mul(plane_v, ir.Constant(i64, ch))) for ch in range(16)]
        r = _transpose16(builder, r)
        for j in range(16):
            v.store(r[j], h0, builder.mul(ld_v, ir.Constant(i64, j)))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def filter_tile(typingctx, st, s_off, s_ld, U, u_off, u_ld):
    """U[u_off + xi*u_ld : +lanes] = (G g G^T)[xi] for the 3x3 filters of ``lanes`` output
    channels, g[r*3 + s] = st[s_off + (r*3 + s)*s_ld : +lanes] (G of F(4x4,3x3), in the data
    type): the filter transform, 9 vector loads, 36 vector stores."""
    dt = _float_arrays(st, U)
    if dt is None or not all(isinstance(t, types.Integer) for t in (s_off, s_ld, u_off, u_ld)):
        return None
    sig = types.void(st, s_off, s_ld, U, u_off, u_ld)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        s_off_v, s_ld_v, u_off_v, u_ld_v = _ints(context, builder, signature, args, (1, 2, 4, 5))
        s0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [s_off_v])
        u0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [u_off_v])
        g = [v.load(s0, builder.mul(s_ld_v, ir.Constant(i64, rs))) for rs in range(9)]
        cols = [v.g3([g[s], g[3 + s], g[6 + s]]) for s in range(3)]     # cols[s][i]
        for i in range(6):
            row = v.g3([cols[0][i], cols[1][i], cols[2][i]])
            for j in range(6):
                v.store(row[j], u0, builder.mul(u_ld_v, ir.Constant(i64, i * 6 + j)))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def weight_out_tile(typingctx, M, m_off, m_ld, out, o_off, o_ld):
    """out[o_off + (r*3 + s)*o_ld : +lanes] = (G^T m G)[r, s] for ``lanes`` (output, input)
    channel pairs, m[xi] = M[m_off + xi*m_ld : +lanes] (G of F(4x4,3x3), in the data type):
    the output transform of the weight gradient F(3x3,4x4), 36 loads, 9 stores."""
    dt = _float_arrays(M, out)
    if dt is None or not all(isinstance(t, types.Integer) for t in (m_off, m_ld, o_off, o_ld)):
        return None
    sig = types.void(M, m_off, m_ld, out, o_off, o_ld)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        m_off_v, m_ld_v, o_off_v, o_ld_v = _ints(context, builder, signature, args, (1, 2, 4, 5))
        m0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [m_off_v])
        o0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [o_off_v])
        m = [v.load(m0, builder.mul(m_ld_v, ir.Constant(i64, xi))) for xi in range(36)]
        cols = [v.gt3([m[i * 6 + j] for i in range(6)]) for j in range(6)]   # cols[j][r]
        for r in range(3):
            row = v.gt3([cols[j][r] for j in range(6)])
            for s2 in range(3):
                v.store(row[s2], o0, builder.mul(o_ld_v, ir.Constant(i64, r * 3 + s2)))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def hwc_scatter16(typingctx, x, x_off, plane, xh, xh_off, tab, t_off):
    """16 channels x 16 consecutive pixels of an NCHW image (x[x_off + l*plane + j])
    transposed in registers, pixel j's 16 channels stored at xh[xh_off + tab[t_off + j] + l]
    (16 lanes only; other widths element by element): the padding copy of small images, whose
    pixels land on rows of different lengths (tab: their offsets in the padded image)."""
    dt = _float_arrays(x, xh)
    if dt is None or not isinstance(tab, types.Array) or not isinstance(tab.dtype, types.Integer):
        return None
    if not all(isinstance(t, types.Integer) for t in (x_off, plane, xh_off, t_off)):
        return None
    sig = types.void(x, x_off, plane, xh, xh_off, tab, t_off)

    def codegen(context, builder, signature, args):
        v = _Vec(context, builder, dt)
        i64 = ir.IntType(64)
        x_off_v, plane_v, xh_off_v, t_off_v = _ints(context, builder, signature, args,
                                                    (1, 2, 4, 6))
        x0 = builder.gep(_data(context, builder, signature.args[0], args[0]), [x_off_v])
        h0 = builder.gep(_data(context, builder, signature.args[3], args[3]), [xh_off_v])
        t0 = builder.gep(_data(context, builder, signature.args[5], args[5]), [t_off_v])
        tab_ty = signature.args[5].dtype

        def dest(j):
            off = builder.load(builder.gep(t0, [j]))
            return builder.gep(h0, [context.cast(builder, off, tab_ty, types.intp)])

        if v.width != 16:
            with cgutils.for_range(builder, ir.Constant(i64, 16), intp=i64) as jo:
                d = dest(jo.index)
                with cgutils.for_range(builder, ir.Constant(i64, 16), intp=i64) as lo:
                    src = builder.gep(x0, [builder.add(builder.mul(plane_v, lo.index), jo.index)])
                    builder.store(builder.load(src), builder.gep(d, [lo.index]))
            return context.get_dummy_value()
        r = [v.load(x0, builder.mul(plane_v, ir.Constant(i64, ch))) for ch in range(16)]
        r = _transpose16(builder, r)
        for j in range(16):
            v.store(r[j], dest(ir.Constant(i64, j)), ir.Constant(i64, 0))
        return context.get_dummy_value()

    return sig, codegen
