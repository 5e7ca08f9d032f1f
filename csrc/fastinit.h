/* fastinit C kernels: the declarations Python sees (cffi reads the block between the markers).
 *
 * Conventions (docs/design.md): plain C11, one file per op, forward beside backward;
 * arguments are outputs first, then inputs, then sizes. Kernels never validate: the Python
 * wrappers in fastinit/_ckernels/ check every shape before calling. Arrays are C-contiguous.
 * Each op keeps its declarations in its own section below, so ops can be added independently.
 */
#ifndef FASTINIT_H
#define FASTINIT_H
#include <stdint.h>
#include <stddef.h>

/* FI_CDEF_BEGIN */

/* ---- common.c: status, instruction sets, threads ---- */
/* What every entry point that can fail returns (fastinit/_c.py check() turns it into an
 * exception). */
typedef enum { FI_OK = 0, FI_ERR_NOMEM = -1, FI_ERR_ARG = -2 } fi_status;
/* The instruction sets the kernels are built for, in increasing order (one numbering for the
 * library); FI_ISA_BEST as a cap: none. */
enum fi_isa { FI_ISA_BEST = 0, FI_ISA_BASE = 1, FI_ISA_AVX2 = 2, FI_ISA_AVX512 = 3 };
void fi_init(void);
/* The set every kernel runs now: the best this CPU has, at most the cap. */
int fi_isa(void);
/* Caps it at `cap` (FI_ISA_BEST or out of range: no cap; FASTINIT_C_ISA at import, tests
 * and benchmarks after); returns the previous cap. Every build gives results within the
 * op's tolerance; the random stream, pooling and SGD give the same bits on every build. */
int fi_isa_cap(int cap);
/* "portable", "avx2" or "avx512" (the names FASTINIT_C_ISA takes). */
const char *fi_isa_name(int isa);
void fi_set_num_threads(int n);
int fi_get_num_threads(void);

/* ---- rng.c: Philox4x32-10 stream (see fastinit/rng.py for the exact mapping) ---- */
/* out is (n,): element i of draw (d0, d1) under key (k0, k1); parallel over fixed chunks. */
void fi_rng_uniform_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                        uint32_t d1, float low, float high);
void fi_rng_uniform_f64(double *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                        uint32_t d1, double low, double high);
void fi_rng_normal_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                       uint32_t d1, float mean, float std);
void fi_rng_normal_f64(double *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                       uint32_t d1, double mean, double std);
void fi_rng_truncated_normal_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                                 uint32_t d1, float mean, float std, float a, float b, float pa,
                                 float qb, float span, float lo, float hi);
void fi_rng_truncated_normal_f64(double *out, int64_t n, uint32_t k0, uint32_t k1,
                                 uint32_t d0, uint32_t d1, double mean, double std, double a,
                                 double b, double pa, double qb, double span, double lo,
                                 double hi);

/* ---- gemm.c ---- */
/* c (m, n) = op(a) @ op(b) [+ bias (n,), or NULL], or += when beta != 0; a is (m, k), or
 * (k, m) when ta; b is (k, n), or (n, k) when tb; all C-contiguous. */
fi_status fi_gemm_f32(float *c, const float *a, const float *b, const float *bias, int64_t m,
                      int64_t n, int64_t k, int ta, int tb, int beta);
fi_status fi_gemm_f64(double *c, const double *a, const double *b, const double *bias, int64_t m,
                      int64_t n, int64_t k, int ta, int tb, int beta);
/* dx = dy @ w, dw = dy^T @ x, db = column sums of dy (db NULL: skipped); dy (n, fout),
 * x (n, fin), w (fout, fin), each stored transposed when its flag is set. */
fi_status fi_linear_backward_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                                 const float *w, int64_t n, int64_t fin, int64_t fout, int tdy,
                                 int tx, int tw);
fi_status fi_linear_backward_f64(double *dx, double *dw, double *db, const double *dy,
                                 const double *x, const double *w, int64_t n, int64_t fin,
                                 int64_t fout, int tdy, int tx, int tw);
/* out[j] = sum_i X[i, j], X (rows, cols) = x, or x^T when trans; float64 sums. */
fi_status fi_column_sums_f32(float *out, const float *x, int64_t rows, int64_t cols, int trans);
fi_status fi_column_sums_f64(double *out, const double *x, int64_t rows, int64_t cols, int trans);

