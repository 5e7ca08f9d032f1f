/* Batch norm forward and backward (same contract as fastinit/reference/batchnorm.py).
 *
 * x is C-contiguous (N, C, S): (N, C) input has S = 1, NCHW input S = H*W. Statistics are
 * float64 (mean, var, invstd: (C,)); data, gamma, beta and outputs are float or double.
 *
 * Two layouts of the work (shared PERF_NOTES.md, "Batch norm"):
 *   channel path (S >= BN_SPATIAL_MIN): one channel per task. The channel is read once from
 *     memory for its sums and again, from cache, for the output pass (a channel of 64x56x56
 *     float32 is 800 KB), so the forward moves the bytes of one copy.
 *   row path (small S, e.g. (N, C)): fixed blocks of rows, each summing into its own (C*S,)
 *     float64 partial rows, combined in block order.
 * Sums are float64, taken around a per-channel shift k = x[0, c, 0] (sum of x - k and of
 * (x - k)^2): float32 sums of squares give a wrong variance at mean 1000, std 1, and the shift
 * removes the cancellation of E[x^2] - E[x]^2. Tiles and blocks have fixed sizes, so results
 * do not depend on the thread count.
 *
 * The output pass is y = (x - mh) * a + b in the data type, mh = mean rounded to it,
 * a = gamma * invstd, b = beta - (mean - mh) * a: x - mh is exact near the mean (Sterbenz), so
 * a large mean costs no accuracy. Outputs of BN_STREAM_MIN_BYTES or more are written with
 * non-temporal stores (they would only evict the input the second pass re-reads, and a
 * streaming store skips the read-for-ownership of each output line).
 * Backward: dx = k * dy + (x - mh) * p + q with k = gamma * invstd and, in training,
 * p = -k * invstd * dgamma / M, q = -k * dbeta / M + (mean - mh) * k * invstd * dgamma / M.
 *
 * Every body is written once (FI_INLINE) and compiled twice, AVX2+FMA and portable.
 */
/* The 32-byte vector helpers are always inlined: no call ever uses the AVX argument ABI. */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif


#define BN_SPATIAL_MIN 64                    /* channel path from this spatial size */
#define BN_BLOCK_ELEMENTS 16384              /* elements per block of the row path */
#define BN_PARALLEL_MIN 32768                /* _config.PARALLEL_MIN_ELEMENTS */
#ifndef BN_STREAM_MIN_BYTES
#define BN_STREAM_MIN_BYTES (16L << 20)      /* non-temporal stores from this output size */
#endif

typedef double bn_v4d __attribute__((vector_size(32)));
typedef double bn_v4d_u __attribute__((vector_size(32), aligned(8)));
typedef double bn_v2d_u __attribute__((vector_size(16), aligned(8)));
typedef float bn_v4f_u __attribute__((vector_size(16), aligned(4)));
typedef double bn_v2d __attribute__((vector_size(16)));
typedef float bn_v4f __attribute__((vector_size(16)));

/* ---- row helpers, per element type ----------------------------------------------------------- */

FI_INLINE bn_v4d load4d_float(const float *p) {
    return __builtin_convertvector(*(const bn_v4f_u *)p, bn_v4d);
}
FI_INLINE bn_v4d load4d_double(const double *p) { return *(const bn_v4d_u *)p; }

/* (a macro: a 32-byte vector passed by value draws a gcc ABI note on the portable build) */
#define lanes_sum(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

/* Non-temporal 16-byte stores (SSE/SSE2: every x86-64 has them; aligned destination). */
FI_INLINE void stream4_float(float *dst, bn_v4f v) {
#if FI_X86
    _mm_stream_ps(dst, (__m128)v);
#else
    *(bn_v4f *)dst = v;
#endif
}
FI_INLINE void stream2_double(double *dst, bn_v2d v) {
#if FI_X86
    _mm_stream_pd(dst, (__m128d)v);
#else
    *(bn_v2d *)dst = v;
#endif
}

/* Software prefetch BN_PREFETCH_BYTES ahead of element i of a row of n elements, running on
 * into the next row of the same channel (rows of a channel are C*S elements apart in memory,
 * which the hardware prefetchers here do not follow: 2.5x slower sums without this). One
 * prefetch per 64-byte line. */
