/* 2-D max and average pooling, forward beside backward.
 * x, dx are (p, h, w) planes (p = N*C); y, dy are (p, oh, ow); C-contiguous.
 * Windows start at (a*sh - ph, b*sw - pw). The max takes the first maximum in row-major window
 * order (as PyTorch); padded positions never win. The average divides by the window size
 * clipped to the padded input (count_include_pad) or by the in-bounds count.
 *
 * Max semantics (those of fastinit/reference/pool.py): best starts at -inf and a value
 * replaces it only when strictly greater, so the first maximum wins and NaN never wins; a
 * window with no value above -inf (all NaN or -inf) gives -inf and sends its gradient to
 * element 0 of its plane (added in output order, as the reference's np.add.at).
 *
 * Fast paths of max pooling without padding and with stride == kernel (non-overlapping
 * windows, the usual nn.MaxPool2d(k)):
 *   2x2: vectorised, one 64-byte (AVX-512), 32-byte (AVX2) or 16-byte (portable) vector of
 *     outputs per step, chosen at run time (fi_isa()). "First maximum wins" is
 *     associative (combine(a, b) = b > a ? b : a, a the earlier), so each window is reduced
 *     as combine(combine(t0, t1), combine(b0, b1)) over its top and bottom rows, with the
 *     same result and the same winner as the sequential scan. When w == 2*ow and ow divides
 *     the vector length, one step reads whole row pairs (4 vectors of contiguous input);
 *     otherwise one step reads 2 vectors of a top row and 2 of the row below. The backward
 *     writes every element of dx (dy at the winner, 0 elsewhere: no memset and scatter) and
 *     adds the dy of the rare -inf windows to element 0 of their plane afterwards, in order.
 *   k x k: scalar windows without bounds checks.
 * Small tensors run on one thread: an OpenMP fork/join costs more than the work saves. */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif

#define FI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FI_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Threads only from this many input elements (below, a fork/join costs more than the second
 * thread saves; the backward does more work per element, so it pays earlier). */
#ifndef POOL_PARALLEL_MIN_FWD
#define POOL_PARALLEL_MIN_FWD (1L << 17)
#endif
#ifndef POOL_PARALLEL_MIN_BWD
#define POOL_PARALLEL_MIN_BWD (1L << 16)
#endif
/* Planes per task of the parallel fast paths. */
#define POOL_PLANE_BLOCK 64

/* ---- the non-overlapping max pool of each build (pool_isa.h, pool_step.h) ---------------- */

#define MP_LANES_2(F, ow) F(0, ow, 2), F(1, ow, 2)
#define MP_LANES_4(F, ow) F(0, ow, 4), F(1, ow, 4), F(2, ow, 4), F(3, ow, 4)
#define MP_LANES_8(F, ow) F(0, ow, 8), F(1, ow, 8), F(2, ow, 8), F(3, ow, 8), F(4, ow, 8),    \
                          F(5, ow, 8), F(6, ow, 8), F(7, ow, 8)
#define MP_LANES_16(F, ow) F(0, ow, 16), F(1, ow, 16), F(2, ow, 16), F(3, ow, 16),             \
                           F(4, ow, 16), F(5, ow, 16), F(6, ow, 16), F(7, ow, 16),             \
                           F(8, ow, 16), F(9, ow, 16), F(10, ow, 16), F(11, ow, 16),           \
                           F(12, ow, 16), F(13, ow, 16), F(14, ow, 16), F(15, ow, 16)
/* shuffle masks: even / odd elements of a pair of vectors */
#define MP_EVEN(r, ow, vl) (2 * (r))
#define MP_ODD(r, ow, vl) (2 * (r) + 1)
/* the 2*vl horizontal results of a step are rows of ow: top rows, bottom rows alternate */
#define MP_TOP(r, ow, vl) (((r) / (ow)) * 2 * (ow) + (r) % (ow))
#define MP_BOT(r, ow, vl) (MP_TOP(r, ow, vl) + (ow))
/* inverse of TOP/BOT: lane L of the horizontal results from (top, bottom) */
#define MP_INV(L, ow, vl) ((L) % (2 * (ow)) < (ow)                                             \
                           ? ((L) / (2 * (ow))) * (ow) + (L) % (2 * (ow))                      \
                           : (vl) + ((L) / (2 * (ow))) * (ow) + (L) % (2 * (ow)) - (ow))
#define MP_INV_LO(r, ow, vl) MP_INV(r, ow, vl)
#define MP_INV_HI(r, ow, vl) MP_INV((r) + (vl), ow, vl)
/* interleave (inverse of EVEN/ODD) */
#define MP_ILV_LO(r, ow, vl) ((r) % 2 ? (vl) + (r) / 2 : (r) / 2)
#define MP_ILV_HI(r, ow, vl) ((r) % 2 ? (vl) + (vl) / 2 + (r) / 2 : (vl) / 2 + (r) / 2)

#define FI_BODY "pool_isa.h"
#include "instances.h"

/* ---- the entry points (pool_generic.h) ----------------------------------------------------- */

#define MP_NONOVERLAP(kh, kw, sh, sw, ph, pw) \
    ((ph) == 0 && (pw) == 0 && (sh) == (kh) && (sw) == (kw))

#define FI_T float
#define FI_TS f32
#include "pool_generic.h"
#define FI_T double
#define FI_TS f64
#include "pool_generic.h"
