"""Register-tile microkernels for Numba, emitted as LLVM vector IR: one factory, many tiles.
This is the one module of hand-written LLVM IR: the tile, the block transpose, the lane-wise
tile of the depthwise path and two bit casts; every other Numba kernel is plain Numba.

A *tile* computes ``C[0:m, 0:n] (+)= A[0:rows, 0:kc] @ B[0:kc, 0:cols]`` for one block of C
that fits in vector registers: ``rows x nvec`` accumulators of ``lanes`` floats each
(``cols = nvec * lanes``). Per step k it loads ``nvec`` vectors of row k of B, broadcasts each
A[r, k] and issues ``rows * nvec`` fused multiply-adds. Plain Numba loops do not keep such a
tile in registers (local arrays live on the heap, scalar locals spill: docs/performance.md),
so the tile is a ``numba.extending.intrinsic`` that writes the IR itself: ``<lanes x float>``
accumulators, ``llvm.fma``, unaligned vector loads of B, scalar loads of A folded into
broadcasts. LLVM keeps the accumulators in registers and picks the instructions.

What is *not* here: blocking, packing and threads (that is the GEMM driver in gemm.py, or a
convolution). A tile never validates; the caller guarantees every address it touches.

How the operands are addressed is chosen when the tile is made, so one factory serves GEMM
(packed panels), small GEMMs straight from the arrays, and direct convolution (offset table):

``a_mode``
    ``"packed"``  A[r, k] = ``a[a_off + k*rows + r]`` (a packed micro-panel; a_rs, a_ks unused;
                  ``panel`` rows tall instead when made with ``panel``)
    ``"strided"`` A[r, k] = ``a[a_off + r*a_rs + k*a_ks]`` (any strides, in elements); rows
                  r >= m are not read (row m-1 stands in), so A needs only m rows
    ``"table"``   A[r, k] = ``a[a_off + r*a_rs + a_ks[k]]`` (a_ks: an integer array, e.g. the
                  taps of a convolution; rows >= m read row m-1)
    ``"rowtable"`` A[r, k] = ``a[a_off + a_rs[r] + k*a_ks]`` (a_rs: an integer array of row
                  offsets; rows >= m read row m-1)
``b_mode``
    ``"packed"``  B[k, j] = ``b[b_off + k*cols + j]`` (a packed micro-panel; b_step unused)
    ``"strided"`` B[k, j] = ``b[b_off + k*b_step + j]`` (rows of B contiguous along j; all
                  ``cols`` columns of every row are read, so the caller pads the last one)
    ``"table"``   B[k, j] = ``b[b_off + b_step[k] + j]`` (b_step: an integer array of offsets,
                  e.g. the (c, r, s) taps of a convolution into a padded image)

C[r, j] is ``c[c_off + r*ldc + j]``; only ``r < m`` and ``j < n`` are stored (edge tiles are
masked vector stores: no scalar clean-up loop). ``beta`` 0 overwrites C, anything else adds
to it. Every offset and stride counts elements, not bytes. The arrays may be of any layout: only
their data pointers are used.

Call signature of a made tile (inside njit code)::

    tile(kc, a, a_off, a_rs, a_ks, b, b_off, b_step, c, c_off, ldc, m, n, beta)
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["VECTOR_BYTES", "Tile", "make_tile", "make_transpose", "make_lanes",
           "make_transform", "make_copy_add", "lanes", "f32_as_u32", "u32_as_f32"]


#: Named LLVM CPUs (NUMBA_CPU_NAME without NUMBA_CPU_FEATURES) and their vector bytes.
_CPU_VECTOR_BYTES = {
    "skylake-avx512": 64, "cascadelake": 64, "cooperlake": 64, "cannonlake": 64,
    "icelake-client": 64, "icelake-server": 64, "tigerlake": 64, "rocketlake": 64,
    "sapphirerapids": 64, "emeraldrapids": 64, "graniterapids": 64, "znver4": 64, "znver5": 64,
    "x86-64-v4": 64, "sandybridge": 32, "ivybridge": 32, "haswell": 32, "broadwell": 32,
    "skylake": 32, "alderlake": 32, "raptorlake": 32, "meteorlake": 32, "znver1": 32,
    "znver2": 32, "znver3": 32, "x86-64-v3": 32, "bdver4": 32,
}


def _vector_bytes():
    """Widest vector register Numba's target CPU has: 64 (AVX-512F), 32 (AVX), else 16 (SSE)."""
    features = numba.config.CPU_FEATURES
    name = numba.config.CPU_NAME
    if features:
        flags = {f[1:] for f in features.split(",") if f.startswith("+")}
    elif name and name != "host":
        # a named target (e.g. "generic" for a portable cache): what that CPU has
        return _CPU_VECTOR_BYTES.get(name, 16)
    else:
        import llvmlite.binding as llvm
        flags = {k for k, v in llvm.get_host_cpu_features().items() if v}
    if "avx512f" in flags:
        return 64
    if "avx" in flags:
        return 32
    return 16


