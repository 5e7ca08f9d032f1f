/* Gradient clipping over a list of arrays (contract of fastinit/reference/clip.py).
 *
 * The list comes as a table: array i starts at addrs[i] and holds sizes[i] elements of
 * one type, given by bits (16: IEEE half, 32: float, 64: double); arrays are C-contiguous and
 * worked on in place. The list is cut into fixed chunks of CLIP_CHUNK elements (a chunk never
 * spans two arrays); each chunk yields a float64 partial (sum |g|, sum g^2, max |g| with a NaN
 * count, or sum |g|^p) and the partials are combined in list order: the norm does not depend
 * on the thread count (shared PERF_NOTES.md, "Gradient clipping"). Each thread takes a
 * contiguous run of chunks and prefetches ahead within it.
 *
 * float16 goes through gcc's _Float16 (float16 -> float32 is exact; a scaled float32 product is
 * rounded once to float16, as PyTorch does). Nothing here is fast-math: NaN and inf propagate.
 */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "fastinit.h"
#include "dispatch.h"

#define CLIP_CHUNK 16384
#define CLIP_PARALLEL_MIN 32768
#define CLIP_PREFETCH_BYTES 2048

typedef double cl_v4d __attribute__((vector_size(32)));
typedef int64_t cl_v4l __attribute__((vector_size(32)));
typedef double cl_v4d_u __attribute__((vector_size(32), aligned(8)));
typedef float cl_v4f_u __attribute__((vector_size(16), aligned(4)));

enum { KIND_ONE = 0, KIND_TWO = 1, KIND_INF = 2, KIND_P = 3 };

FI_INLINE cl_v4d load4_f32(const void *p, int64_t i) {
    return __builtin_convertvector(*(const cl_v4f_u *)((const float *)p + i), cl_v4d);
}
FI_INLINE cl_v4d load4_f64(const void *p, int64_t i) {
    return *(const cl_v4d_u *)((const double *)p + i);
}
FI_INLINE double load1_f32(const void *p, int64_t i) { return (double)((const float *)p)[i]; }
FI_INLINE double load1_f64(const void *p, int64_t i) { return ((const double *)p)[i]; }
FI_INLINE double load1_f16(const void *p, int64_t i) { return (double)((const _Float16 *)p)[i]; }

/* Lane helpers as macros: a 32-byte vector passed by value draws a gcc ABI note on the
 * portable build. vmax(a, b) = a > b ? a : b lane by lane (a NaN a gives b). */
#define CL_ABS_MASK ((cl_v4l){INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX})
#define vabs(v) ((cl_v4d)((cl_v4l)(v) & CL_ABS_MASK))
#define vmax(a, b) ((cl_v4d)(((cl_v4l)(a) & ((a) > (b))) | ((cl_v4l)(b) & ~((a) > (b)))))
#define hsum(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))
#define hmax2(x, y) ((x) > (y) ? (x) : (y))
#define hmax(v) hmax2(hmax2(hmax2((v)[0], (v)[1]), (v)[2]), (v)[3])

/* Partial of one chunk of n elements at p; *nans counts NaNs (for the inf norm). The vector
 * loop takes 8 elements per step into two accumulators; the tail is scalar. */
