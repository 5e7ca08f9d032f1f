/* Batch norm of one (element type, ISA) instantiation: included by batchnorm.c through
 * instances.h (FI_T, FI_ISA, FI_SFX, FI_ATTR and the vector macros of gemm_tile.h); batchnorm.c
 * describes the three paths and the formulas.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)
/* The vector builds contract a * b + c into fused multiply-adds (sums of squares, outputs):
 * fewer operations, each rounded once. Where an element may take the scalar or the vector
 * code (the ends of a row, by the output's alignment) both spell the same fused operations out
 * (BN_FMA, FI_VFMA), so an element gets the same bits wherever the output lies. */
#if FI_ISA == FI_ISA_BASE
#define BN_ATTR FI_ATTR
#define BN_FMA(a, b, c) ((a) * (b) + (c))
#else
#define BN_ATTR FI_ATTR __attribute__((optimize("fp-contract=fast")))
#endif
#if FI_ISA == FI_ISA_BASE
#elif FI_T_IS_DOUBLE
#define BN_FMA(a, b, c) __builtin_fma(a, b, c)
#else
#define BN_FMA(a, b, c) __builtin_fmaf(a, b, c)
#endif
/* Accumulators are vectors of BN_L doubles, as wide as this build's vectors; BN_LOADD(p)
 * loads BN_L values at p (any alignment) as doubles. */
#define BN_VB ((int)sizeof(FI_V))
#define BN_L (BN_VB / 8)
#define BN_VD FI_FN(bn_vd_)
#define BN_VU FI_FN(bn_vu_)
#define BN_CF FI_FN(bn_cf_)
typedef double BN_VD __attribute__((vector_size(BN_VB)));
#if FI_T_IS_DOUBLE
typedef double BN_VU FI_VEC_OF(double, BN_VB);
#define BN_LOADD(p) ((BN_VD) * (const BN_VU *)(p))
#elif FI_ISA == FI_ISA_AVX512 && FI_X86 /* gcc 12 converts 8 floats as two halves and an insert */
#define BN_LOADD(p) ((BN_VD)_mm512_cvtps_pd(_mm256_loadu_ps(p)))
#else
typedef float BN_VU FI_VEC_OF(float, BN_VB / 2);
#define BN_LOADD(p) __builtin_convertvector(*(const BN_VU *)(p), BN_VD)
#endif

/* A channel's coefficients in the data type: out = k * dy + (x - mh) * a + b (k = 0 forward) */
typedef struct {
    FI_T k, mh, a, b;
} BN_CF;

BN_ATTR FI_INLINE double FI_FN(bn_hsum_)(BN_VD v) {
    double t = 0.0;
    for (int l = 0; l < BN_L; l++) t += v[l];
    return t;
}

/* Channel ch's coefficients, from its sums (kind BN_TRAIN: of x - shift and (x - shift)^2,
 * writing mean, var, invstd; BN_BACKWARD: of dy and dy (x - mean), writing dbeta, dgamma) or
 * from the given statistics (BN_EVAL, writing invstd). float64 until the end. */
BN_ATTR FI_INLINE BN_CF FI_FN(bn_coef_)(const bn_args *a, int64_t ch, double s1, double s2,
                                       double shift) {
    const double m_count = (double)(a->n * a->s), gamma = ((const FI_T *)a->gamma)[ch];
    BN_CF r = {0, 0, 0, 0};
    if (a->kind == BN_TRAIN) {
        const double d = s1 / m_count, v = s2 / m_count - d * d;
        a->mean[ch] = shift + d;
        a->var[ch] = v < 0.0 ? 0.0 : v;
        a->invstd[ch] = 1.0 / sqrt(a->var[ch] + a->eps);
    } else if (a->kind == BN_EVAL) {
        a->invstd[ch] = 1.0 / sqrt(a->var[ch] + a->eps);
    }
    const double mean = a->mean[ch], invstd = a->invstd[ch];
    r.mh = (FI_T)mean;
    if (a->kind != BN_BACKWARD) {
        const double ca = gamma * invstd;
        r.a = (FI_T)ca;
        r.b = (FI_T)((double)((const FI_T *)a->beta)[ch] - (mean - (double)r.mh) * ca);
        return r;
    }
    ((FI_T *)a->dbeta)[ch] = (FI_T)s1;
    ((FI_T *)a->dgamma)[ch] = (FI_T)(s2 * invstd);
    const double k = gamma * invstd;
    r.k = (FI_T)k;
    if (a->training) {
        const double k2 = k * invstd * (s2 * invstd) / m_count;
        r.a = (FI_T)-k2;
        r.b = (FI_T)(-k * s1 / m_count + (mean - (double)r.mh) * k2);
    }
    return r;
}