#: Bytes per vector register of the target; tiles use it unless told otherwise. Numba's cache
#: is keyed by the CPU, so a cache written on one machine is not loaded on another.
VECTOR_BYTES = _vector_bytes()

#: Steps of k emitted per trip of the tile's main loop (a remainder loop takes kc % UNROLL).
UNROLL = 4


def lanes(dtype, vector_bytes=VECTOR_BYTES):
    """Floats of ``dtype`` per vector register."""
    return vector_bytes // np.dtype(dtype).itemsize


class Tile:
    """A made tile: ``tile.fn`` is the intrinsic; ``rows``, ``nvec``, ``cols(dtype)`` its shape."""

    def __init__(self, fn, rows, nvec, a_mode, b_mode, vector_bytes):
        self.fn, self.rows, self.nvec = fn, rows, nvec
        self.a_mode, self.b_mode, self.vector_bytes = a_mode, b_mode, vector_bytes

    def cols(self, dtype):
        return self.nvec * lanes(dtype, self.vector_bytes)

    def __repr__(self):
        return (f"Tile(rows={self.rows}, nvec={self.nvec}, a_mode={self.a_mode!r}, "
                f"b_mode={self.b_mode!r}, vector_bytes={self.vector_bytes})")


def _splat(builder, vecty, scalar):
    zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), vecty.count), None)
    one = builder.insert_element(ir.Constant(vecty, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vecty, ir.Undefined), zero_mask)


