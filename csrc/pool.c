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
 *     outputs per step, chosen at run time (fi_pool_set_path). "First maximum wins" is
 *     associative (combine(a, b) = b > a ? b : a, a the earlier), so each window is reduced
 *     as combine(combine(t0, t1), combine(b0, b1)) over its top and bottom rows, with the
 *     same result and the same winner as the sequential scan. When w == 2*ow and ow divides
 *     the vector length, one step reads whole row pairs (4 vectors of contiguous input);
 *     otherwise one step reads 2 vectors of a top row and 2 of the row below. The backward
 *     writes every element of dx (dy at the winner, 0 elsewhere: no memset and scatter) and
 *     adds the dy of the rare -inf windows to element 0 of their plane afterwards, in order.
 *   k x k: scalar windows without bounds checks.
 * Small tensors run on one thread: an OpenMP fork/join costs more than the work saves
 * (64x16x8x8 float32: forward 2.1 us, backward 5 us on one thread, was 40 / 30 us). */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <math.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"

#define FI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FI_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Threads only from this many input elements (measured with 2 threads: below these sizes a
 * fork/join, ~2 us, costs more than the second thread saves; the backward does more work per
 * element, so it pays earlier). */
#ifndef POOL_PARALLEL_MIN_FWD
#define POOL_PARALLEL_MIN_FWD (1L << 17)
#endif
#ifndef POOL_PARALLEL_MIN_BWD
#define POOL_PARALLEL_MIN_BWD (1L << 16)
#endif
/* Planes per task of the parallel fast paths. */
#define POOL_PLANE_BLOCK 64

#if FI_X86
#define POOL_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define POOL_TARGET_AVX512
#endif

/* ---- 2x2 vector steps ---------------------------------------------------------------------- */

typedef float mp_f4 __attribute__((vector_size(16)));
typedef float mp_f4u __attribute__((vector_size(16), aligned(4)));
typedef int32_t mp_f4i __attribute__((vector_size(16)));
typedef double mp_d2 __attribute__((vector_size(16)));
typedef double mp_d2u __attribute__((vector_size(16), aligned(8)));
typedef int64_t mp_d2i __attribute__((vector_size(16)));
typedef float mp_f8 __attribute__((vector_size(32)));
typedef float mp_f8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t mp_f8i __attribute__((vector_size(32)));
typedef float mp_f16 __attribute__((vector_size(64)));
typedef float mp_f16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t mp_f16i __attribute__((vector_size(64)));
typedef double mp_d4 __attribute__((vector_size(32)));
typedef double mp_d4u __attribute__((vector_size(32), aligned(8)));
typedef int64_t mp_d4i __attribute__((vector_size(32)));
typedef double mp_d8 __attribute__((vector_size(64)));
typedef double mp_d8u __attribute__((vector_size(64), aligned(8)));
typedef int64_t mp_d8i __attribute__((vector_size(64)));

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

#define MP_SEL(VT, VI, m, a, b) ((VT)(((VI)(a) & (m)) | ((VI)(b) & ~(m))))

/* One step: the VL windows whose top-row pairs are xt[0..2VL) and bottom-row pairs
 * xb[0..2VL) (as (top, bottom) rows of OW when OW < VL: then xb = xt + 2VL). Writes y, or
 * (dxt non-NULL) the gradient of the 4*VL inputs, keeping in *orphan the running minimum of
 * the window maxima (-inf: some window had no winner).
 * TAG names the vector types: f4, f8, f16 (float), d2, d4, d8 (double), VL lanes. The 64-byte
 * ones carry the AVX-512 target themselves: early optimisation of a default-target body
 * rewrote their selects into comparison masks that gcc 12 then built element by element (the
 * backward ran 10x slower). */