/* ---- the segment path ---------------------------------------------------------------------- */

/* The 4 rows p, p + cs, p + 2cs, p + 3cs at one column of BN_L elements: *u += the sum of
 * their x - k (grad 0) or dy (grad 1), *q += the sum of (x - k)^2 or dy (x - k). */
BN_ATTR FI_INLINE void FI_FN(seg_col4_)(const int grad, const FI_T *p, const FI_T *g,
                                       int64_t cs, BN_VD kv, BN_VD *u, BN_VD *q) {
    const BN_VD d0 = BN_LOADD(p) - kv, d1 = BN_LOADD(p + cs) - kv;
    const BN_VD d2 = BN_LOADD(p + 2 * cs) - kv, d3 = BN_LOADD(p + 3 * cs) - kv;
    const BN_VD g0 = grad ? BN_LOADD(g) : d0, g1 = grad ? BN_LOADD(g + cs) : d1;
    const BN_VD g2 = grad ? BN_LOADD(g + 2 * cs) : d2, g3 = grad ? BN_LOADD(g + 3 * cs) : d3;
    *u += (g0 + g1) + (g2 + g3);
    *q += (g0 * d0 + g1 * d1) + (g2 * d2 + g3 * d3);
}

/* Per channel over rows [0, n) of x (and dy), float64: s1[ch], s2[ch] as seg_col4_ sums them,
 * around k[ch]. Rows go 4 at a time (4 sequential streams): a channel's 4 segments are summed
 * as a tree, then added into its 2 + 2 accumulators, so a visit costs few dependent adds
 * whatever S. acc: 4c vectors, tail: 2c doubles. */
BN_ATTR FI_INLINE void FI_FN(seg_sums_)(const int grad, double *s1, double *s2, const FI_T *x,
                                       const FI_T *dy, const double *k, int64_t n, int64_t c,
                                       int64_t s, BN_VD *acc, double *tail) {
    const int64_t cs = c * s;
    for (int64_t ch = 0; ch < 4 * c; ch++) acc[ch] = (BN_VD){0};
    for (int64_t ch = 0; ch < 2 * c; ch++) tail[ch] = 0.0;
    for (int64_t i = 0; i < n; i += 4) {
        const int64_t rows = n - i < 4 ? n - i : 4;
        for (int64_t ch = 0; ch < c; ch++) {
            const FI_T *r = x + i * cs + ch * s, *g = grad ? dy + i * cs + ch * s : NULL;
            const BN_VD kv = (BN_VD){0} + k[ch];
            BN_VD *ac = acc + 4 * ch, a0 = ac[0], a1 = ac[1], b0 = ac[2], b1 = ac[3];
            int64_t j = 0;
            if (rows == 4) {
                for (; j + 2 * BN_L <= s; j += 2 * BN_L) {
                    FI_FN(seg_col4_)(grad, r + j, grad ? g + j : NULL, cs, kv, &a0, &b0);
                    FI_FN(seg_col4_)(grad, r + j + BN_L, grad ? g + j + BN_L : NULL, cs, kv,
                                     &a1, &b1);
                }
                for (; j + BN_L <= s; j += BN_L)
                    FI_FN(seg_col4_)(grad, r + j, grad ? g + j : NULL, cs, kv, &a0, &b0);
            } else {
                for (; j + BN_L <= s; j += BN_L)
                    for (int64_t t = 0; t < rows; t++) {
                        const BN_VD d0 = BN_LOADD(r + t * cs + j) - kv;
                        const BN_VD g0 = grad ? BN_LOADD(g + t * cs + j) : d0;
                        a0 += g0;
                        b0 += g0 * d0;
                    }
            }
            ac[0] = a0;
            ac[1] = a1;
            ac[2] = b0;
            ac[3] = b1;
            for (int64_t t = 0; t < rows; t++)
                for (int64_t jj = j; jj < s; jj++) {
                    const double d = (double)r[t * cs + jj] - k[ch];
                    const double gg = grad ? (double)g[t * cs + jj] : d;
                    tail[2 * ch] += gg;
                    tail[2 * ch + 1] += gg * d;
                }
        }
    }
    for (int64_t ch = 0; ch < c; ch++) {
        s1[ch] = FI_FN(bn_hsum_)(acc[4 * ch] + acc[4 * ch + 1]) + tail[2 * ch];
        s2[ch] = FI_FN(bn_hsum_)(acc[4 * ch + 2] + acc[4 * ch + 3]) + tail[2 * ch + 1];
    }
}

