/* Non-overlapping max pooling (no padding, stride == kernel) of one (element type, ISA)
 * instantiation: included by pool.c through instances.h (FI_T, FI_T_IS_DOUBLE, FI_ISA, FI_SFX,
 * FI_ATTR). Vectors of MP_VL lanes: 64 bytes on AVX-512, 32 on AVX2, 16 (SSE2) portable.
 * Defines mp_fwd_<sfx> (dx, dy unused) and mp_bwd_<sfx> (y unused) over planes [q0, q1);
 * kh == sh, kw == sw, no padding.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)
/* MP_VL as a literal: it names the lane list MP_LANES_<VL> */
#if FI_ISA == FI_ISA_AVX512 && FI_T_IS_DOUBLE
#define MP_VL 8
#elif FI_ISA == FI_ISA_AVX512
#define MP_VL 16
#elif FI_ISA == FI_ISA_AVX2 && FI_T_IS_DOUBLE
#define MP_VL 4
#elif FI_ISA == FI_ISA_AVX2
#define MP_VL 8
#elif FI_T_IS_DOUBLE
#define MP_VL 2
#else
#define MP_VL 4
#endif
#define MP_VB (MP_VL * (int)sizeof(FI_T))
#define mp_vt FI_FN(mp_vt_)
#define mp_vtu FI_FN(mp_vtu_)
#define mp_vi FI_FN(mp_vi_)
typedef FI_T mp_vt __attribute__((vector_size(MP_VB)));
typedef FI_T mp_vtu FI_VEC_OF(FI_T, MP_VB);
#if FI_T_IS_DOUBLE
typedef int64_t mp_vi __attribute__((vector_size(MP_VB)));
#else
typedef int32_t mp_vi __attribute__((vector_size(MP_VB)));
#endif
#define MP_SEL(m, a, b) ((mp_vt)(((mp_vi)(a) & (m)) | ((mp_vi)(b) & ~(m))))

/* First maximum of the kh x kw window at x (row stride w); *at its offset, -1 when none > -inf */
FI_ATTR FI_INLINE FI_T FI_FN(mp_window_)(const FI_T *x, int64_t w, int64_t kh, int64_t kw,
                                         int64_t *at) {
    FI_T best = -INFINITY;
    int64_t where = -1;
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            FI_T v = x[i * w + j];
            int gt = v > best;
            best = gt ? v : best;
            where = gt ? i * w + j : where;
        }
    *at = where;
    return best;
}

/* windows [b0, ow) of output row a of one plane: y (and dx, zeros but the winner) */
FI_ATTR FI_INLINE int FI_FN(mp_row_tail_)(FI_T *y, FI_T *dx, const FI_T *dy, const FI_T *x,
                                          int64_t w, int64_t ow, int64_t a, int64_t b0,
                                          int64_t k_h, int64_t k_w) {
    int orphan = 0;
    for (int64_t b = b0; b < ow; b++) {
        int64_t off = a * k_h * w + b * k_w, at;
        FI_T best = FI_FN(mp_window_)(x + off, w, k_h, k_w, &at);
        if (!dx) {
            y[a * ow + b] = best;
            continue;
        }
        for (int64_t i = 0; i < k_h; i++)
            for (int64_t j = 0; j < k_w; j++) dx[off + i * w + j] = (FI_T)0;
        if (at >= 0) dx[off + at] = (FI_T)0 + dy[a * ow + b];
        else orphan = 1;
    }
    return orphan;
}

/* dx rows / columns that no window covers are zero */
FI_ATTR FI_INLINE void FI_FN(mp_zero_rest_)(FI_T *dx, int64_t h, int64_t w, int64_t oh,
                                            int64_t ow, int64_t k_h, int64_t k_w) {
    if (ow * k_w < w)
        for (int64_t r = 0; r < oh * k_h; r++)
            for (int64_t c = ow * k_w; c < w; c++) dx[r * w + c] = (FI_T)0;
    for (int64_t r = oh * k_h; r < h; r++)
        for (int64_t c = 0; c < w; c++) dx[r * w + c] = (FI_T)0;
}

/* the -inf windows of planes [q0, q1) add their dy to element 0 of their plane, in order */
FI_ATTR static void FI_FN(mp_fix_orphans_)(FI_T *dx, const FI_T *dy, const FI_T *x, int64_t q0,
                                           int64_t q1, int64_t h, int64_t w, int64_t oh,
                                           int64_t ow, int64_t k_h, int64_t k_w) {
    for (int64_t q = q0; q < q1; q++)
        for (int64_t a = 0; a < oh; a++)
            for (int64_t b = 0; b < ow; b++) {
                int64_t at;
                FI_FN(mp_window_)(x + q * h * w + a * k_h * w + b * k_w, w, k_h, k_w, &at);
                if (at < 0) dx[q * h * w] += dy[(q * oh + a) * ow + b];
            }
}

/* the steps of each row width that divides the vector: mp_step_<sfx>_<ow>, mp_run_<sfx>_<ow> */
#define MP_OW 1
#include "pool_step.h"
#define MP_OW 2
#include "pool_step.h"
#if MP_VL >= 4
#define MP_OW 4
#include "pool_step.h"
#endif
#if MP_VL >= 8
#define MP_OW 8
#include "pool_step.h"
#endif
#if MP_VL >= 16
#define MP_OW 16
#include "pool_step.h"
#endif
#define MP_RUN(ow) FI_CAT(FI_FN(mp_run_), FI_CAT(_, ow))(back, yr, dr, g, xr, steps, ninf, &orph)

