"""Numba kernels of 2-D max and average pooling.

Same contract as :mod:`fastinit.reference.pool`: x (P, H, W), y (P, OH, OW). Max semantics as
there: best starts at -inf and only a strictly greater value replaces it, so the first maximum
wins and NaN never wins; a window without a value above -inf gives -inf and sends its gradient
to element 0 of its plane. The max kernels are compiled without fast-math flags (``exact``):
'nnan'/'ninf' would let LLVM assume away the NaN and -inf cases these semantics define.

Fast path of max pooling, 2x2 windows with stride 2 and no padding (nn.MaxPool2d(2)), as in
csrc/pool.c: "first maximum wins" is associative (combine(a, b) = b > a ? b : a, a the
earlier), so each window is combine(combine(t0, t1), combine(b0, b1)) over its top and bottom
rows, with the same value and winner as the sequential scan. ``_step`` spells one vector step
out in LLVM IR (shuffles, compares and selects over 64-byte vectors: plain Numba loops over
row pairs of 4 windows did not vectorise): when W == 2*OW and OW divides the
vector length, a step reads whole row pairs of contiguous input (one run over all planes when
H is even); otherwise it reads a vector's worth of one row pair; leftover windows go one by
one. The backward writes every element of dx (dy at the winner, 0 elsewhere: no zeroing and
scatter) and adds the dy of the rare windows without a winner to element 0 of their plane
afterwards, in order. Tensors below PARALLEL_MIN_FWD / PARALLEL_MIN_BWD elements run on one
thread; larger ones split the planes into fixed blocks over the threads. The generic kernels
run serially below ``_config.PARALLEL_MIN_ELEMENTS``.
"""
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .. import _config
from .._config import njit, pjit, serial

_I32 = ir.IntType(32)

#: Planes per block of the parallel 2x2 path.
PLANE_BLOCK = 64
#: The 2x2 path runs on threads from these input sizes (measured with 2 threads: below them a
#: parallel launch costs more than the second thread saves; 64x16x8x8 runs serially).
PARALLEL_MIN_FWD = 1 << 18
PARALLEL_MIN_BWD = 1 << 17


# ---- generic max pooling (any window, stride, padding) ------------------------------------------

# Planes are read flat (x[p].reshape(-1)) at np.uint64 indices: a signed index costs the
# negative-index wraparound test on every access.