/* The sums of block b of rb rows into p + 2bc (s1) and p + (2b + 1)c (s2); the accumulators
 * on the stack up to BN_SEGMENT_STACK_C channels. */
BN_ATTR static fi_status FI_FN(seg_block_)(const bn_args *a, const double *k, double *p,
                                           int64_t b, int64_t rb) {
    const int64_t c = a->c, cs = c * a->s, i0 = b * rb, i1 = i0 + rb < a->n ? i0 + rb : a->n;
    BN_VD stack[4 * BN_SEGMENT_STACK_C + 2 * BN_SEGMENT_STACK_C * 8 / sizeof(BN_VD) + 1];
    BN_VD *acc = stack;
    if (c > BN_SEGMENT_STACK_C) {
        acc = aligned_alloc(64, (sizeof(BN_VD) * 4 * c + 16 * c + 63) / 64 * 64);
        if (!acc) return FI_ERR_NOMEM;
    }
    const FI_T *x = (const FI_T *)a->x + i0 * cs;
    if (a->kind == BN_BACKWARD)
        FI_FN(seg_sums_)(1, p + 2 * b * c, p + (2 * b + 1) * c, x, (const FI_T *)a->dy + i0 * cs,
                         k, i1 - i0, c, a->s, acc, (double *)(acc + 4 * c));
    else
        FI_FN(seg_sums_)(0, p + 2 * b * c, p + (2 * b + 1) * c, x, NULL, k, i1 - i0, c, a->s,
                         acc, (double *)(acc + 4 * c));
    if (acc != stack) free(acc);
    return FI_OK;
}

/* The output pass over rows [i0, i1), each (n, c) segment with its channel's cf (grad 1:
 * backward). */
BN_ATTR FI_INLINE void FI_FN(seg_apply_rows_)(const int grad, FI_T *restrict out,
                                             const FI_T *restrict x, const FI_T *restrict dy,
                                             const BN_CF *cf, int64_t i0, int64_t i1, int64_t c,
                                             int64_t s) {
    for (int64_t i = i0; i < i1; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            const int64_t o = (i * c + ch) * s;
            const FI_T *restrict r = x + o, *restrict g = grad ? dy + o : NULL;
            FI_T *restrict w = out + o;
            const FI_T mh = cf[ch].mh, ca = cf[ch].a, cb = cf[ch].b, ck = cf[ch].k;
            if (grad)
                for (int64_t j = 0; j < s; j++) w[j] = ck * g[j] + (r[j] - mh) * ca + cb;
            else
                for (int64_t j = 0; j < s; j++) w[j] = (r[j] - mh) * ca + cb;
        }
}

BN_ATTR static void FI_FN(seg_apply_)(const bn_args *a, const BN_CF *cf, int64_t b, int64_t rb) {
    const int64_t i1 = (b + 1) * rb < a->n ? (b + 1) * rb : a->n;
    if (a->kind == BN_BACKWARD)
        FI_FN(seg_apply_rows_)(1, a->out, a->x, a->dy, cf, b * rb, i1, a->c, a->s);
    else
        FI_FN(seg_apply_rows_)(0, a->out, a->x, NULL, cf, b * rb, i1, a->c, a->s);
}

/* Fixed blocks of rows: partial sums per block, added in block order (the result does not
 * depend on the thread count); blocks run on threads from BN_SEGMENT_PARALLEL_MIN elements
 * (explicit branches: an OpenMP region with a false if() clause still costs a call). */
