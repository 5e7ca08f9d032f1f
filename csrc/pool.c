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
 *   2x2: vectorised, 8 floats / 4 doubles of output per step. "First maximum wins" is
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
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"

#define FI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FI_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Threads only from this many input elements (measured: the serial 2x2 kernels beat a
 * 2-thread fork/join below it). */
#ifndef POOL_PARALLEL_MIN
#define POOL_PARALLEL_MIN (1L << 18)
#endif
/* Planes per task of the parallel fast paths. */
#define POOL_PLANE_BLOCK 64

#if FI_X86
#define POOL_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define POOL_TARGET_AVX512
#endif

/* ---- 2x2 vector steps ---------------------------------------------------------------------- */

typedef float mp_v8f __attribute__((vector_size(32)));
typedef float mp_v8f_u __attribute__((vector_size(32), aligned(4)));
typedef int32_t mp_v8i __attribute__((vector_size(32)));
typedef double mp_v4d __attribute__((vector_size(32)));
typedef double mp_v4d_u __attribute__((vector_size(32), aligned(8)));
typedef int64_t mp_v4i __attribute__((vector_size(32)));

#define MP_LANES_8(F, ow) F(0, ow, 8), F(1, ow, 8), F(2, ow, 8), F(3, ow, 8), F(4, ow, 8),    \
                          F(5, ow, 8), F(6, ow, 8), F(7, ow, 8)
#define MP_LANES_4(F, ow) F(0, ow, 4), F(1, ow, 4), F(2, ow, 4), F(3, ow, 4)
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

/* One step: the vl windows whose top-row pairs are xt[0..2vl) and bottom-row pairs xb[0..2vl)
 * (as (top, bottom) rows of ow when OW < vl: then xb = xt + 2vl). Writes y; with dx, also the
 * gradient of the 4*vl inputs and ORs the -inf windows into *orphan. */