#define MP_STEP(TAG, T, VL, OW, ATTR)                                                          \
    ATTR FI_INLINE void mp_step_##TAG##_##OW(int back, T *y, T *dxt, T *dxb, const T *dy,      \
                                             const T *xt, const T *xb, mp_##TAG ninf,          \
                                             mp_##TAG *orphan) {                               \
        typedef mp_##TAG VT;                                                                   \
        typedef mp_##TAG##u VTU;                                                               \
        typedef mp_##TAG##i VI;                                                                \
        const VI m_even = {MP_LANES_##VL(MP_EVEN, OW)}, m_odd = {MP_LANES_##VL(MP_ODD, OW)};   \
        const VI m_top = {MP_LANES_##VL(MP_TOP, OW)}, m_bot = {MP_LANES_##VL(MP_BOT, OW)};     \
        VT x0 = *(const VTU *)xt, x1 = *(const VTU *)(xt + VL);                                \
        VT x2 = *(const VTU *)xb, x3 = *(const VTU *)(xb + VL);                                \
        VT e01 = __builtin_shuffle(x0, x1, m_even), o01 = __builtin_shuffle(x0, x1, m_odd);    \
        VT e23 = __builtin_shuffle(x2, x3, m_even), o23 = __builtin_shuffle(x2, x3, m_odd);    \
        VT t0 = __builtin_shuffle(e01, e23, m_top), t1 = __builtin_shuffle(o01, o23, m_top);   \
        VT b0 = __builtin_shuffle(e01, e23, m_bot), b1 = __builtin_shuffle(o01, o23, m_bot);   \
        VI a0 = t0 > ninf;                                                                     \
        VT ht = MP_SEL(VT, VI, a0, t0, ninf);                                                  \
        VI a1 = t1 > ht;                                                                       \
        ht = MP_SEL(VT, VI, a1, t1, ht);                                                       \
        VI c0 = b0 > ninf;                                                                     \
        VT hb = MP_SEL(VT, VI, c0, b0, ninf);                                                  \
        VI c1 = b1 > hb;                                                                       \
        hb = MP_SEL(VT, VI, c1, b1, hb);                                                       \
        VI gv = hb > ht;                                                                       \
        VT best = MP_SEL(VT, VI, gv, hb, ht);                                                  \
        if (!back) {                                                                           \
            *(VTU *)y = best;                                                                  \
            return;                                                                            \
        }                                                                                      \
        const VI m_ilo = {MP_LANES_##VL(MP_ILV_LO, OW)}, m_ihi = {MP_LANES_##VL(MP_ILV_HI, OW)}; \
        const VI m_ivlo = {MP_LANES_##VL(MP_INV_LO, OW)};                                      \
        const VI m_ivhi = {MP_LANES_##VL(MP_INV_HI, OW)};                                      \
        /* each window's winner gets 0 + dy (as the reference's sum: -0 -> +0), the rest 0 */  \
        VT g = *(const VTU *)dy + (T)0, zero = {0};                                            \
        VT ut0 = MP_SEL(VT, VI, a0, g, zero), ut1 = MP_SEL(VT, VI, a1, g, zero);               \
        ut0 = MP_SEL(VT, VI, a1, zero, ut0); /* t1 won the top row */                          \
        VT ub0 = MP_SEL(VT, VI, c0, g, zero), ub1 = MP_SEL(VT, VI, c1, g, zero);               \
        ub0 = MP_SEL(VT, VI, c1, zero, ub0);                                                   \
        VT dt0 = MP_SEL(VT, VI, gv, zero, ut0), dt1 = MP_SEL(VT, VI, gv, zero, ut1);           \
        VT db0 = MP_SEL(VT, VI, gv, ub0, zero), db1 = MP_SEL(VT, VI, gv, ub1, zero);           \
        VT de01 = __builtin_shuffle(dt0, db0, m_ivlo);                                         \
        VT de23 = __builtin_shuffle(dt0, db0, m_ivhi);                                         \
        VT do01 = __builtin_shuffle(dt1, db1, m_ivlo);                                         \
        VT do23 = __builtin_shuffle(dt1, db1, m_ivhi);                                         \
        *(VTU *)dxt = __builtin_shuffle(de01, do01, m_ilo);                                    \
        *(VTU *)(dxt + VL) = __builtin_shuffle(de01, do01, m_ihi);                             \
        *(VTU *)dxb = __builtin_shuffle(de23, do23, m_ilo);                                    \
        *(VTU *)(dxb + VL) = __builtin_shuffle(de23, do23, m_ihi);                             \
        VI low = best < *orphan; /* running minimum: -inf when some window had no winner */    \
        *orphan = MP_SEL(VT, VI, low, best, *orphan);                                          \
    }                                                                                          \
    /* steps over contiguous whole row pairs (OW < VL, w == 2 * OW) */                         \
    ATTR FI_INLINE void mp_run_##TAG##_##OW(int back, T *y, T *dx, const T *dy, const T *x,    \
                                            int64_t steps, mp_##TAG ninf, mp_##TAG *orphan) {  \
        for (int64_t s = 0; s < steps; s++) {                                                  \
            T *d = back ? dx + s * 4 * VL : NULL;                                              \
            mp_step_##TAG##_##OW(back, back ? NULL : y + s * VL, d, back ? d + 2 * VL : NULL,  \
                                 back ? dy + s * VL : NULL, x + s * 4 * VL,                    \
                                 x + s * 4 * VL + 2 * VL, ninf, orphan);                       \
        }                                                                                      \
    }

MP_STEP(f4, float, 4, 1, )
MP_STEP(f4, float, 4, 2, )
MP_STEP(f4, float, 4, 4, )
MP_STEP(d2, double, 2, 1, )
MP_STEP(d2, double, 2, 2, )
MP_STEP(f8, float, 8, 1, )
MP_STEP(f8, float, 8, 2, )
MP_STEP(f8, float, 8, 4, )
MP_STEP(f8, float, 8, 8, )
MP_STEP(f16, float, 16, 1, POOL_TARGET_AVX512)
MP_STEP(f16, float, 16, 2, POOL_TARGET_AVX512)
MP_STEP(f16, float, 16, 4, POOL_TARGET_AVX512)
MP_STEP(f16, float, 16, 8, POOL_TARGET_AVX512)
MP_STEP(f16, float, 16, 16, POOL_TARGET_AVX512)
MP_STEP(d4, double, 4, 1, )
MP_STEP(d4, double, 4, 2, )
MP_STEP(d4, double, 4, 4, )
MP_STEP(d8, double, 8, 1, POOL_TARGET_AVX512)
MP_STEP(d8, double, 8, 2, POOL_TARGET_AVX512)
MP_STEP(d8, double, 8, 4, POOL_TARGET_AVX512)
MP_STEP(d8, double, 8, 8, POOL_TARGET_AVX512)

/* ---- scalar windows of the non-overlapping paths --------------------------------------------- */

/* First maximum of the kh x kw window at x (row stride w); *at its offset, -1 when none > -inf */
#define MP_SCALAR(T)                                                                           \
    FI_INLINE T mp_window_##T(const T *x, int64_t w, int64_t kh, int64_t kw, int64_t *at) {    \
        T best = -INFINITY;                                                                    \
        int64_t where = -1;                                                                    \
        for (int64_t i = 0; i < kh; i++)                                                       \
            for (int64_t j = 0; j < kw; j++) {                                                 \
                T v = x[i * w + j];                                                            \
                int gt = v > best;                                                             \
                best = gt ? v : best;                                                          \
                where = gt ? i * w + j : where;                                                \
            }                                                                                  \
        *at = where;                                                                           \
        return best;                                                                           \
    }                                                                                          \
    /* windows [b0, ow) of output row a of one plane: y (and dx, zeros but the winner) */      \
    FI_INLINE int mp_row_tail_##T(T *y, T *dx, const T *dy, const T *x, int64_t w,             \
                                  int64_t ow, int64_t a, int64_t b0, int64_t k_h,              \
                                  int64_t k_w) {                                               \
        int orphan = 0;                                                                        \
        for (int64_t b = b0; b < ow; b++) {                                                    \
            int64_t off = a * k_h * w + b * k_w, at;                                           \
            T best = mp_window_##T(x + off, w, k_h, k_w, &at);                                 \
            if (!dx) {                                                                         \
                y[a * ow + b] = best;                                                          \
                continue;                                                                      \
            }                                                                                  \
            for (int64_t i = 0; i < k_h; i++)                                                  \
                for (int64_t j = 0; j < k_w; j++) dx[off + i * w + j] = (T)0;                  \
            if (at >= 0) dx[off + at] = (T)0 + dy[a * ow + b];                                 \
            else orphan = 1;                                                                   \
        }                                                                                      \
        return orphan;                                                                         \
    }                                                                                          \
    /* dx rows / columns that no window covers are zero */                                     \
    FI_INLINE void mp_zero_rest_##T(T *dx, int64_t h, int64_t w, int64_t oh, int64_t ow,       \
                                    int64_t k_h, int64_t k_w) {                                \
        if (ow * k_w < w)                                                                      \
            for (int64_t r = 0; r < oh * k_h; r++)                                             \
                for (int64_t c = ow * k_w; c < w; c++) dx[r * w + c] = (T)0;                   \
        for (int64_t r = oh * k_h; r < h; r++)                                                 \
            for (int64_t c = 0; c < w; c++) dx[r * w + c] = (T)0;                              \
    }                                                                                          \
    /* the -inf windows of planes [q0, q1) add their dy to element 0 of their plane, in order */ \
    static void mp_fix_orphans_##T(T *dx, const T *dy, const T *x, int64_t q0, int64_t q1,     \
                                   int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t k_h,  \
                                   int64_t k_w) {                                              \
        for (int64_t q = q0; q < q1; q++)                                                      \
            for (int64_t a = 0; a < oh; a++)                                                   \
                for (int64_t b = 0; b < ow; b++) {                                             \
                    int64_t at;                                                                \
                    mp_window_##T(x + q * h * w + a * k_h * w + b * k_w, w, k_h, k_w, &at);    \
                    if (at < 0) dx[q * h * w] += dy[(q * oh + a) * ow + b];                    \
                }                                                                              \
    }

