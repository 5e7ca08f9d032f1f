/* The SGD update over a list of arrays, in place (contract of fastinit/ops/optim.py).
 *
 * Array i has sizes[i] elements at p[i], g[i] and (with momentum) v[i], all of one type
 * (bits = 32: float, 64: double). Per element, in that type, one rounding per operation
 * (-ffp-contract=off keeps the compiler from fusing):
 *     d = g + wd * p   (wd != 0);   v = m * v + d   (m != 0; d = v);   p = p - lr * d
 * One pass over memory. Below OPT_PARALLEL_MIN elements in all it runs on one thread; above,
 * every thread takes its own slice of every array (no chunk table, no barrier between arrays).
 * The loop is compiled for AVX-512 too (16 floats a vector instead of SSE2's 4; the update
 * reads its arrays from L2/L3 and was bound by the instructions, not the bytes).
 */
#include <stdint.h>
#include "fastinit.h"
#include "dispatch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define OPT_PARALLEL_MIN 65536
#define OPT_ALIGN 16   /* slice boundaries in elements: whole cache lines per thread */

#define OPT_RANGE(T, SUF, ATTR)                                                              \
ATTR static void sgd_range_##SUF(T *restrict p, const T *restrict g, T *restrict v, int64_t lo,    \
                            int64_t hi, T lr, T m, T wd) {                                   \
    if (v && wd != 0) {                                                                      \
        for (int64_t j = lo; j < hi; j++) {                                                  \
            T d = g[j] + wd * p[j];                                                          \
            T u = m * v[j] + d;                                                              \
            v[j] = u;                                                                        \
            p[j] = p[j] - lr * u;                                                            \
        }                                                                                    \
    } else if (v) {                                                                          \
        for (int64_t j = lo; j < hi; j++) {                                                  \
            T u = m * v[j] + g[j];                                                           \
            v[j] = u;                                                                        \
            p[j] = p[j] - lr * u;                                                            \
        }                                                                                    \
    } else if (wd != 0) {                                                                    \
        for (int64_t j = lo; j < hi; j++)                                                    \
            p[j] = p[j] - lr * (g[j] + wd * p[j]);                                           \
    } else {                                                                                 \
        for (int64_t j = lo; j < hi; j++)                                                    \
            p[j] = p[j] - lr * g[j];                                                         \
    }                                                                                        \
}                                                                                            \
ATTR static void sgd_slices_##SUF(void **p, void **g, void **v, const int64_t *sizes,        \
                             int64_t count, int part, int parts, double lr, double m,        \
                             double wd) {                                                    \
    for (int64_t i = 0; i < count; i++) {                                                    \
        int64_t n = sizes[i];                                                                \
        int64_t step = (n / parts + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;                  \
        int64_t lo = part * step, hi = part == parts - 1 ? n : lo + step;                    \
        if (hi > n) hi = n;                                                                  \
        if (lo < hi)                                                                         \
            sgd_range_##SUF((T *)p[i], (const T *)g[i], (T *)(v && m != 0 ? v[i] : 0), lo,   \
                            hi, (T)lr, (T)m, (T)wd);                                         \
    }                                                                                        \
}

OPT_RANGE(float, f32, )
OPT_RANGE(double, f64, )
#if FI_X86
#define OPT_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")))
OPT_RANGE(float, f32_avx512, OPT_AVX512)
OPT_RANGE(double, f64_avx512, OPT_AVX512)
#endif

void fi_sgd_step(void **p, void **g, void **v, const int64_t *sizes, int64_t count, int bits,
                 double lr, double momentum, double weight_decay) {
    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) total += sizes[i];
    #pragma omp parallel num_threads(fi_threads()) if(total >= OPT_PARALLEL_MIN)
    {
#ifdef _OPENMP
        int part = omp_get_thread_num(), parts = omp_get_num_threads();
#else
        int part = 0, parts = 1;
#endif
#if FI_X86
        if (fi_isa() == FI_ISA_AVX512) {
            if (bits == 32)
                sgd_slices_f32_avx512(p, g, v, sizes, count, part, parts, lr, momentum,
                                      weight_decay);
            else
                sgd_slices_f64_avx512(p, g, v, sizes, count, part, parts, lr, momentum,
                                      weight_decay);
        } else
#endif
        if (bits == 32)
            sgd_slices_f32(p, g, v, sizes, count, part, parts, lr, momentum, weight_decay);
        else
            sgd_slices_f64(p, g, v, sizes, count, part, parts, lr, momentum, weight_decay);
    }
}
