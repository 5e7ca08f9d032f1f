/* fastinit C kernels: the declarations Python sees (cffi reads the block between the markers).
 *
 * Conventions (shared DESIGN.md): plain C11, one file per op, forward beside backward;
 * arguments are outputs first, then inputs, then sizes. Kernels never validate: the Python
 * wrappers in fastinit/_ckernels/ check every shape before calling. Arrays are C-contiguous.
 * Each op keeps its declarations in its own section below, so ops can be added independently.
 */
#ifndef FASTINIT_H
#define FASTINIT_H
#include <stdint.h>
#include <stddef.h>

/* FI_CDEF_BEGIN */

/* ---- common.c: threads and CPU dispatch ---- */
void fi_init(void);
void fi_set_num_threads(int n);
int fi_get_num_threads(void);
const char *fi_cpu_path(void);

/* ---- rng.c: Philox4x32-10 stream (see fastinit/rng.py for the exact mapping) ---- */

/* ---- gemm.c ---- */

/* ---- conv2d.c ---- */

/* ---- batchnorm.c ---- */

/* ---- clip.c ---- */

/* ---- activations.c ---- */

/* ---- pool.c ---- */
/* x, dx (p, h, w) planes; y, dy (p, oh, ow); windows at (a*sh - ph, b*sw - pw). */
void fi_max_pool2d_f32(float *y, const float *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                       int64_t pw);
void fi_max_pool2d_f64(double *y, const double *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                       int64_t pw);
void fi_max_pool2d_backward_f32(float *dx, const float *dy, const float *x, int64_t p, int64_t h,
                                int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                                int64_t sh, int64_t sw, int64_t ph, int64_t pw);
void fi_max_pool2d_backward_f64(double *dx, const double *dy, const double *x, int64_t p,
                                int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t kh,
                                int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw);
void fi_avg_pool2d_f32(float *y, const float *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                       int64_t pw, int include_pad);
void fi_avg_pool2d_f64(double *y, const double *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                       int64_t pw, int include_pad);
void fi_avg_pool2d_backward_f32(float *dx, const float *dy, int64_t p, int64_t h, int64_t w,
                                int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw, int include_pad);
void fi_avg_pool2d_backward_f64(double *dx, const double *dy, int64_t p, int64_t h, int64_t w,
                                int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw, int include_pad);

/* FI_CDEF_END */

#endif
