/* Batch norm forward and backward (same contract as fastinit/reference/batchnorm.py).
 *
 * x is C-contiguous (N, C, S): (N, C) input has S = 1, NCHW input S = H*W. Statistics are
 * float64 (mean, var, invstd: (C,)); data, gamma, beta and outputs are float or double.
 *
 * Four layouts of the work (shared PERF_NOTES.md, "Batch norm"):
 *   segment path (S >= 8, output below BN_STREAM_MIN_BYTES): x in memory order, per-channel
 *     vector accumulators; one thread below BN_SEGMENT_PARALLEL_MIN elements (see its section).
 *   group path (other S >= BN_SPATIAL_MIN, training forward and backward): each thread's own
 *     channels, one at a time, read once from memory for the sums and again, from cache, for
 *     the output pass, which prefetches the thread's next channel, so reads overlap the
 *     streamed writes and the forward moves the bytes of one copy (see its section).
 *   channel path (other S >= BN_SPATIAL_MIN, forward with given statistics: one pass): one
 *     channel per task.
 *   row path (other small S, e.g. (N, C)): fixed blocks of rows, each summing into its own (C*S,)
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
 * Every body is written once (FI_INLINE) and compiled per build: AVX2+FMA and portable (and
 * AVX-512 for the segment and group paths; fi_batch_norm_set_path picks the build of those).
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
#ifdef _OPENMP
#include <omp.h>
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

/* y = (x - mh) * a + b over n elements; stream: non-temporal stores where aligned. x_next:
 * the row read after this one; x_pre: a row to fetch beside this one, one line per line (the
 * group path's next group), or NULL. */
FI_INLINE void affine_float(float *restrict y, const float *restrict x, int64_t n, float mh,
                            float a, float b, int stream, const float *x_next,
                            const float *x_pre) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(y + i) & 15); i++) y[i] = (x[i] - mh) * a + b;
        for (; i + 8 <= n; i += 8) {
            if (BN_PREFETCH_APPLY) prefetch_ahead(x, x_next, i, n, sizeof(float));
            if (x_pre && (i & 15) < 8) __builtin_prefetch(x_pre + i);
            bn_v4f v0 = (*(const bn_v4f_u *)(x + i) - mh) * a + b;
            bn_v4f v1 = (*(const bn_v4f_u *)(x + i + 4) - mh) * a + b;
            stream4_float(y + i, v0);
            stream4_float(y + i + 4, v1);
        }
    }
    for (; i < n; i++) y[i] = (x[i] - mh) * a + b;
}