#define CLIP_PARTIAL(SUF)                                                                     \
    FI_INLINE double partial_##SUF(const void *p, int64_t n, int kind, double pw,            \
                                   double *nans, int64_t elem) {                              \
        cl_v4d a0 = {0}, a1 = {0};                                                            \
        cl_v4l c0 = {0}, c1 = {0};                                                            \
        int64_t i = 0;                                                                        \
        const char *base = (const char *)p;                                                   \
        if (kind == KIND_TWO) {                                                               \
            for (; i + 8 <= n; i += 8) {                                                      \
                if (((i * elem) & 63) < 8 * elem)                                             \
                    __builtin_prefetch(base + i * elem + CLIP_PREFETCH_BYTES);                \
                cl_v4d v0 = load4_##SUF(p, i), v1 = load4_##SUF(p, i + 4);                   \
                a0 += v0 * v0;                                                                \
                a1 += v1 * v1;                                                                \
            }                                                                                 \
        } else if (kind == KIND_ONE) {                                                        \
            for (; i + 8 <= n; i += 8) {                                                      \
                if (((i * elem) & 63) < 8 * elem)                                             \
                    __builtin_prefetch(base + i * elem + CLIP_PREFETCH_BYTES);                \
                a0 += vabs(load4_##SUF(p, i));                                                \
                a1 += vabs(load4_##SUF(p, i + 4));                                            \
            }                                                                                 \
        } else if (kind == KIND_INF) {                                                        \
            for (; i + 8 <= n; i += 8) {                                                      \
                if (((i * elem) & 63) < 8 * elem)                                             \
                    __builtin_prefetch(base + i * elem + CLIP_PREFETCH_BYTES);                \
                cl_v4d v0 = vabs(load4_##SUF(p, i)), v1 = vabs(load4_##SUF(p, i + 4));       \
                a0 = vmax(v0, a0);                                                            \
                a1 = vmax(v1, a1);                                                            \
                c0 -= (cl_v4l)(v0 != v0);                                                     \
                c1 -= (cl_v4l)(v1 != v1);                                                     \
            }                                                                                 \
        }                                                                                     \
        double t = 0.0, cnt = 0.0;                                                            \
        for (; i < n; i++) {                                                                  \
            double v = fabs(load1_##SUF(p, i));                                               \
            if (kind == KIND_TWO) t += v * v;                                                 \
            else if (kind == KIND_ONE) t += v;                                                \
            else if (kind == KIND_INF) {                                                      \
                t = v > t ? v : t;                                                            \
                cnt += v != v;                                                                \
            } else t += pow(v, pw);                                                           \
        }                                                                                     \
        if (kind == KIND_INF) {                                                               \
            cl_v4d mm = vmax(a0, a1);                                                         \
            double m = hmax(mm);                                                              \
            cl_v4l c = c0 + c1;                                                               \
            *nans = cnt + (double)(c[0] + c[1] + c[2] + c[3]);                                \
            return t > m ? t : m;                                                             \
        }                                                                                     \
        *nans = 0.0;                                                                          \
        return hsum(a0 + a1) + t;                                                             \
    }

CLIP_PARTIAL(f32)
CLIP_PARTIAL(f64)

/* float16: scalar, every kind (not a fast path). */
FI_INLINE double partial_f16(const void *p, int64_t n, int kind, double pw, double *nans,
                             int64_t elem) {
    (void)elem;
    double t = 0.0, cnt = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = fabs(load1_f16(p, i));
        cnt += v != v;
        if (kind == KIND_TWO) t += v * v;
        else if (kind == KIND_ONE) t += v;
        else if (kind == KIND_INF) t = v > t ? v : t;
        else t += pow(v, pw);
    }
    *nans = cnt;
    return t;
}

typedef double (*clip_partial_fn)(const void *p, int64_t n, int kind, double pw, double *nans,
                                  int64_t elem);

#define CLIP_PARTIAL_VARIANTS(SUF)                                                            \
    FI_TARGET_AVX2 static double partial_##SUF##_avx2(const void *p, int64_t n, int kind,    \
                                                      double pw, double *nans, int64_t elem) { \
        return partial_##SUF(p, n, kind, pw, nans, elem);                                     \
    }                                                                                         \
    static double partial_##SUF##_portable(const void *p, int64_t n, int kind, double pw,    \
                                           double *nans, int64_t elem) {                      \
        return partial_##SUF(p, n, kind, pw, nans, elem);                                     \
    }

CLIP_PARTIAL_VARIANTS(f32)
CLIP_PARTIAL_VARIANTS(f64)
CLIP_PARTIAL_VARIANTS(f16)

/* AVX-512 partials of float32/float64 chunks (8 doubles a vector, 16 elements a step, one
 * prefetch per 64-byte line): norm types 1, 2 and inf; other p go to the AVX2 build (scalar
 * pow either way). */
#if FI_X86
#include <immintrin.h>
#define CL_T512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
CL_T512 FI_INLINE __m512d cl512_load_f32(const void *p, int64_t i) {
    return _mm512_cvtps_pd(_mm256_loadu_ps((const float *)p + i));
}
CL_T512 FI_INLINE __m512d cl512_load_f64(const void *p, int64_t i) {
    return _mm512_loadu_pd((const double *)p + i);
}
#define CLIP_PARTIAL512(SUF)                                                                  \
    CL_T512 static double partial_##SUF##_avx512(const void *p, int64_t n, int kind,         \
                                                 double pw, double *nans, int64_t elem) {     \
        if (kind == KIND_P) return partial_##SUF##_avx2(p, n, kind, pw, nans, elem);         \
        __m512d a0 = _mm512_setzero_pd(), a1 = a0;                                            \
        int64_t i = 0, bad = 0;                                                               \
        const char *base = (const char *)p;                                                   \
        for (; i + 16 <= n; i += 16) {                                                        \
            for (int64_t b = 0; b < 16 * elem; b += 64)                                       \
                __builtin_prefetch(base + i * elem + b + CLIP_PREFETCH_BYTES);                \
            __m512d v0 = cl512_load_##SUF(p, i), v1 = cl512_load_##SUF(p, i + 8);             \
            if (kind == KIND_TWO) {                                                           \
                a0 = _mm512_fmadd_pd(v0, v0, a0);                                             \
                a1 = _mm512_fmadd_pd(v1, v1, a1);                                             \
            } else if (kind == KIND_ONE) {                                                    \
                a0 = _mm512_add_pd(a0, _mm512_abs_pd(v0));                                    \
                a1 = _mm512_add_pd(a1, _mm512_abs_pd(v1));                                    \
            } else { /* max: a NaN lane keeps the accumulator (second operand); counted */   \
                a0 = _mm512_max_pd(_mm512_abs_pd(v0), a0);                                    \
                a1 = _mm512_max_pd(_mm512_abs_pd(v1), a1);                                    \
                bad += __builtin_popcount(_mm512_cmp_pd_mask(v0, v0, _CMP_UNORD_Q)) +         \
                       __builtin_popcount(_mm512_cmp_pd_mask(v1, v1, _CMP_UNORD_Q));          \
            }                                                                                 \
        }                                                                                     \
        double t = 0.0, cnt = (double)bad;                                                    \
        for (; i < n; i++) {                                                                  \
            double v = fabs(load1_##SUF(p, i));                                               \
            if (kind == KIND_TWO) t += v * v;                                                 \
            else if (kind == KIND_ONE) t += v;                                                \
            else {                                                                            \
                t = v > t ? v : t;                                                            \
                cnt += v != v;                                                                \
            }                                                                                 \
        }                                                                                     \
        if (kind == KIND_INF) {                                                               \
            double m = _mm512_reduce_max_pd(_mm512_max_pd(a0, a1));                           \
            *nans = cnt;                                                                      \
            return t > m ? t : m;                                                             \
        }                                                                                     \
        *nans = 0.0;                                                                          \
        return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + t;                               \
    }
CLIP_PARTIAL512(f32)
CLIP_PARTIAL512(f64)
#endif

/* Which build the norm runs: 0 portable, 1 AVX2, 2 AVX-512; -1 (default) the best this CPU
 * has. Clamped to what the CPU has; returns the build now used (for tests). */
#define clip_path (fi_isa() - FI_ISA_BASE)

static clip_partial_fn partial_for(int bits) {
#if FI_X86
    if (clip_path == 2 && bits != 16) return bits == 32 ? partial_f32_avx512 : partial_f64_avx512;
#endif
    int avx2 = clip_path >= 1;
    return bits == 16 ? (avx2 ? partial_f16_avx2 : partial_f16_portable)
           : bits == 32 ? (avx2 ? partial_f32_avx2 : partial_f32_portable)
                        : (avx2 ? partial_f64_avx2 : partial_f64_portable);
}

/* ---- scale and clamp of one chunk ------------------------------------------------------------ */

#define CLIP_UPDATE(SUF, T, W)                                                                \
    FI_INLINE void scale_##SUF(void *p, int64_t n, double s) {                               \
        T *g = (T *)p;                                                                        \
        W t = (W)s;                                                                           \
        for (int64_t i = 0; i < n; i++) g[i] = (T)((W)g[i] * t);                              \
    }                                                                                         \
    FI_INLINE void clamp_##SUF(void *p, int64_t n, double c) {                               \
        T *g = (T *)p;                                                                        \
        W hi = (W)c, lo = -hi;                                                                \
        for (int64_t i = 0; i < n; i++) {                                                     \
            W v = (W)g[i];                                                                    \
            /* NaN fails both tests and stays */                                              \
            g[i] = v > hi ? (T)hi : (v < lo ? (T)lo : g[i]);                                  \
        }                                                                                     \
    }                                                                                         \
    FI_TARGET_AVX2 static void scale_##SUF##_avx2(void *p, int64_t n, double s) {            \
        scale_##SUF(p, n, s);                                                                 \
    }                                                                                         \
    static void scale_##SUF##_portable(void *p, int64_t n, double s) { scale_##SUF(p, n, s); } \
    FI_TARGET_AVX2 static void clamp_##SUF##_avx2(void *p, int64_t n, double c) {            \
        clamp_##SUF(p, n, c);                                                                 \
    }                                                                                         \
    static void clamp_##SUF##_portable(void *p, int64_t n, double c) { clamp_##SUF(p, n, c); }