#define MP_STEP(T, VT, VTU, VI, VL, OW)                                                        \
    FI_INLINE void mp_step_##T##_##OW(T *y, T *dxt, T *dxb, const T *dy, const T *xt,        \
                                       const T *xb, VI *orphan) {                             \
        const VI m_even = {MP_LANES_##VL(MP_EVEN, OW)}, m_odd = {MP_LANES_##VL(MP_ODD, OW)};  \
        const VI m_top = {MP_LANES_##VL(MP_TOP, OW)}, m_bot = {MP_LANES_##VL(MP_BOT, OW)};    \
        VT x0 = *(const VTU *)xt, x1 = *(const VTU *)(xt + VL);                               \
        VT x2 = *(const VTU *)xb, x3 = *(const VTU *)(xb + VL);                               \
        VT e01 = __builtin_shuffle(x0, x1, m_even), o01 = __builtin_shuffle(x0, x1, m_odd);   \
        VT e23 = __builtin_shuffle(x2, x3, m_even), o23 = __builtin_shuffle(x2, x3, m_odd);   \
        VT t0 = __builtin_shuffle(e01, e23, m_top), t1 = __builtin_shuffle(o01, o23, m_top);  \
        VT b0 = __builtin_shuffle(e01, e23, m_bot), b1 = __builtin_shuffle(o01, o23, m_bot);  \
        VT ninf = (VT){0} - (T)INFINITY;                                                       \
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
        if (!dxt) {                                                                            \
            *(VTU *)y = best;                                                                  \
            return;                                                                            \
        }                                                                                      \
        const VI m_ilo = {MP_LANES_##VL(MP_ILV_LO, OW)}, m_ihi = {MP_LANES_##VL(MP_ILV_HI, OW)}; \
        const VI m_ivlo = {MP_LANES_##VL(MP_INV_LO, OW)};                                      \
        const VI m_ivhi = {MP_LANES_##VL(MP_INV_HI, OW)};                                      \
        VI g = (VI)(*(const VTU *)dy + (T)0); /* 0 + dy, as the reference's sum: -0 -> +0 */ \
        VI dt0 = g & ~gv & ~a1 & a0, dt1 = g & ~gv & a1, db0 = g & gv & ~c1, db1 = g & gv & c1; \
        VT de01 = (VT)__builtin_shuffle(dt0, db0, m_ivlo);                                     \
        VT de23 = (VT)__builtin_shuffle(dt0, db0, m_ivhi);                                     \
        VT do01 = (VT)__builtin_shuffle(dt1, db1, m_ivlo);                                     \
        VT do23 = (VT)__builtin_shuffle(dt1, db1, m_ivhi);                                     \
        *(VTU *)dxt = __builtin_shuffle(de01, do01, m_ilo);                                    \
        *(VTU *)(dxt + VL) = __builtin_shuffle(de01, do01, m_ihi);                             \
        *(VTU *)dxb = __builtin_shuffle(de23, do23, m_ilo);                                    \
        *(VTU *)(dxb + VL) = __builtin_shuffle(de23, do23, m_ihi);                             \
        *orphan |= best == ninf;                                                               \
    }

MP_STEP(float, mp_v8f, mp_v8f_u, mp_v8i, 8, 1)
MP_STEP(float, mp_v8f, mp_v8f_u, mp_v8i, 8, 2)
MP_STEP(float, mp_v8f, mp_v8f_u, mp_v8i, 8, 4)
MP_STEP(float, mp_v8f, mp_v8f_u, mp_v8i, 8, 8)
MP_STEP(double, mp_v4d, mp_v4d_u, mp_v4i, 4, 1)
MP_STEP(double, mp_v4d, mp_v4d_u, mp_v4i, 4, 2)
MP_STEP(double, mp_v4d, mp_v4d_u, mp_v4i, 4, 4)

/* ---- scalar windows of the non-overlapping paths --------------------------------------------- */

/* First maximum of the kh x kw window at x (row stride w); *at its offset, -1 when none > -inf */
#define MP_SCALAR(T)                                                                           \
    FI_INLINE T mp_window_##T(const T *x, int64_t w, int64_t kh, int64_t kw, int64_t *at) {  \
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
    /* windows [b0, ow) of output row a of one plane: y (and dx, zeros but the winner) */     \
    FI_INLINE int mp_row_tail_##T(T *y, T *dx, const T *dy, const T *x, int64_t w,            \
                                  int64_t ow, int64_t a, int64_t b0, int64_t k_h,             \
                                  int64_t k_w) {                                              \
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
    /* dx rows / columns that no window covers are zero */                                    \
    FI_INLINE void mp_zero_rest_##T(T *dx, int64_t h, int64_t w, int64_t oh, int64_t ow,      \
                                    int64_t k_h, int64_t k_w) {                               \
        if (ow * k_w < w)                                                                      \
            for (int64_t r = 0; r < oh * k_h; r++)                                             \
                for (int64_t c = ow * k_w; c < w; c++) dx[r * w + c] = (T)0;                   \
        for (int64_t r = oh * k_h; r < h; r++)                                                 \
            for (int64_t c = 0; c < w; c++) dx[r * w + c] = (T)0;                              \
    }                                                                                          \
    /* the -inf windows of planes [q0, q1) add their dy to element 0 of their plane, in order */ \
    static void mp_fix_orphans_##T(T *dx, const T *dy, const T *x, int64_t q0, int64_t q1,    \
                                   int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t k_h, \
                                   int64_t k_w) {                                              \
        for (int64_t q = q0; q < q1; q++)                                                      \
            for (int64_t a = 0; a < oh; a++)                                                   \
                for (int64_t b = 0; b < ow; b++) {                                             \
                    int64_t at;                                                                \
                    mp_window_##T(x + q * h * w + a * k_h * w + b * k_w, w, k_h, k_w, &at);   \
                    if (at < 0) dx[q * h * w] += dy[(q * oh + a) * ow + b];                    \
                }                                                                              \
    }

MP_SCALAR(float)
MP_SCALAR(double)

/* ---- non-overlapping ranges of planes [q0, q1) ------------------------------------------------ */

/* Max pool (dx NULL) or its backward over planes [q0, q1); kh == sh, kw == sw, no padding. */
#define MP_RANGE(T, VI, VL, SMALL_OWS)                                                         \
    FI_INLINE void mp_range_##T(T *y, T *dx, const T *dy, const T *x, int64_t q0, int64_t q1, \
                                int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t k_h,    \
                                int64_t k_w) {                                                \
        VI orph = {0};                                                                         \
        int orphan = 0;                                                                        \
        int64_t hw = h * w, ohw = oh * ow;                                                     \
        if (k_h == 2 && k_w == 2 && w == 2 * ow && ow < VL && VL % ow == 0) {                  \
            /* whole row pairs per step: one run per plane, or one for all when h is even */  \
            int64_t runs = h == 2 * oh ? 1 : q1 - q0;                                          \
            int64_t per = h == 2 * oh ? (q1 - q0) * ohw : ohw;  /* outputs per run */         \
            for (int64_t r = 0; r < runs; r++) {                                               \
                int64_t q = q0 + r;                                                            \
                const T *xr = x + q * hw;                                                      \
                const T *g = dy ? dy + q * ohw : NULL;                                         \
                T *yr = y ? y + q * ohw : NULL, *dr = dx ? dx + q * hw : NULL;                 \
                int64_t steps = per / VL;                                                      \
                for (int64_t s = 0; s < steps; s++) {                                          \
                    const T *xs = xr + s * 4 * VL;                                             \
                    T *ds = dr ? dr + s * 4 * VL : NULL;                                       \
                    switch (ow) {                                                              \
                        SMALL_OWS(T)                                                           \
                    }                                                                          \
                }                                                                              \
                /* the remaining windows, one by one (their rows are whole row pairs) */      \
                for (int64_t o = steps * VL; o < per; o++) {                                   \
                    int64_t rowpair = o / ow, b = o % ow;                                      \
                    int64_t pl = h == 2 * oh ? rowpair / oh : 0;                               \
                    int64_t a = rowpair - pl * oh;                                             \
                    orphan |= mp_row_tail_##T(yr ? yr + pl * ohw : NULL,                       \
                                              dr ? dr + pl * hw : NULL,                        \
                                              g ? g + pl * ohw : NULL, xr + pl * hw, w, ow,   \
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
                            mp_step_##T##_##VL(yq ? yq + a * ow + b0 : NULL, dt,               \
                                               dt ? dt + w : NULL,                             \
                                               gq ? gq + a * ow + b0 : NULL, xt, xt + w,       \
                                               &orph);                                         \
                        }                                                                      \
                    orphan |= mp_row_tail_##T(yq, dq, gq, xq, w, ow, a, b0, k_h, k_w);        \
                }                                                                              \
                if (dx) mp_zero_rest_##T(dq, h, w, oh, ow, k_h, k_w);                          \
            }                                                                                  \
        }                                                                                      \
        if (dx) {                                                                              \
            for (int i = 0; i < VL; i++) orphan |= orph[i] != 0;                               \
            if (orphan) mp_fix_orphans_##T(dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);         \
        }                                                                                      \
    }