FI_INLINE void affine_double(double *restrict y, const double *restrict x, int64_t n, double mh,
                             double a, double b, int stream, const double *x_next,
                             const double *x_pre) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(y + i) & 15); i++) y[i] = (x[i] - mh) * a + b;
        for (; i + 4 <= n; i += 4) {
            if (BN_PREFETCH_APPLY && (i & 7) == 0) prefetch_ahead(x, x_next, i, n, sizeof(double));
            if (x_pre && (i & 7) == 0) __builtin_prefetch(x_pre + i);
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
                             float q, int stream, const float *dy_next, const float *x_next,
                             const float *dy_pre, const float *x_pre) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(dx + i) & 15); i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
        for (; i + 8 <= n; i += 8) {
            if (BN_PREFETCH_APPLY) {
                prefetch_ahead(dy, dy_next, i, n, sizeof(float));
                prefetch_ahead(x, x_next, i, n, sizeof(float));
            }
            if (dy_pre && (i & 15) < 8) {  /* the next group's row, one line per line here */
                __builtin_prefetch(dy_pre + i);
                __builtin_prefetch(x_pre + i);
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
                              const double *x_next, const double *dy_pre,
                              const double *x_pre) {
    int64_t i = 0;
    if (stream) {
        for (; i < n && ((uintptr_t)(dx + i) & 15); i++) dx[i] = k * dy[i] + (x[i] - mh) * p + q;
        for (; i + 4 <= n; i += 4) {
            if (BN_PREFETCH_APPLY && (i & 7) == 0) {
                prefetch_ahead(dy, dy_next, i, n, sizeof(double));
                prefetch_ahead(x, x_next, i, n, sizeof(double));
            }
            if (dy_pre && (i & 7) == 0) {  /* the next group's row, one line per line here */
                __builtin_prefetch(dy_pre + i);
                __builtin_prefetch(x_pre + i);
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
    }                                                                                         \
    /* the group path's shift of channel ch: the backward's mean, the forward's x[0, ch, 0] */ \
    FI_INLINE double group_shift_##T(const bn_args *a, int64_t ch) {                          \
        return a->dy ? a->mean[ch] : (double)((const T *)a->x)[ch * a->s];                    \
    }

BN_COEF(float)
BN_COEF(double)

#define BN_RANGE_BODIES(T)                                                                    \
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
                           i + 1 < n ? x + o + cs : NULL, NULL);                              \
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

BN_VARIANTS(fwd_eval_range_float)
BN_VARIANTS(fwd_eval_range_double)

/* One channel per task, dynamically scheduled: on a shared machine a busy core should not
 * hold the other's channels. */
static void run_channels(bn_range_fn avx2, bn_range_fn portable, const bn_args *a) {
    bn_range_fn fn = fi_use_avx2 ? avx2 : portable;
    int64_t total = a->n * a->c * a->s;
#pragma omp parallel for num_threads(fi_threads()) schedule(dynamic, 1) if (total >= BN_PARALLEL_MIN)
    for (int64_t ch = 0; ch < a->c; ch++) fn(a, ch, ch + 1);
}

static int bn_max_threads(void) {
    return fi_threads();
}
static int bn_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static int bn_num_threads(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

static int stream_for(int64_t elements, size_t elem_size) {
    return (int64_t)(elements * (int64_t)elem_size) >= BN_STREAM_MIN_BYTES;
}

/* ---- the group path: training forward and backward of large tensors ------------------------ */
/* Each thread takes its own fixed, contiguous share of the channels, one channel at a time:
 * the sums pass (forward: x - k, k = x[0, c, 0]; backward: dy and dy * (x - mean)) in fixed
 * 8-row blocks added in block order (results do not depend on the thread count), then the
 * output pass re-reads the channel from cache (forward: 800 KB at 64x64x56x56 float32, in L2;
 * backward: 1.6 MB of dy and x, partly in L3), streams y or dx out and prefetches the thread's
 * next channel: no barriers, and the two threads' read and write phases drift apart, which
 * mixes the traffic as a copy does. Forward, times over a copy of x in the same run, slow
 * (copy 2 ms) / fast (copy 1 ms) memory phases: this 1.00-1.09 / about 1.1; shared groups of 8
 * channels (both threads on a group in fixed row blocks, two barriers per group) 1.16-1.27 /
 * 1.15-1.3; shared single channels 1.08-1.16 / 1.2; the old channel path (AVX2 sums, dynamic
 * schedule, no prefetch of the next channel) 1.06-1.14 / 1.5-1.8. Prefetching part of the next
 * channel during the sums pass as well ran 1.05-1.15x slower. Backward (over 1.5 copies, slow
 * phases): this 1.09-1.26, shared groups of 4 channels (about 7 MB) 1.11-1.29, in the same runs
 * 1-12% slower (median 3%); per-thread groups of 2, 3, 4, 8 channels (longer runs, but out of
 * L2) 1.2, 1.25, 1.37, 1.9; the sums of the next channel fused with the output pass (8-row
 * blocks alternating) 1.4; the next channel's dy prefetched in the sums pass and its x in the
 * output pass 1.2-1.28 (no better). */
#define BN_GROUP_ROWS 8            /* rows per block of the sums */


/* AVX-512 row helpers of the group path (same contracts as gsums_T and affine2_T with stream
 * set; 64-byte streaming stores). The scalar ends use the vector body's fused multiply-adds:
 * an element gets the same bits whatever the alignment of dx (a new array each call). */
#define BN_FMA_F(a, b, c) __builtin_fmaf(a, b, c)
#define BN_FMA_D(a, b, c) __builtin_fma(a, b, c)
#if FI_X86
#define BN_T512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
BN_T512 FI_INLINE void bn512_prefetch(const void *row, const void *next, int64_t i, int64_t n,
                                      size_t elem) {
    int64_t ah = i + BN_PREFETCH_BYTES / (int64_t)elem;
    if (ah < n) __builtin_prefetch((const char *)row + ah * (int64_t)elem);
    else if (next) __builtin_prefetch((const char *)next + (ah - n) * (int64_t)elem);
}
/* Four accumulators per sum (a dependent add or FMA costs 3-4 cycles): the forward's sums read
 * a channel the previous output pass prefetched into L2, where two accumulators ran about 1.1x
 * slower (that compute is not overlapped with memory traffic). */
BN_T512 FI_INLINE void sums512_float(const float *x, int64_t n, double k, double *s1, double *s2,
                                     const float *next) {
    __m512d kv = _mm512_set1_pd(k), a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    __m512d b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        bn512_prefetch(x, next, i, n, sizeof(float));
        bn512_prefetch(x, next, i + 16, n, sizeof(float));
        __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), kv);
        __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), kv);
        __m512d d2 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), kv);
        __m512d d3 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24)), kv);
        a0 = _mm512_add_pd(a0, d0);
        a1 = _mm512_add_pd(a1, d1);
        a2 = _mm512_add_pd(a2, d2);
        a3 = _mm512_add_pd(a3, d3);
        b0 = _mm512_fmadd_pd(d0, d0, b0);
        b1 = _mm512_fmadd_pd(d1, d1, b1);
        b2 = _mm512_fmadd_pd(d2, d2, b2);
        b3 = _mm512_fmadd_pd(d3, d3, b3);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), kv);
        a0 = _mm512_add_pd(a0, d0);
        b0 = _mm512_fmadd_pd(d0, d0, b0);
    }
    double t1 = 0.0, t2 = 0.0;
    for (; i < n; i++) {
        double d = (double)x[i] - k;
        t1 += d;
        t2 += d * d;
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3))) + t1;
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(b0, b1), _mm512_add_pd(b2, b3))) + t2;
}
BN_T512 FI_INLINE void sums512_double(const double *x, int64_t n, double k, double *s1,
                                      double *s2, const double *next) {
    __m512d kv = _mm512_set1_pd(k), a0 = _mm512_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        bn512_prefetch(x, next, i, n, sizeof(double));
        bn512_prefetch(x, next, i + 8, n, sizeof(double));
        __m512d d0 = _mm512_sub_pd(_mm512_loadu_pd(x + i), kv);
        __m512d d1 = _mm512_sub_pd(_mm512_loadu_pd(x + i + 8), kv);
        a0 = _mm512_add_pd(a0, d0);
        a1 = _mm512_add_pd(a1, d1);
        b0 = _mm512_fmadd_pd(d0, d0, b0);
        b1 = _mm512_fmadd_pd(d1, d1, b1);
    }
    double t1 = 0.0, t2 = 0.0;
    for (; i < n; i++) {
        double d = x[i] - k;
        t1 += d;
        t2 += d * d;
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + t1;
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(b0, b1)) + t2;
}
BN_T512 FI_INLINE void gsums512_float(const float *dy, const float *x, int64_t n, double m,
                                      double *s1, double *s2, const float *dy_next,
                                      const float *x_next) {
    __m512d mv = _mm512_set1_pd(m), a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    __m512d b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        bn512_prefetch(dy, dy_next, i, n, sizeof(float));
        bn512_prefetch(x, x_next, i, n, sizeof(float));
        bn512_prefetch(dy, dy_next, i + 16, n, sizeof(float));
        bn512_prefetch(x, x_next, i + 16, n, sizeof(float));
        __m512d g0 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i));
        __m512d g1 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i + 8));
        __m512d g2 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i + 16));
        __m512d g3 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i + 24));
        __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), mv);
        __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), mv);
        __m512d d2 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), mv);
        __m512d d3 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24)), mv);
        a0 = _mm512_add_pd(a0, g0);
        a1 = _mm512_add_pd(a1, g1);
        a2 = _mm512_add_pd(a2, g2);
        a3 = _mm512_add_pd(a3, g3);
        b0 = _mm512_fmadd_pd(g0, d0, b0);
        b1 = _mm512_fmadd_pd(g1, d1, b1);
        b2 = _mm512_fmadd_pd(g2, d2, b2);
        b3 = _mm512_fmadd_pd(g3, d3, b3);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d g0 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i));
        __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), mv);
        a0 = _mm512_add_pd(a0, g0);
        b0 = _mm512_fmadd_pd(g0, d0, b0);
    }
    double t1 = 0.0, t2 = 0.0;
    for (; i < n; i++) {
        double g = (double)dy[i];
        t1 += g;
        t2 += g * ((double)x[i] - m);
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3))) + t1;
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(b0, b1), _mm512_add_pd(b2, b3))) + t2;
}
BN_T512 FI_INLINE void gsums512_double(const double *dy, const double *x, int64_t n, double m,
                                       double *s1, double *s2, const double *dy_next,
                                       const double *x_next) {
    __m512d mv = _mm512_set1_pd(m), a0 = _mm512_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        bn512_prefetch(dy, dy_next, i, n, sizeof(double));
        bn512_prefetch(x, x_next, i, n, sizeof(double));
        bn512_prefetch(dy, dy_next, i + 8, n, sizeof(double));
        bn512_prefetch(x, x_next, i + 8, n, sizeof(double));
        __m512d g0 = _mm512_loadu_pd(dy + i), g1 = _mm512_loadu_pd(dy + i + 8);
        __m512d d0 = _mm512_sub_pd(_mm512_loadu_pd(x + i), mv);
        __m512d d1 = _mm512_sub_pd(_mm512_loadu_pd(x + i + 8), mv);
        a0 = _mm512_add_pd(a0, g0);
        a1 = _mm512_add_pd(a1, g1);
        b0 = _mm512_fmadd_pd(g0, d0, b0);
        b1 = _mm512_fmadd_pd(g1, d1, b1);
    }
    double t1 = 0.0, t2 = 0.0;
    for (; i < n; i++) {
        t1 += dy[i];
        t2 += dy[i] * (x[i] - m);
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + t1;
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(b0, b1)) + t2;
}
/* The output passes on 64-byte vectors, per element type T (V the vector, S the intrinsics'
 * suffix, L the lanes, FMA the scalar fma of the ends): affine2 dx = k dy + (x - mh) p + q
 * (backward), affine y = (x - mh) a + b (forward). The scalar ends use the vector body's fused
 * multiply-adds: an element gets the same bits whatever the alignment of its output. The group
 * path always streams (stream is unused). */
