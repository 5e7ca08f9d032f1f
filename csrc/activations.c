/* Activations forward and backward, and the losses (contracts of fastinit/reference/
 * activations.py and loss.py).
 *
 * Activations: one entry point per dtype, fi_activation_f32/f64(op, out, x, dy, n, param), op
 * from the FI_ACT_* list in fastinit.h; arrays are flat (n,), C-contiguous; out may be x.
 * Forward ops ignore dy. Work runs over fixed chunks of ACT_CHUNK elements, in parallel from
 * ACT_PARALLEL_MIN elements; outputs of ACT_STREAM_MIN_BYTES or more are written with
 * non-temporal stores (computed into a small stack block, then streamed out), which skips the
 * read-for-ownership of every output line.
 *
 * float32 uses branch-free elementary functions of our own so gcc vectorises the loops (the C
 * library's expf/tanhf/erff are scalar calls): the same formulas as fastinit/_numba/
 * activations.py (Cephes expf and tanhf, a Taylor expm1 near 0, gelu's normal CDF through a
 * fitted erfc). float64 calls the C library. The loops are written once (activations_isa.h)
 * and built per instruction set; the AVX-512 float32 build runs most ops through the
 * intrinsics below instead, where the compiled formula ran slower than memory (the division
 * 1 / (1 + e) becomes rcp14 and a Newton step, 2^n one vscalefps; relu, leaky_relu and identity
 * stay compiled loops, already at copy speed).
 *
 * Losses: softmax cross-entropy over rows of logits (N, K) with int64 labels, and mean squared
 * error; both return the mean loss (accumulated in float64, over fixed row blocks / chunks
 * combined in order, so the value does not depend on the thread count) and write the gradient.
 */
#pragma GCC diagnostic ignored "-Wpsabi"
/* sqrt must not set errno, and floating-point exceptions are not trapped (the default
 * -ftrapping-math forbids evaluating both arms of a select such as x > 0 ? x : expm1(x), and
 * then no loop here vectorises). Neither changes a result. */
#pragma GCC optimize("no-math-errno", "no-trapping-math")

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif

#define ACT_CHUNK 16384        /* >= 2 chunks from ACT_PARALLEL_MIN on: both threads get work */
#define ACT_PARALLEL_MIN 32768
#define ACT_STREAM_MIN_BYTES (16L << 20)
#define ACT_BLOCK 512          /* elements computed into the stack before streaming them out */
#define LOSS_ROWS 64           /* rows per block of the cross-entropy (fixed) */
#define LOSS_CHUNK 16384       /* elements per chunk of the MSE (fixed) */

/* ---- float32 elementary functions ------------------------------------------------------------ */

#define EXP_HI 88.0f
#define EXP_LO -87.33654f

/* Cephes expf. n = round(x log2 e) by adding 1.5 * 2^23 (the sum's low mantissa bits are n):
 * no float-to-int conversion, which after the clamps kept gcc 12 from vectorising any loop
 * calling this for AVX2. 0 below EXP_LO (no subnormal results). */
FI_INLINE float exp_f32(float x) {
    int under = x < EXP_LO;
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    float kf = x * 1.44269504088896341f + 12582912.0f;
    float n = kf - 12582912.0f;
    int32_t ni = (int32_t)fi_f32_bits(kf) - 0x4B400000;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    p = p * fi_f32_from_bits((uint32_t)(ni + 127) << 23);
    return under ? 0.0f : p;
}

FI_INLINE float expm1_f32(float x) {
    float series = ((((((1.0f / 40320 * x + 1.0f / 5040) * x + 1.0f / 720) * x + 1.0f / 120) * x +
                      1.0f / 24) * x + 1.0f / 6) * x + 0.5f) * x * x + x;
    float big = exp_f32(x) - 1.0f;
    return fabsf(x) < 0.5f ? series : big;
}

FI_INLINE float tanh_poly_f32(float x) {
    float z = x * x;
    return ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
             1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
}