MP_SCALAR(float)
MP_SCALAR(double)

/* ---- non-overlapping ranges of planes [q0, q1) ---------------------------------------------- */

/* Max pool (dx NULL) or its backward (y NULL) over planes [q0, q1); kh == sh, kw == sw, no
 * padding. SMALL_OWS: the switch cases of the whole-row-pair steps (ow < VL dividing VL). */
#define MP_RANGE(TAG, T, VL, SMALL_OWS, ATTR)                                                  \
    ATTR FI_INLINE void mp_range_##TAG(int back, T *y, T *dx, const T *dy, const T *x,         \
                                       int64_t q0, int64_t q1, int64_t h, int64_t w,           \
                                       int64_t oh, int64_t ow, int64_t k_h, int64_t k_w) {     \
        mp_##TAG orph = (mp_##TAG){0} + (T)INFINITY; /* minimum of the window maxima */        \
        mp_##TAG ninf = (mp_##TAG){0} - (T)INFINITY;                                           \
        int orphan = 0;                                                                        \
        int64_t hw = h * w, ohw = oh * ow;                                                     \
        if (k_h == 2 && k_w == 2 && w == 2 * ow && ow < VL && VL % ow == 0) {                  \
            /* whole row pairs per step: one run per plane, or one for all when h is even */   \
            int64_t runs = h == 2 * oh ? 1 : q1 - q0;                                          \
            int64_t per = h == 2 * oh ? (q1 - q0) * ohw : ohw;  /* outputs per run */          \
            for (int64_t r = 0; r < runs; r++) {                                               \
                int64_t q = q0 + r;                                                            \
                const T *xr = x + q * hw;                                                      \
                const T *g = dy ? dy + q * ohw : NULL;                                         \
                T *yr = y ? y + q * ohw : NULL, *dr = dx ? dx + q * hw : NULL;                 \
                int64_t steps = per / VL;                                                      \
                switch (ow) { SMALL_OWS(TAG) }                                                 \
                /* the remaining windows, one by one (their rows are whole row pairs) */       \
                for (int64_t o = steps * VL; o < per; o++) {                                   \
                    int64_t rowpair = o / ow, b = o % ow;                                      \
                    int64_t pl = h == 2 * oh ? rowpair / oh : 0;                               \
                    int64_t a = rowpair - pl * oh;                                             \
                    orphan |= mp_row_tail_##T(yr ? yr + pl * ohw : NULL,                       \
                                              dr ? dr + pl * hw : NULL,                        \
                                              g ? g + pl * ohw : NULL, xr + pl * hw, w, ow,    \
                                              a, b, 2, 2);                                     \
                }                                                                              \
                if (dx && h != 2 * oh) mp_zero_rest_##T(dr, h, w, oh, ow, 2, 2);               \
            }                                                                                  \
        } else {                                                                               \
            for (int64_t q = q0; q < q1; q++) {                                                \
                const T *xq = x + q * hw;                                                      \
                T *yq = y ? y + q * ohw : NULL, *dq = dx ? dx + q * hw : NULL;                 \
                const T *gq = dy ? dy + q * ohw : NULL;                                        \
                for (int64_t a = 0; a < oh; a++) {                                             \
                    int64_t b0 = 0;                                                            \
                    if (k_h == 2 && k_w == 2)                                                  \
                        for (; b0 + VL <= ow; b0 += VL) {                                      \
                            const T *xt = xq + 2 * a * w + 2 * b0;                             \
                            T *dt = dq ? dq + 2 * a * w + 2 * b0 : NULL;                       \
                            mp_step_##TAG##_##VL(back, yq ? yq + a * ow + b0 : NULL, dt,       \
                                                 dt ? dt + w : NULL,                           \
                                                 gq ? gq + a * ow + b0 : NULL, xt, xt + w,     \
                                                 ninf, &orph);                                 \
                        }                                                                      \
                    orphan |= mp_row_tail_##T(yq, dq, gq, xq, w, ow, a, b0, k_h, k_w);         \
                }                                                                              \
                if (dx) mp_zero_rest_##T(dq, h, w, oh, ow, k_h, k_w);                          \
            }                                                                                  \
        }                                                                                      \
        if (dx) {                                                                              \
            for (int i = 0; i < VL; i++) orphan |= orph[i] == -INFINITY;                       \
            if (orphan) mp_fix_orphans_##T(dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);         \
        }                                                                                      \
    }