#ifndef BN_PREFETCH_BYTES
#define BN_PREFETCH_BYTES 8192
#endif
/* 1: the output pass prefetches too (its rows come from L2/L3, 64 rows per channel) */
#ifndef BN_PREFETCH_APPLY
#define BN_PREFETCH_APPLY 1
#endif
FI_INLINE void prefetch_ahead(const void *row, const void *next, int64_t i, int64_t n,
                              size_t elem) {
    int64_t ahead = BN_PREFETCH_BYTES / (int64_t)elem, per_line = 64 / (int64_t)elem;
    if ((i & (per_line - 1)) >= 8) return;  /* 8 elements per step: once per line */
    if (i + ahead < n)
        __builtin_prefetch((const char *)row + (i + ahead) * (int64_t)elem);
    else if (next)
        __builtin_prefetch((const char *)next + (i + ahead - n) * (int64_t)elem);
}

#define BN_ROW_HELPERS(T)                                                                     \
    /* s1 = sum(x - k), s2 = sum((x - k)^2) over x[0..n), float64; next: the row read     \
     * after this one (prefetched as this one ends), or NULL */                               \
    FI_INLINE void sums_##T(const T *x, int64_t n, double k, double *s1, double *s2,         \
                            const T *next) {                                                  \
        bn_v4d kv = {k, k, k, k}, a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};                    \
        int64_t i = 0;                                                                        \
        for (; i + 8 <= n; i += 8) {                                                          \
            prefetch_ahead(x, next, i, n, sizeof(T));                                         \
            bn_v4d d0 = load4d_##T(x + i) - kv, d1 = load4d_##T(x + i + 4) - kv;             \
            a0 += d0;                                                                         \
            a1 += d1;                                                                         \
            b0 += d0 * d0;                                                                    \
            b1 += d1 * d1;                                                                    \
        }                                                                                     \
        double t1 = 0.0, t2 = 0.0;                                                            \
        for (; i < n; i++) {                                                                  \
            double d = (double)x[i] - k;                                                      \
            t1 += d;                                                                          \
            t2 += d * d;                                                                      \
        }                                                                                     \
        *s1 = lanes_sum(a0 + a1) + t1;                                                        \
        *s2 = lanes_sum(b0 + b1) + t2;                                                        \
    }                                                                                         \
    /* s1 = sum(dy), s2 = sum(dy * (x - m)), float64 */                                       \
    FI_INLINE void gsums_##T(const T *dy, const T *x, int64_t n, double m, double *s1,       \
                             double *s2, const T *dy_next, const T *x_next) {                 \
        bn_v4d mv = {m, m, m, m}, a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};                    \
        int64_t i = 0;                                                                        \
        for (; i + 8 <= n; i += 8) {                                                          \
            prefetch_ahead(dy, dy_next, i, n, sizeof(T));                                     \
            prefetch_ahead(x, x_next, i, n, sizeof(T));                                       \
            bn_v4d g0 = load4d_##T(dy + i), g1 = load4d_##T(dy + i + 4);                     \
            a0 += g0;                                                                         \
            a1 += g1;                                                                         \
            b0 += g0 * (load4d_##T(x + i) - mv);                                              \
            b1 += g1 * (load4d_##T(x + i + 4) - mv);                                          \
        }                                                                                     \
        double t1 = 0.0, t2 = 0.0;                                                            \
        for (; i < n; i++) {                                                                  \
            double g = (double)dy[i];                                                         \
            t1 += g;                                                                          \
            t2 += g * ((double)x[i] - m);                                                     \
        }                                                                                     \
        *s1 = lanes_sum(a0 + a1) + t1;                                                        \
        *s2 = lanes_sum(b0 + b1) + t2;                                                        \
    }

BN_ROW_HELPERS(float)
BN_ROW_HELPERS(double)

/* y = (x - mh) * a + b over n elements; stream: non-temporal stores where aligned. */
FI_INLINE void affine_float(float *restrict y, const float *restrict x, int64_t n, float mh,
                            float a, float b, int stream, const float *x_next) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(y + i) & 15); i++) y[i] = (x[i] - mh) * a + b;
        for (; i + 8 <= n; i += 8) {
            if (BN_PREFETCH_APPLY) prefetch_ahead(x, x_next, i, n, sizeof(float));
            bn_v4f v0 = (*(const bn_v4f_u *)(x + i) - mh) * a + b;
            bn_v4f v1 = (*(const bn_v4f_u *)(x + i + 4) - mh) * a + b;
            stream4_float(y + i, v0);
            stream4_float(y + i + 4, v1);
        }
    }
    for (; i < n; i++) y[i] = (x[i] - mh) * a + b;
}