FI_INLINE float tanh_f32(float x) {
    float ax = fabsf(x);
    float e = exp_f32(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = ax >= 9.1f ? 1.0f : big; /* tanh is 1 in float32 from 9.1 on: exactly; NaN stays */
    big = x >= 0.0f ? big : -big;
    return ax < 0.625f ? tanh_poly_f32(x) : big;
}

/* 1 - tanh(x)^2, as 4 e / (1 + e)^2 with e = exp(-2|x|) where tanh is near +-1. */
FI_INLINE float tanh_grad_f32(float x) {
    float t = tanh_poly_f32(x);
    float e = exp_f32(-2.0f * fabsf(x));
    float r = 1.0f / (1.0f + e);
    return fabsf(x) < 0.625f ? 1.0f - t * t : 4.0f * e * r * r;
}

FI_INLINE float sigmoid_f32(float x) {
    float e = exp_f32(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

FI_INLINE float sigmoid_grad_f32(float x) {
    float e = exp_f32(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return e * r * r;
}

/* Phi(x), the standard normal CDF, with e = exp(-x^2 / 2) given (the backward shares it):
 * q = Phi(-|x|) = 0.5 erfc(a), a = |x| / sqrt 2, as 0.5 t P(t) e with t = 1 / (1 + a/2) and P
 * a degree-8 polynomial fitted here to erfc(a) exp(a^2) / t on 0 <= a <= 9.5; Phi(x) = q for
 * x <= 0 and 1 - q above. Never 1 + erf(x / sqrt 2), which cancels for negative x (gelu(-5.66)
 * came out positive): within 2.2e-6 relative on [-10, 10], 6.2 ulp on [-2, 2]. From |x| = 13.2
 * on, e and so Phi(-|x|) are 0 (exp_f32 gives no subnormals). NaN gives NaN. One exp and one
 * division, branch-free: it vectorises. */
FI_INLINE float ncdf_e_f32(float x, float e) {
    float t = 1.0f / (1.0f + 0.353553391f * fabsf(x)); /* 1 / (1 + |x| / (2 sqrt 2)) */
    float p = -5.889078602e-02f;
    p = p * t + 2.837019861e-01f;
    p = p * t + -4.853836894e-01f;
    p = p * t + 2.759780288e-01f;
    p = p * t + -2.517754398e-02f;
    p = p * t + 2.020697445e-01f;
    p = p * t + 2.432610393e-01f;
    p = p * t + 2.823534906e-01f;
    p = p * t + 2.820876837e-01f;
    float q = 0.5f * t * p * e;
    return x > 0.0f ? 1.0f - q : q;
}

FI_INLINE float ncdf_f32(float x) {
    return ncdf_e_f32(x, exp_f32(-0.5f * x * x));
}

/* ---- float64 elementary functions (C library) ------------------------------------------------ */

static double sigmoid_f64(double x) {
    double e = exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return x >= 0.0 ? r : e * r;
}
static double sigmoid_grad_f64(double x) {
    double e = exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return e * r * r;
}
static double tanh_grad_f64(double x) {
    if (fabs(x) < 0.625) {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    double e = exp(-2.0 * fabs(x)), r = 1.0 / (1.0 + e);
    return 4.0 * e * r * r;
}

#define SQRT1_2 0.70710678118654752440
#define SQRT_2_OVER_PI 0.79788456080286535588
#define INV_SQRT_2PI 0.39894228040143267794
#define GELU_C 0.044715

/* Phi(x) through erfc: accurate in the left tail, where 1 + erf(x / sqrt 2) cancels */
static double ncdf_f64(double x) { return 0.5 * erfc(x * -SQRT1_2); }

/* The rows' sum of log(s_i) (s_i = sum_j exp(z_ij - max_j z_ij), in [1, k]) as the log of
 * their product, whose power of two frexp keeps apart: one log per block of rows instead of
 * one per row (a libm log per row was half the time of a 128 x 10 batch). lin sums
 * z[label] - max. */
typedef struct {
    double prod, lin;
    int64_t exp2;
} ce_acc;

FI_INLINE void ce_acc_row(ce_acc *a, double s, double lin) {
    a->prod *= s;
    a->lin += lin;
    if (a->prod > 0x1p512) { /* never overflows: s <= k < 2^63 */
        int e;
        a->prod = frexp(a->prod, &e);
        a->exp2 += e;
    }
}

FI_INLINE double ce_acc_total(const ce_acc *a) {
    return log(a->prod) + (double)a->exp2 * 0.69314718055994530942 - a->lin;
}

/* Non-temporal stores are weakly ordered: the thread that streamed fences before its part
 * counts as written. */
FI_INLINE void act_fence(void) {
#if FI_X86
    _mm_sfence();
#endif
}

/* ---- float32 AVX-512 intrinsics ----------------------------------------------------------- */
/* gelu (tanh form): the generic body spent most of its time in the division 1 / (1 + e)
 * (vdivps): here the reciprocal is an estimate refined by one Newton step (rcp14: relative
 * error < 2^-14; after the step about 2^-28, below float32's ulp), the power of two of exp is
 * one vscalefps, and the stream goes straight from registers. Same formula as the generic
 * gelu_tanh, x sigmoid(2u) on [-10, 10] and max(x, 0) beyond, with sigmoid(t) = 1 / (1 + exp(-t))
 * (no overflow on that range, no select on the sign of t). */
#if FI_X86
/* exp(a) for |a| <= 87.32 (no clamps): Cephes expf as exp_f32 (n = round(a log2 e), the
 * two-constant reduction, 1 + r + r^2 P(r) as 1 + r (1 + r P)), 2^n by one vscalefps. */
FI_TARGET_AVX512 FI_INLINE __m512 exp16_f32(__m512 a) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), a);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* 1 / d: the rcp14 estimate and one Newton step */
FI_TARGET_AVX512 FI_INLINE __m512 rcp16_f32(__m512 d) {
    __m512 q = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(d, q, _mm512_set1_ps(1.0f)), q, q);
}

/* (E, s): E = exp(-t), s = sigmoid(t) = 1 / (1 + E) for t = 2u(x) = c1 x + c3 x^3, |x| <= 10
 * (|t| <= 87.32: E <= 8.6e37 never overflows). Lanes with |x| > 10 are garbage (inf, NaN):
 * the callers replace them. */
#define GELU_C1 ((float)(2.0 * SQRT_2_OVER_PI))
#define GELU_C3 ((float)(2.0 * SQRT_2_OVER_PI * GELU_C))
FI_TARGET_AVX512 FI_INLINE __m512 gelu_e16_f32(__m512 v, __m512 w2) {
    __m512 a = _mm512_mul_ps(v, _mm512_fmadd_ps(_mm512_set1_ps(-GELU_C3), w2,
                                                _mm512_set1_ps(-GELU_C1)));
    return exp16_f32(a);
}

FI_TARGET_AVX512 FI_INLINE __m512 gelu_tanh16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __m512 w2 = _mm512_mul_ps(v, v);
    __m512 e = gelu_e16_f32(v, w2);
    __m512 y = _mm512_mul_ps(v, rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(10.0f), _CMP_GT_OQ);
    return _mm512_mask_max_ps(y, big, v, _mm512_setzero_ps());
}

/* dy gelu'(x): gelu' = s + x s' t' with s' = s (1 - s) = E s^2 (no cancellation) and
 * t' = c1 + 3 c3 x^2: s (1 + x E s t'); 1 or 0 (dy or 0) for |x| > 10. */
FI_TARGET_AVX512 FI_INLINE __m512 gelu_tanh_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __m512 w2 = _mm512_mul_ps(v, v);
    __m512 e = gelu_e16_f32(v, w2);
    __m512 s = rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    __m512 dt = _mm512_fmadd_ps(_mm512_set1_ps(3.0f * GELU_C3), w2, _mm512_set1_ps(GELU_C1));
    __m512 k = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(e, s), v), dt); /* E s <= 1 first */
    __m512 y = _mm512_mul_ps(g, _mm512_fmadd_ps(s, k, s));
    __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(10.0f), _CMP_GT_OQ);
    __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    /* dy * (1 or 0): a product, so a NaN dy stays NaN as in every other build */
    return _mm512_mask_mov_ps(y, big, _mm512_mul_ps(g, _mm512_maskz_mov_ps(pos, _mm512_set1_ps(1.0f))));
}