#define BN_AFFINE512(T, V, S, L, FMA)                                                         \
    BN_T512 FI_INLINE void affine2_512_##T(T *restrict dx, const T *restrict dy,              \
                                           const T *restrict x, int64_t n, T k, T mh, T p,    \
                                           T q, int stream, const T *dy_next,                 \
                                           const T *x_next, const T *dy_pre,                  \
                                           const T *x_pre) {                                  \
        int64_t i = 0;                                                                        \
        (void)stream;                                                                         \
        for (; i < n && ((uintptr_t)(dx + i) & 63); i++)                                      \
            dx[i] = FMA(k, dy[i], FMA(x[i] - mh, p, q));                                      \
        V kv = _mm512_set1_##S(k), mv = _mm512_set1_##S(mh), pv = _mm512_set1_##S(p);        \
        V qv = _mm512_set1_##S(q);                                                            \
        for (; i + L <= n; i += L) {                                                          \
            bn512_prefetch(dy, dy_next, i, n, sizeof(T));                                     \
            bn512_prefetch(x, x_next, i, n, sizeof(T));                                       \
            if (dy_pre) {                                                                     \
                __builtin_prefetch(dy_pre + i);                                               \
                __builtin_prefetch(x_pre + i);                                                \
            }                                                                                 \
            V v = _mm512_fmadd_##S(_mm512_sub_##S(_mm512_loadu_##S(x + i), mv), pv, qv);      \
            _mm512_stream_##S(dx + i, _mm512_fmadd_##S(kv, _mm512_loadu_##S(dy + i), v));     \
        }                                                                                     \
        for (; i < n; i++) dx[i] = FMA(k, dy[i], FMA(x[i] - mh, p, q));                       \
    }                                                                                         \
    BN_T512 FI_INLINE void affine512_##T(T *restrict y, const T *restrict x, int64_t n, T mh, \
                                         T a, T b, int stream, const T *x_next,               \
                                         const T *x_pre) {                                    \
        int64_t i = 0;                                                                        \
        (void)stream;                                                                         \
        for (; i < n && ((uintptr_t)(y + i) & 63); i++) y[i] = FMA(x[i] - mh, a, b);          \
        V mv = _mm512_set1_##S(mh), av = _mm512_set1_##S(a), bv = _mm512_set1_##S(b);        \
        for (; i + L <= n; i += L) {                                                          \
            bn512_prefetch(x, x_next, i, n, sizeof(T));                                       \
            if (x_pre) __builtin_prefetch(x_pre + i);                                         \
            V v = _mm512_fmadd_##S(_mm512_sub_##S(_mm512_loadu_##S(x + i), mv), av, bv);      \
            _mm512_stream_##S(y + i, v);                                                      \
        }                                                                                     \
        for (; i < n; i++) y[i] = FMA(x[i] - mh, a, b);                                       \
    }
BN_AFFINE512(float, __m512, ps, 16, BN_FMA_F)
BN_AFFINE512(double, __m512d, pd, 8, BN_FMA_D)
#endif