FI_INLINE void affine_double(double *restrict y, const double *restrict x, int64_t n, double mh,
                             double a, double b, int stream, const double *x_next) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(y + i) & 15); i++) y[i] = (x[i] - mh) * a + b;
        for (; i + 4 <= n; i += 4) {
            if (BN_PREFETCH_APPLY && (i & 7) == 0) prefetch_ahead(x, x_next, i, n, sizeof(double));
            bn_v2d v0 = (*(const bn_v2d_u *)(x + i) - mh) * a + b;
            bn_v2d v1 = (*(const bn_v2d_u *)(x + i + 2) - mh) * a + b;
            stream2_double(y + i, v0);
            stream2_double(y + i + 2, v1);
        }
    }
    for (; i < n; i++) y[i] = (x[i] - mh) * a + b;
}

/* dx = k * dy + (x - mh) * p + q over n elements. */
FI_INLINE void affine2_float(float *restrict dx, const float *restrict dy,
                             const float *restrict x, int64_t n, float k, float mh, float p,
                             float q, int stream, const float *dy_next, const float *x_next) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(dx + i) & 15); i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
        for (; i + 8 <= n; i += 8) {
            if (BN_PREFETCH_APPLY) {
                prefetch_ahead(dy, dy_next, i, n, sizeof(float));
                prefetch_ahead(x, x_next, i, n, sizeof(float));
            }
            bn_v4f v0 = k * *(const bn_v4f_u *)(dy + i) + (*(const bn_v4f_u *)(x + i) - mh) * p + q;
            bn_v4f v1 = k * *(const bn_v4f_u *)(dy + i + 4) +
                        (*(const bn_v4f_u *)(x + i + 4) - mh) * p + q;
            stream4_float(dx + i, v0);
            stream4_float(dx + i + 4, v1);
        }
    }
    for (; i < n; i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
}

FI_INLINE void affine2_double(double *restrict dx, const double *restrict dy,
                              const double *restrict x, int64_t n, double k, double mh, double p,
                              double q, int stream, const double *dy_next,
                              const double *x_next) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(dx + i) & 15); i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
        for (; i + 4 <= n; i += 4) {
            if (BN_PREFETCH_APPLY && (i & 7) == 0) {
                prefetch_ahead(dy, dy_next, i, n, sizeof(double));
                prefetch_ahead(x, x_next, i, n, sizeof(double));
            }
            bn_v2d v0 = k * *(const bn_v2d_u *)(dy + i) + (*(const bn_v2d_u *)(x + i) - mh) * p + q;
            bn_v2d v1 = k * *(const bn_v2d_u *)(dy + i + 2) +
                        (*(const bn_v2d_u *)(x + i + 2) - mh) * p + q;
            stream2_double(dx + i, v0);
            stream2_double(dx + i + 2, v1);
        }
    }
    for (; i < n; i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
}

/* ---- per-channel coefficients (float64, rounded to the data type at the end) ---------------- */

static void stats_from_sums(double s1, double s2, double m_count, double shift, double eps,
                            double *mean, double *var, double *invstd) {
    double d = s1 / m_count, v = s2 / m_count - d * d;
    if (v < 0.0) v = 0.0;
    *mean = shift + d;
    *var = v;
    *invstd = 1.0 / sqrt(v + eps);
}