#define MP_CASE(TAG, OW)                                                                       \
    case OW:                                                                                   \
        mp_run_##TAG##_##OW(back, yr, dr, g, xr, steps, ninf, &orph);                          \
        break;
#define MP_OWS_f4(TAG) MP_CASE(TAG, 1) MP_CASE(TAG, 2)
#define MP_OWS_d2(TAG) MP_CASE(TAG, 1)
#define MP_OWS_f8(TAG) MP_CASE(TAG, 1) MP_CASE(TAG, 2) MP_CASE(TAG, 4)
#define MP_OWS_f16(TAG) MP_CASE(TAG, 1) MP_CASE(TAG, 2) MP_CASE(TAG, 4) MP_CASE(TAG, 8)
#define MP_OWS_d4(TAG) MP_CASE(TAG, 1) MP_CASE(TAG, 2)
#define MP_OWS_d8(TAG) MP_CASE(TAG, 1) MP_CASE(TAG, 2) MP_CASE(TAG, 4)

MP_RANGE(f4, float, 4, MP_OWS_f4, )
MP_RANGE(d2, double, 2, MP_OWS_d2, )
MP_RANGE(f8, float, 8, MP_OWS_f8, )
MP_RANGE(f16, float, 16, MP_OWS_f16, POOL_TARGET_AVX512)
MP_RANGE(d4, double, 4, MP_OWS_d4, )
MP_RANGE(d8, double, 8, MP_OWS_d8, POOL_TARGET_AVX512)