/* exp(a) with the clamps of exp_f32: 0 below EXP_LO, a clamped to EXP_HI above; NaN stays NaN
 * (min/max return their second operand when one is NaN). */
FI_TARGET_AVX512 FI_INLINE __m512 expc16_f32(__m512 a) {
    __mmask16 under = _mm512_cmp_ps_mask(a, _mm512_set1_ps(EXP_LO), _CMP_LT_OQ);
    a = _mm512_max_ps(_mm512_set1_ps(EXP_LO), _mm512_min_ps(_mm512_set1_ps(EXP_HI), a));
    return _mm512_mask_mov_ps(exp16_f32(a), under, _mm512_setzero_ps());
}

FI_TARGET_AVX512 FI_INLINE __m512 sigmoid16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __m512 e = expc16_f32(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    __m512 r = rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NGE_UQ); /* !(v >= 0) */
    return _mm512_mask_mul_ps(r, neg, e, r);
}

FI_TARGET_AVX512 FI_INLINE __m512 sigmoid_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __m512 e = expc16_f32(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    __m512 r = rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    return _mm512_mul_ps(g, _mm512_mul_ps(_mm512_mul_ps(e, r), r));
}

FI_TARGET_AVX512 FI_INLINE __m512 tanh_poly16_f32(__m512 v) {
    __m512 z = _mm512_mul_ps(v, v);
    __m512 q = _mm512_set1_ps(-5.70498872745e-3f);
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(2.06390887954e-2f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(-5.37397155531e-2f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.33314422036e-1f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(-3.33332819422e-1f));
    return _mm512_fmadd_ps(_mm512_mul_ps(q, z), v, v);
}

FI_TARGET_AVX512 FI_INLINE __m512 tanh16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __m512 ax = _mm512_abs_ps(v), one = _mm512_set1_ps(1.0f);
    __m512 e = expc16_f32(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    __m512 big = _mm512_mul_ps(_mm512_sub_ps(one, e), rcp16_f32(_mm512_add_ps(one, e)));
    big = _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(9.1f), _CMP_GE_OQ), one);
    /* the sign of v on |tanh| (v's sign bit: -0 and NaN keep theirs) */
    big = _mm512_or_ps(big, _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_mov_ps(big, small, tanh_poly16_f32(v));
}