/* (mh, a, b) of y = (x - mh) * a + b; mh is the mean rounded to the data type (mh_rounded). */
static void forward_coef(double mean, double invstd, double gamma, double beta,
                         double mh_rounded, double *a, double *b) {
    *a = gamma * invstd;
    *b = beta - (mean - mh_rounded) * *a;
}

/* (k, p, q) of dx = k * dy + (x - mh) * p + q. */
static void backward_coef(double m_count, double mean, double mh_rounded, double invstd,
                          double gamma, double sum_dy, double sum_dyx, int training, double *k,
                          double *p, double *q) {
    *k = gamma * invstd;
    if (training) {
        double k2 = *k * invstd * (sum_dyx * invstd) / m_count;
        *p = -k2;
        *q = -*k * sum_dy / m_count + (mean - mh_rounded) * k2;
    } else {
        *p = 0.0;
        *q = 0.0;
    }
}

/* ---- the channel path: one task per channel ------------------------------------------------ */
/* (Interleaving the output pass of channel c with the sums pass of c+1, so reads and writes
 * overlap as in a copy, was tried: 10-15% slower than one channel after the other.) */

typedef struct {
    void *out;                 /* y or dx */
    void *dgamma, *dbeta;      /* backward */
    double *mean, *var, *invstd;
    const void *x, *dy, *gamma, *beta;
    double eps;
    int64_t n, c, s;
    int training, stream;
} bn_args;

typedef void (*bn_range_fn)(const bn_args *a, int64_t lo, int64_t hi);

/* Per-channel coefficients, in the data type. */
#define BN_COEF(T)                                                                            \
    typedef struct {                                                                          \
        T mh, a, b, k;                                                                        \
    } bn_coef_##T;                                                                            \
    /* forward: sums -> statistics -> (mh, a, b) of y = (x - mh) * a + b */                   \
    static bn_coef_##T fwd_finish_##T(const bn_args *a, int64_t ch, double s1, double s2,    \
                                      double shift) {                                         \
        stats_from_sums(s1, s2, (double)(a->n * a->s), shift, a->eps, &a->mean[ch],          \
                        &a->var[ch], &a->invstd[ch]);                                         \
        bn_coef_##T r;                                                                        \
        r.mh = (T)a->mean[ch];                                                                \
        double ca, cb;                                                                        \
        forward_coef(a->mean[ch], a->invstd[ch], (double)((const T *)a->gamma)[ch],          \
                     (double)((const T *)a->beta)[ch], (double)r.mh, &ca, &cb);               \
        r.a = (T)ca;                                                                          \
        r.b = (T)cb;                                                                          \
        r.k = (T)0;                                                                           \
        return r;                                                                             \
    }                                                                                         \
    /* backward: sums -> dgamma, dbeta and (k, mh, p=a, q=b) of dx = k dy + (x - mh) p + q */ \
    static bn_coef_##T bwd_finish_##T(const bn_args *a, int64_t ch, double s1, double s2) {  \
        ((T *)a->dbeta)[ch] = (T)s1;                                                          \
        ((T *)a->dgamma)[ch] = (T)(s2 * a->invstd[ch]);                                       \
        bn_coef_##T r;                                                                        \
        r.mh = (T)a->mean[ch];                                                                \
        double k, p, q;                                                                       \
        backward_coef((double)(a->n * a->s), a->mean[ch], (double)r.mh, a->invstd[ch],       \
                      (double)((const T *)a->gamma)[ch], s1, s2, a->training, &k, &p, &q);    \
        r.k = (T)k;                                                                           \
        r.a = (T)p;                                                                           \
        r.b = (T)q;                                                                           \
        return r;                                                                             \
    }

BN_COEF(float)
BN_COEF(double)