/* ---- conv2d.c: the general convolution engine ---- */
/* A convolution and its plan (fastinit/ops/conv.py chooses the blocking): x (n, c, h, w),
 * weights (k, c/groups, r, s), y (n, k, oh, ow); stride (sh, sw), top and left zero padding
 * (pt, pl), dilation (dh, dw); bits 32 (float) or 64 (double). nc: pixels per chunk (at most);
 * chunks: pixel chunks (forward); kc: taps per block (forward) or output channels per block
 * (dx); tb: taps per block (dx, dw); parts:
 * parts of the output channels per chunk (forward), of the input channels (dx), of the pixels
 * (dw, split 0) or of the taps (dw, split 1), or of the images (depthwise); imgs: ranges of
 * images (dx) or of the batch (direct dw) or of the output rows (direct forward); threads.
 * path: FI_CONV_IMPLICIT (the general engine), FI_CONV_DEPTHWISE (groups = channels, one
 * output channel per group: channels along the vectors) or FI_CONV_DIRECT (few output
 * channels: the tile reads a padded copy of each image, no patch matrix; forward and dw). */
enum { FI_CONV_IMPLICIT = 0, FI_CONV_DEPTHWISE = 1, FI_CONV_DIRECT = 2 };
typedef struct {
    int64_t n, c, h, w, k, r, s, sh, sw, pt, pl, dh, dw, groups, oh, ow;
    int64_t path, nc, kc, tb, chunks, parts, imgs, split, threads, bits;
} fi_conv_plan;
/* y = conv(x, w) + b (b NULL: none); dx from dy and w; dw from dy and x; db from dy. All
 * arrays C-contiguous of the plan's type. FI_OK, or FI_ERR_NOMEM when scratch memory ran out.
 * The build is fi_isa()'s (capped by FASTINIT_C_ISA / fi_isa_cap). */
fi_status fi_conv2d_forward(void *y, const void *x, const void *w, const void *b,
                            const fi_conv_plan *p);
fi_status fi_conv2d_backward_data(void *dx, const void *dy, const void *w, const fi_conv_plan *p);
fi_status fi_conv2d_backward_weights(void *dw, const void *dy, const void *x,
                                     const fi_conv_plan *p);
void fi_conv2d_bias_grad(void *db, const void *dy, const fi_conv_plan *p);

/* ---- winograd.c: Winograd F(4x4,3x3), F(2x2,5x5), F(2x2,7x7); F(3x3,4x4) for 3x3 dw ---- */
/* A stride-1 call: x (n, c, h, w) zero-padded by pt (top) and pl (left), k output channels of
 * oh x ow, r x r kernels (3, 5 or 7; dw: 3); blocking: tb tiles per block, the output channels
 * in kparts parts (fastinit/_numba/conv3x3.py, blocking); threads; bits 32 or 64.
 * fi_conv2d_winograd: y (n, k, oh, ow) = x (*) w + b, w (k, c, r, r), or when transposed
 * (c, k, r, r) used turned by 180 degrees (the dx pass: x is dy, y is dx); b (k,) or NULL.
 * fi_conv2d_winograd_dw: dw (k, c, 3, 3) from dy (n, k, oh, ow) and x, and db (k,) unless
 * NULL. FI_OK, or FI_ERR_NOMEM when scratch memory ran out. */
typedef struct {
    int64_t n, c, h, w, k, r, pt, pl, oh, ow, tb, kparts, transposed, threads, bits;
} fi_wino_plan;
fi_status fi_conv2d_winograd(void *y, const void *x, const void *w, const void *b,
                             const fi_wino_plan *p);
fi_status fi_conv2d_winograd_dw(void *dw, void *db, const void *dy, const void *x,
                                const fi_wino_plan *p);

/* ---- batchnorm.c ---- */
/* x, y, dy, dx are (n, c, s) C-contiguous; gamma, beta, dgamma, dbeta (c,) of the data type;
 * mean, var, invstd (c,) float64. FI_OK, or FI_ERR_NOMEM when scratch memory ran out. */
fi_status fi_batch_norm_forward_train_f32(float *y, double *mean, double *var, double *invstd,
                                          const float *x, const float *gamma, const float *beta,
                                          double eps, int64_t n, int64_t c, int64_t s);