/* Bodies shared by the backward (a->dy set) and the training forward (a->dy NULL). */
#define BN_GROUP_BODIES(T, TAG, SUMS, GSUMS, APPLY, APPLY2, ATTR)                             \
    /* rows [i0, i1) of channels [ch0, ch0 + g), around k = group_shift of channel ch0 + j:  \
     * forward: part[2j] += sum (x - k), part[2j + 1] += sum (x - k)^2; backward: sum dy and  \
     * sum dy * (x - k) */                                                                    \
    ATTR FI_INLINE void group_sums_##TAG(const bn_args *a, int64_t ch0, int64_t g, int64_t i0,\
                                  int64_t i1, double *part) {                                 \
        const T *x = (const T *)a->x, *dy = (const T *)a->dy;                                 \
        int64_t n = a->n, cs = a->c * a->s, s = a->s;                                         \
        for (int64_t j = 0; j < 2 * g; j++) part[j] = 0.0;                                    \
        for (int64_t i = i0; i < i1; i++)                                                     \
            for (int64_t j = 0; j < g; j++) {                                                 \
                int64_t o = i * cs + (ch0 + j) * s;                                           \
                /* the row read next: this run's next, or the group's first of row i + 1 */  \
                int64_t on = j + 1 < g ? o + s : (i + 1 < n ? o + cs - (g - 1) * s : -1);    \
                double t1, t2, k = group_shift_##T(a, ch0 + j);                               \
                if (dy)                                                                       \
                    GSUMS(dy + o, x + o, s, k, &t1, &t2, on >= 0 ? dy + on : NULL,            \
                          on >= 0 ? x + on : NULL);                                           \
                else                                                                          \
                    SUMS(x + o, s, k, &t1, &t2, on >= 0 ? x + on : NULL);                     \
                part[2 * j] += t1;                                                            \
                part[2 * j + 1] += t2;                                                        \
            }                                                                                 \
    }                                                                                         \
    /* y or dx of rows [i0, i1) of channels [ch0, ch0 + g); prefetches the same rows of the    \
     * next group (gn channels from ch0 + g) */                                               \
    ATTR FI_INLINE void group_apply_##TAG(const bn_args *a, int64_t ch0, int64_t g, int64_t gn,\
                                   int64_t i0, int64_t i1, const bn_coef_##T *cf) {           \
        const T *x = (const T *)a->x, *dy = (const T *)a->dy;                                 \
        T *out = (T *)a->out;                                                                 \
        int64_t n = a->n, cs = a->c * a->s, s = a->s;                                         \
        for (int64_t i = i0; i < i1; i++)                                                     \
            for (int64_t j = 0; j < g; j++) {                                                 \
                int64_t o = i * cs + (ch0 + j) * s;                                           \
                int64_t on = j + 1 < g ? o + s : (i + 1 < n ? o + cs - (g - 1) * s : -1);    \
                int pre = j < gn;                                                             \
                if (dy)                                                                       \
                    APPLY2(out + o, dy + o, x + o, s, cf[j].k, cf[j].mh, cf[j].a, cf[j].b,    \
                           a->stream, on >= 0 ? dy + on : NULL, on >= 0 ? x + on : NULL,      \
                           pre ? dy + o + g * s : NULL, pre ? x + o + g * s : NULL);          \
                else                                                                          \
                    APPLY(out + o, x + o, s, cf[j].mh, cf[j].a, cf[j].b, a->stream,           \
                          on >= 0 ? x + on : NULL, pre ? x + o + g * s : NULL);               \
            }                                                                                 \
    }                                                                                         \
    /* sums of rows [0, n) of channels [ch0, ch0 + g) in fixed blocks of BN_GROUP_ROWS rows    \
     * (2 * stride doubles of partials per block, the blocks' share of them), added in block   \
     * order into the coefficients cf[0, g) (and the statistics or dgamma, dbeta) */           \
    ATTR FI_INLINE void group_finish_##TAG(const bn_args *a, int64_t ch0, int64_t g,          \
                                           int64_t stride, const double *part,                \
                                           bn_coef_##T *cf) {                                 \
        int64_t nb = (a->n + BN_GROUP_ROWS - 1) / BN_GROUP_ROWS;                              \
        for (int64_t j = 0; j < g; j++) {                                                     \
            double s1 = 0.0, s2 = 0.0;                                                        \
            for (int64_t b = 0; b < nb; b++) {                                                \
                s1 += part[2 * stride * b + 2 * j];                                           \
                s2 += part[2 * stride * b + 2 * j + 1];                                       \
            }                                                                                 \
            cf[j] = a->dy ? bwd_finish_##T(a, ch0 + j, s1, s2)                                \
                          : fwd_finish_##T(a, ch0 + j, s1, s2, group_shift_##T(a, ch0 + j));  \
        }                                                                                     \
    }

#if FI_X86
BN_GROUP_BODIES(float, float512, sums512_float, gsums512_float, affine512_float,
                affine2_512_float, BN_T512)
BN_GROUP_BODIES(double, double512, sums512_double, gsums512_double, affine512_double,
                affine2_512_double, BN_T512)
#endif
BN_GROUP_BODIES(float, float, sums_float, gsums_float, affine_float, affine2_float, )
BN_GROUP_BODIES(double, double, sums_double, gsums_double, affine_double, affine2_double, )

/* The training forward (a->dy NULL) or backward: each thread its own channels (a fixed,
 * contiguous share), one channel at a time, no barrier; per thread, partial sums of one
 * channel and its coefficients (whole lines). 0, or -1: no memory. */