#define BN_RANGE_BODIES(T)                                                                    \
    FI_INLINE void fwd_train_range_##T(const bn_args *a, int64_t lo, int64_t hi) {           \
        const T *x = (const T *)a->x;                                                         \
        T *y = (T *)a->out;                                                                   \
        int64_t n = a->n, cs = a->c * a->s, s = a->s;                                         \
        for (int64_t ch = lo; ch < hi; ch++) {                                                \
            double shift = (double)x[ch * s], s1 = 0.0, s2 = 0.0, t1, t2;                     \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const T *r = x + i * cs + ch * s;                                             \
                sums_##T(r, s, shift, &t1, &t2, i + 1 < n ? r + cs : NULL);                   \
                s1 += t1;                                                                     \
                s2 += t2;                                                                     \
            }                                                                                 \
            bn_coef_##T cf = fwd_finish_##T(a, ch, s1, s2, shift);                            \
            for (int64_t i = 0; i < n; i++) {                                                 \
                int64_t o = i * cs + ch * s;                                                  \
                affine_##T(y + o, x + o, s, cf.mh, cf.a, cf.b, a->stream,                     \
                           i + 1 < n ? x + o + cs : NULL);                                    \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    FI_INLINE void fwd_eval_range_##T(const bn_args *a, int64_t lo, int64_t hi) {            \
        const T *x = (const T *)a->x;                                                         \
        T *y = (T *)a->out;                                                                   \
        int64_t n = a->n, cs = a->c * a->s, s = a->s;                                         \
        for (int64_t ch = lo; ch < hi; ch++) {                                                \
            a->invstd[ch] = 1.0 / sqrt(a->var[ch] + a->eps);                                  \
            T mh = (T)a->mean[ch];                                                            \
            double ca, cb;                                                                    \
            forward_coef(a->mean[ch], a->invstd[ch], (double)((const T *)a->gamma)[ch],      \
                         (double)((const T *)a->beta)[ch], (double)mh, &ca, &cb);             \
            for (int64_t i = 0; i < n; i++) {                                                 \
                int64_t o = i * cs + ch * s;                                                  \
                affine_##T(y + o, x + o, s, mh, (T)ca, (T)cb, a->stream,                      \
                           i + 1 < n ? x + o + cs : NULL);                                    \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    FI_INLINE void bwd_range_##T(const bn_args *a, int64_t lo, int64_t hi) {                 \
        const T *x = (const T *)a->x, *dy = (const T *)a->dy;                                 \
        T *dx = (T *)a->out;                                                                  \
        int64_t n = a->n, cs = a->c * a->s, s = a->s;                                         \
        for (int64_t ch = lo; ch < hi; ch++) {                                                \
            double s1 = 0.0, s2 = 0.0, t1, t2;                                                \
            for (int64_t i = 0; i < n; i++) {                                                 \
                int64_t o = i * cs + ch * s;                                                  \
                int last = i + 1 >= n;                                                        \
                gsums_##T(dy + o, x + o, s, a->mean[ch], &t1, &t2,                            \
                          last ? NULL : dy + o + cs, last ? NULL : x + o + cs);               \
                s1 += t1;                                                                     \
                s2 += t2;                                                                     \
            }                                                                                 \
            bn_coef_##T cf = bwd_finish_##T(a, ch, s1, s2);                                   \
            for (int64_t i = 0; i < n; i++) {                                                 \
                int64_t o = i * cs + ch * s;                                                  \
                int more = i + 1 < n;                                                         \
                affine2_##T(dx + o, dy + o, x + o, s, cf.k, cf.mh, cf.a, cf.b, a->stream,     \
                            more ? dy + o + cs : NULL, more ? x + o + cs : NULL);             \
            }                                                                                 \
        }                                                                                     \
    }

BN_RANGE_BODIES(float)
BN_RANGE_BODIES(double)

/* Non-temporal stores are weakly ordered: fence before the range counts as done. */
FI_INLINE void bn_fence(int stream) {
#if FI_X86
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

#define BN_VARIANTS(name)                                                                     \
    FI_TARGET_AVX2 static void name##_avx2(const bn_args *a, int64_t lo, int64_t hi) {       \
        name(a, lo, hi);                                                                      \
        bn_fence(a->stream);                                                                  \
    }                                                                                         \
    static void name##_portable(const bn_args *a, int64_t lo, int64_t hi) {                  \
        name(a, lo, hi);                                                                      \
        bn_fence(a->stream);                                                                  \
    }