BN_ATTR static fi_status FI_FN(bn_segment_)(const bn_args *a) {
    const int64_t c = a->c, n = a->n, s = a->s, cs = c * s;
    const int64_t rb = bn_seg_rows_per_block(cs), nb = (n + rb - 1) / rb;
    const int par = nb > 1 && n * cs >= BN_SEGMENT_PARALLEL_MIN;
    /* scratch: shifts k (c), partial sums (2 * nb * c), coefficients (c) */
    double *k = malloc(sizeof(double) * (c + 2 * nb * c) + sizeof(BN_CF) * c);
    if (!k) return FI_ERR_NOMEM;
    double *p = k + c;
    BN_CF *cf = (BN_CF *)(p + 2 * nb * c);
    int status = FI_OK;
    if (a->kind == BN_EVAL) {
        for (int64_t ch = 0; ch < c; ch++) cf[ch] = FI_FN(bn_coef_)(a, ch, 0.0, 0.0, 0.0);
    } else {
        for (int64_t ch = 0; ch < c; ch++)
            k[ch] = a->kind == BN_BACKWARD ? a->mean[ch] : (double)((const FI_T *)a->x)[ch * s];
        if (par) {
#pragma omp parallel for num_threads(fi_threads()) schedule(static) reduction(| : status)
            for (int64_t b = 0; b < nb; b++) status |= FI_FN(seg_block_)(a, k, p, b, rb);
        } else {
            for (int64_t b = 0; b < nb; b++) status |= FI_FN(seg_block_)(a, k, p, b, rb);
        }
        for (int64_t ch = 0; ch < c && status == FI_OK; ch++) {
            double t1 = p[ch], t2 = p[c + ch];
            for (int64_t b = 1; b < nb; b++) {
                t1 += p[2 * b * c + ch];
                t2 += p[(2 * b + 1) * c + ch];
            }
            cf[ch] = FI_FN(bn_coef_)(a, ch, t1, t2, k[ch]);
        }
    }
    if (status == FI_OK && par) {
#pragma omp parallel for num_threads(fi_threads()) schedule(static)
        for (int64_t b = 0; b < nb; b++) FI_FN(seg_apply_)(a, cf, b, rb);
    } else if (status == FI_OK) {
        for (int64_t b = 0; b < nb; b++) FI_FN(seg_apply_)(a, cf, b, rb);
    }
    free(k);
    return status ? FI_ERR_NOMEM : FI_OK;
}

/* ---- the channel path ---------------------------------------------------------------------- */

/* s1 = sum(x - k), s2 = sum((x - k)^2) (grad 0) or s1 = sum(dy), s2 = sum(dy (x - k)) (grad 1)
 * over n elements, float64 in four accumulators; prefetches on into the rows read next
 * (x_next, dy_next; NULL: none). */
BN_ATTR FI_INLINE void FI_FN(bn_row_sums_)(const int grad, const FI_T *x, const FI_T *dy,
                                          int64_t n, double k, double *s1, double *s2,
                                          const FI_T *x_next, const FI_T *dy_next) {
    const BN_VD kv = (BN_VD){0} + k;
    BN_VD u[4], q[4];
    for (int r = 0; r < 4; r++) u[r] = q[r] = (BN_VD){0};
    int64_t i = 0;
    for (; i + 4 * BN_L <= n; i += 4 * BN_L) {
        for (int64_t o = 0; o < 4 * BN_L; o += 64 / (int64_t)sizeof(FI_T)) {
            bn_prefetch(x, x_next, i + o, n, sizeof(FI_T));
            if (grad) bn_prefetch(dy, dy_next, i + o, n, sizeof(FI_T));
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const BN_VD d = BN_LOADD(x + i + r * BN_L) - kv;
            const BN_VD g = grad ? BN_LOADD(dy + i + r * BN_L) : d;
            u[r] += g;
            q[r] += g * d;
        }
    }
    for (; i + BN_L <= n; i += BN_L) {
        const BN_VD d = BN_LOADD(x + i) - kv, g = grad ? BN_LOADD(dy + i) : d;
        u[0] += g;
        q[0] += g * d;
    }
    double t1 = 0.0, t2 = 0.0;
    for (; i < n; i++) {
        const double d = (double)x[i] - k, g = grad ? (double)dy[i] : d;
        t1 += g;
        t2 += g * d;
    }
    *s1 = FI_FN(bn_hsum_)((u[0] + u[1]) + (u[2] + u[3])) + t1;
    *s2 = FI_FN(bn_hsum_)((q[0] + q[1]) + (q[2] + q[3])) + t2;
}

/* out = (x - mh) a + b (grad 0) or k dy + (x - mh) a + b (grad 1) over n elements, streamed
 * where out is aligned to the vector; prefetches as bn_row_sums_, and beside that x_pre and
 * dy_pre (NULL: none), one line per line. */