FI_TARGET_AVX512 FI_INLINE __m512 tanh_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __m512 ax = _mm512_abs_ps(v), one = _mm512_set1_ps(1.0f);
    __m512 t = tanh_poly16_f32(v);
    __m512 e = expc16_f32(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    __m512 r = rcp16_f32(_mm512_add_ps(one, e));
    __m512 d = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(4.0f), e), r), r);
    __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    d = _mm512_mask_mov_ps(d, small, _mm512_fnmadd_ps(t, t, one));
    return _mm512_mul_ps(g, d);
}

/* elu: x for x > 0, p expm1(x) otherwise (NaN stays NaN) */
FI_TARGET_AVX512 FI_INLINE __m512 elu16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g;
    __m512 w = _mm512_min_ps(_mm512_setzero_ps(), v); /* NaN: v */
    __m512 s = _mm512_set1_ps(1.0f / 40320);
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(1.0f / 5040));
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(1.0f / 720));
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(1.0f / 120));
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(1.0f / 24));
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(1.0f / 6));
    s = _mm512_fmadd_ps(s, w, _mm512_set1_ps(0.5f));
    s = _mm512_fmadd_ps(_mm512_mul_ps(s, w), w, w);
    __m512 big = _mm512_sub_ps(expc16_f32(w), _mm512_set1_ps(1.0f));
    __mmask16 small = _mm512_cmp_ps_mask(_mm512_abs_ps(w), _mm512_set1_ps(0.5f), _CMP_LT_OQ);
    __m512 y = _mm512_mul_ps(p, _mm512_mask_mov_ps(big, small, s));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
}

FI_TARGET_AVX512 FI_INLINE __m512 elu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    __m512 w = _mm512_min_ps(_mm512_setzero_ps(), v);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(g, p), expc16_f32(w));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), g);
}

/* Phi as ncdf_e_f32 (e = exp(-x^2 / 2) given), the division as rcp + Newton; |x| capped at 20
 * (e is 0 from 13.2 on) so that the Newton step never sees inf (inf * 0: NaN); a NaN x still
 * gives NaN, through e */
FI_TARGET_AVX512 FI_INLINE __m512 ncdf16_f32(__m512 v, __m512 e) {
    __m512 ax = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(20.0f));
    __m512 t = rcp16_f32(_mm512_fmadd_ps(ax, _mm512_set1_ps(0.353553391f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(-5.889078602e-02f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.837019861e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-4.853836894e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.759780288e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-2.517754398e-02f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.020697445e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.432610393e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.823534906e-01f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(2.820876837e-01f));
    __m512 q = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), t), _mm512_mul_ps(p, e));
    __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_sub_ps(q, pos, _mm512_set1_ps(1.0f), q);
}

FI_TARGET_AVX512 FI_INLINE __m512 gelu_e16_pdf(__m512 v) { /* exp(-x^2 / 2), 0 where it underflows */
    return expc16_f32(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), v), v));
}

FI_TARGET_AVX512 FI_INLINE __m512 gelu16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __mmask16 ninf = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    __m512 cdf = ncdf16_f32(v, gelu_e16_pdf(v));
    return _mm512_mask_mov_ps(_mm512_mul_ps(v, cdf), ninf, _mm512_setzero_ps());
}