BN_VARIANTS(fwd_train_range_float)
BN_VARIANTS(fwd_train_range_double)
BN_VARIANTS(fwd_eval_range_float)
BN_VARIANTS(fwd_eval_range_double)
BN_VARIANTS(bwd_range_float)
BN_VARIANTS(bwd_range_double)

/* One channel per task, dynamically scheduled: on a shared machine a busy core should not
 * hold the other's channels. */
static void run_channels(bn_range_fn avx2, bn_range_fn portable, const bn_args *a) {
    bn_range_fn fn = fi_use_avx2 ? avx2 : portable;
    int64_t total = a->n * a->c * a->s;
#pragma omp parallel for schedule(dynamic, 1) if (total >= BN_PARALLEL_MIN)
    for (int64_t ch = 0; ch < a->c; ch++) fn(a, ch, ch + 1);
}

static int stream_for(int64_t elements, size_t elem_size) {
    return (int64_t)(elements * (int64_t)elem_size) >= BN_STREAM_MIN_BYTES;
}

/* ---- the row path: blocks of rows of length L = C * S ------------------------------------- */

static int64_t rows_per_block(int64_t length) {
    int64_t r = BN_BLOCK_ELEMENTS / (length > 0 ? length : 1);
    return r > 0 ? r : 1;
}