#define BN_GROUP_RUN(T, TAG, SUF, ATTR)                                                       \
    ATTR static int group_run_##T##_##SUF(const bn_args *a) {                                 \
        int64_t n = a->n, c = a->c, s = a->s;                                                 \
        int64_t nb = (n + BN_GROUP_ROWS - 1) / BN_GROUP_ROWS;                                 \
        int par = n * c * s >= BN_PARALLEL_MIN, nt = par ? bn_max_threads() : 1;              \
        int64_t per = (2 * nb + (int64_t)(sizeof(bn_coef_##T) + 7) / 8 + 7) / 8 * 8;          \
        double *work = aligned_alloc(64, sizeof(double) * per * nt);                          \
        if (!work) return -1;                                                                 \
        _Pragma("omp parallel num_threads(nt) if (par)")                                           \
        {                                                                                     \
            int64_t t = bn_thread_num(), tn = bn_num_threads();                               \
            int64_t lo = c * t / tn, hi = c * (t + 1) / tn;                                   \
            double *pt = work + per * t;                                                      \
            bn_coef_##T *cf = (bn_coef_##T *)(pt + 2 * nb);                                   \
            for (int64_t ch = lo; ch < hi; ch++) {                                            \
                for (int64_t b = 0; b < nb; b++) {                                            \
                    int64_t e = (b + 1) * BN_GROUP_ROWS < n ? (b + 1) * BN_GROUP_ROWS : n;    \
                    group_sums_##TAG(a, ch, 1, b * BN_GROUP_ROWS, e, pt + 2 * b);             \
                }                                                                             \
                group_finish_##TAG(a, ch, 1, 1, pt, cf);                                      \
                group_apply_##TAG(a, ch, 1, ch + 1 < hi, 0, n, cf);                           \
            }                                                                                 \
            bn_fence(a->stream);                                                              \
        }                                                                                     \
        free(work);                                                                           \
        return 0;                                                                             \
    }

#if FI_X86
BN_GROUP_RUN(float, float512, avx512, BN_T512)
BN_GROUP_RUN(double, double512, avx512, BN_T512)
#endif
BN_GROUP_RUN(float, float, avx2, FI_TARGET_AVX2)
BN_GROUP_RUN(double, double, avx2, FI_TARGET_AVX2)
BN_GROUP_RUN(float, float, portable, )
BN_GROUP_RUN(double, double, portable, )

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
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if (rows * length >= BN_PARALLEL_MIN)") \
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
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if (rows * length >= BN_PARALLEL_MIN)") \
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

/* ---- the segment path: x in memory order, (n, c) segments of S ------------------------------- */
/* Every tensor with S >= BN_SEGMENT_S_MIN whose output is below BN_STREAM_MIN_BYTES runs here
 * (e.g. the activations of a small CNN, 64x16x8x8). Both passes walk x in memory order, one
 * (n, c) segment of S elements after the other: the sums pass adds the segments of 4 rows at
 * a time (4 sequential streams) as a tree into their channel's float64 vector accumulators
 * (4 vectors of L doubles per channel, in L1); the output pass applies each segment's channel
 * coefficients. Channel by channel instead (the channel path), the N rows of a channel are
 * C*S elements apart: at 64x16x8x8 that is 4 KB, every row in the same L1 set and no stream
 * the prefetchers follow; that path ran 3-4x slower on such tensors (2x at 128x64x8x8).
 * Rows go in fixed blocks of about BN_SEGMENT_BLOCK elements, whose partial sums are added in
 * block order (results independent of the thread count); blocks run on threads only from
 * BN_SEGMENT_PARALLEL_MIN elements: below, a fork/join (~2 us, and on a shared machine a wait
 * for a busy core) costs more than the second thread saves (64x16x8x8: 6 us on one thread).
 * Same formulas as the channel path; built for AVX-512 (8 doubles), AVX2 (4) and portable
 * (2). The 64-byte build carries its target on the inline bodies too: gcc 12 otherwise lowers
 * their vector code early, for the default target. */
#define BN_SEGMENT_S_MIN 8
#define BN_SEGMENT_STACK_C 64  /* channels whose scratch lives on the stack */
#define BN_SEGMENT_BLOCK (1L << 16)      /* elements per block of rows (at least 4 rows) */
#define BN_SEGMENT_PARALLEL_MIN (1L << 17)  /* threads from this many elements */

/* Rows per block: a multiple of 4 (the sums take 4 rows at a time), fixed by the shape. */
static int64_t seg_rows_per_block(int64_t row_length) {
    int64_t r = BN_SEGMENT_BLOCK / (row_length > 0 ? row_length : 1) / 4 * 4;
    return r > 4 ? r : 4;
}

/* The vector builds contract a * b + c into fused multiply-adds (sums of squares, outputs):
 * fewer operations, and each is rounded once. */
#if FI_X86
#define BN_TARGET_AVX512                                                                      \
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512"), \
                   optimize("fp-contract=fast")))
#define BN_TARGET_AVX2_FMA FI_TARGET_AVX2 __attribute__((optimize("fp-contract=fast")))
#else
#define BN_TARGET_AVX512
#define BN_TARGET_AVX2_FMA
#endif

typedef double bn_d2 __attribute__((vector_size(16)));
typedef double bn_d4 __attribute__((vector_size(32)));
typedef double bn_d8 __attribute__((vector_size(64)));
typedef float bn_f2u __attribute__((vector_size(8), aligned(4)));
typedef float bn_f4u __attribute__((vector_size(16), aligned(4)));
typedef float bn_f8u __attribute__((vector_size(32), aligned(4)));
typedef double bn_d2u __attribute__((vector_size(16), aligned(8)));
typedef double bn_d4u __attribute__((vector_size(32), aligned(8)));
typedef double bn_d8u __attribute__((vector_size(64), aligned(8)));
#define BN_LOADD_float(L, p) BN_LOADD_float##L(p)
#define BN_LOADD_float2(p) __builtin_convertvector(*(const bn_f2u *)(p), bn_d2)
#define BN_LOADD_float4(p) __builtin_convertvector(*(const bn_f4u *)(p), bn_d4)
#if FI_X86 /* gcc 12 converts 8 floats as two halves and an insert: one vcvtps2pd here */
#define BN_LOADD_float8(p) ((bn_d8)_mm512_cvtps_pd(_mm256_loadu_ps(p)))
#else
#define BN_LOADD_float8(p) __builtin_convertvector(*(const bn_f8u *)(p), bn_d8)
#endif
#define BN_LOADD_double(L, p) (*(const bn_d##L##u *)(p))

/* TAG: data type and L (float8: float data, accumulators of 8 doubles, ...) */
#define BN_SEGMENT_BODIES(T, L, TAG, ATTR)                                                    \
    /* The 4 rows p, p + cs, p + 2cs, p + 3cs at one column of L elements: *u += the sum of   \
     * their (x - k) (grad 0) or dy (grad 1), *q += the sum of (x - k)^2 or dy * (x - k). */  \
    ATTR FI_INLINE void seg_col4_##TAG(int grad, const T *p, const T *g, int64_t cs,          \
                                     bn_d##L kv, bn_d##L *u, bn_d##L *q) {                    \
        bn_d##L d0 = BN_LOADD_##T(L, p) - kv, d1 = BN_LOADD_##T(L, p + cs) - kv;              \
        bn_d##L d2 = BN_LOADD_##T(L, p + 2 * cs) - kv, d3 = BN_LOADD_##T(L, p + 3 * cs) - kv; \
        bn_d##L g0 = d0, g1 = d1, g2 = d2, g3 = d3;                                           \
        if (grad) {                                                                           \
            g0 = BN_LOADD_##T(L, g);                                                          \
            g1 = BN_LOADD_##T(L, g + cs);                                                     \
            g2 = BN_LOADD_##T(L, g + 2 * cs);                                                 \
            g3 = BN_LOADD_##T(L, g + 3 * cs);                                                 \
        }                                                                                     \
        *u += (g0 + g1) + (g2 + g3);                                                          \
        *q += (g0 * d0 + g1 * d1) + (g2 * d2 + g3 * d3);                                      \
    }                                                                                         \
    /* Per channel ch, float64: grad 0: s1 = sum(x - k[ch]), s2 = sum((x - k[ch])^2);         \
     * grad 1: s1 = sum(dy), s2 = sum(dy * (x - k[ch])). Rows go 4 at a time (4 sequential    \
     * streams): a channel's 4 segments are summed as a tree, then added into its 2 + 2       \
     * accumulators, so a visit costs few dependent adds whatever S. acc: 4*c vectors,        \
     * tail: 2*c doubles. */                                                                  \
    ATTR FI_INLINE void seg_sums_##TAG(int grad, double *s1, double *s2, const T *x,          \
                                     const T *dy, const double *k, int64_t n, int64_t c,      \
                                     int64_t s, bn_d##L *acc, double *tail) {                 \
        int64_t cs = c * s;                                                                   \
        for (int64_t ch = 0; ch < 4 * c; ch++) acc[ch] = (bn_d##L){0};                        \
        for (int64_t ch = 0; ch < 2 * c; ch++) tail[ch] = 0.0;                                \
        for (int64_t i = 0; i < n; i += 4) {                                                  \
            int64_t rows = n - i < 4 ? n - i : 4;                                             \
            for (int64_t ch = 0; ch < c; ch++) {                                              \
                const T *r = x + i * cs + ch * s, *g = grad ? dy + i * cs + ch * s : NULL;    \
                bn_d##L kv = (bn_d##L){0} + k[ch], *ac = acc + 4 * ch;                        \
                bn_d##L a0 = ac[0], a1 = ac[1], b0 = ac[2], b1 = ac[3];                       \
                int64_t j = 0;                                                                \
                if (rows == 4) {                                                              \
                    for (; j + 2 * L <= s; j += 2 * L) {                                      \
                        seg_col4_##TAG(grad, r + j, grad ? g + j : NULL, cs, kv, &a0, &b0);   \
                        seg_col4_##TAG(grad, r + j + L, grad ? g + j + L : NULL, cs, kv, &a1, &b1);\
                    }                                                                         \
                    for (; j + L <= s; j += L)                                                \
                        seg_col4_##TAG(grad, r + j, grad ? g + j : NULL, cs, kv, &a0, &b0);   \
                } else {                                                                      \
                    for (; j + L <= s; j += L)                                                \
                        for (int64_t t = 0; t < rows; t++) {                                  \
                            bn_d##L d0 = BN_LOADD_##T(L, r + t * cs + j) - kv;                \
                            bn_d##L g0 = grad ? BN_LOADD_##T(L, g + t * cs + j) : d0;         \
                            a0 += g0;                                                         \
                            b0 += g0 * d0;                                                    \
                        }                                                                     \
                }                                                                             \
                ac[0] = a0;                                                                   \
                ac[1] = a1;                                                                   \
                ac[2] = b0;                                                                   \
                ac[3] = b1;                                                                   \
                for (int64_t t = 0; t < rows; t++)                                            \
                    for (int64_t jj = j; jj < s; jj++) {                                      \
                        double d = (double)r[t * cs + jj] - k[ch];                            \
                        double gg = grad ? (double)g[t * cs + jj] : d;                        \
                        tail[2 * ch] += gg;                                                   \
                        tail[2 * ch + 1] += gg * d;                                           \
                    }                                                                         \
            }                                                                                 \
        }                                                                                     \
        for (int64_t ch = 0; ch < c; ch++) {                                                  \
            bn_d##L a = acc[4 * ch] + acc[4 * ch + 1], b = acc[4 * ch + 2] + acc[4 * ch + 3]; \
            double t1 = tail[2 * ch], t2 = tail[2 * ch + 1];                                  \
            for (int l = 0; l < L; l++) {                                                     \
                t1 += a[l];                                                                   \
                t2 += b[l];                                                                   \
            }                                                                                 \
            s1[ch] = t1;                                                                      \
            s2[ch] = t2;                                                                      \
        }                                                                                     \
    }                                                                                         \
    /* grad 0: out = (x - mh) * a + b; grad 1: out = k * dy + (x - mh) * a + b (per channel) */ \
    ATTR FI_INLINE void seg_apply_##TAG(int grad, T *restrict out, const T *restrict x,       \
                                      const T *restrict dy, const bn_coef_##T *cf, int64_t n, \
                                      int64_t c, int64_t s) {                                 \
        for (int64_t i = 0; i < n; i++)                                                       \
            for (int64_t ch = 0; ch < c; ch++) {                                              \
                int64_t o = (i * c + ch) * s;                                                 \
                const T *r = x + o;                                                           \
                T *w = out + o, mh = cf[ch].mh, ca = cf[ch].a, cb = cf[ch].b;                 \
                if (grad) {                                                                   \
                    const T *g = dy + o;                                                      \
                    T ck = cf[ch].k;                                                          \
                    for (int64_t j = 0; j < s; j++) w[j] = ck * g[j] + (r[j] - mh) * ca + cb; \
                } else {                                                                      \
                    for (int64_t j = 0; j < s; j++) w[j] = (r[j] - mh) * ca + cb;             \
                }                                                                             \
            }                                                                                 \
    }