fi_status fi_batch_norm_forward_train_f64(double *y, double *mean, double *var, double *invstd,
                                          const double *x, const double *gamma, const double *beta,
                                          double eps, int64_t n, int64_t c, int64_t s);
fi_status fi_batch_norm_forward_eval_f32(float *y, double *invstd, const float *x,
                                         const float *gamma, const float *beta, const double *mean,
                                         const double *var, double eps, int64_t n, int64_t c,
                                         int64_t s);
fi_status fi_batch_norm_forward_eval_f64(double *y, double *invstd, const double *x,
                                         const double *gamma, const double *beta,
                                         const double *mean, const double *var, double eps,
                                         int64_t n, int64_t c, int64_t s);
fi_status fi_batch_norm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                                     const float *x, const float *gamma, const double *mean,
                                     const double *invstd, int training, int64_t n, int64_t c,
                                     int64_t s);
fi_status fi_batch_norm_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                                     const double *x, const double *gamma, const double *mean,
                                     const double *invstd, int training, int64_t n, int64_t c,
                                     int64_t s);

/* ---- optim.c ---- */
/* SGD in place over count arrays of sizes[i] elements at p[i], g[i], v[i] (v NULL without
 * momentum); bits = 32 (float) or 64 (double). See fastinit/ops/optim.py. */
void fi_sgd_step(void **p, void **g, void **v, const int64_t *sizes, int64_t count, int bits,
                 double lr, double momentum, double weight_decay);

/* ---- clip.c ---- */
/* A list of count arrays: array i at addrs[i], sizes[i] elements of bits = 16 (IEEE
 * half), 32 or 64; in place. norm_type: p > 0 or inf. FI_OK, or FI_ERR_NOMEM when scratch memory
 * ran out. The norm is the same for any thread count (fixed chunks, combined in list order). */
fi_status fi_grad_norm(double *total, void **addrs, const int64_t *sizes, int64_t count, int bits,
                       double norm_type);
fi_status fi_grad_scale(void **addrs, const int64_t *sizes, int64_t count, int bits, double scale);
fi_status fi_grad_clamp(void **addrs, const int64_t *sizes, int64_t count, int bits,
                        double clip_value);

/* ---- activations.c ---- */
/* out = f(x) (forward ops; dy unused, may be NULL) or dy * f'(x) (backward ops); all (n,),
 * C-contiguous; out may be x. param: negative_slope (leaky), alpha (elu), unused otherwise.
 * Returns 0, or -1 for an unknown op. */
enum {
    FI_ACT_RELU = 0, FI_ACT_RELU_BACKWARD = 1, FI_ACT_LEAKY_RELU = 2,
    FI_ACT_LEAKY_RELU_BACKWARD = 3, FI_ACT_ELU = 4, FI_ACT_ELU_BACKWARD = 5, FI_ACT_TANH = 6,
    FI_ACT_TANH_BACKWARD = 7, FI_ACT_SIGMOID = 8, FI_ACT_SIGMOID_BACKWARD = 9, FI_ACT_GELU = 10,
    FI_ACT_GELU_BACKWARD = 11, FI_ACT_GELU_TANH = 12, FI_ACT_GELU_TANH_BACKWARD = 13,
    FI_ACT_IDENTITY = 14, FI_ACT_IDENTITY_BACKWARD = 15
};
fi_status fi_activation_f32(int op, float *out, const float *x, const float *dy, int64_t n,
                            double param);
fi_status fi_activation_f64(int op, double *out, const double *x, const double *dy, int64_t n,
                            double param);

/* ---- loss.c (kernels in activations.c, beside the exp they share) ---- */
/* logits, dlogits (n, k); labels (n,) in [0, k). pred, target, dpred (n,). *loss = the mean.
 * FI_OK, or FI_ERR_NOMEM when scratch memory ran out. */
fi_status fi_softmax_cross_entropy_f32(double *loss, float *dlogits, const float *logits,
                                       const int64_t *labels, int64_t n, int64_t k);
fi_status fi_softmax_cross_entropy_f64(double *loss, double *dlogits, const double *logits,
                                       const int64_t *labels, int64_t n, int64_t k);
fi_status fi_mse_f32(double *loss, float *dpred, const float *pred, const float *target, int64_t n);
fi_status fi_mse_f64(double *loss, double *dpred, const double *pred, const double *target,
                     int64_t n);

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