FI_TARGET_AVX512 FI_INLINE __m512 gelu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __m512 pdf = gelu_e16_pdf(v);
    __m512 cdf = ncdf16_f32(v, pdf);
    __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(v, _mm512_set1_ps((float)INV_SQRT_2PI)), pdf, cdf);
    __mmask16 inf = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
    d = _mm512_mask_mov_ps(d, inf, cdf); /* the limit 1 or 0: erf is +-1 there */
    return _mm512_mul_ps(g, d);
}

/* relu' as a register blend of dy loaded in full: written as a select, gcc turns it into a
 * zero-masked load of dy (only the lanes where x > 0), which streaming 64 MB ran at half the
 * speed of leaky_relu' (plain loads); the empty asm keeps the load a plain one. */
FI_TARGET_AVX512 FI_INLINE __m512 relu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __asm__("" : "+v"(g));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), g);
}

/* The 16-lane expression of op (a constant after inlining). */
FI_TARGET_AVX512 FI_INLINE __m512 act512_expr(const int op, __m512 v, __m512 g, __m512 p) {
    switch (op) {
    case FI_ACT_RELU_BACKWARD: return relu_bwd16_f32(v, g, p);
    case FI_ACT_ELU: return elu16_f32(v, g, p);
    case FI_ACT_ELU_BACKWARD: return elu_bwd16_f32(v, g, p);
    case FI_ACT_TANH: return tanh16_f32(v, g, p);
    case FI_ACT_TANH_BACKWARD: return tanh_bwd16_f32(v, g, p);
    case FI_ACT_SIGMOID: return sigmoid16_f32(v, g, p);
    case FI_ACT_SIGMOID_BACKWARD: return sigmoid_bwd16_f32(v, g, p);
    case FI_ACT_GELU: return gelu16_f32(v, g, p);
    case FI_ACT_GELU_BACKWARD: return gelu_bwd16_f32(v, g, p);
    case FI_ACT_GELU_TANH: return gelu_tanh16_f32(v, g, p);
    default: return gelu_tanh_bwd16_f32(v, g, p);
    }
}

/* out[0..n) = op over 16-lane vectors (op a constant; odd codes are backward ops and read dy),
 * masked loads and stores at the ends (every element gets the same arithmetic whatever the
 * alignment), two vectors a step, streaming stores from a 64-byte aligned output. */