CLIP_UPDATE(f32, float, float)
CLIP_UPDATE(f64, double, double)
CLIP_UPDATE(f16, _Float16, float)

typedef void (*clip_update_fn)(void *p, int64_t n, double v);

/* ---- the chunk table ------------------------------------------------------------------------ */

typedef struct {
    int64_t count;      /* chunks */
    int64_t *which;     /* array of each chunk */
    int64_t *start;     /* first element of each chunk */
} clip_chunks;

static int make_chunks(clip_chunks *t, const int64_t *sizes, int64_t count) {
    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) total += (sizes[i] + CLIP_CHUNK - 1) / CLIP_CHUNK;
    t->count = total;
    t->which = malloc(sizeof(int64_t) * (total > 0 ? 2 * total : 1));
    if (!t->which) return -1;
    t->start = t->which + total;
    int64_t k = 0;
    for (int64_t i = 0; i < count; i++)
        for (int64_t lo = 0; lo < sizes[i]; lo += CLIP_CHUNK) {
            t->which[k] = i;
            t->start[k] = lo;
            k++;
        }
    return 0;
}

FI_INLINE int64_t chunk_len(const clip_chunks *t, const int64_t *sizes, int64_t k) {
    int64_t rest = sizes[t->which[k]] - t->start[k];
    return rest < CLIP_CHUNK ? rest : CLIP_CHUNK;
}