@njit(exact=True)
def _max_row(y, x, h, w, r0, kh, kw, sw, pw):
    """One output row: y[b] = the maximum of the window at rows r0 .., columns b*sw - pw .. of
    the flat h x w plane x, each max taken as v > best ? v : best (the value of the first
    maximum; NaN never wins). The columns b one tap reaches inside the plane are a range, so
    the inner loop has no bounds test."""
    y[:] = -np.inf
    for r in range(max(r0, 0), min(r0 + kh, h)):
        for j in range(kw):
            off = j - pw
            at = r * w + off
            for b in range(max(0, (sw - 1 - off) // sw), min(y.size, (w - off + sw - 1) // sw)):
                v = x[np.uint64(at + b * sw)]
                y[np.uint64(b)] = v if v > y[np.uint64(b)] else y[np.uint64(b)]


@njit(exact=True)
def _max_at(x, h, w, r0, c0, kh, kw):
    """Flat index of the first maximum (row-major) of a window of the flat h x w plane x; 0 if
    no value is above -inf."""
    best = -np.inf
    at = 0
    for r in range(max(r0, 0), min(r0 + kh, h)):
        for c in range(max(c0, 0), min(c0 + kw, w)):
            v = x[np.uint64(r * w + c)]
            if v > best:
                best = v
                at = r * w + c
    return at


@pjit(exact=True)
def _max_parallel(y, x, kh, kw, sh, sw, ph, pw):
    _, h, w = x.shape
    for p in prange(x.shape[0]):
        xp = x[p].reshape(-1)
        for a in range(y.shape[1]):
            _max_row(y[p, a], xp, h, w, a * sh - ph, kh, kw, sw, pw)


_max_serial = serial(_max_parallel)  # the same driver on the calling thread


@pjit(exact=True)
def _max_backward_parallel(dx, dy, x, kh, kw, sh, sw, ph, pw):
    """dx = dy added to each window's winner, windows in order."""
    _, h, w = x.shape
    for p in prange(x.shape[0]):
        xp = x[p].reshape(-1)
        dxp = dx[p].reshape(-1)
        dxp[:] = 0
        for a in range(dy.shape[1]):
            for b in range(dy.shape[2]):
                dxp[_max_at(xp, h, w, a * sh - ph, b * sw - pw, kh, kw)] += dy[p, a, b]


_max_backward_serial = serial(_max_backward_parallel)  # the same driver on the calling thread


# ---- the 2x2 fast path: vector steps written as LLVM IR --------------------------------------

def _step_masks(ow, vl):
    """Shuffle masks of a step (as csrc/pool.c): even / odd elements of a vector pair; the top /
    bottom rows among 2*vl horizontal results laid out as (top, bottom) rows of ow; and the
    inverses of both, for the backward."""
    top = [(r // ow) * 2 * ow + r % ow for r in range(vl)]

    def inv(lane):
        q, i = divmod(lane, 2 * ow)
        return q * ow + i if i < ow else vl + q * ow + i - ow

    return dict(even=[2 * r for r in range(vl)], odd=[2 * r + 1 for r in range(vl)], top=top,
                bot=[t + ow for t in top], inv_lo=[inv(r) for r in range(vl)],
                inv_hi=[inv(r + vl) for r in range(vl)],
                ilv_lo=[vl + r // 2 if r % 2 else r // 2 for r in range(vl)],
                ilv_hi=[vl + vl // 2 + r // 2 if r % 2 else vl // 2 + r // 2 for r in range(vl)])


@intrinsic
def _step(typingctx, ya, dxa, dya, xa, i_top, i_bot, i_out, ow, back):
    """One vector step of the 2x2 max pool: the VL windows (VL = 64 bytes of elements: 16
    float32, 8 float64) whose top-row pairs are x[i_top : i_top + 2VL] and bottom-row pairs
    x[i_bot : i_bot + 2VL] (as (top, bottom) rows of OW when OW < VL: then i_bot = i_top + 2VL).
    back 0 writes y[i_out : i_out + VL]; back 1 writes the gradient of those 4VL inputs into dx
    (dy at the first maximum, 0 elsewhere) and returns whether some window had no value above
    -inf. OW and back are literals. Same reduction as csrc/pool.c: combine(combine(t0, t1),
    combine(b0, b1)), where combine(a, b) = b > a ? b : a."""
    if not (isinstance(ow, types.IntegerLiteral) and isinstance(back, types.IntegerLiteral)):
        return None
    dtype = xa.dtype
    vl = 16 if dtype == types.float32 else 8
    width = min(ow.literal_value, vl)  # a wider OW is a branch this dtype never takes
    backward = bool(back.literal_value)
    sig = types.boolean(ya, dxa, dya, xa, i_top, i_bot, i_out, ow, back)

    def codegen(context, builder, signature, args):
        top_at, bot_at, out_at = args[4:7]
        size = 4 if dtype == types.float32 else 8
        vty = ir.VectorType(context.get_value_type(dtype), vl)
        masks = _step_masks(width, vl)

        def data(k):
            return context.make_array(signature.args[k])(context, builder, value=args[k]).data

        def at(i, k=0):
            return builder.add(i, ir.Constant(i.type, k)) if k else i

        def load(ptr, i):
            p = builder.bitcast(builder.gep(ptr, [i]), vty.as_pointer())
            return builder.load(p, align=size)

        def store(ptr, i, v):
            builder.store(v, builder.bitcast(builder.gep(ptr, [i]), vty.as_pointer()), align=size)

        def shuffle(a, b, name):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, vl), masks[name]))

        px = data(3)
        x0, x1 = load(px, top_at), load(px, at(top_at, vl))
        x2, x3 = load(px, bot_at), load(px, at(bot_at, vl))
        e01, o01 = shuffle(x0, x1, "even"), shuffle(x0, x1, "odd")
        e23, o23 = shuffle(x2, x3, "even"), shuffle(x2, x3, "odd")
        t0, t1 = shuffle(e01, e23, "top"), shuffle(o01, o23, "top")
        b0, b1 = shuffle(e01, e23, "bot"), shuffle(o01, o23, "bot")
        ninf = ir.Constant(vty, [float("-inf")] * vl)
        a0 = builder.fcmp_ordered(">", t0, ninf)
        ht = builder.select(a0, t0, ninf)
        a1 = builder.fcmp_ordered(">", t1, ht)
        ht = builder.select(a1, t1, ht)
        c0 = builder.fcmp_ordered(">", b0, ninf)
        hb = builder.select(c0, b0, ninf)
        c1 = builder.fcmp_ordered(">", b1, hb)
        hb = builder.select(c1, b1, hb)
        gv = builder.fcmp_ordered(">", hb, ht)
        best = builder.select(gv, hb, ht)
        if not backward:
            store(data(0), out_at, best)
            return ir.Constant(ir.IntType(1), 0)
        zero = ir.Constant(vty, [0.0] * vl)
        g = builder.fadd(load(data(2), out_at), zero)  # 0 + dy, as the reference: -0 -> +0
        up = builder.not_(gv)
        dt0 = builder.select(builder.and_(up, builder.and_(builder.not_(a1), a0)), g, zero)
        dt1 = builder.select(builder.and_(up, a1), g, zero)
        db0 = builder.select(builder.and_(gv, builder.not_(c1)), g, zero)
        db1 = builder.select(builder.and_(gv, c1), g, zero)
        de01, de23 = shuffle(dt0, db0, "inv_lo"), shuffle(dt0, db0, "inv_hi")
        do01, do23 = shuffle(dt1, db1, "inv_lo"), shuffle(dt1, db1, "inv_hi")
        pdx = data(1)
        store(pdx, top_at, shuffle(de01, do01, "ilv_lo"))
        store(pdx, at(top_at, vl), shuffle(de01, do01, "ilv_hi"))
        store(pdx, bot_at, shuffle(de23, do23, "ilv_lo"))
        store(pdx, at(bot_at, vl), shuffle(de23, do23, "ilv_hi"))
        none = builder.bitcast(builder.fcmp_ordered("==", best, ninf), ir.IntType(vl))
        return builder.icmp_unsigned("!=", none, ir.Constant(ir.IntType(vl), 0))

    return sig, codegen


@njit(exact=True)
def _window(x, at, w):
    """First maximum of the 2x2 window at flat offset ``at`` (row stride w): (value, offset or
    -1 when no value is above -inf)."""
    best = -np.inf
    where = -1
    for i in range(2):
        for j in range(2):
            v = x[at + i * w + j]
            if v > best:
                best = v
                where = at + i * w + j
    return best, where


@njit(exact=True)
def _run_steps(yf, dxf, dyf, xf, steps, ow, back):
    """Steps 0 .. steps-1 over whole row pairs (OW dividing VL): step s reads x[4VL*s ...] and
    y or dy[VL*s ...]. The literal OW picks the masks. Returns whether a window had no winner."""
    vl = 64 // xf.itemsize
    orphan = False
    for s in range(steps):
        i = 4 * vl * s
        o = vl * s
        if back:
            if ow == 1:
                orphan |= _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 1, 1)
            elif ow == 2:
                orphan |= _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 2, 1)
            elif ow == 4:
                orphan |= _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 4, 1)
            elif ow == 8:
                orphan |= _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 8, 1)
            else:
                orphan |= _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 16, 1)
        else:
            if ow == 1:
                _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 1, 0)
            elif ow == 2:
                _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 2, 0)
            elif ow == 4:
                _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 4, 0)
            elif ow == 8:
                _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 8, 0)
            else:
                _step(yf, dxf, dyf, xf, i, i + 2 * vl, o, 16, 0)
    return orphan