BN_ATTR FI_INLINE void FI_FN(bn_row_apply_)(const int grad, FI_T *restrict out,
                                           const FI_T *restrict x, const FI_T *restrict dy,
                                           int64_t n, BN_CF cf, const FI_T *x_next,
                                           const FI_T *dy_next, const FI_T *x_pre,
                                           const FI_T *dy_pre) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(out + i) & (BN_VB - 1)); i++) {
        const FI_T v = BN_FMA(x[i] - cf.mh, cf.a, cf.b);
        out[i] = grad ? BN_FMA(cf.k, dy[i], v) : v;
    }
    const FI_V kv = FI_VSET1(cf.k), mv = FI_VSET1(cf.mh), av = FI_VSET1(cf.a);
    const FI_V bv = FI_VSET1(cf.b);
    for (; i + FI_W <= n; i += FI_W) {
        if (((i * (int64_t)sizeof(FI_T)) & 63) < BN_VB) {
            bn_prefetch(x, x_next, i, n, sizeof(FI_T));
            if (grad) bn_prefetch(dy, dy_next, i, n, sizeof(FI_T));
            if (x_pre) __builtin_prefetch(x_pre + i);
            if (grad && dy_pre) __builtin_prefetch(dy_pre + i);
        }
        FI_V v = FI_VFMA(FI_VLOAD(x + i) - mv, av, bv);
        if (grad) v = FI_VFMA(kv, FI_VLOAD(dy + i), v);
        FI_VSTREAM(out + i, v);
    }
    for (; i < n; i++) {
        const FI_T v = BN_FMA(x[i] - cf.mh, cf.a, cf.b);
        out[i] = grad ? BN_FMA(cf.k, dy[i], v) : v;
    }
}

/* One channel: its sums (not for BN_EVAL) row after row, read from memory; the coefficients;
 * the output pass, re-reading the channel from cache. pre: fetch the same rows of channel
 * ch + 1 (the thread's next) beside the output pass. */
BN_ATTR static void FI_FN(bn_channel_)(const bn_args *a, int64_t ch, int pre) {
    const int grad = a->kind == BN_BACKWARD;
    const FI_T *x = (const FI_T *)a->x, *dy = (const FI_T *)a->dy;
    FI_T *out = (FI_T *)a->out;
    const int64_t n = a->n, s = a->s, cs = a->c * s;
    const double shift = grad ? a->mean[ch] : (double)x[ch * s];
    double s1 = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n && a->kind != BN_EVAL; i++) {
        const int64_t o = i * cs + ch * s, on = i + 1 < n ? o + cs : -1;
        double t1, t2;
        if (grad)
            FI_FN(bn_row_sums_)(1, x + o, dy + o, s, shift, &t1, &t2, on < 0 ? NULL : x + on,
                                on < 0 ? NULL : dy + on);
        else
            FI_FN(bn_row_sums_)(0, x + o, NULL, s, shift, &t1, &t2, on < 0 ? NULL : x + on, NULL);
        s1 += t1;
        s2 += t2;
    }
    const BN_CF cf = FI_FN(bn_coef_)(a, ch, s1, s2, shift);
    for (int64_t i = 0; i < n; i++) {
        const int64_t o = i * cs + ch * s, on = i + 1 < n ? o + cs : -1;
        if (grad)
            FI_FN(bn_row_apply_)(1, out + o, x + o, dy + o, s, cf, on < 0 ? NULL : x + on,
                                 on < 0 ? NULL : dy + on, pre ? x + o + s : NULL,
                                 pre ? dy + o + s : NULL);
        else
            FI_FN(bn_row_apply_)(0, out + o, x + o, NULL, s, cf, on < 0 ? NULL : x + on, NULL,
                                 pre ? x + o + s : NULL, NULL);
    }
}

/* Training and backward: each thread its own fixed, contiguous share of the channels, one
 * channel at a time, so the thread can fetch its next channel during the output pass; the
 * forward with given statistics reads each channel once: channels handed out one at a time
 * (on a shared machine a busy core does fewer). */