FI_TARGET_AVX512 FI_INLINE void act512_loop(const int op, float *out, const float *x,
                                            const float *dy, int64_t n, float p, int stream) {
    const int back = op & 1;
    const __m512 pv = _mm512_set1_ps(p);
    int64_t i = 0;
    if ((uintptr_t)out & 3) stream = 0; /* not float-aligned: no streaming */
    if (stream) {
        int64_t head = (int64_t)((64 - ((uintptr_t)out & 63)) & 63) / 4;
        head = head < n ? head : n;
        if (head > 0) {
            const __mmask16 m = (__mmask16)((1u << head) - 1u);
            const __m512 v = _mm512_maskz_loadu_ps(m, x);
            const __m512 g = back ? _mm512_maskz_loadu_ps(m, dy) : v;
            _mm512_mask_storeu_ps(out, m, act512_expr(op, v, g, pv));
            i = head;
        }
    }
    for (; i + 32 <= n; i += 32) {
        const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        const __m512 g0 = back ? _mm512_loadu_ps(dy + i) : v0;
        const __m512 g1 = back ? _mm512_loadu_ps(dy + i + 16) : v1;
        const __m512 y0 = act512_expr(op, v0, g0, pv), y1 = act512_expr(op, v1, g1, pv);
        if (stream) {
            _mm512_stream_ps(out + i, y0);
            _mm512_stream_ps(out + i + 16, y1);
        } else {
            _mm512_storeu_ps(out + i, y0);
            _mm512_storeu_ps(out + i + 16, y1);
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = (__mmask16)((1u << (n - i < 16 ? n - i : 16)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 g = back ? _mm512_maskz_loadu_ps(m, dy + i) : v;
        _mm512_mask_storeu_ps(out + i, m, act512_expr(op, v, g, pv));
    }
    if (stream) act_fence();
}

/* A chunk of op on the intrinsics; 0 for the ops left to the compiled loops. */
FI_TARGET_AVX512 static int act512_chunk(int op, float *out, const float *x, const float *dy,
                                         int64_t n, float p, int stream) {
    switch (op) {
#define ACT512_CASE(OP) case OP: act512_loop(OP, out, x, dy, n, p, stream); return 1;
    ACT512_CASE(FI_ACT_RELU_BACKWARD)
    ACT512_CASE(FI_ACT_ELU)
    ACT512_CASE(FI_ACT_ELU_BACKWARD)
    ACT512_CASE(FI_ACT_TANH)
    ACT512_CASE(FI_ACT_TANH_BACKWARD)
    ACT512_CASE(FI_ACT_SIGMOID)
    ACT512_CASE(FI_ACT_SIGMOID_BACKWARD)
    ACT512_CASE(FI_ACT_GELU)
    ACT512_CASE(FI_ACT_GELU_BACKWARD)
    ACT512_CASE(FI_ACT_GELU_TANH)
    ACT512_CASE(FI_ACT_GELU_TANH_BACKWARD)
#undef ACT512_CASE
    default: return 0;
    }
}

/* float32 rows on 16-lane vectors (masked at the row's end): max, exp (expc16_f32: the
 * polynomial of exp_f32), float64 sum, scale. */
FI_TARGET_AVX512 static double ce_rows512_f32(float *restrict d, const float *restrict z,
                                            const int64_t *labels, int64_t i0, int64_t i1,
                                            int64_t k, float inv_n) {
    ce_acc acc = {1.0, 0.0, 0};
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t i = i0; i < i1; i++) {
        const float *zr = z + i * k;
        float *dr = d + i * k;
        __m512 mv = ninf;
        for (int64_t j = 0; j < k; j += 16) {
            __mmask16 m = k - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - j)) - 1u);
            mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(ninf, m, zr + j));
        }
        float mx = _mm512_reduce_max_ps(mv);
        __m512 mxv = _mm512_set1_ps(mx);
        __m512d s0 = _mm512_setzero_pd(), s1 = s0;
        for (int64_t j = 0; j < k; j += 16) {
            __mmask16 m = k - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - j)) - 1u);
            __m512 e = _mm512_maskz_mov_ps(
                m, expc16_f32(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, zr + j), mxv)));
            _mm512_mask_storeu_ps(dr + j, m, e);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
        }
        double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        __m512 scale = _mm512_set1_ps((float)(1.0 / s) * inv_n);
        for (int64_t j = 0; j < k; j += 16) {
            __mmask16 m = k - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - j)) - 1u);
            _mm512_mask_storeu_ps(dr + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dr + j), scale));
        }
        dr[labels[i]] -= inv_n;
        ce_acc_row(&acc, s, (double)zr[labels[i]] - (double)mx);
    }
    return ce_acc_total(&acc);
}
#endif

/* ---- the per-(type, ISA) loops and drivers ------------------------------------------------- */
#define FI_BODY "activations_isa.h"
#include "instances.h"

/* ---- entry points: the build fi_isa() names ------------------------------------------------ */

fi_status fi_activation_f32(int op, float *out, const float *x, const float *dy, int64_t n,
                            double param) {
    if (op < 0 || op > FI_ACT_IDENTITY_BACKWARD) return FI_ERR_ARG;
    FI_ISA_CALL(fi_isa(), return act_run_, f32, (op, out, x, dy, n, param));
}

fi_status fi_activation_f64(int op, double *out, const double *x, const double *dy, int64_t n,
                            double param) {
    if (op < 0 || op > FI_ACT_IDENTITY_BACKWARD) return FI_ERR_ARG;
    FI_ISA_CALL(fi_isa(), return act_run_, f64, (op, out, x, dy, n, param));
}

fi_status fi_softmax_cross_entropy_f32(double *loss, float *dlogits, const float *logits,
                                       const int64_t *labels, int64_t n, int64_t k) {
    FI_ISA_CALL(fi_isa(), return softmax_ce_, f32, (loss, dlogits, logits, labels, n, k));
}

fi_status fi_softmax_cross_entropy_f64(double *loss, double *dlogits, const double *logits,
                                       const int64_t *labels, int64_t n, int64_t k) {
    FI_ISA_CALL(fi_isa(), return softmax_ce_, f64, (loss, dlogits, logits, labels, n, k));
}

fi_status fi_mse_f32(double *loss, float *dpred, const float *pred, const float *target,
                     int64_t n) {
    return mse_f32_base(loss, dpred, pred, target, n);
}

fi_status fi_mse_f64(double *loss, double *dpred, const double *pred, const double *target,
                     int64_t n) {
    return mse_f64_base(loss, dpred, pred, target, n);
}