@njit(exact=True)
def _tail(yf, dxf, dyf, xf, o, at, w, back):
    """Window o (output index) at flat input offset at, one by one; returns True when it had
    no winner (backward: its 4 inputs get 0 and the caller's fix-up adds its dy)."""
    best, where = _window(xf, at, w)
    if not back:
        yf[o] = best
        return False
    for i in range(2):
        for j in range(2):
            dxf[at + i * w + j] = 0
    if where >= 0:
        dxf[where] += dyf[o]  # 0 + dy, as the reference
        return False
    return True


@njit(exact=True)
def _fix_orphans(dx, dy, x):
    """Windows with no value above -inf add their dy to element 0 of their plane, in output
    order (after dx is written: element 0 already holds its own window's share)."""
    w = x.shape[2]
    for p in range(x.shape[0]):
        xp = x[p].reshape(-1)
        for a in range(dy.shape[1]):
            for b in range(dy.shape[2]):
                _, where = _window(xp, 2 * a * w + 2 * b, w)
                if where < 0:
                    dx[p, 0, 0] += dy[p, a, b]


@njit(exact=True)
def _max2(y, dx, dy, x, back):
    """2x2 max pool (back 0: y) or its backward (back 1: every element of dx), floor sizes."""
    p, h, w = x.shape
    oh, ow = dy.shape[1], dy.shape[2]
    vl = 64 // x.itemsize
    orphan = False
    if w == 2 * ow and ow <= vl and vl % ow == 0:
        # whole row pairs per step: one run over all planes when h is even, else per plane
        runs = 1 if h == 2 * oh else p
        per = p * oh * ow if runs == 1 else oh * ow
        for r in range(runs):
            if runs == 1:
                xr, yr, gr, dr = x.reshape(-1), y.reshape(-1), dy.reshape(-1), dx.reshape(-1)
            else:
                xr = x[r].reshape(-1)[:2 * oh * w]
                yr, gr, dr = y[r].reshape(-1), dy[r].reshape(-1), dx[r].reshape(-1)
            steps = per // vl
            orphan |= _run_steps(yr, dr, gr, xr, steps, ow, back)
            for o in range(steps * vl, per):
                orphan |= _tail(yr, dr, gr, xr, o, (o // ow) * 2 * w + 2 * (o % ow), w, back)
            if back and runs > 1:
                dx[r, 2 * oh:] = 0
    else:
        for q in range(p):
            xq, yq = x[q].reshape(-1), y[q].reshape(-1)
            gq, dq = dy[q].reshape(-1), dx[q].reshape(-1)
            for a in range(oh):
                b0 = 0
                while b0 + vl <= ow:
                    i = 2 * a * w + 2 * b0
                    o = a * ow + b0
                    if back and vl == 16:
                        orphan |= _step(yq, dq, gq, xq, i, i + w, o, 16, 1)
                    elif back:
                        orphan |= _step(yq, dq, gq, xq, i, i + w, o, 8, 1)
                    elif vl == 16:
                        _step(yq, dq, gq, xq, i, i + w, o, 16, 0)
                    else:
                        _step(yq, dq, gq, xq, i, i + w, o, 8, 0)
                    b0 += vl
                for b in range(b0, ow):
                    orphan |= _tail(yq, dq, gq, xq, a * ow + b, 2 * a * w + 2 * b, w, back)
            if back:
                dx[q, :, 2 * ow:] = 0
                dx[q, 2 * oh:] = 0
    if back and orphan:
        _fix_orphans(dx, dy, x)


@njit(exact=True)
def _max2_fwd(y, x):
    _max2(y, y, y, x, 0)


@njit(exact=True)
def _max2_bwd(dx, dy, x):
    _max2(dy, dx, dy, x, 1)


@pjit(exact=True)
def _max2_fwd_parallel(y, x, block):
    nb = (x.shape[0] + block - 1) // block
    for i in prange(nb):
        lo = i * block
        hi = min(x.shape[0], lo + block)
        _max2(y[lo:hi], y[lo:hi], y[lo:hi], x[lo:hi], 0)


@pjit(exact=True)
def _max2_bwd_parallel(dx, dy, x, block):
    nb = (x.shape[0] + block - 1) // block
    for i in prange(nb):
        lo = i * block
        hi = min(x.shape[0], lo + block)
        _max2(dy[lo:hi], dx[lo:hi], dy[lo:hi], x[lo:hi], 1)


def _fast2(kh, kw, sh, sw, ph, pw):
    """The 2x2 path applies: 2x2 windows, stride 2, no padding."""
    return kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0


def _parallel(x):
    return x.size >= _config.PARALLEL_MIN_ELEMENTS


# ---- average pooling ---------------------------------------------------------------------------

@njit
def _count(r0, c0, h, w, kh, kw, ph, pw, include_pad):
    if include_pad:
        return (min(r0 + kh, h + ph) - r0) * (min(c0 + kw, w + pw) - c0)
    return (min(r0 + kh, h) - max(r0, 0)) * (min(c0 + kw, w) - max(c0, 0))


@njit
def _avg_plane(y, x, kh, kw, sh, sw, ph, pw, include_pad):
    h, w = x.shape
    for a in range(y.shape[0]):
        r0 = a * sh - ph
        for b in range(y.shape[1]):
            c0 = b * sw - pw
            s = 0.0
            for r in range(max(r0, 0), min(r0 + kh, h)):
                for c in range(max(c0, 0), min(c0 + kw, w)):
                    s += x[r, c]
            y[a, b] = s / _count(r0, c0, h, w, kh, kw, ph, pw, include_pad)


@njit
def _avg_backward_plane(dx, dy, kh, kw, sh, sw, ph, pw, include_pad):
    h, w = dx.shape
    dx[:] = 0
    for a in range(dy.shape[0]):
        r0 = a * sh - ph
        for b in range(dy.shape[1]):
            c0 = b * sw - pw
            g = dy[a, b] / _count(r0, c0, h, w, kh, kw, ph, pw, include_pad)
            for r in range(max(r0, 0), min(r0 + kh, h)):
                for c in range(max(c0, 0), min(c0 + kw, w)):
                    dx[r, c] += g


@pjit
def _avg_parallel(y, x, kh, kw, sh, sw, ph, pw, include_pad):
    for p in prange(x.shape[0]):
        _avg_plane(y[p], x[p], kh, kw, sh, sw, ph, pw, include_pad)


_avg_serial = serial(_avg_parallel)  # the same driver on the calling thread


@pjit
def _avg_backward_parallel(dx, dy, kh, kw, sh, sw, ph, pw, include_pad):
    for p in prange(dx.shape[0]):
        _avg_backward_plane(dx[p], dy[p], kh, kw, sh, sw, ph, pw, include_pad)


_avg_backward_serial = serial(_avg_backward_parallel)  # the same driver on the calling thread


# ---- the kernels (contract of fastinit.reference.pool) ------------------------------------------

def max_pool2d(y, x, kh, kw, sh, sw, ph, pw):
    if _fast2(kh, kw, sh, sw, ph, pw):
        if x.size >= PARALLEL_MIN_FWD:
            _max2_fwd_parallel(y, x, PLANE_BLOCK)
        else:
            _max2_fwd(y, x)
    elif _parallel(x):
        _max_parallel(y, x, kh, kw, sh, sw, ph, pw)
    else:
        _max_serial(y, x, kh, kw, sh, sw, ph, pw)


def max_pool2d_backward(dx, dy, x, kh, kw, sh, sw, ph, pw):
    if _fast2(kh, kw, sh, sw, ph, pw):
        if x.size >= PARALLEL_MIN_BWD:
            _max2_bwd_parallel(dx, dy, x, PLANE_BLOCK)
        else:
            _max2_bwd(dx, dy, x)
    elif _parallel(x):
        _max_backward_parallel(dx, dy, x, kh, kw, sh, sw, ph, pw)
    else:
        _max_backward_serial(dx, dy, x, kh, kw, sh, sw, ph, pw)


def avg_pool2d(y, x, kh, kw, sh, sw, ph, pw, count_include_pad):
    (_avg_parallel if _parallel(x) else _avg_serial)(
        y, x, kh, kw, sh, sw, ph, pw, bool(count_include_pad))


def avg_pool2d_backward(dx, dy, kh, kw, sh, sw, ph, pw, count_include_pad):
    (_avg_backward_parallel if _parallel(dx) else _avg_backward_serial)(
        dx, dy, kh, kw, sh, sw, ph, pw, bool(count_include_pad))