BN_ATTR static fi_status FI_FN(bn_channels_)(const bn_args *a) {
#pragma omp parallel num_threads(fi_threads())
    {
        if (a->kind == BN_EVAL) {
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t ch = 0; ch < a->c; ch++) FI_FN(bn_channel_)(a, ch, 0);
        } else {
            const int64_t t = fi_thread_num(), tn = fi_team_size();
            const int64_t lo = a->c * t / tn, hi = a->c * (t + 1) / tn;
            for (int64_t ch = lo; ch < hi; ch++) FI_FN(bn_channel_)(a, ch, ch + 1 < hi);
        }
        bn_fence();
    }
    return FI_OK;
}

/* ---- the row path: fixed blocks of rows of length L = C * S -------------------------------- */

BN_ATTR static fi_status FI_FN(bn_rows_)(const bn_args *a) {
    const int grad = a->kind == BN_BACKWARD, sums = a->kind != BN_EVAL;
    const FI_T *x = (const FI_T *)a->x, *dy = (const FI_T *)a->dy;
    FI_T *out = (FI_T *)a->out;
    const int64_t n = a->n, c = a->c, s = a->s, length = c * s;
    const int64_t rb = bn_rows_per_block(length), nb = (n + rb - 1) / rb;
    /* per block the partial sums of each of the L positions; the per-position shift and
     * coefficients (k, mh, a, b) */
    double *p1 = malloc(sizeof(double) * (sums ? 2 * nb * length + length : 1));
    FI_T *ck = malloc(sizeof(FI_T) * 4 * length);
    if (!p1 || !ck) {
        free(p1);
        free(ck);
        return FI_ERR_NOMEM;
    }
    double *p2 = p1 + nb * length, *shift = p2 + nb * length;
    FI_T *mh = ck + length, *ca = mh + length, *cb = ca + length;
    if (sums) {
        for (int64_t j = 0; j < length; j++)
            shift[j] = grad ? a->mean[j / s] : (double)x[(j / s) * s];
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n * length >= BN_PARALLEL_MIN)
        for (int64_t b = 0; b < nb; b++) {
            double *q1 = p1 + b * length, *q2 = p2 + b * length;
            memset(q1, 0, sizeof(double) * length);
            memset(q2, 0, sizeof(double) * length);
            for (int64_t i = b * rb; i < (b + 1) * rb && i < n; i++)
                for (int64_t j = 0; j < length; j++) {
                    const double d = (double)x[i * length + j] - shift[j];
                    const double g = grad ? (double)dy[i * length + j] : d;
                    q1[j] += g;
                    q2[j] += g * d;
                }
        }
    }
    for (int64_t ch = 0; ch < c; ch++) {
        double s1 = 0.0, s2 = 0.0; /* block order, then over S */
        for (int64_t t = 0; t < s && sums; t++) {
            double t1 = 0.0, t2 = 0.0;
            for (int64_t b = 0; b < nb; b++) {
                t1 += p1[b * length + ch * s + t];
                t2 += p2[b * length + ch * s + t];
            }
            s1 += t1;
            s2 += t2;
        }
        const BN_CF cf = FI_FN(bn_coef_)(a, ch, s1, s2, sums ? shift[ch * s] : 0.0);
        for (int64_t t = ch * s; t < (ch + 1) * s; t++) {
            ck[t] = cf.k;
            mh[t] = cf.mh;
            ca[t] = cf.a;
            cb[t] = cf.b;
        }
    }
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n * length >= BN_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const FI_T *xr = x + i * length;
        FI_T *o = out + i * length;
        if (grad) {
            const FI_T *gr = dy + i * length;
            for (int64_t j = 0; j < length; j++)
                o[j] = ck[j] * gr[j] + (xr[j] - mh[j]) * ca[j] + cb[j];
        } else {
            for (int64_t j = 0; j < length; j++) o[j] = (xr[j] - mh[j]) * ca[j] + cb[j];
        }
    }
    free(p1);
    free(ck);
    return FI_OK;
}

BN_ATTR static fi_status FI_FN(bn_run_)(const bn_args *a) {
    if (a->s >= BN_SEGMENT_S_MIN &&
        a->n * a->c * a->s * (int64_t)sizeof(FI_T) < BN_STREAM_MIN_BYTES)
        return FI_FN(bn_segment_)(a);
    if (a->s >= BN_SPATIAL_MIN) return FI_FN(bn_channels_)(a);
    return FI_FN(bn_rows_)(a);
}

#undef BN_ATTR
#undef BN_FMA
#undef BN_VB
#undef BN_L
#undef BN_VD
#undef BN_VU
#undef BN_CF
#undef BN_LOADD
#undef FI_FN