#define BN_ROW_PATH(T)                                                                        \
    /* p1[b, j] = sum over the rows of block b of x[i, j] - shift[j] (p2: squared); when dy  \
     * is given: sum dy[i, j] and sum dy[i, j] * (x[i, j] - shift[j]). */                     \
    static void row_sums_##T(double *p1, double *p2, const T *x, const T *dy,                \
                             const double *shift, int64_t rows, int64_t length) {             \
        int64_t per = rows_per_block(length), nb = (rows + per - 1) / per;                   \
        _Pragma("omp parallel for schedule(static) if (rows * length >= BN_PARALLEL_MIN)")   \
        for (int64_t b = 0; b < nb; b++) {                                                    \
            double *q1 = p1 + b * length, *q2 = p2 + b * length;                              \
            memset(q1, 0, sizeof(double) * length);                                           \
            memset(q2, 0, sizeof(double) * length);                                           \
            int64_t hi = (b + 1) * per < rows ? (b + 1) * per : rows;                         \
            for (int64_t i = b * per; i < hi; i++) {                                          \
                const T *xr = x + i * length;                                                 \
                if (dy) {                                                                     \
                    const T *gr = dy + i * length;                                            \
                    for (int64_t j = 0; j < length; j++) {                                    \
                        double g = (double)gr[j];                                             \
                        q1[j] += g;                                                           \
                        q2[j] += g * ((double)xr[j] - shift[j]);                              \
                    }                                                                         \
                } else {                                                                      \
                    for (int64_t j = 0; j < length; j++) {                                    \
                        double d = (double)xr[j] - shift[j];                                  \
                        q1[j] += d;                                                           \
                        q2[j] += d * d;                                                       \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    /* out = k * dy + (x - mh) * p + q per element j (dy NULL: k unused), rows in parallel */ \
    static void row_apply_##T(T *out, const T *x, const T *dy, const T *k, const T *mh,      \
                              const T *p, const T *q, int64_t rows, int64_t length) {         \
        _Pragma("omp parallel for schedule(static) if (rows * length >= BN_PARALLEL_MIN)")   \
        for (int64_t i = 0; i < rows; i++) {                                                  \
            const T *xr = x + i * length;                                                     \
            T *o = out + i * length;                                                          \
            if (dy) {                                                                         \
                const T *gr = dy + i * length;                                                \
                for (int64_t j = 0; j < length; j++)                                          \
                    o[j] = k[j] * gr[j] + (xr[j] - mh[j]) * p[j] + q[j];                      \
            } else {                                                                          \
                for (int64_t j = 0; j < length; j++) o[j] = (xr[j] - mh[j]) * p[j] + q[j];    \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    /* (C,) sums from (nb, C*S) partial rows: block order, then over S. */                    \
    static void combine_##T(double *out, const double *part, int64_t nb, int64_t c,          \
                            int64_t s) {                                                      \
        for (int64_t ch = 0; ch < c; ch++) out[ch] = 0.0;                                     \
        for (int64_t ch = 0; ch < c; ch++)                                                    \
            for (int64_t t = 0; t < s; t++) {                                                 \
                double acc = 0.0;                                                             \
                for (int64_t b = 0; b < nb; b++) acc += part[b * c * s + ch * s + t];         \
                out[ch] += acc;                                                               \
            }                                                                                 \
    }

BN_ROW_PATH(float)
BN_ROW_PATH(double)

/* ---- entry points -------------------------------------------------------------------------- */

#define BN_ENTRY_POINTS(T, SUF)                                                               \
    int fi_batch_norm_forward_train_##SUF(T *y, double *mean, double *var, double *invstd,   \
                                          const T *x, const T *gamma, const T *beta,         \
                                          double eps, int64_t n, int64_t c, int64_t s) {     \
        if (s >= BN_SPATIAL_MIN) {                                                            \
            bn_args a = {.out = y, .mean = mean, .var = var, .invstd = invstd, .x = x,        \
                         .gamma = gamma, .beta = beta, .eps = eps, .n = n, .c = c, .s = s,    \
                         .stream = stream_for(n * c * s, sizeof(T))};                         \
            run_channels(fwd_train_range_##T##_avx2, fwd_train_range_##T##_portable, &a);     \
            return 0;                                                                         \
        }                                                                                     \
        int64_t length = c * s, nb = (n + rows_per_block(length) - 1) / rows_per_block(length); \
        double *work = malloc(sizeof(double) * (2 * nb * length + 3 * length + 2 * c));       \
        T *coef = malloc(sizeof(T) * 3 * length);                                             \
        if (!work || !coef) {                                                                 \
            free(work);                                                                       \
            free(coef);                                                                       \
            return -1;                                                                        \
        }                                                                                     \
        double *p1 = work, *p2 = p1 + nb * length, *shift = p2 + nb * length;                 \
        double *s1 = shift + length, *s2 = s1 + c;                                            \
        for (int64_t j = 0; j < length; j++) shift[j] = (double)x[(j / s) * s];              \
        row_sums_##T(p1, p2, x, NULL, shift, n, length);                                      \
        combine_##T(s1, p1, nb, c, s);                                                        \
        combine_##T(s2, p2, nb, c, s);                                                        \
        T *mh = coef, *ca = coef + length, *cb = coef + 2 * length;                           \
        for (int64_t ch = 0; ch < c; ch++) {                                                  \
            stats_from_sums(s1[ch], s2[ch], (double)(n * s), (double)x[ch * s], eps,         \
                            &mean[ch], &var[ch], &invstd[ch]);                                \
            T m = (T)mean[ch];                                                                \
            double a, b;                                                                      \
            forward_coef(mean[ch], invstd[ch], (double)gamma[ch], (double)beta[ch],          \
                         (double)m, &a, &b);                                                  \
            for (int64_t t = 0; t < s; t++) {                                                 \
                mh[ch * s + t] = m;                                                           \
                ca[ch * s + t] = (T)a;                                                        \
                cb[ch * s + t] = (T)b;                                                        \
            }                                                                                 \
        }                                                                                     \
        row_apply_##T(y, x, NULL, NULL, mh, ca, cb, n, length);                               \
        free(work);                                                                           \
        free(coef);                                                                           \
        return 0;                                                                             \
    }                                                                                         \
    int fi_batch_norm_forward_eval_##SUF(T *y, double *invstd, const T *x, const T *gamma,   \
                                         const T *beta, const double *mean,                   \
                                         const double *var, double eps, int64_t n, int64_t c, \
                                         int64_t s) {                                         \
        if (s >= BN_SPATIAL_MIN) {                                                            \
            bn_args a = {.out = y, .mean = (double *)mean, .var = (double *)var,              \
                         .invstd = invstd, .x = x, .gamma = gamma, .beta = beta, .eps = eps,  \
                         .n = n, .c = c, .s = s, .stream = stream_for(n * c * s, sizeof(T))}; \
            run_channels(fwd_eval_range_##T##_avx2, fwd_eval_range_##T##_portable, &a);   \
            return 0;                                                                         \
        }                                                                                     \
        int64_t length = c * s;                                                               \
        T *coef = malloc(sizeof(T) * 3 * length);                                             \
        if (!coef) return -1;                                                                 \
        T *mh = coef, *ca = coef + length, *cb = coef + 2 * length;                           \
        for (int64_t ch = 0; ch < c; ch++) {                                                  \
            invstd[ch] = 1.0 / sqrt(var[ch] + eps);                                           \
            T m = (T)mean[ch];                                                                \
            double a, b;                                                                      \
            forward_coef(mean[ch], invstd[ch], (double)gamma[ch], (double)beta[ch],          \
                         (double)m, &a, &b);                                                  \
            for (int64_t t = 0; t < s; t++) {                                                 \
                mh[ch * s + t] = m;                                                           \
                ca[ch * s + t] = (T)a;                                                        \
                cb[ch * s + t] = (T)b;                                                        \
            }                                                                                 \
        }                                                                                     \
        row_apply_##T(y, x, NULL, NULL, mh, ca, cb, n, length);                               \
        free(coef);                                                                           \
        return 0;                                                                             \
    }                                                                                         \
    int fi_batch_norm_backward_##SUF(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x,    \
                                     const T *gamma, const double *mean,                      \
                                     const double *invstd, int training, int64_t n,           \
                                     int64_t c, int64_t s) {                                  \
        if (s >= BN_SPATIAL_MIN) {                                                            \
            bn_args a = {.out = dx, .dgamma = dgamma, .dbeta = dbeta, .mean = (double *)mean, \
                         .invstd = (double *)invstd, .x = x, .dy = dy, .gamma = gamma,        \
                         .n = n, .c = c, .s = s, .training = training,                        \
                         .stream = stream_for(n * c * s, sizeof(T))};                         \
            run_channels(bwd_range_##T##_avx2, bwd_range_##T##_portable, &a);             \
            return 0;                                                                         \
        }                                                                                     \
        int64_t length = c * s, nb = (n + rows_per_block(length) - 1) / rows_per_block(length); \
        double *work = malloc(sizeof(double) * (2 * nb * length + length + 2 * c));           \
        T *coef = malloc(sizeof(T) * 4 * length);                                             \
        if (!work || !coef) {                                                                 \
            free(work);                                                                       \
            free(coef);                                                                       \
            return -1;                                                                        \
        }                                                                                     \
        double *p1 = work, *p2 = p1 + nb * length, *mean_l = p2 + nb * length;                \
        double *s1 = mean_l + length, *s2 = s1 + c;                                           \
        for (int64_t j = 0; j < length; j++) mean_l[j] = mean[j / s];                         \
        row_sums_##T(p1, p2, x, dy, mean_l, n, length);                                       \
        combine_##T(s1, p1, nb, c, s);                                                        \
        combine_##T(s2, p2, nb, c, s);                                                        \
        T *ck = coef, *mh = coef + length, *cp = coef + 2 * length, *cq = coef + 3 * length;  \
        for (int64_t ch = 0; ch < c; ch++) {                                                  \
            dbeta[ch] = (T)s1[ch];                                                            \
            dgamma[ch] = (T)(s2[ch] * invstd[ch]);                                            \
            T m = (T)mean[ch];                                                                \
            double k, p, q;                                                                   \
            backward_coef((double)(n * s), mean[ch], (double)m, invstd[ch],                  \
                          (double)gamma[ch], s1[ch], s2[ch], training, &k, &p, &q);           \
            for (int64_t t = 0; t < s; t++) {                                                 \
                ck[ch * s + t] = (T)k;                                                        \
                mh[ch * s + t] = m;                                                           \
                cp[ch * s + t] = (T)p;                                                        \
                cq[ch * s + t] = (T)q;                                                        \
            }                                                                                 \
        }                                                                                     \
        row_apply_##T(dx, x, dy, ck, mh, cp, cq, n, length);                                  \
        free(work);                                                                           \
        free(coef);                                                                           \
        return 0;                                                                             \
    }

BN_ENTRY_POINTS(float, f32)
BN_ENTRY_POINTS(double, f64)