def _declare(module, name, fnty):
    """The declaration of function ``name`` in ``module`` (added once)."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, fnty, name=name)


def _suffix(vecty):
    """The overload suffix of a float vector type in intrinsic names: v8f32, v4f64, ..."""
    return f"v{vecty.count}f{32 if isinstance(vecty.element, ir.FloatType) else 64}"


def _masked(module, name, vecty, store):
    """Declare llvm.masked.store / llvm.masked.load for float vectors ``vecty`` (the
    opaque-pointer names, ``.p0``: LLVM 20, llvmlite >= 0.45; see pyproject.toml)."""
    mask = ir.VectorType(ir.IntType(1), vecty.count)
    if store:
        fnty = ir.FunctionType(ir.VoidType(), [vecty, vecty.as_pointer(), ir.IntType(32), mask])
    else:
        fnty = ir.FunctionType(vecty, [vecty.as_pointer(), ir.IntType(32), mask, vecty])
    return _declare(module, f"llvm.masked.{name}.{_suffix(vecty)}.p0", fnty)


def _fma(module, vecty):
    """Declare llvm.fma for float vectors ``vecty``."""
    return _declare(module, f"llvm.fma.{_suffix(vecty)}", ir.FunctionType(vecty, [vecty] * 3))


def _first_lanes(builder, width, n):
    """The mask of lanes j < n (an i64) of a ``width``-lane vector."""
    i64 = ir.IntType(64)
    ids = ir.Constant(ir.VectorType(i64, width), [ir.Constant(i64, j) for j in range(width)])
    return builder.icmp_signed("<", ids, _splat(builder, ir.VectorType(i64, width), n))


# ---- what every intrinsic here types and emits the same way --------------------------------------
def _float_type(arrays, ints, tables=()):
    """The element type of the array types ``arrays`` when they all hold float32 or all float64,
    every type of ``ints`` is an integer and every one of ``tables`` an integer array; else
    None (the intrinsic does not apply to these arguments)."""
    if not all(isinstance(t, types.Array) for t in arrays):
        return None
    dt = arrays[0].dtype
    if dt not in (types.float32, types.float64) or any(t.dtype != dt for t in arrays):
        return None
    if not all(isinstance(t, types.Integer) for t in ints):
        return None
    if not all(isinstance(t, types.Array) and isinstance(t.dtype, types.Integer) for t in tables):
        return None
    return dt


def _intp_args(context, builder, signature, args):
    """The arguments of a codegen, every integer as an intp (i64); arrays as they are."""
    return [context.cast(builder, v, t, types.intp) if isinstance(t, types.Integer) else v
            for v, t in zip(args, signature.args)]


def _vector(context, dt, vbytes, width=None):
    """(bytes per element, lanes, vector type, its pointer type) of ``dt`` in ``vbytes``-byte
    vectors (or ``width`` lanes)."""
    align = dt.bitwidth // 8
    width = width or vbytes // align
    vecty = ir.VectorType(context.get_value_type(dt), width)
    return align, width, vecty, vecty.as_pointer()


def _data(context, builder, ty, value, off):
    """The address of element ``off`` of array ``value`` (of Numba type ``ty``)."""
    return builder.gep(context.make_array(ty)(context, builder, value).data, [off])


def _reader(context, builder, ty, value):
    """``read(i)``: element i of the integer array ``value`` (of Numba type ``ty``) as an intp."""
    base = context.make_array(ty)(context, builder, value).data
    return lambda i: context.cast(builder, builder.load(builder.gep(base, [i])), ty.dtype,
                                  types.intp)


def make_tile(rows, nvec, a_mode="packed", b_mode="packed", vector_bytes=None, panel=None,
              row_step=None):
    """Make a register tile of ``rows`` x ``nvec`` vectors (see the module docstring);
    ``panel``: a packed A's panel height when the tile reads only its first ``rows`` rows
    (A[r, k] = a[a_off + k*panel + r]); ``row_step``: a strided or table A's a_rs, fixed
    when the tile is made (one base pointer instead of one per row)."""
    if a_mode not in ("packed", "strided", "table", "rowtable"):
        raise ValueError(f"a_mode must be 'packed', 'strided', 'table' or 'rowtable', "
                         f"got {a_mode!r}")
    if b_mode not in ("packed", "strided", "table"):
        raise ValueError(f"b_mode must be 'packed', 'strided' or 'table', got {b_mode!r}")
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def tile(typingctx, kc, a, a_off, a_rs, a_ks, b, b_off, b_step, c, c_off, ldc, m, n, beta):
        ints = [kc, a_off, b_off, c_off, ldc, m, n, beta]
        ints += [a_rs] if a_mode != "rowtable" else []
        ints += [a_ks] if a_mode != "table" else []
        tables = [a_ks] if a_mode == "table" else [a_rs] if a_mode == "rowtable" else []
        (tables if b_mode == "table" else ints).append(b_step)
        dt = _float_type((a, b, c), ints, tables)
        if dt is None:
            return None
        sig = types.void(kc, a, a_off, a_rs, a_ks, b, b_off, b_step, c, c_off, ldc, m, n, beta)

        def codegen(context, builder, signature, args):
            (kc_v, a_v, a_off_v, a_rs_v, a_ks_v, b_v, b_off_v, b_step_v, c_v, c_off_v, ldc_v,
             m_v, n_v, beta_v) = _intp_args(context, builder, signature, args)
            tys = signature.args
            i64 = ir.IntType(64)
            if a_mode == "table":        # a_ks: the offset of each k (a tap table)
                a_tab = _reader(context, builder, tys[4], a_ks_v)
            if a_mode == "rowtable":     # a_rs: the offset of each row
                a_tab = _reader(context, builder, tys[3], a_rs_v)
            if b_mode == "table":        # b_step: the offset of each k
                b_tab = _reader(context, builder, tys[7], b_step_v)
            align, width, vecty, vptr = _vector(context, dt, vbytes)
            cols = nvec * width
            fma = _fma(builder.module, vecty)
            a0 = _data(context, builder, tys[1], a_v, a_off_v)
            b0 = _data(context, builder, tys[5], b_v, b_off_v)
            c0 = _data(context, builder, tys[8], c_v, c_off_v)
            if a_mode != "packed":
                # Rows past m read row m-1 instead (their sums are never stored): a strided A
                # is the caller's array itself, and must not be read past its end.
                last = builder.sub(m_v, ir.Constant(i64, 1))
                a_rows = []
                for r in range(rows):
                    rr = ir.Constant(i64, r)
                    rr = builder.select(builder.icmp_signed("<", rr, m_v), rr, last)
                    if a_mode == "rowtable":
                        a_rows.append(builder.gep(a0, [a_tab(rr)]))
                    elif row_step is not None:
                        a_rows.append(builder.mul(ir.Constant(i64, row_step), rr))
                    else:
                        a_rows.append(builder.gep(a0, [builder.mul(a_rs_v, rr)]))

            # Prefetch the C tile for writing: its rows are ldc apart and, in a large product,
            # out of cache; the loads of the update would otherwise stall after the k loop.
            prefetch = _declare(builder.module, "llvm.prefetch.p0",
                                ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] +
                                                [ir.IntType(32)] * 3))
            line = 64 // align
            for r in range(rows):
                rowp = builder.gep(c0, [builder.mul(ldc_v, ir.Constant(i64, r))])
                for j in range(0, cols, line):
                    builder.call(prefetch, [
                        builder.bitcast(builder.gep(rowp, [ir.Constant(i64, j)]), ir.IntType(8).as_pointer()),
                        ir.Constant(ir.IntType(32), 1), ir.Constant(ir.IntType(32), 3),
                        ir.Constant(ir.IntType(32), 1)])

            zero = ir.Constant(vecty, None)
            acc_slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)]
                         for _ in range(rows)]

            def step(k, acc):
                if b_mode == "packed":
                    brow = builder.gep(b0, [builder.mul(k, ir.Constant(i64, cols))])
                elif b_mode == "strided":
                    brow = builder.gep(b0, [builder.mul(k, b_step_v)])
                else:
                    brow = builder.gep(b0, [b_tab(k)])
                bv = [builder.load(builder.bitcast(builder.gep(brow, [ir.Constant(i64, v * width)]),
                                                   vptr), align=align)
                      for v in range(nvec)]
                if a_mode == "packed":
                    acol = builder.gep(a0, [builder.mul(k, ir.Constant(i64, panel or rows))])
                elif a_mode == "table":
                    koff = a_tab(k)
                else:
                    koff = builder.mul(k, a_ks_v)
                if row_step is not None and a_mode != "packed":
                    akb = builder.gep(a0, [koff])
                for r in range(rows):
                    if a_mode == "packed":
                        ap = builder.gep(acol, [ir.Constant(i64, r)])
                    elif row_step is not None:   # a_rows[r]: the row's offset from a0
                        ap = builder.gep(akb, [a_rows[r]])
                    else:
                        ap = builder.gep(a_rows[r], [koff])
                    s = _splat(builder, vecty, builder.load(ap, align=align))
                    for v in range(nvec):
                        acc[r][v] = builder.call(fma, [s, bv[v], acc[r][v]])

            def run(count, start, unroll):
                # for i in range(count): steps start + i*unroll + u, u < unroll
                with cgutils.for_range(builder, count, intp=i64) as loop:
                    base = builder.add(start, builder.mul(loop.index, ir.Constant(i64, unroll)))
                    acc = [[builder.load(s) for s in row] for row in acc_slots]
                    for u in range(unroll):
                        step(builder.add(base, ir.Constant(i64, u)), acc)
                    for row, slots in zip(acc, acc_slots):
                        for value, slot in zip(row, slots):
                            builder.store(value, slot)

            n_main = builder.sdiv(kc_v, ir.Constant(i64, UNROLL))
            run(n_main, ir.Constant(i64, 0), UNROLL)
            done = builder.mul(n_main, ir.Constant(i64, UNROLL))
            run(builder.sub(kc_v, done), done, 1)

            acc = [[builder.load(s) for s in row] for row in acc_slots]
            accumulate = builder.icmp_signed("!=", beta_v, ir.Constant(i64, 0))
            full = builder.and_(builder.icmp_signed("==", m_v, ir.Constant(i64, rows)),
                                builder.icmp_signed("==", n_v, ir.Constant(i64, cols)))
            mstore = _masked(builder.module, "store", vecty, True)
            mload = _masked(builder.module, "load", vecty, False)
            align32 = ir.Constant(ir.IntType(32), align)

            def cptr(r, v):
                rowp = builder.gep(c0, [builder.mul(ldc_v, ir.Constant(i64, r))])
                return builder.bitcast(builder.gep(rowp, [ir.Constant(i64, v * width)]), vptr)

            def store_full(add):
                for r in range(rows):
                    for v in range(nvec):
                        p = cptr(r, v)
                        val = acc[r][v]
                        if add:
                            val = builder.fadd(val, builder.load(p, align=align))
                        builder.store(val, p, align=align)

            def store_edge(add):
                masks = [_first_lanes(builder, width, builder.sub(n_v, ir.Constant(i64, v * width)))
                         for v in range(nvec)]
                for r in range(rows):
                    with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, r), m_v)):
                        for v in range(nvec):
                            p = cptr(r, v)
                            val = acc[r][v]
                            if add:
                                old = builder.call(mload, [p, align32, masks[v], zero])
                                val = builder.fadd(val, old)
                            builder.call(mstore, [val, p, align32, masks[v]])

            with builder.if_else(full) as (whole, edge):
                for case, store in ((whole, store_full), (edge, store_edge)):
                    with case, builder.if_else(accumulate) as (yes, no):
                        with yes:
                            store(True)
                        with no:
                            store(False)
            return context.get_dummy_value()

        return sig, codegen

    return Tile(tile, rows, nvec, a_mode, b_mode, vbytes)


def make_lanes(rows, table=False, vector_bytes=None):
    """Make a lane-wise product tile: ``rows`` accumulator vectors, each lane its own sum (the
    depthwise convolution, channels along the vectors)::

        lanes(kc, a, a_off, a_step, b, b_off, b_step, b_rs, c, c_off, c_rs, beta, i0)
        C[r] = [C[r] or a start vector] + sum_k A[k] * B[r, k]   (lane by lane), r < rows

    with A[k] = ``a[a_off + k*a_step : +lanes]``, B[r, k] = ``b[b_off + k*b_step + r*b_rs :
    +lanes]`` (``table``: ``b_step`` is an integer array, B[r, k] = ``b[b_off + b_step[k] +
    r*b_rs : +lanes]``) and C[r] = ``c[c_off + r*c_rs : +lanes]``; ``beta`` 0 overwrites C, 1
    adds to it, 2 starts every row from ``c[i0 : +lanes]`` (a bias). One row sums in four interleaved chains (the FMAs of one chain wait on each
    other). Whole vectors only: every offset names ``lanes`` values that exist.
    """
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes
    chains = 4 if rows == 1 else 1

    @intrinsic
    def lanes_tile(typingctx, kc, a, a_off, a_step, b, b_off, b_step, b_rs, c, c_off, c_rs,
                   beta, i0):
        ints = [kc, a_off, a_step, b_off, b_rs, c_off, c_rs, beta, i0]
        dt = _float_type((a, b, c), ints + ([] if table else [b_step]), [b_step] if table else [])
        if dt is None:
            return None
        sig = types.void(kc, a, a_off, a_step, b, b_off, b_step, b_rs, c, c_off, c_rs, beta, i0)

        def codegen(context, builder, signature, args):
            (kc_v, a_v, a_off_v, a_step_v, b_v, b_off_v, b_step_v, b_rs_v, c_v, c_off_v, c_rs_v,
             beta_v, i0_v) = _intp_args(context, builder, signature, args)
            tys = signature.args
            i64 = ir.IntType(64)
            align, width, vecty, vptr = _vector(context, dt, vbytes)
            fma = _fma(builder.module, vecty)
            a0 = _data(context, builder, tys[1], a_v, a_off_v)
            b0 = _data(context, builder, tys[4], b_v, b_off_v)
            c0 = _data(context, builder, tys[8], c_v, c_off_v)
            if table:
                b_tab = _reader(context, builder, tys[6], b_step_v)

            def vload(p):
                return builder.load(builder.bitcast(p, vptr), align=align)

            zero = ir.Constant(vecty, None)
            slots = [cgutils.alloca_once_value(builder, zero) for _ in range(rows * chains)]

            def step(k, chain):
                av = vload(builder.gep(a0, [builder.mul(k, a_step_v)]))
                if table:
                    off = b_tab(k)
                else:
                    off = builder.mul(k, b_step_v)
                for r in range(rows):
                    p = builder.gep(b0, [builder.add(off, builder.mul(b_rs_v, ir.Constant(i64, r)))])
                    slot = slots[r * chains + chain]
                    builder.store(builder.call(fma, [av, vload(p), builder.load(slot)]), slot)

            n_main = builder.sdiv(kc_v, ir.Constant(i64, chains))
            with cgutils.for_range(builder, n_main, intp=i64) as loop:
                base = builder.mul(loop.index, ir.Constant(i64, chains))
                for ch in range(chains):
                    step(builder.add(base, ir.Constant(i64, ch)), ch)
            done = builder.mul(n_main, ir.Constant(i64, chains))
            with cgutils.for_range(builder, builder.sub(kc_v, done), intp=i64) as loop:
                step(builder.add(done, loop.index), 0)
            accumulate = builder.icmp_signed("==", beta_v, ir.Constant(i64, 1))
            start = builder.icmp_signed("==", beta_v, ir.Constant(i64, 2))
            init = vload(_data(context, builder, tys[8], c_v, builder.select(start, i0_v, c_off_v)))
            for r in range(rows):
                total = builder.load(slots[r * chains])
                for ch in range(1, chains):
                    total = builder.fadd(total, builder.load(slots[r * chains + ch]))
                p = builder.bitcast(builder.gep(c0, [builder.mul(c_rs_v, ir.Constant(i64, r))]),
                                    vptr)
                old = builder.select(start, init, builder.load(p, align=align))
                total = builder.select(builder.or_(accumulate, start), builder.fadd(total, old),
                                       total)
                builder.store(total, p, align=align)
            return context.get_dummy_value()

        return sig, codegen

    return lanes_tile


def make_transpose(rows=None, nvec=None, vector_bytes=None):
    """Make a block transpose for packing: ``rows`` rows (or ``nvec`` vectors' worth of rows,
    ``nvec * lanes``, whatever the dtype) of ``lanes`` values each, in registers.

    ``transpose(src, s_off, s_ld, valid, dst, d_off, d_ld)`` sets, for kk < lanes, r < rows::

        dst[d_off + kk*d_ld + r] = src[s_off + min(r, valid-1)*s_ld + kk]

    i.e. it turns ``rows`` row segments of a row-major array (row stride ``s_ld``) into the
    k-major layout of a packed panel, as ``lanes`` vector loads, log2(lanes) rounds of two-input
    shuffles (each round swaps one bit of the row index with one bit of the lane index) and
    vector stores. Rows are handled in groups of ``lanes``; when ``rows`` is not a multiple of
    ``lanes`` the last group's extra lanes are written too, past ``r = rows``: into the next
    ``kk``'s row (stores run in ascending kk, so it overwrites them) or, after the last one, up
    to ``lanes`` values past the block; the caller leaves room there. Rows at or past ``valid``
    repeat row ``valid-1`` (their values are never used: padding of a partial panel).
    """
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def transpose(typingctx, src, s_off, s_ld, valid, dst, d_off, d_ld):
        dt = _float_type((src, dst), (s_off, s_ld, valid, d_off, d_ld))
        if dt is None:
            return None
        sig = types.void(src, s_off, s_ld, valid, dst, d_off, d_ld)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            src_v, s_off_v, s_ld_v, valid_v, dst_v, d_off_v, d_ld_v = _intp_args(
                context, builder, signature, args)
            align, width, vecty, vptr = _vector(context, dt, vbytes)
            s0 = _data(context, builder, tys[0], src_v, s_off_v)
            d0 = _data(context, builder, tys[4], dst_v, d_off_v)
            last = builder.sub(valid_v, ir.Constant(i64, 1))
            nrows = rows if rows is not None else nvec * width
            groups = (nrows + width - 1) // width
            out = []
            for g in range(groups):
                vs = []
                for i in range(width):
                    r = ir.Constant(i64, g * width + i)
                    r = builder.select(builder.icmp_signed("<", r, valid_v), r, last)
                    p = builder.gep(s0, [builder.mul(r, s_ld_v)])
                    vs.append(builder.load(builder.bitcast(p, vptr), align=align))
                h = 1
                while h < width:
                    lo = [j if not j & h else width + j - h for j in range(width)]
                    hi = [j + h if not j & h else width + j for j in range(width)]
                    nxt = list(vs)
                    for i in range(width):
                        if i & h:
                            continue
                        a, b = vs[i], vs[i + h]
                        nxt[i] = builder.shuffle_vector(
                            a, b, ir.Constant(ir.VectorType(ir.IntType(32), width), lo))
                        nxt[i + h] = builder.shuffle_vector(
                            a, b, ir.Constant(ir.VectorType(ir.IntType(32), width), hi))
                    vs = nxt
                    h *= 2
                out.append(vs)
            for kk in range(width):
                rowp = builder.gep(d0, [builder.mul(d_ld_v, ir.Constant(i64, kk))])
                for g in range(groups):
                    p = builder.gep(rowp, [ir.Constant(i64, g * width)])
                    builder.store(out[g][kk], builder.bitcast(p, vptr), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return transpose


# ---- bit casts --------------------------------------------------------------------------------
@intrinsic
def f32_as_u32(typingctx, x):
    """The bits of float32 ``x`` as a uint32 (an LLVM ``bitcast``, no conversion: the float32
    logarithm of the random stream reads the exponent from the bits; a bitcast vectorises, a
    round trip through a 1-element array view would not)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def u32_as_f32(typingctx, x):
    """The float32 whose bits are uint32 ``x``."""
    if x != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