#define MP_CASE(T, OW)                                                                         \
    case OW:                                                                                   \
        mp_step_##T##_##OW(yr ? yr + s * VL_##T : NULL, ds, ds ? ds + 2 * VL_##T : NULL,       \
                           g ? g + s * VL_##T : NULL, xs, xs + 2 * VL_##T, &orph);             \
        break;
#define VL_float 8
#define VL_double 4
#define MP_OWS_float(T) MP_CASE(T, 1) MP_CASE(T, 2) MP_CASE(T, 4)
#define MP_OWS_double(T) MP_CASE(T, 1) MP_CASE(T, 2)

MP_RANGE(float, mp_v8i, 8, MP_OWS_float)
MP_RANGE(double, mp_v4i, 4, MP_OWS_double)

typedef void (*mp_range_fn_f32)(float *, float *, const float *, const float *, int64_t, int64_t,
                                int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
typedef void (*mp_range_fn_f64)(double *, double *, const double *, const double *, int64_t,
                                int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);

#define MP_VARIANTS(T)                                                                         \
    POOL_TARGET_AVX512 static void mp_range_##T##_avx512(                                     \
        T *y, T *dx, const T *dy, const T *x, int64_t q0, int64_t q1, int64_t h, int64_t w,   \
        int64_t oh, int64_t ow, int64_t k_h, int64_t k_w) {                                   \
        mp_range_##T(y, dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);                            \
    }                                                                                          \
    FI_TARGET_AVX2 static void mp_range_##T##_avx2(                                           \
        T *y, T *dx, const T *dy, const T *x, int64_t q0, int64_t q1, int64_t h, int64_t w,   \
        int64_t oh, int64_t ow, int64_t k_h, int64_t k_w) {                                   \
        mp_range_##T(y, dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);                            \
    }                                                                                          \
    static void mp_range_##T##_portable(                                                       \
        T *y, T *dx, const T *dy, const T *x, int64_t q0, int64_t q1, int64_t h, int64_t w,   \
        int64_t oh, int64_t ow, int64_t k_h, int64_t k_w) {                                   \
        mp_range_##T(y, dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);                            \
    }                                                                                          \
    /* planes in blocks of POOL_PLANE_BLOCK, on threads from POOL_PARALLEL_MIN inputs */      \
    static void mp_nonoverlap_##T(T *y, T *dx, const T *dy, const T *x, int64_t p, int64_t h,  \
                                  int64_t w, int64_t oh, int64_t ow, int64_t k_h,             \
                                  int64_t k_w) {                                              \
        void (*fn)(T *, T *, const T *, const T *, int64_t, int64_t, int64_t, int64_t,        \
                   int64_t, int64_t, int64_t, int64_t) =                                      \
            fi_use_avx512 ? mp_range_##T##_avx512                                             \
                          : fi_use_avx2 ? mp_range_##T##_avx2 : mp_range_##T##_portable;      \
        if (p * h * w < POOL_PARALLEL_MIN) {                                                   \
            fn(y, dx, dy, x, 0, p, h, w, oh, ow, k_h, k_w);                                    \
            return;                                                                            \
        }                                                                                      \
        int64_t nb = (p + POOL_PLANE_BLOCK - 1) / POOL_PLANE_BLOCK;                            \
        _Pragma("omp parallel for schedule(static)")                                          \
        for (int64_t i = 0; i < nb; i++)                                                       \
            fn(y, dx, dy, x, i * POOL_PLANE_BLOCK, FI_MIN(p, (i + 1) * POOL_PLANE_BLOCK), h, w, \
               oh, ow, k_h, k_w);                                                              \
    }

