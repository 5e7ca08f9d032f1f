/* Gradient clipping over a list of arrays (contract of fastinit/reference/clip.py).
 *
 * The list comes as a table: array i starts at addrs[i] and holds sizes[i] elements of
 * one type, given by bits (16: IEEE half, 32: float, 64: double); arrays are C-contiguous and
 * worked on in place. The list is cut into fixed chunks of CLIP_CHUNK elements (a chunk never
 * spans two arrays); each chunk yields a float64 partial (sum |g|, sum g^2, max |g| with a NaN
 * count, or sum |g|^p) and the partials are combined in list order: the norm does not depend
 * on the thread count (docs/performance.md, "Gradient clipping"). Each thread takes a
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
#if FI_X86
#include <immintrin.h>
#endif

#define CLIP_CHUNK 16384
#define CLIP_PARALLEL_MIN 32768
#define CLIP_PREFETCH_BYTES 2048

typedef double cl_v4d __attribute__((vector_size(32)));
typedef int64_t cl_v4l __attribute__((vector_size(32)));
typedef double cl_v4d_u FI_VEC_OF(double, 32);
typedef float cl_v4f_u FI_VEC_OF(float, 16);

enum { KIND_ONE = 0, KIND_TWO = 1, KIND_INF = 2, KIND_P = 3 };

/* Lane helpers as macros: a 32-byte vector passed by value draws a gcc ABI note on the
 * portable build. vmax(a, b) = a > b ? a : b lane by lane (a NaN a gives b). */
#define CL_ABS_MASK ((cl_v4l){INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX})
#define vabs(v) ((cl_v4d)((cl_v4l)(v) & CL_ABS_MASK))
#define vmax(a, b) ((cl_v4d)(((cl_v4l)(a) & ((a) > (b))) | ((cl_v4l)(b) & ~((a) > (b)))))
#define hsum(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))
#define hmax2(x, y) ((x) > (y) ? (x) : (y))
#define hmax(v) hmax2(hmax2(hmax2((v)[0], (v)[1]), (v)[2]), (v)[3])

/* float32 and float64 chunks: clip_partial_, clip_scale_, clip_clamp_ of each ISA */
#define FI_BODY "clip_isa.h"
#include "instances.h"

/* float16: scalar, one build for every ISA (not a fast path; without F16C, which the AVX2
 * build does not assume, each conversion is a library call). A scaled float32 product is
 * rounded once to float16, as PyTorch does. */
static double clip_partial_f16(const void *p, int64_t n, int kind, double pw, double *nans) {
    const _Float16 *g = (const _Float16 *)p;
    double t = 0.0, cnt = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = fabs((double)g[i]);
        cnt += v != v;
        if (kind == KIND_TWO) t += v * v;
        else if (kind == KIND_ONE) t += v;
        else if (kind == KIND_INF) t = v > t ? v : t;
        else t += pow(v, pw);
    }
    *nans = cnt;
    return t;
}

static void clip_scale_f16(void *p, int64_t n, double s) {
    _Float16 *g = (_Float16 *)p;
    const float t = (float)s;
    for (int64_t i = 0; i < n; i++) g[i] = (_Float16)((float)g[i] * t);
}

static void clip_clamp_f16(void *p, int64_t n, double c) {
    _Float16 *g = (_Float16 *)p;
    const float hi = (float)c, lo = -hi;
    for (int64_t i = 0; i < n; i++) {
        const float v = (float)g[i];
        g[i] = v > hi ? (_Float16)hi : (v < lo ? (_Float16)lo : g[i]); /* NaN stays */
    }
}

/* The function `name` of the element type of `bits` on the ISA `isa` */
#define CL_PICK(name, bits, isa)                                                               \
    ((bits) == 16   ? name##f16                                                                \
     : (bits) == 32 ? FI_ISA_PICK(isa, name, f32) : FI_ISA_PICK(isa, name, f64))

typedef double (*clip_partial_fn)(const void *p, int64_t n, int kind, double pw, double *nans);
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

fi_status fi_grad_norm(double *total, void **addrs, const int64_t *sizes, int64_t count, int bits,
                       double norm_type) {
    clip_chunks t;
    if (make_chunks(&t, sizes, count) != 0) return FI_ERR_NOMEM;
    double *part = malloc(sizeof(double) * (t.count > 0 ? 2 * t.count : 1));
    if (!part) {
        free(t.which);
        return FI_ERR_NOMEM;
    }
    double *nans = part + t.count;
    int kind = isinf(norm_type) ? KIND_INF
               : norm_type == 1.0 ? KIND_ONE
               : norm_type == 2.0 ? KIND_TWO
                                  : KIND_P;
    clip_partial_fn fn = CL_PICK(clip_partial_, bits, fi_isa());
    int64_t es = elem_size(bits), n_all = 0;
    for (int64_t i = 0; i < count; i++) n_all += sizes[i];
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n_all >= CLIP_PARALLEL_MIN)
    for (int64_t k = 0; k < t.count; k++) {
        const char *p = (const char *)addrs[t.which[k]] + t.start[k] * es;
        part[k] = fn(p, chunk_len(&t, sizes, k), kind, norm_type, &nans[k]);
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
    return FI_OK;
}

static fi_status clip_update(clip_update_fn fn, void **addrs, const int64_t *sizes,
                             int64_t count, int bits, double value) {
    clip_chunks t;
    if (make_chunks(&t, sizes, count) != 0) return FI_ERR_NOMEM;
    int64_t es = elem_size(bits), n_all = 0;
    for (int64_t i = 0; i < count; i++) n_all += sizes[i];
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n_all >= CLIP_PARALLEL_MIN)
    for (int64_t k = 0; k < t.count; k++) {
        char *p = (char *)addrs[t.which[k]] + t.start[k] * es;
        fn(p, chunk_len(&t, sizes, k), value);
    }
    free(t.which);
    return FI_OK;
}

fi_status fi_grad_scale(void **addrs, const int64_t *sizes, int64_t count, int bits,
                        double scale) {
    return clip_update(CL_PICK(clip_scale_, bits, fi_isa()), addrs, sizes, count, bits, scale);
}

fi_status fi_grad_clamp(void **addrs, const int64_t *sizes, int64_t count, int bits,
                        double clip_value) {
    return clip_update(CL_PICK(clip_clamp_, bits, fi_isa()), addrs, sizes, count, bits,
                       clip_value);
}