#define BN_SEGMENT_RUNNERS(T, L, TAG, ATTR)                                                   \
    /* sums of rows [i0, i1) into s1p, s2p (c doubles each): grad 0 of x - k, grad 1 of dy    \
     * and dy * (x - k); accumulators on the stack up to BN_SEGMENT_STACK_C channels. 0, or -1: \
     * no memory. */                                                                          \
    ATTR FI_INLINE int seg_block_sums_##TAG(int grad, double *s1p, double *s2p, const bn_args *a,\
                                          const double *k, int64_t i0, int64_t i1) {          \
        int64_t c = a->c, cs = a->c * a->s;                                                   \
        bn_d##L stack[4 * BN_SEGMENT_STACK_C + 2 * BN_SEGMENT_STACK_C * 8 / sizeof(bn_d##L) + 1]; \
        bn_d##L *acc = stack;                                                                 \
        if (c > BN_SEGMENT_STACK_C) {                                                         \
            acc = aligned_alloc(64, (sizeof(bn_d##L) * 4 * c + 16 * c + 63) / 64 * 64);       \
            if (!acc) return -1;                                                              \
        }                                                                                     \
        const T *x = (const T *)a->x, *dy = (const T *)a->dy;                                 \
        seg_sums_##TAG(grad, s1p, s2p, x + i0 * cs, grad ? dy + i0 * cs : NULL, k, i1 - i0, c,\
                      a->s, acc, (double *)(acc + 4 * c));                                    \
        if (acc != stack) free(acc);                                                          \
        return 0;                                                                             \
    }                                                                                         \
    /* block b (rows [b*rb, min(n, (b+1)*rb))) of the sums: partials at p + 2*b*c, c each */  \
    ATTR FI_INLINE int seg_sums_block_##TAG(int kind, double *p, const bn_args *a,            \
                                          const double *k, int64_t b, int64_t rb) {           \
        int64_t c = a->c, hi = (b + 1) * rb < a->n ? (b + 1) * rb : a->n;                     \
        if (kind == 2)                                                                        \
            return seg_block_sums_##TAG(1, p + 2 * b * c, p + (2 * b + 1) * c, a, k, b * rb, hi);\
        return seg_block_sums_##TAG(0, p + 2 * b * c, p + (2 * b + 1) * c, a, k, b * rb, hi); \
    }                                                                                         \
    /* block b of the output pass */                                                          \
    ATTR FI_INLINE void seg_apply_block_##TAG(int kind, const bn_coef_##T *cf, const bn_args *a,\
                                            int64_t b, int64_t rb) {                          \
        int64_t cs = a->c * a->s, o = b * rb * cs;                                            \
        int64_t rows = (b + 1) * rb < a->n ? rb : a->n - b * rb;                              \
        const T *x = (const T *)a->x + o;                                                     \
        T *out = (T *)a->out + o;                                                             \
        if (kind == 2)                                                                        \
            seg_apply_##TAG(1, out, x, (const T *)a->dy + o, cf, rows, a->c, a->s);           \
        else                                                                                  \
            seg_apply_##TAG(0, out, x, NULL, cf, rows, a->c, a->s);                           \
    }                                                                                         \
    /* kind 0: training forward, 1: forward with given statistics, 2: backward. Fixed blocks  \
     * of rows (seg_rows_per_block): partial sums per block, added in block order, so the     \
     * result does not depend on the thread count; blocks run on threads from                 \
     * BN_SEGMENT_PARALLEL_MIN elements (explicit branches: an OpenMP region with a false if()\
     * clause still costs ~0.4 us). 0, or -1: no memory. */                                   \
    ATTR static int seg_run_##TAG(int kind, const bn_args *a) {                               \
        int64_t c = a->c, n = a->n, s = a->s, cs = c * s;                                     \
        int64_t rb = seg_rows_per_block(cs), nb = (n + rb - 1) / rb;                          \
        int par = nb > 1 && n * cs >= BN_SEGMENT_PARALLEL_MIN, status = 0;                    \
        /* scratch: shifts k (c), partial sums (2 * nb * c), coefficients (c) */              \
        double *work = malloc(sizeof(double) * (c + 2 * nb * c) + sizeof(bn_coef_##T) * c);   \
        if (!work) return -1;                                                                 \
        double *k = work, *p = k + c;                                                         \
        bn_coef_##T *cf = (bn_coef_##T *)(p + 2 * nb * c);                                    \
        const T *x = (const T *)a->x;                                                         \
        if (kind == 1) {                                                                      \
            for (int64_t ch = 0; ch < c; ch++) {                                              \
                a->invstd[ch] = 1.0 / sqrt(a->var[ch] + a->eps);                              \
                cf[ch].mh = (T)a->mean[ch];                                                   \
                double ca, cb;                                                                \
                forward_coef(a->mean[ch], a->invstd[ch], (double)((const T *)a->gamma)[ch],   \
                             (double)((const T *)a->beta)[ch], (double)cf[ch].mh, &ca, &cb);  \
                cf[ch].a = (T)ca;                                                             \
                cf[ch].b = (T)cb;                                                             \
                cf[ch].k = (T)0;                                                              \
            }                                                                                 \
        } else {                                                                              \
            for (int64_t ch = 0; ch < c; ch++)                                                \
                k[ch] = kind == 2 ? a->mean[ch] : (double)x[ch * s];                          \
            if (par) {                                                                        \
                _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) reduction(| : status)") \
                for (int64_t b = 0; b < nb; b++)                                              \
                    status |= seg_sums_block_##TAG(kind, p, a, k, b, rb);                     \
            } else {                                                                          \
                for (int64_t b = 0; b < nb; b++)                                              \
                    status |= seg_sums_block_##TAG(kind, p, a, k, b, rb);                     \
            }                                                                                 \
            if (status) {                                                                     \
                free(work);                                                                   \
                return -1;                                                                    \
            }                                                                                 \
            for (int64_t ch = 0; ch < c; ch++) {                                              \
                double t1 = p[ch], t2 = p[c + ch];                                            \
                for (int64_t b = 1; b < nb; b++) {                                            \
                    t1 += p[2 * b * c + ch];                                                  \
                    t2 += p[(2 * b + 1) * c + ch];                                            \
                }                                                                             \
                cf[ch] = kind == 2 ? bwd_finish_##T(a, ch, t1, t2)                            \
                                   : fwd_finish_##T(a, ch, t1, t2, k[ch]);                    \
            }                                                                                 \
        }                                                                                     \
        if (par) {                                                                            \
            _Pragma("omp parallel for num_threads(fi_threads()) schedule(static)")                 \
            for (int64_t b = 0; b < nb; b++) seg_apply_block_##TAG(kind, cf, a, b, rb);       \
        } else {                                                                              \
            for (int64_t b = 0; b < nb; b++) seg_apply_block_##TAG(kind, cf, a, b, rb);       \
        }                                                                                     \
        free(work);                                                                           \
        return 0;                                                                             \
    }

BN_SEGMENT_BODIES(float, 8, float8, BN_TARGET_AVX512)
BN_SEGMENT_BODIES(double, 8, double8, BN_TARGET_AVX512)
BN_SEGMENT_BODIES(float, 4, float4, BN_TARGET_AVX2_FMA)
BN_SEGMENT_BODIES(double, 4, double4, BN_TARGET_AVX2_FMA)
BN_SEGMENT_BODIES(float, 2, float2, )
BN_SEGMENT_BODIES(double, 2, double2, )
BN_SEGMENT_RUNNERS(float, 8, float8, BN_TARGET_AVX512)
BN_SEGMENT_RUNNERS(double, 8, double8, BN_TARGET_AVX512)
BN_SEGMENT_RUNNERS(float, 4, float4, BN_TARGET_AVX2_FMA)
BN_SEGMENT_RUNNERS(double, 4, double4, BN_TARGET_AVX2_FMA)
BN_SEGMENT_RUNNERS(float, 2, float2, )
BN_SEGMENT_RUNNERS(double, 2, double2, )

/* Which build the segment and group paths run: 0 portable, 1 AVX2, 2 AVX-512; -1 (default) the
 * best this CPU has. Clamped to what the CPU has; returns the build now used (for tests). */
static int bn_seg_path = -1;

int fi_batch_norm_set_path(int path) {
    int best = fi_use_avx512 ? 2 : fi_use_avx2 ? 1 : 0;
    bn_seg_path = (path < 0 || path > best) ? best : path;
    return bn_seg_path;
}

/* kind: 0 training forward, 1 forward with given statistics, 2 backward */
#define BN_SEGMENT_RUN(T, kind, a)                                                            \
    ((bn_seg_path < 0 ? fi_batch_norm_set_path(-1) : 0),                                      \
     bn_seg_path == 2 ? seg_run_##T##8(kind, a)                                               \
                      : bn_seg_path == 1 ? seg_run_##T##4(kind, a) : seg_run_##T##2(kind, a))

#if FI_X86
#define BN_GROUP_RUN_BEST(T, a)                                                               \
    (bn_seg_path == 2 ? group_run_##T##_avx512(a)                                             \
                      : bn_seg_path == 1 ? group_run_##T##_avx2(a) : group_run_##T##_portable(a))
#else
#define BN_GROUP_RUN_BEST(T, a) group_run_##T##_portable(a)
#endif

static int use_segment(int64_t n, int64_t c, int64_t s, size_t elem_size) {
    return s >= BN_SEGMENT_S_MIN && (int64_t)(n * c * s * (int64_t)elem_size) < BN_STREAM_MIN_BYTES;
}

/* ---- entry points -------------------------------------------------------------------------- */

#define BN_ENTRY_POINTS(T, SUF)                                                               \
    int fi_batch_norm_forward_train_##SUF(T *y, double *mean, double *var, double *invstd,   \
                                          const T *x, const T *gamma, const T *beta,         \
                                          double eps, int64_t n, int64_t c, int64_t s) {     \
        if (use_segment(n, c, s, sizeof(T))) {                                                  \
            bn_args a = {.out = y, .mean = mean, .var = var, .invstd = invstd, .x = x,        \
                         .gamma = gamma, .beta = beta, .eps = eps, .n = n, .c = c, .s = s};   \
            return BN_SEGMENT_RUN(T, 0, &a);                                                    \
        }                                                                                     \
        if (s >= BN_SPATIAL_MIN) {                                                            \
            bn_args a = {.out = y, .mean = mean, .var = var, .invstd = invstd, .x = x,        \
                         .gamma = gamma, .beta = beta, .eps = eps, .n = n, .c = c, .s = s,    \
                         .stream = stream_for(n * c * s, sizeof(T))};                         \
            if (bn_seg_path < 0) fi_batch_norm_set_path(-1);                                  \
            return BN_GROUP_RUN_BEST(T, &a);                                                  \
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
        if (use_segment(n, c, s, sizeof(T))) {                                                  \
            bn_args a = {.out = y, .mean = (double *)mean, .var = (double *)var,              \
                         .invstd = invstd, .x = x, .gamma = gamma, .beta = beta, .eps = eps,  \
                         .n = n, .c = c, .s = s};                                             \
            return BN_SEGMENT_RUN(T, 1, &a);                                                    \
        }                                                                                     \
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
        if (use_segment(n, c, s, sizeof(T))) {                                                  \
            bn_args a = {.out = dx, .dgamma = dgamma, .dbeta = dbeta, .mean = (double *)mean, \
                         .invstd = (double *)invstd, .x = x, .dy = dy, .gamma = gamma,        \
                         .n = n, .c = c, .s = s, .training = training};                       \
            return BN_SEGMENT_RUN(T, 2, &a);                                                    \
        }                                                                                     \
        if (s >= BN_SPATIAL_MIN) {                                                            \
            bn_args a = {.out = dx, .dgamma = dgamma, .dbeta = dbeta, .mean = (double *)mean, \
                         .invstd = (double *)invstd, .x = x, .dy = dy, .gamma = gamma,        \
                         .n = n, .c = c, .s = s, .training = training,                        \
                         .stream = stream_for(n * c * s, sizeof(T))};                         \
            if (bn_seg_path < 0) fi_batch_norm_set_path(-1);                                  \
            return BN_GROUP_RUN_BEST(T, &a);                                                  \
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
