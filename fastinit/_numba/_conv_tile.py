"""Register tiles for convolution that the GEMM tile factory cannot serve: a "dot" tile for
weight gradients and a channel-vector tile for large kernels.

The GEMM tile of :mod:`fastinit._numba._tile` keeps C[r, j] with j along the vector lanes. The
weight gradient of a depthwise (or narrow grouped) convolution has no such dimension: each
output is one long dot product, ``dw[c, tap] = sum over pixels dy[c, p] * x[c, p + off(tap)]``.
This tile holds ``rows x cols`` accumulators of ``lanes`` floats, runs the reduction *along*
the lanes over a 2-D pixel range (``nrows`` rows of ``rowlen`` values, the last vector of each
row a masked load, so nothing outside the row is read) and adds the horizontal sums into C::

    C[r, t] += sum_{y < nrows, i < rowlen} a[a_off + r*a_rs + y*a_ys + i]
                                          * b[b_off + b_tab[t] + y*b_ys + i]

for r < m, t < n (rows r >= m read row m-1, columns t >= n read column n-1: their sums are
not stored). Offsets and strides count elements. Call (inside njit code)::

    dot(nrows, rowlen, a, a_off, a_rs, a_ys, b, b_off, b_tab, b_ys, c, c_off, ldc, m, n)

What is *not* here: anything but float32/float64, threads, validation. Should move beside the
GEMM tile factory (``_tile.py``) once that file settles: it shares its helpers.

:func:`make_channel_tile` makes the other tile convolution needs beyond the GEMM's: output
channels along the vectors, output pixels of one row broadcast from the padded image through
the tap table (its docstring); :func:`make_copy_rows` copies short rows in masked vectors.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._tile import VECTOR_BYTES

__all__ = ["make_dot_tile", "make_channel_tile", "make_copy_rows"]


def _splat(builder, vecty, scalar):
    zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), vecty.count), None)
    one = builder.insert_element(ir.Constant(vecty, ir.Undefined), scalar,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vecty, ir.Undefined), zero_mask)


def _declare(module, name, fnty):
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, fnty, name=name)


def _hsum(builder, vec):
    """Sum of the lanes of ``vec`` by halving (log2(lanes) shuffles and adds)."""
    width = vec.type.count
    while width > 1:
        half = width // 2
        lo = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                          list(range(half))))
        hi = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                          list(range(half, width))))
        vec = builder.fadd(lo, hi)
        width = half
    return builder.extract_element(vec, ir.Constant(ir.IntType(32), 0))


def make_dot_tile(rows, cols, vector_bytes=None):
    """A dot tile of ``rows`` x ``cols`` accumulators (see the module docstring)."""
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def dot(typingctx, nrows, rowlen, a, a_off, a_rs, a_ys, b, b_off, b_tab, b_ys, c, c_off, ldc,
            m, n):
        if not all(isinstance(t, types.Array) for t in (a, b, c, b_tab)):
            return None
        dt = c.dtype
        if dt not in (types.float32, types.float64) or a.dtype != dt or b.dtype != dt:
            return None
        if not isinstance(b_tab.dtype, types.Integer):
            return None
        ints = (nrows, rowlen, a_off, a_rs, a_ys, b_off, b_ys, c_off, ldc, m, n)
        if not all(isinstance(t, types.Integer) for t in ints):
            return None
        sig = types.void(nrows, rowlen, a, a_off, a_rs, a_ys, b, b_off, b_tab, b_ys, c, c_off,
                         ldc, m, n)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            (nrows_v, rowlen_v, a_v, a_off_v, a_rs_v, a_ys_v, b_v, b_off_v, tab_v, b_ys_v, c_v,
             c_off_v, ldc_v, m_v, n_v) = args

            def as_i64(i):
                return context.cast(builder, args[i], tys[i], types.intp)

            nrows_v, rowlen_v, a_off_v, a_rs_v, a_ys_v = (as_i64(i) for i in (0, 1, 3, 4, 5))
            b_off_v, b_ys_v, c_off_v, ldc_v, m_v, n_v = (as_i64(i) for i in (7, 9, 11, 12, 13, 14))
            elt = context.get_value_type(dt)
            width = vbytes // (dt.bitwidth // 8)
            align = dt.bitwidth // 8
            vecty = ir.VectorType(elt, width)
            vptr = vecty.as_pointer()
            bits = dt.bitwidth
            fma = _declare(builder.module, f"llvm.fma.v{width}f{bits}",
                           ir.FunctionType(vecty, [vecty] * 3))
            masky = ir.VectorType(ir.IntType(1), width)
            mload = _declare(builder.module, f"llvm.masked.load.v{width}f{bits}.p0",
                             ir.FunctionType(vecty, [vptr, ir.IntType(32), masky, vecty]))

            def data(ty, value):
                return context.make_array(ty)(context, builder, value).data

            a0 = builder.gep(data(tys[2], a_v), [a_off_v])
            b0 = builder.gep(data(tys[6], b_v), [b_off_v])
            c0 = builder.gep(data(tys[10], c_v), [c_off_v])
            table = data(tys[8], tab_v)
            tab_ty = tys[8].dtype
            one = ir.Constant(i64, 1)
            a_rows, b_cols = [], []
            for r in range(rows):
                rr = ir.Constant(i64, r)
                rr = builder.select(builder.icmp_signed("<", rr, m_v), rr, builder.sub(m_v, one))
                a_rows.append(builder.gep(a0, [builder.mul(a_rs_v, rr)]))
            for t in range(cols):
                tt = ir.Constant(i64, t)
                tt = builder.select(builder.icmp_signed("<", tt, n_v), tt, builder.sub(n_v, one))
                off = builder.load(builder.gep(table, [tt]))
                b_cols.append(builder.gep(b0, [context.cast(builder, off, tab_ty, types.intp)]))

            zero = ir.Constant(vecty, None)
            slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(cols)]
                     for _ in range(rows)]
            nfull = builder.sdiv(rowlen_v, ir.Constant(i64, width))
            tail = builder.sub(rowlen_v, builder.mul(nfull, ir.Constant(i64, width)))
            lane_ids = ir.Constant(ir.VectorType(i64, width),
                                   [ir.Constant(i64, j) for j in range(width)])
            tmask = builder.icmp_signed("<", lane_ids,
                                        _splat(builder, ir.VectorType(i64, width), tail))
            align32 = ir.Constant(ir.IntType(32), align)

            def step(aoff, boff, masked):
                acc = [[builder.load(s) for s in row] for row in slots]
                bv = []
                for t in range(cols):
                    p = builder.bitcast(builder.gep(b_cols[t], [boff]), vptr)
                    bv.append(builder.call(mload, [p, align32, tmask, zero]) if masked
                              else builder.load(p, align=align))
                for r in range(rows):
                    p = builder.bitcast(builder.gep(a_rows[r], [aoff]), vptr)
                    av = (builder.call(mload, [p, align32, tmask, zero]) if masked
                          else builder.load(p, align=align))
                    for t in range(cols):
                        acc[r][t] = builder.call(fma, [av, bv[t], acc[r][t]])
                for row, srow in zip(acc, slots):
                    for value, slot in zip(row, srow):
                        builder.store(value, slot)

            with cgutils.for_range(builder, nrows_v, intp=i64) as yl:
                arow = builder.mul(yl.index, a_ys_v)
                brow = builder.mul(yl.index, b_ys_v)
                with cgutils.for_range(builder, nfull, intp=i64) as vl:
                    off = builder.mul(vl.index, ir.Constant(i64, width))
                    step(builder.add(arow, off), builder.add(brow, off), False)
                has_tail = builder.icmp_signed(">", tail, ir.Constant(i64, 0))
                with builder.if_then(has_tail):
                    off = builder.mul(nfull, ir.Constant(i64, width))
                    step(builder.add(arow, off), builder.add(brow, off), True)

            for r in range(rows):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, r), m_v)):
                    rowp = builder.gep(c0, [builder.mul(ldc_v, ir.Constant(i64, r))])
                    for t in range(cols):
                        with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, t), n_v)):
                            p = builder.gep(rowp, [ir.Constant(i64, t)])
                            total = _hsum(builder, builder.load(slots[r][t]))
                            builder.store(builder.fadd(builder.load(p), total), p)
            return context.get_dummy_value()

        return sig, codegen

    return dot


def make_channel_tile(rows, nvec, vector_bytes=None):
    """A tile with output channels along the vectors, for direct convolution with large
    kernels (no dropped columns, unlike the pixel-vector GEMM tile over a flattened image)::

        C[r, j] = sum_{k < kc} a[a_off + r + tab[k]] * b[b_off + k*cols + j]

    for r < rows (consecutive output pixels of one row, read from the padded image through
    the tap table tab), j < cols = nvec * lanes (packed weights, output channels contiguous);
    C[r, j] = c[c_off + r*cols + j] is stored for r < m. Call (inside njit code)::

        tile(kc, a, a_off, tab, b, b_off, c, c_off, m)
    """
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def tile(typingctx, kc, a, a_off, tab, b, b_off, c, c_off, m):
        if not all(isinstance(t, types.Array) for t in (a, tab, b, c)):
            return None
        dt = c.dtype
        if dt not in (types.float32, types.float64) or a.dtype != dt or b.dtype != dt:
            return None
        if not isinstance(tab.dtype, types.Integer) or not all(
                isinstance(t, types.Integer) for t in (kc, a_off, b_off, c_off, m)):
            return None
        sig = types.void(kc, a, a_off, tab, b, b_off, c, c_off, m)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)

            def as_i64(i):
                return context.cast(builder, args[i], tys[i], types.intp)

            kc_v, a_off_v, b_off_v, c_off_v, m_v = (as_i64(i) for i in (0, 2, 5, 7, 8))
            elt = context.get_value_type(dt)
            width = vbytes // (dt.bitwidth // 8)
            cols = nvec * width
            align = dt.bitwidth // 8
            vecty = ir.VectorType(elt, width)
            vptr = vecty.as_pointer()
            fma = _declare(builder.module, f"llvm.fma.v{width}f{dt.bitwidth}",
                           ir.FunctionType(vecty, [vecty] * 3))

            def data(i):
                return context.make_array(tys[i])(context, builder, args[i]).data

            a0 = builder.gep(data(1), [a_off_v])
            table = data(3)
            b0 = builder.gep(data(4), [b_off_v])
            c0 = builder.gep(data(6), [c_off_v])
            zero = ir.Constant(vecty, None)
            slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)]
                     for _ in range(rows)]

            def step(k, acc):
                off = context.cast(builder, builder.load(builder.gep(table, [k])), tys[3].dtype,
                                   types.intp)
                ak = builder.gep(a0, [off])
                bk = builder.gep(b0, [builder.mul(k, ir.Constant(i64, cols))])
                bv = [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, v * width)]),
                                                   vptr), align=align) for v in range(nvec)]
                for r in range(rows):
                    s = _splat(builder, vecty, builder.load(builder.gep(ak, [ir.Constant(i64, r)]),
                                                            align=align))
                    for v in range(nvec):
                        acc[r][v] = builder.call(fma, [s, bv[v], acc[r][v]])

            unroll = 2
            n_main = builder.sdiv(kc_v, ir.Constant(i64, unroll))
            for count, start, u in ((n_main, ir.Constant(i64, 0), unroll), (None, None, 1)):
                if count is None:
                    start = builder.mul(n_main, ir.Constant(i64, unroll))
                    count = builder.sub(kc_v, start)
                with cgutils.for_range(builder, count, intp=i64) as loop:
                    base = builder.add(start, builder.mul(loop.index, ir.Constant(i64, u)))
                    acc = [[builder.load(sl) for sl in row] for row in slots]
                    for i in range(u):
                        step(builder.add(base, ir.Constant(i64, i)), acc)
                    for row, srow in zip(acc, slots):
                        for value, slot in zip(row, srow):
                            builder.store(value, slot)
            for r in range(rows):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, r), m_v)):
                    for v in range(nvec):
                        p = builder.gep(c0, [ir.Constant(i64, r * cols + v * width)])
                        builder.store(builder.load(slots[r][v]), builder.bitcast(p, vptr),
                                      align=align)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def make_copy_rows(vector_bytes=None):
    """A copy of short rows in whole vectors and masked tails (tiny images: a plain loop of 4-8
    values compiles to a scalar remainder loop)::

        dst[d_off + y*d_ld + i] = src[s_off + y*s_ld + i]   for y < nrows, i < n

    Nothing outside the rows is read or written. Call (inside njit code)::

        copy(dst, d_off, d_ld, src, s_off, s_ld, nrows, n)
    """
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def copy(typingctx, dst, d_off, d_ld, src, s_off, s_ld, nrows, n):
        if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
            return None
        dt = dst.dtype
        if dt not in (types.float32, types.float64) or src.dtype != dt:
            return None
        if not all(isinstance(t, types.Integer) for t in (d_off, d_ld, s_off, s_ld, nrows, n)):
            return None
        sig = types.void(dst, d_off, d_ld, src, s_off, s_ld, nrows, n)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            dst_v, d_off_v, d_ld_v, src_v, s_off_v, s_ld_v, nrows_v, n_v = (
                context.cast(builder, v, t, types.intp) if isinstance(t, types.Integer) else v
                for v, t in zip(args, tys))
            elt = context.get_value_type(dt)
            width = vbytes // (dt.bitwidth // 8)
            align = dt.bitwidth // 8
            vecty = ir.VectorType(elt, width)
            vptr = vecty.as_pointer()
            bits = dt.bitwidth
            masky = ir.VectorType(ir.IntType(1), width)
            mload = _declare(builder.module, f"llvm.masked.load.v{width}f{bits}.p0",
                             ir.FunctionType(vecty, [vptr, ir.IntType(32), masky, vecty]))
            mstore = _declare(builder.module, f"llvm.masked.store.v{width}f{bits}.p0",
                              ir.FunctionType(ir.VoidType(), [vecty, vptr, ir.IntType(32),
                                                              masky]))
            d0 = builder.gep(context.make_array(tys[0])(context, builder, dst_v).data, [d_off_v])
            s0 = builder.gep(context.make_array(tys[3])(context, builder, src_v).data, [s_off_v])
            wv = ir.Constant(i64, width)
            nfull = builder.sdiv(n_v, wv)
            tail = builder.sub(n_v, builder.mul(nfull, wv))
            lane_ids = ir.Constant(ir.VectorType(i64, width),
                                   [ir.Constant(i64, j) for j in range(width)])
            tmask = builder.icmp_signed("<", lane_ids,
                                        _splat(builder, ir.VectorType(i64, width), tail))
            align32 = ir.Constant(ir.IntType(32), align)
            zero = ir.Constant(vecty, None)
            with cgutils.for_range(builder, nrows_v, intp=i64) as yl:
                drow = builder.gep(d0, [builder.mul(yl.index, d_ld_v)])
                srow = builder.gep(s0, [builder.mul(yl.index, s_ld_v)])
                with cgutils.for_range(builder, nfull, intp=i64) as vl:
                    off = builder.mul(vl.index, wv)
                    v = builder.load(builder.bitcast(builder.gep(srow, [off]), vptr), align=align)
                    builder.store(v, builder.bitcast(builder.gep(drow, [off]), vptr), align=align)
                with builder.if_then(builder.icmp_signed(">", tail, ir.Constant(i64, 0))):
                    off = builder.mul(nfull, wv)
                    v = builder.call(mload, [builder.bitcast(builder.gep(srow, [off]), vptr),
                                             align32, tmask, zero])
                    builder.call(mstore, [v, builder.bitcast(builder.gep(drow, [off]), vptr),
                                          align32, tmask])
            return context.get_dummy_value()

        return sig, codegen

    return copy