static int elem_size(int bits) { return bits == 16 ? 2 : (bits == 32 ? 4 : 8); }

/* ---- entry points ------------------------------------------------------------------------- */

int fi_grad_norm(double *total, void **addrs, const int64_t *sizes, int64_t count, int bits,
                 double norm_type) {
    clip_chunks t;
    if (make_chunks(&t, sizes, count) != 0) return -1;
    double *part = malloc(sizeof(double) * (t.count > 0 ? 2 * t.count : 1));
    if (!part) {
        free(t.which);
        return -1;
    }
    double *nans = part + t.count;
    int kind = isinf(norm_type) ? KIND_INF
               : norm_type == 1.0 ? KIND_ONE
               : norm_type == 2.0 ? KIND_TWO
                                  : KIND_P;
    clip_partial_fn fn = partial_for(bits);
    int64_t es = elem_size(bits), n_all = 0;
    for (int64_t i = 0; i < count; i++) n_all += sizes[i];
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n_all >= CLIP_PARALLEL_MIN)
    for (int64_t k = 0; k < t.count; k++) {
        const char *p = (const char *)addrs[t.which[k]] + t.start[k] * es;
        part[k] = fn(p, chunk_len(&t, sizes, k), kind, norm_type, &nans[k], es);
    }
    double acc = 0.0, bad = 0.0;
    for (int64_t k = 0; k < t.count; k++) {
        if (kind == KIND_INF) {
            acc = part[k] > acc ? part[k] : acc;
            bad += nans[k];
        } else {
            acc += part[k];
        }
    }
    if (kind == KIND_INF) *total = bad > 0.0 ? NAN : acc;
    else if (kind == KIND_ONE) *total = acc;
    else if (kind == KIND_TWO) *total = sqrt(acc);
    else *total = pow(acc, 1.0 / norm_type);
    free(part);
    free(t.which);
    return 0;
}

static int clip_update(clip_update_fn fn, void **addrs, const int64_t *sizes, int64_t count,
                       int bits, double value) {
    clip_chunks t;
    if (make_chunks(&t, sizes, count) != 0) return -1;
    int64_t es = elem_size(bits), n_all = 0;
    for (int64_t i = 0; i < count; i++) n_all += sizes[i];
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n_all >= CLIP_PARALLEL_MIN)
    for (int64_t k = 0; k < t.count; k++) {
        char *p = (char *)addrs[t.which[k]] + t.start[k] * es;
        fn(p, chunk_len(&t, sizes, k), value);
    }
    free(t.which);
    return 0;
}

int fi_grad_scale(void **addrs, const int64_t *sizes, int64_t count, int bits, double scale) {
    int avx2 = fi_isa() >= FI_ISA_AVX2;
    clip_update_fn fn = bits == 16 ? (avx2 ? scale_f16_avx2 : scale_f16_portable)
                        : bits == 32 ? (avx2 ? scale_f32_avx2 : scale_f32_portable)
                                     : (avx2 ? scale_f64_avx2 : scale_f64_portable);
    return clip_update(fn, addrs, sizes, count, bits, scale);
}

int fi_grad_clamp(void **addrs, const int64_t *sizes, int64_t count, int bits,
                  double clip_value) {
    int avx2 = fi_isa() >= FI_ISA_AVX2;
    clip_update_fn fn = bits == 16 ? (avx2 ? clamp_f16_avx2 : clamp_f16_portable)
                        : bits == 32 ? (avx2 ? clamp_f32_avx2 : clamp_f32_portable)
                                     : (avx2 ? clamp_f64_avx2 : clamp_f64_portable);
    return clip_update(fn, addrs, sizes, count, bits, clip_value);
}