/* Forward (dx, dy unused) and backward (y unused) of each build: AVX-512 (64-byte vectors),
 * AVX2 (32-byte) and portable (16-byte: SSE2). */
#define MP_VARIANT(T, TAG, ISA, ATTR)                                                          \
    ATTR static void mp_fwd_##T##_##ISA(T *y, T *dx, const T *dy, const T *x, int64_t q0,      \
                                        int64_t q1, int64_t h, int64_t w, int64_t oh,          \
                                        int64_t ow, int64_t k_h, int64_t k_w) {                \
        (void)dx;                                                                              \
        (void)dy;                                                                              \
        mp_range_##TAG(0, y, NULL, NULL, x, q0, q1, h, w, oh, ow, k_h, k_w);                   \
    }                                                                                          \
    ATTR static void mp_bwd_##T##_##ISA(T *y, T *dx, const T *dy, const T *x, int64_t q0,      \
                                        int64_t q1, int64_t h, int64_t w, int64_t oh,          \
                                        int64_t ow, int64_t k_h, int64_t k_w) {                \
        (void)y;                                                                               \
        mp_range_##TAG(1, NULL, dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);                    \
    }

MP_VARIANT(float, f16, avx512, POOL_TARGET_AVX512)
MP_VARIANT(float, f8, avx2, FI_TARGET_AVX2)
MP_VARIANT(float, f4, portable, )
MP_VARIANT(double, d8, avx512, POOL_TARGET_AVX512)
MP_VARIANT(double, d4, avx2, FI_TARGET_AVX2)
MP_VARIANT(double, d2, portable, )

