"""Vector reductions for Numba kernels, written as LLVM IR: float64 sums in a fixed order.

fastinit's fast-math flags leave out 'reassoc' (docs/performance.md), so LLVM never vectorises
``s += x[i]``: a plain Numba reduction runs one scalar add at a time, a third of memory speed
here. These intrinsics spell the vector loop out: each reads a 1-D C-contiguous float32 or
float64 array 16 elements per step (two <8 x double> accumulators, float32 widened first),
finishes the tail in scalar code, then adds the lanes in a fixed order. The result depends only
on the data and its length, never on threads or alignment, so callers that split work into
fixed-size pieces stay reproducible across thread counts.

    shifted_sums(a, k)      -> (sum(a - k), sum((a - k)**2))          batch norm statistics
    grad_sums(dy, x, m)     -> (sum(dy), sum(dy * (x - m)))            batch norm backward
    shifted_sums_next, grad_sums_next: the same, prefetching ahead into the row read next
    abs_sum(a)              -> sum |a|                                 gradient 1-norm
    abs_max(a)              -> (max |a|, number of NaNs)               gradient inf-norm
All sums are float64. Arrays must be contiguous (callers pass rows or slices of C arrays).
    affine_stream, affine2_stream: the batch-norm output passes with non-temporal stores
The IR carries no fast-math flags: NaN and inf propagate as IEEE 754 says.
``pointer_like(address, proto)`` turns an integer address into a typed pointer (for
``numba.carray``); ``address(a)`` is the integer address of an array's data.
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import njit

#: Software prefetch distance of the batch-norm sums. The rows of one channel lie C*S elements
#: apart; the hardware prefetchers here restart at every row, so the sums prefetch 8 KB ahead
#: (on into the next row), as csrc/batchnorm.c does.
PREFETCH_BYTES = 8192
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_W = 8           # lanes per vector
_U = 2           # vectors per loop step
_F64 = ir.DoubleType()
_I32 = ir.IntType(32)


def _float_1d(t):
    return (isinstance(t, types.Array) and t.ndim == 1
            and t.dtype in (types.float32, types.float64))


def _array_parts(context, builder, aryty, value):
    ary = context.make_array(aryty)(context, builder, value=value)
    return ary.data, ary.nitems


def _splat(builder, value, vty):
    v = ir.Constant(vty, ir.Undefined)
    for lane in range(vty.count):
        v = builder.insert_element(v, value, ir.Constant(_I32, lane))
    return v


def _load_vec(builder, ptr, index, elty):
    """Elements index .. index+7 of ptr as <8 x double> (an unaligned vector load)."""
    p = builder.gep(ptr, [index])
    p = builder.bitcast(p, ir.VectorType(elty, _W).as_pointer())
    v = builder.load(p, align=4 if isinstance(elty, ir.FloatType) else 8)
    return builder.fpext(v, ir.VectorType(_F64, _W)) if isinstance(elty, ir.FloatType) else v


def _load_one(builder, ptr, index, elty):
    v = builder.load(builder.gep(ptr, [index]))
    return builder.fpext(v, _F64) if isinstance(elty, ir.FloatType) else v


def _lanes_sum(builder, vec):
    """Sum of the lanes of a <8 x double>, pairwise in a fixed order."""
    lanes = [builder.extract_element(vec, ir.Constant(_I32, i)) for i in range(_W)]
    while len(lanes) > 1:
        lanes = [builder.fadd(lanes[i], lanes[i + 1]) for i in range(0, len(lanes), 2)]
    return lanes[0]


def _lanes_max(builder, vec):
    lanes = [builder.extract_element(vec, ir.Constant(_I32, i)) for i in range(_W)]
    m = lanes[0]
    for v in lanes[1:]:
        m = builder.select(builder.fcmp_ordered(">", v, m), v, m)
    return m


def _elty(context, t):
    return context.get_value_type(t.dtype)


def _vector_loop(builder, n, body_vec, body_one, streams=()):
    """Run body_vec(index) for index = 0, 16, ... then body_one(index) for the tail.

    streams: (pointer, next pointer, element type) triples to prefetch PREFETCH_BYTES ahead,
    running on into the next row once past this one (see PREFETCH_BYTES).
    """
    intp = n.type
    step = ir.Constant(intp, _W * _U)
    nvec = builder.udiv(n, step)
    with cgutils.for_range(builder, nvec) as loop:
        base = builder.mul(loop.index, step)
        for ptr, nxt, elty in streams:
            size = 4 if isinstance(elty, ir.FloatType) else 8
            for line in range(0, _W * _U * size, 64):
                ahead = builder.add(base, ir.Constant(intp, (PREFETCH_BYTES + line) // size))
                _prefetch(builder, ptr, nxt, ahead, n)
        for u in range(_U):
            body_vec(u, builder.add(base, ir.Constant(intp, u * _W)))
    start = builder.mul(nvec, step)
    with cgutils.for_range(builder, builder.sub(n, start)) as loop:
        body_one(builder.add(start, loop.index))


def _prefetch(builder, ptr, nxt, index, n):
    """Prefetch element ``index`` of ptr, or element index - n of nxt when index >= n."""
    inside = builder.icmp_signed("<", index, n)
    addr = builder.select(inside, builder.gep(ptr, [index]),
                          builder.gep(nxt, [builder.sub(index, n)]))
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]), "llvm.prefetch.p0")
    builder.call(fn, [builder.bitcast(addr, i8p), ir.Constant(_I32, 0), ir.Constant(_I32, 3),
                      ir.Constant(_I32, 1)])


def _zeros(builder):
    vty = ir.VectorType(_F64, _W)
    return [cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * _W)) for _ in range(_U)]


def _finish(builder, slots, tail):
    """Lanes of the vector accumulators summed in a fixed order, plus the scalar tail."""
    v = builder.load(slots[0])
    for slot in slots[1:]:
        v = builder.fadd(v, builder.load(slot))
    return builder.fadd(_lanes_sum(builder, v), builder.load(tail))


def _acc_add(builder, slot, value):
    builder.store(builder.fadd(builder.load(slot), value), slot)


def _two_sums(context, builder, signature, n, streams, k, terms):
    """(sum t1, sum t2) in float64 over the n elements, (t1, t2) = terms(load, k) each:
    load(ptr, elty) reads the element(s) at the loop position, 8 as a <8 x double> in the vector
    loop and one double in the tail, and k is the float64 ``k`` splat to the same width."""
    kv = _splat(builder, k, ir.VectorType(_F64, _W))
    s1, s2 = _zeros(builder), _zeros(builder)
    t1 = cgutils.alloca_once_value(builder, ir.Constant(_F64, 0.0))
    t2 = cgutils.alloca_once_value(builder, ir.Constant(_F64, 0.0))

    def vec(u, i):
        a, b = terms(lambda ptr, elty: _load_vec(builder, ptr, i, elty), kv)
        _acc_add(builder, s1[u], a)
        _acc_add(builder, s2[u], b)

    def one(i):
        a, b = terms(lambda ptr, elty: _load_one(builder, ptr, i, elty), k)
        _acc_add(builder, t1, a)
        _acc_add(builder, t2, b)

    _vector_loop(builder, n, vec, one, streams)
    r1, r2 = _finish(builder, s1, t1), _finish(builder, s2, t2)
    return context.make_tuple(builder, signature.return_type, [r1, r2])


def _shifted_sums_codegen(context, builder, signature, args):
    ptr, n = _array_parts(context, builder, signature.args[0], args[0])
    elty = _elty(context, signature.args[0])
    streams = ()
    if len(args) == 3:
        nxt, _ = _array_parts(context, builder, signature.args[2], args[2])
        streams = ((ptr, nxt, elty),)

    def terms(load, k):
        d = builder.fsub(load(ptr, elty), k)
        return d, builder.fmul(d, d)

    k = context.cast(builder, args[1], signature.args[1], types.float64)
    return _two_sums(context, builder, signature, n, streams, k, terms)


@intrinsic
def shifted_sums(typingctx, a, shift):
    """(sum(a - shift), sum((a - shift)**2)) in float64 (a: contiguous 1-D float array)."""
    if not (_float_1d(a) and isinstance(shift, types.Float)):
        return None
    return types.UniTuple(types.float64, 2)(a, shift), _shifted_sums_codegen


@intrinsic
def shifted_sums_next(typingctx, a, shift, nxt):
    """shifted_sums(a, shift), prefetching on into ``nxt``, the row read next."""
    if not (_float_1d(a) and isinstance(shift, types.Float) and _float_1d(nxt)):
        return None
    return types.UniTuple(types.float64, 2)(a, shift, nxt), _shifted_sums_codegen


def _grad_sums_codegen(context, builder, signature, args):
    gptr, n = _array_parts(context, builder, signature.args[0], args[0])
    xptr, _ = _array_parts(context, builder, signature.args[1], args[1])
    gty = _elty(context, signature.args[0])
    xty = _elty(context, signature.args[1])
    streams = ()
    if len(args) == 5:
        gnext, _ = _array_parts(context, builder, signature.args[3], args[3])
        xnext, _ = _array_parts(context, builder, signature.args[4], args[4])
        streams = ((gptr, gnext, gty), (xptr, xnext, xty))

    def terms(load, m):
        g = load(gptr, gty)
        return g, builder.fmul(g, builder.fsub(load(xptr, xty), m))

    m = context.cast(builder, args[2], signature.args[2], types.float64)
    return _two_sums(context, builder, signature, n, streams, m, terms)


@intrinsic
def grad_sums(typingctx, dy, x, mean):
    """(sum(dy), sum(dy * (x - mean))) in float64 (dy, x: contiguous 1-D, same length)."""
    if not (_float_1d(dy) and _float_1d(x) and isinstance(mean, types.Float)):
        return None
    return types.UniTuple(types.float64, 2)(dy, x, mean), _grad_sums_codegen


@intrinsic
def grad_sums_next(typingctx, dy, x, mean, dy_next, x_next):
    """grad_sums(dy, x, mean), prefetching on into dy_next and x_next, the rows read next."""
    if not (_float_1d(dy) and _float_1d(x) and isinstance(mean, types.Float)
            and _float_1d(dy_next) and _float_1d(x_next)):
        return None
    return (types.UniTuple(types.float64, 2)(dy, x, mean, dy_next, x_next),
            _grad_sums_codegen)


def _fabs(builder, v):
    if isinstance(v.type, ir.VectorType):
        name = f"llvm.fabs.v{v.type.count}f64"
    else:
        name = "llvm.fabs.f64"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v.type, [v.type]), name)
    return builder.call(fn, [v])


@intrinsic
def abs_sum(typingctx, a):
    """sum(|a|) in float64 (a: contiguous 1-D float array)."""
    if not _float_1d(a):
        return None
    sig = types.float64(a)

    def codegen(context, builder, signature, args):
        ptr, n = _array_parts(context, builder, signature.args[0], args[0])
        elty = _elty(context, signature.args[0])
        s1 = _zeros(builder)
        t1 = cgutils.alloca_once_value(builder, ir.Constant(_F64, 0.0))

        def vec(u, i):
            _acc_add(builder, s1[u], _fabs(builder, _load_vec(builder, ptr, i, elty)))

        def one(i):
            _acc_add(builder, t1, _fabs(builder, _load_one(builder, ptr, i, elty)))

        _vector_loop(builder, n, vec, one)
        return _finish(builder, s1, t1)

    return sig, codegen


@intrinsic
def abs_max(typingctx, a):
    """(max |a|, number of NaNs in a) as float64 (a: contiguous 1-D float array; max 0 if empty).

    The NaNs are counted apart because a max that meets a NaN keeps either operand depending
    on order; the caller turns a nonzero count into a NaN norm.
    """
    if not _float_1d(a):
        return None
    sig = types.UniTuple(types.float64, 2)(a)

    def codegen(context, builder, signature, args):
        ptr, n = _array_parts(context, builder, signature.args[0], args[0])
        elty = _elty(context, signature.args[0])
        vty = ir.VectorType(_F64, _W)
        m1 = _zeros(builder)
        c1 = _zeros(builder)
        tm = cgutils.alloca_once_value(builder, ir.Constant(_F64, 0.0))
        tc = cgutils.alloca_once_value(builder, ir.Constant(_F64, 0.0))
        ones = ir.Constant(vty, [1.0] * _W)
        zeros = ir.Constant(vty, [0.0] * _W)

        def vec(u, i):
            v = _fabs(builder, _load_vec(builder, ptr, i, elty))
            m = builder.load(m1[u])
            builder.store(builder.select(builder.fcmp_ordered(">", v, m), v, m), m1[u])
            nan = builder.fcmp_unordered("uno", v, v)
            _acc_add(builder, c1[u], builder.select(nan, ones, zeros))

        def one(i):
            v = _fabs(builder, _load_one(builder, ptr, i, elty))
            m = builder.load(tm)
            builder.store(builder.select(builder.fcmp_ordered(">", v, m), v, m), tm)
            nan = builder.fcmp_unordered("uno", v, v)
            _acc_add(builder, tc, builder.select(nan, ir.Constant(_F64, 1.0),
                                                 ir.Constant(_F64, 0.0)))

        _vector_loop(builder, n, vec, one)
        m = builder.load(m1[0])
        for slot in m1[1:]:
            o = builder.load(slot)
            m = builder.select(builder.fcmp_ordered(">", o, m), o, m)
        mx = _lanes_max(builder, m)
        t = builder.load(tm)
        mx = builder.select(builder.fcmp_ordered(">", t, mx), t, mx)
        count = _finish(builder, c1, tc)
        return context.make_tuple(builder, signature.return_type, [mx, count])

    return sig, codegen


@intrinsic
def pointer_like(typingctx, address, proto):
    """A typed pointer (CPointer of proto's dtype) to the memory at integer ``address``.

    With ``numba.carray`` this views arrays whose addresses the caller passed in an int64 table
    (a list of gradient arrays of different shapes, without a typed List per call).
    """
    if not (isinstance(address, types.Integer) and isinstance(proto, types.Array)):
        return None
    sig = types.CPointer(proto.dtype)(address, proto)

    def codegen(context, builder, signature, args):
        elty = context.get_value_type(signature.args[1].dtype)
        return builder.inttoptr(args[0], elty.as_pointer())

    return sig, codegen


# ---- streaming stores ----------------------------------------------------------------------------

def _stream_loop(builder, out_ptr, n, elty, body_vec, body_one):
    """Scalar head up to a 64-byte boundary of out, vectors of 8 with non-temporal stores,
    scalar tail. body_vec(i) returns the <8 x elty> for elements i..i+7; body_one(i) stores
    element i itself."""
    intp = n.type
    size = 4 if isinstance(elty, ir.FloatType) else 8
    addr = builder.ptrtoint(out_ptr, intp)
    misalign = builder.and_(addr, ir.Constant(intp, 63))
    gap = builder.and_(builder.sub(ir.Constant(intp, 64), misalign), ir.Constant(intp, 63))
    head = builder.udiv(gap, ir.Constant(intp, size))
    head = builder.select(builder.icmp_signed("<", head, n), head, n)
    with cgutils.for_range(builder, head) as loop:
        body_one(loop.index)
    nvec = builder.udiv(builder.sub(n, head), ir.Constant(intp, _W))
    meta = builder.module.add_metadata([ir.Constant(_I32, 1)])
    vty = ir.VectorType(elty, _W)
    with cgutils.for_range(builder, nvec) as loop:
        i = builder.add(head, builder.mul(loop.index, ir.Constant(intp, _W)))
        v = body_vec(i)
        p = builder.bitcast(builder.gep(out_ptr, [i]), vty.as_pointer())
        st = builder.store(v, p, align=size * _W)
        st.set_metadata("nontemporal", meta)
    start = builder.add(head, builder.mul(nvec, ir.Constant(intp, _W)))
    with cgutils.for_range(builder, builder.sub(n, start)) as loop:
        body_one(builder.add(start, loop.index))
    if _X86:  # non-temporal stores are weakly ordered: fence before anyone reads them
        fence = cgutils.get_or_insert_function(builder.module,
                                               ir.FunctionType(ir.VoidType(), []),
                                               "llvm.x86.sse.sfence")
        builder.call(fence, [])


def _load_raw(builder, ptr, index, elty, lanes):
    p = builder.gep(ptr, [index])
    if lanes == 1:
        return builder.load(p)
    p = builder.bitcast(p, ir.VectorType(elty, lanes).as_pointer())
    return builder.load(p, align=4 if isinstance(elty, ir.FloatType) else 8)


def _same_float_arrays(*arrays):
    return all(_float_1d(a) for a in arrays) and len({a.dtype for a in arrays}) == 1


@intrinsic
def affine_stream(typingctx, y, x, mh, a, b):
    """y = (x - mh) * a + b with non-temporal stores (y, x: contiguous 1-D, one dtype; mh, a,
    b: scalars of that dtype). For outputs larger than the caches, read back much later: the
    stores skip the read-for-ownership of every line (an sfence ends the loop on x86)."""
    if not (_same_float_arrays(y, x) and mh == y.dtype and a == y.dtype and b == y.dtype):
        return None
    sig = types.void(y, x, mh, a, b)

    def codegen(context, builder, signature, args):
        yptr, n = _array_parts(context, builder, signature.args[0], args[0])
        xptr, _ = _array_parts(context, builder, signature.args[1], args[1])
        elty = _elty(context, signature.args[0])
        vty = ir.VectorType(elty, _W)
        mh_, a_, b_ = args[2], args[3], args[4]
        mhv, av, bv = (_splat(builder, c, vty) for c in (mh_, a_, b_))

        def vec(i):
            v = _load_raw(builder, xptr, i, elty, _W)
            return builder.fadd(builder.fmul(builder.fsub(v, mhv), av), bv)

        def one(i):
            v = _load_raw(builder, xptr, i, elty, 1)
            r = builder.fadd(builder.fmul(builder.fsub(v, mh_), a_), b_)
            builder.store(r, builder.gep(yptr, [i]))

        _stream_loop(builder, yptr, n, elty, vec, one)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def affine2_stream(typingctx, dx, dy, x, k, mh, p, q):
    """dx = k * dy + (x - mh) * p + q with non-temporal stores (see affine_stream)."""
    if not (_same_float_arrays(dx, dy, x) and all(t == dx.dtype for t in (k, mh, p, q))):
        return None
    sig = types.void(dx, dy, x, k, mh, p, q)

    def codegen(context, builder, signature, args):
        dptr, n = _array_parts(context, builder, signature.args[0], args[0])
        gptr, _ = _array_parts(context, builder, signature.args[1], args[1])
        xptr, _ = _array_parts(context, builder, signature.args[2], args[2])
        elty = _elty(context, signature.args[0])
        vty = ir.VectorType(elty, _W)
        k_, mh_, p_, q_ = args[3:7]
        kv, mhv, pv, qv = (_splat(builder, c, vty) for c in (k_, mh_, p_, q_))

        def vec(i):
            g = _load_raw(builder, gptr, i, elty, _W)
            v = _load_raw(builder, xptr, i, elty, _W)
            t = builder.fadd(builder.fmul(kv, g), builder.fmul(builder.fsub(v, mhv), pv))
            return builder.fadd(t, qv)

        def one(i):
            g = _load_raw(builder, gptr, i, elty, 1)
            v = _load_raw(builder, xptr, i, elty, 1)
            t = builder.fadd(builder.fmul(k_, g), builder.fmul(builder.fsub(v, mh_), p_))
            builder.store(builder.fadd(t, q_), builder.gep(dptr, [i]))

        _stream_loop(builder, dptr, n, elty, vec, one)
        return context.get_dummy_value()

    return sig, codegen


@njit
def address(a):
    """The address of ``a``'s data as an int, without the ctypes object ``a.ctypes.data``
    builds; the pointer tables of a parameter list pay it per array, every step."""
    return a.ctypes.data