/* Max pool (back 0: dx NULL) or its backward (back 1: y NULL) over planes [q0, q1) */
FI_ATTR FI_INLINE void FI_FN(mp_range_)(int back, FI_T *y, FI_T *dx, const FI_T *dy,
                                        const FI_T *x, int64_t q0, int64_t q1, int64_t h,
                                        int64_t w, int64_t oh, int64_t ow, int64_t k_h,
                                        int64_t k_w) {
    mp_vt orph = (mp_vt){0} + (FI_T)INFINITY; /* minimum of the window maxima */
    mp_vt ninf = (mp_vt){0} - (FI_T)INFINITY;
    int orphan = 0;
    int64_t hw = h * w, ohw = oh * ow;
    if (k_h == 2 && k_w == 2 && w == 2 * ow && ow < MP_VL && MP_VL % ow == 0) {
        /* whole row pairs per step: one run per plane, or one for all when h is even */
        int64_t runs = h == 2 * oh ? 1 : q1 - q0;
        int64_t per = h == 2 * oh ? (q1 - q0) * ohw : ohw; /* outputs per run */
        for (int64_t r = 0; r < runs; r++) {
            int64_t q = q0 + r;
            const FI_T *xr = x + q * hw;
            const FI_T *g = dy ? dy + q * ohw : NULL;
            FI_T *yr = y ? y + q * ohw : NULL, *dr = dx ? dx + q * hw : NULL;
            int64_t steps = per / MP_VL;
            switch (ow) { /* the widths below MP_VL */
            case 1: MP_RUN(1); break;
#if MP_VL > 2
            case 2: MP_RUN(2); break;
#endif
#if MP_VL > 4
            case 4: MP_RUN(4); break;
#endif
#if MP_VL > 8
            case 8: MP_RUN(8); break;
#endif
            }
            /* the remaining windows, one by one (their rows are whole row pairs) */
            for (int64_t o = steps * MP_VL; o < per; o++) {
                int64_t rowpair = o / ow, b = o % ow;
                int64_t pl = h == 2 * oh ? rowpair / oh : 0;
                int64_t a = rowpair - pl * oh;
                orphan |= FI_FN(mp_row_tail_)(yr ? yr + pl * ohw : NULL, dr ? dr + pl * hw : NULL,
                                              g ? g + pl * ohw : NULL, xr + pl * hw, w, ow, a, b,
                                              2, 2);
            }
            if (dx && h != 2 * oh) FI_FN(mp_zero_rest_)(dr, h, w, oh, ow, 2, 2);
        }
    } else {
        for (int64_t q = q0; q < q1; q++) {
            const FI_T *xq = x + q * hw;
            FI_T *yq = y ? y + q * ohw : NULL, *dq = dx ? dx + q * hw : NULL;
            const FI_T *gq = dy ? dy + q * ohw : NULL;
            for (int64_t a = 0; a < oh; a++) {
                int64_t b0 = 0;
                if (k_h == 2 && k_w == 2)
                    for (; b0 + MP_VL <= ow; b0 += MP_VL) {
                        const FI_T *xt = xq + 2 * a * w + 2 * b0;
                        FI_T *dt = dq ? dq + 2 * a * w + 2 * b0 : NULL;
                        FI_CAT(FI_FN(mp_step_), FI_CAT(_, MP_VL))(
                            back, yq ? yq + a * ow + b0 : NULL, dt, dt ? dt + w : NULL,
                            gq ? gq + a * ow + b0 : NULL, xt, xt + w, ninf, &orph);
                    }
                orphan |= FI_FN(mp_row_tail_)(yq, dq, gq, xq, w, ow, a, b0, k_h, k_w);
            }
            if (dx) FI_FN(mp_zero_rest_)(dq, h, w, oh, ow, k_h, k_w);
        }
    }
    if (dx) {
        for (int i = 0; i < MP_VL; i++) orphan |= orph[i] == -INFINITY;
        if (orphan) FI_FN(mp_fix_orphans_)(dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);
    }
}

FI_ATTR static void FI_FN(mp_fwd_)(FI_T *y, FI_T *dx, const FI_T *dy, const FI_T *x, int64_t q0,
                                   int64_t q1, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                   int64_t k_h, int64_t k_w) {
    (void)dx;
    (void)dy;
    FI_FN(mp_range_)(0, y, NULL, NULL, x, q0, q1, h, w, oh, ow, k_h, k_w);
}

FI_ATTR static void FI_FN(mp_bwd_)(FI_T *y, FI_T *dx, const FI_T *dy, const FI_T *x, int64_t q0,
                                   int64_t q1, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                   int64_t k_h, int64_t k_w) {
    (void)y;
    FI_FN(mp_range_)(1, NULL, dx, dy, x, q0, q1, h, w, oh, ow, k_h, k_w);
}

#undef FI_FN
#undef MP_VL
#undef MP_VB
#undef mp_vt
#undef mp_vtu
#undef mp_vi
#undef MP_SEL
#undef MP_RUN