/* Which build the non-overlapping max pool runs: 0 portable, 1 AVX2, 2 AVX-512; -1 (default)
 * the best this CPU has. Clamped to what the CPU has; returns the build now used. For tests:
 * every build gives the same bits. */
#define pool_path (fi_isa() - FI_ISA_BASE)

#define MP_DRIVER(T)                                                                           \
    /* planes in blocks of POOL_PLANE_BLOCK, on threads from POOL_PARALLEL_MIN_* inputs */     \
    static void mp_nonoverlap_##T(T *y, T *dx, const T *dy, const T *x, int64_t p, int64_t h,  \
                                  int64_t w, int64_t oh, int64_t ow, int64_t k_h,              \
                                  int64_t k_w) {                                               \
        typedef void (*fn_t)(T *, T *, const T *, const T *, int64_t, int64_t, int64_t,        \
                             int64_t, int64_t, int64_t, int64_t, int64_t);                     \
        static const fn_t fwd[3] = {mp_fwd_##T##_portable, mp_fwd_##T##_avx2,                  \
                                    mp_fwd_##T##_avx512};                                      \
        static const fn_t bwd[3] = {mp_bwd_##T##_portable, mp_bwd_##T##_avx2,                  \
                                    mp_bwd_##T##_avx512};                                      \
        fn_t fn = dx ? bwd[pool_path] : fwd[pool_path];                                        \
        if (p * h * w < (dx ? POOL_PARALLEL_MIN_BWD : POOL_PARALLEL_MIN_FWD)) {                \
            fn(y, dx, dy, x, 0, p, h, w, oh, ow, k_h, k_w);                                    \
            return;                                                                            \
        }                                                                                      \
        int64_t nb = (p + POOL_PLANE_BLOCK - 1) / POOL_PLANE_BLOCK;                            \
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static)")                     \
        for (int64_t i = 0; i < nb; i++)                                                       \
            fn(y, dx, dy, x, i * POOL_PLANE_BLOCK, FI_MIN(p, (i + 1) * POOL_PLANE_BLOCK), h, w, \
               oh, ow, k_h, k_w);                                                              \
    }

MP_DRIVER(float)
MP_DRIVER(double)

#define MP_NONOVERLAP(kh, kw, sh, sw, ph, pw)                                                  \
    ((ph) == 0 && (pw) == 0 && (sh) == (kh) && (sw) == (kw))

/* ---- the generic kernels (any window, stride and padding) ----------------------------------- */

#define FI_POOL_KERNELS(T, SUF)                                                                \
static int64_t max_window_##SUF(const T *x, int64_t h, int64_t w, int64_t r0, int64_t c0,      \
                                int64_t kh, int64_t kw, T *best_out) {                         \
    T best = -INFINITY;                                                                        \
    int64_t at = 0;                                                                            \
    for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                               \
        for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)                           \
            if (x[r * w + c] > best) { best = x[r * w + c]; at = r * w + c; }                  \
    *best_out = best;                                                                          \
    return at;                                                                                 \
}                                                                                              \
void fi_max_pool2d_##SUF(T *y, const T *x, int64_t p, int64_t h, int64_t w, int64_t oh,        \
                         int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,           \
                         int64_t ph, int64_t pw) {                                             \
    if (MP_NONOVERLAP(kh, kw, sh, sw, ph, pw)) {                                               \
        mp_nonoverlap_##T(y, NULL, NULL, x, p, h, w, oh, ow, kh, kw);                          \
        return;                                                                                \
    }                                                                                          \
    _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if(p * oh * ow > 32768)") \
    for (int64_t q = 0; q < p; q++)                                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++)                                                   \
                max_window_##SUF(x + q * h * w, h, w, a * sh - ph, b * sw - pw, kh, kw,        \
                                 y + (q * oh + a) * ow + b);                                   \
}                                                                                              \
void fi_max_pool2d_backward_##SUF(T *dx, const T *dy, const T *x, int64_t p, int64_t h,        \
                                  int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw,   \
                                  int64_t sh, int64_t sw, int64_t ph, int64_t pw) {            \
    if (MP_NONOVERLAP(kh, kw, sh, sw, ph, pw)) {                                               \
        mp_nonoverlap_##T(NULL, dx, dy, x, p, h, w, oh, ow, kh, kw);                           \
        return;                                                                                \
    }                                                                                          \
    _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if(p * h * w > 32768)")   \
    for (int64_t q = 0; q < p; q++) {                                                          \
        T *d = dx + q * h * w;                                                                 \
        memset(d, 0, (size_t)(h * w) * sizeof(T));                                             \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                T best;                                                                        \
                int64_t at = max_window_##SUF(x + q * h * w, h, w, a * sh - ph, b * sw - pw,   \
                                              kh, kw, &best);                                  \
                d[at] += dy[(q * oh + a) * ow + b];                                            \
            }                                                                                  \
    }                                                                                          \
}                                                                                              \
static T avg_count_##SUF(int64_t r0, int64_t c0, int64_t h, int64_t w, int64_t kh,             \
                         int64_t kw, int64_t ph, int64_t pw, int include_pad) {                \
    if (include_pad)                                                                           \
        return (T)((FI_MIN(r0 + kh, h + ph) - r0) * (FI_MIN(c0 + kw, w + pw) - c0));           \
    return (T)((FI_MIN(r0 + kh, h) - FI_MAX(r0, 0)) * (FI_MIN(c0 + kw, w) - FI_MAX(c0, 0)));   \
}                                                                                              \
void fi_avg_pool2d_##SUF(T *y, const T *x, int64_t p, int64_t h, int64_t w, int64_t oh,        \
                         int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,           \
                         int64_t ph, int64_t pw, int include_pad) {                            \
    _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if(p * oh * ow > 32768)") \
    for (int64_t q = 0; q < p; q++)                                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                int64_t r0 = a * sh - ph, c0 = b * sw - pw;                                    \
                double s = 0.0;                                                                \
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                   \
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)               \
                        s += x[(q * h + r) * w + c];                                           \
                y[(q * oh + a) * ow + b] =                                                     \
                    (T)(s / avg_count_##SUF(r0, c0, h, w, kh, kw, ph, pw, include_pad));       \
            }                                                                                  \
}                                                                                              \
void fi_avg_pool2d_backward_##SUF(T *dx, const T *dy, int64_t p, int64_t h, int64_t w,         \
                                  int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,  \
                                  int64_t sw, int64_t ph, int64_t pw, int include_pad) {       \
    _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if(p * h * w > 32768)")   \
    for (int64_t q = 0; q < p; q++) {                                                          \
        T *d = dx + q * h * w;                                                                 \
        memset(d, 0, (size_t)(h * w) * sizeof(T));                                             \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                int64_t r0 = a * sh - ph, c0 = b * sw - pw;                                    \
                T g = dy[(q * oh + a) * ow + b] /                                              \
                      avg_count_##SUF(r0, c0, h, w, kh, kw, ph, pw, include_pad);              \
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                   \
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)               \
                        d[r * w + c] += g;                                                     \
            }                                                                                  \
    }                                                                                          \
}

FI_POOL_KERNELS(float, f32)
FI_POOL_KERNELS(double, f64)