def make_transform(t, vector_bytes=None):
    """Make a two-sided transform by the constant p x n matrix ``t`` (a Winograd table) over a
    grid of vectors::

        transform(x, x_off, xr, xc, o, o_off, o_r, o_c)
        o[o_off + i*o_r + j*o_c : +lanes] = sum_{k,l} t[i, k] X[k, l] t[j, l],  i, j < p,
        X[k, l] = x[x_off + k*xr + l*xc : +lanes]                              k, l < n

    lane by lane: columns first (t X), then rows, in registers. The entries of ``t`` are
    constants of the code: zero terms are left out, ones are additions, the others fused
    multiply-adds (at the element type's precision). Whole vectors only.
    """
    t = np.asarray(t, dtype=float)
    p, n = t.shape
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def transform(typingctx, x, x_off, xr, xc, o, o_off, o_r, o_c):
        dt = _float_type((x, o), (x_off, xr, xc, o_off, o_r, o_c))
        if dt is None:
            return None
        sig = types.void(x, x_off, xr, xc, o, o_off, o_r, o_c)

        def codegen(context, builder, signature, args):
            tys = signature.args
            x_v, x_off_v, xr_v, xc_v, o_v, o_off_v, o_r_v, o_c_v = _intp_args(
                context, builder, signature, args)
            align, width, vecty, vptr = _vector(context, dt, vbytes)
            elt = vecty.element
            i64 = ir.IntType(64)
            fma = _fma(builder.module, vecty)
            x0 = _data(context, builder, tys[0], x_v, x_off_v)
            o0 = _data(context, builder, tys[4], o_v, o_off_v)

            def at(base, i, j, rs, cs):
                off = builder.add(builder.mul(rs, ir.Constant(i64, i)),
                                  builder.mul(cs, ir.Constant(i64, j)))
                return builder.bitcast(builder.gep(base, [off]), vptr)

            def dot(coefs, vals):
                s = None
                for c, v in zip(coefs, vals):
                    if c == 0:
                        continue
                    if c == 1:
                        s = v if s is None else builder.fadd(s, v)
                    else:
                        cv = ir.Constant(vecty, [ir.Constant(elt, float(c))] * width)
                        s = builder.call(fma, [cv, v, ir.Constant(vecty, None) if s is None
                                               else s])
                return ir.Constant(vecty, None) if s is None else s

            X = [[builder.load(at(x0, k, l, xr_v, xc_v), align=align) for l in range(n)]
                 for k in range(n)]
            Y = [[dot(t[i], [X[k][l] for k in range(n)]) for l in range(n)] for i in range(p)]
            for i in range(p):
                for j in range(p):
                    builder.store(dot(t[j], Y[i]), at(o0, i, j, o_r_v, o_c_v), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return transform


def make_copy_add(width=None, vector_bytes=None):
    """Make a masked block copy that adds a value per block, on vectors of ``width`` values
    (default: a register's)::

        copy_add(src, s_off, s_ld, s_ch, dst, d_off, d_ld, d_ch, rows, n, chans, add, a_off,
                 a_step)
        dst[d_off + l*d_ch + i*d_ld + j] = src[s_off + l*s_ch + i*s_ld + j]
                                           + add[a_off + l*a_step]

    for l < chans, i < rows, j < n <= width: one vector load and store per row, masked when
    n < width (the rows of output tiles and their biases)."""
    vbytes = VECTOR_BYTES if vector_bytes is None else vector_bytes

    @intrinsic
    def copy_add(typingctx, src, s_off, s_ld, s_ch, dst, d_off, d_ld, d_ch, rows, n, chans, add,
                 a_off, a_step):
        ints = (s_off, s_ld, s_ch, d_off, d_ld, d_ch, rows, n, chans, a_off, a_step)
        dt = _float_type((src, dst, add), ints)
        if dt is None:
            return None
        sig = types.void(src, s_off, s_ld, s_ch, dst, d_off, d_ld, d_ch, rows, n, chans, add,
                         a_off, a_step)

        def codegen(context, builder, signature, args):
            tys = signature.args
            (src_v, s_off_v, s_ld_v, s_ch_v, dst_v, d_off_v, d_ld_v, d_ch_v, rows_v, n_v,
             chans_v, add_v, a_off_v, a_step_v) = _intp_args(context, builder, signature, args)
            align, lanes, vecty, vptr = _vector(context, dt, vbytes, width)
            i64 = ir.IntType(64)
            s0 = _data(context, builder, tys[0], src_v, s_off_v)
            d0 = _data(context, builder, tys[4], dst_v, d_off_v)
            a0 = _data(context, builder, tys[11], add_v, a_off_v)
            full = builder.icmp_signed(">=", n_v, ir.Constant(i64, lanes))
            mask = _first_lanes(builder, lanes, builder.select(full, ir.Constant(i64, lanes), n_v))
            mload = _masked(builder.module, "load", vecty, False)
            mstore = _masked(builder.module, "store", vecty, True)
            align32 = ir.Constant(ir.IntType(32), align)
            with cgutils.for_range(builder, chans_v, intp=i64) as ch:
                bias = _splat(builder, vecty, builder.load(builder.gep(
                    a0, [builder.mul(ch.index, a_step_v)])))
                sc = builder.gep(s0, [builder.mul(ch.index, s_ch_v)])
                dc = builder.gep(d0, [builder.mul(ch.index, d_ch_v)])
                with cgutils.for_range(builder, rows_v, intp=i64) as row:
                    sp = builder.bitcast(builder.gep(sc, [builder.mul(row.index, s_ld_v)]), vptr)
                    dp = builder.bitcast(builder.gep(dc, [builder.mul(row.index, d_ld_v)]), vptr)
                    with builder.if_else(full) as (whole, part):
                        with whole:
                            v = builder.load(sp, align=align)
                            builder.store(builder.fadd(v, bias), dp, align=align)
                        with part:
                            v = builder.call(mload, [sp, align32, mask, ir.Constant(vecty, None)])
                            builder.call(mstore, [builder.fadd(v, bias), dp, align32, mask])
            return context.get_dummy_value()

        return sig, codegen

    return copy_add
