/* 2-D max and average pooling, forward beside backward.
 * x, dx are (p, h, w) planes (p = N*C); y, dy are (p, oh, ow); C-contiguous.
 * Windows start at (a*sh - ph, b*sw - pw). The max takes the first maximum in row-major window
 * order (as PyTorch); padded positions never win. The average divides by the window size
 * clipped to the padded input (count_include_pad) or by the in-bounds count. */
#include <math.h>
#include <string.h>
#include "fastinit.h"

#define FI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FI_MIN(a, b) ((a) < (b) ? (a) : (b))

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