MP_VARIANTS(float)
MP_VARIANTS(double)

#define MP_NONOVERLAP(kh, kw, sh, sw, ph, pw) ((ph) == 0 && (pw) == 0 && (sh) == (kh) && (sw) == (kw))

/* ---- the generic kernels (any window, stride and padding) ----------------------------------- */

#define FI_POOL_KERNELS(T, SUF)                                                              \
static int64_t max_window_##SUF(const T *x, int64_t h, int64_t w, int64_t r0, int64_t c0,      \
                                int64_t kh, int64_t kw, T *best_out) {                        \
    T best = -INFINITY;                                                                        \
    int64_t at = 0;                                                                            \
    for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                              \
        for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)                          \
            if (x[r * w + c] > best) { best = x[r * w + c]; at = r * w + c; }                  \
    *best_out = best;                                                                          \
    return at;                                                                                 \
}                                                                                              \
void fi_max_pool2d_##SUF(T *y, const T *x, int64_t p, int64_t h, int64_t w, int64_t oh,       \
                         int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,          \
                         int64_t ph, int64_t pw) {                                            \
    _Pragma("omp parallel for schedule(static) if(p * oh * ow > 32768)")                     \
    for (int64_t q = 0; q < p; q++)                                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++)                                                   \
                max_window_##SUF(x + q * h * w, h, w, a * sh - ph, b * sw - pw, kh, kw,        \
                                 y + (q * oh + a) * ow + b);                                   \
}                                                                                              \
void fi_max_pool2d_backward_##SUF(T *dx, const T *dy, const T *x, int64_t p, int64_t h,       \
                                  int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw,  \
                                  int64_t sh, int64_t sw, int64_t ph, int64_t pw) {           \
    _Pragma("omp parallel for schedule(static) if(p * h * w > 32768)")                       \
    for (int64_t q = 0; q < p; q++) {                                                          \
        T *d = dx + q * h * w;                                                                 \
        memset(d, 0, (size_t)(h * w) * sizeof(T));                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                T best;                                                                        \
                int64_t at = max_window_##SUF(x + q * h * w, h, w, a * sh - ph, b * sw - pw,   \
                                              kh, kw, &best);                                  \
                d[at] += dy[(q * oh + a) * ow + b];                                            \
            }                                                                                  \
    }                                                                                          \
}                                                                                              \
static T avg_count_##SUF(int64_t r0, int64_t c0, int64_t h, int64_t w, int64_t kh,            \
                         int64_t kw, int64_t ph, int64_t pw, int include_pad) {               \
    if (include_pad)                                                                           \
        return (T)((FI_MIN(r0 + kh, h + ph) - r0) * (FI_MIN(c0 + kw, w + pw) - c0));           \
    return (T)((FI_MIN(r0 + kh, h) - FI_MAX(r0, 0)) * (FI_MIN(c0 + kw, w) - FI_MAX(c0, 0)));   \
}                                                                                              \
void fi_avg_pool2d_##SUF(T *y, const T *x, int64_t p, int64_t h, int64_t w, int64_t oh,       \
                         int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,          \
                         int64_t ph, int64_t pw, int include_pad) {                           \
    _Pragma("omp parallel for schedule(static) if(p * oh * ow > 32768)")                     \
    for (int64_t q = 0; q < p; q++)                                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                int64_t r0 = a * sh - ph, c0 = b * sw - pw;                                    \
                double s = 0.0;                                                                \
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                  \
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)              \
                        s += x[(q * h + r) * w + c];                                           \
                y[(q * oh + a) * ow + b] =                                                     \
                    (T)(s / avg_count_##SUF(r0, c0, h, w, kh, kw, ph, pw, include_pad));       \
            }                                                                                  \
}                                                                                              \
void fi_avg_pool2d_backward_##SUF(T *dx, const T *dy, int64_t p, int64_t h, int64_t w,        \
                                  int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, \
                                  int64_t sw, int64_t ph, int64_t pw, int include_pad) {      \
    _Pragma("omp parallel for schedule(static) if(p * h * w > 32768)")                       \
    for (int64_t q = 0; q < p; q++) {                                                          \
        T *d = dx + q * h * w;                                                                 \
        memset(d, 0, (size_t)(h * w) * sizeof(T));                                            \
        for (int64_t a = 0; a < oh; a++)                                                       \
            for (int64_t b = 0; b < ow; b++) {                                                 \
                int64_t r0 = a * sh - ph, c0 = b * sw - pw;                                    \
                T g = dy[(q * oh + a) * ow + b] /                                              \
                      avg_count_##SUF(r0, c0, h, w, kh, kw, ph, pw, include_pad);              \
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)                  \
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)              \
                        d[r * w + c] += g;                                                     \
            }                                                                                  \
    }                                                                                          \
}

FI_POOL_KERNELS(float, f32)
FI_POOL_KERNELS(double, f64)
