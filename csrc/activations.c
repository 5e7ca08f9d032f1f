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
 * fitted erfc).
 * Three builds of every chunk body: AVX-512 and AVX2 (both with fused multiply-add), portable
 * (without); in the AVX-512 float32 table, relu', gelu (tanh form) and its derivative are
 * written with intrinsics instead (see their section). float64 calls the C library.
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

/* ---- float32 elementary functions ------------------------------------------------------------ */

#define EXP_HI 88.0f
#define EXP_LO -87.33654f

FI_INLINE float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

FI_INLINE uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Cephes expf. n = round(x log2 e) by adding 1.5 * 2^23 (the sum's low mantissa bits are n):
 * no float-to-int conversion, which after the clamps kept gcc 12 from vectorising any loop
 * calling this for AVX2. 0 below EXP_LO (no subnormal results). */
FI_INLINE float exp_f32(float x) {
    int under = x < EXP_LO;
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    float kf = x * 1.44269504088896341f + 12582912.0f;
    float n = kf - 12582912.0f;
    int32_t ni = (int32_t)f32_bits(kf) - 0x4B400000;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    p = p * f32_from_bits((uint32_t)(ni + 127) << 23);
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

/* ---- element formulas, one per op, generic over T (F: the per-type function suffix) ---------- */
/* Each is an expression of v = x[i], g = dy[i], p = param (already of type T). */

#define ACT_RELU(T, F) (v < (T)0 ? (T)0 : v)
#define ACT_RELU_BWD(T, F) (v <= (T)0 ? (T)0 : g)
#define ACT_LEAKY(T, F) (v > (T)0 ? v : v * p)
#define ACT_LEAKY_BWD(T, F) (v > (T)0 ? g : g * p)
/* (the clamps are written so that NaN passes through them: NaN in, NaN out) */
#define ACT_ELU(T, F) (v > (T)0 ? v : p * expm1_##F(v > (T)0 ? (T)0 : v))
#define ACT_ELU_BWD(T, F) (v > (T)0 ? g : g * p * exp_##F(v > (T)0 ? (T)0 : v))
#define ACT_TANH(T, F) tanh_##F(v)
#define ACT_TANH_BWD(T, F) (g * tanh_grad_##F(v))
#define ACT_SIGMOID(T, F) sigmoid_##F(v)
#define ACT_SIGMOID_BWD(T, F) (g * sigmoid_grad_##F(v))
/* gelu at -inf is 0 and gelu' at +-inf 1 or 0 (the limits; the formulas give inf * 0) */
#define ACT_GELU(T, F) (v == (T)-INFINITY ? (T)0 : v * ncdf_##F(v))
#define ACT_GELU_BWD(T, F)                                                                     \
    (g * (v == (T)INFINITY || v == (T)-INFINITY                                                \
              ? (v > (T)0 ? (T)1 : (T)0)                                                       \
              : ncdf_##F(v) + v * (T)INV_SQRT_2PI * exp_##F((T)-0.5 * v * v)))
/* The tanh form as a sigmoid: (1 + tanh(u)) / 2 = sigmoid(2u), so gelu(x) = x sigmoid(2u) and
 * gelu'(x) = sigmoid(2u) + x sigmoid'(2u) 2u'(x): one exp and one division, and no 1 + tanh
 * cancellation for negative x. The cubic runs on w = x clamped to [-10, 10]; beyond, gelu is
 * x or 0 and gelu' 1 or 0 in float32 (returned exactly), and x^3 never overflows. */
#define GELU_SIGMOID_FORM(T, F)                                                               \
    FI_INLINE T gelu_tanh_##F(T v) {                                                          \
        T w = v < (T)-10 ? (T)-10 : (v > (T)10 ? (T)10 : v);                                  \
        T t = (T)(2.0 * SQRT_2_OVER_PI) * (w + (T)GELU_C * w * w * w);                        \
        T s = sigmoid_##F(t);                                                                 \
        T out = v > (T)0 ? v : (T)0;                                                          \
        return v > (T)10 || v < (T)-10 ? out : v * s; /* NaN: v * s, NaN */                    \
    }                                                                                         \
    FI_INLINE T gelu_tanh_grad_##F(T v) {                                                     \
        T w = v < (T)-10 ? (T)-10 : (v > (T)10 ? (T)10 : v);                                  \
        T t = (T)(2.0 * SQRT_2_OVER_PI) * (w + (T)GELU_C * w * w * w);                        \
        T d = sigmoid_##F(t) + w * sigmoid_grad_##F(t) * (T)(2.0 * SQRT_2_OVER_PI) *          \
                                   ((T)1 + (T)(3.0 * GELU_C) * w * w);                        \
        T out = v > (T)0 ? (T)1 : (T)0;                                                       \
        return v > (T)10 || v < (T)-10 ? out : d;                                             \
    }
GELU_SIGMOID_FORM(float, f32)
GELU_SIGMOID_FORM(double, f64)
#define ACT_GELU_TANH(T, F) gelu_tanh_##F(v)
#define ACT_GELU_TANH_BWD(T, F) (g * gelu_tanh_grad_##F(v))
#define ACT_IDENTITY(T, F) v
#define ACT_IDENTITY_BWD(T, F) g

/* float64 names for the generic formulas */
#define exp_f64 exp
#define expm1_f64 expm1
#define tanh_f64 tanh
/* Phi(x) through erfc: accurate in the left tail, where 1 + erf(x / sqrt 2) cancels */
#define ncdf_f64(x) (0.5 * erfc((x) * -SQRT1_2))

/* A chunk body: out[0..n) = EXPR(x[i], dy[i]); written once, compiled for AVX2 and portable.
 * Forward formulas do not read dy (it may be NULL). out may be x (no restrict): gcc versions
 * the loops on overlap and still vectorises them. */
#define ACT_BODY(name, T, F, EXPR, BACKWARD)                                                  \
    FI_INLINE void name##_##F##_body(T *out, const T *x, const T *dy, int64_t n, T p) {      \
        (void)p;                                                                              \
        if (BACKWARD) {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                 \
                T v = x[i], g = dy[i];                                                        \
                (void)v;                                                                      \
                (void)g;                                                                      \
                out[i] = EXPR(T, F);                                                          \
            }                                                                                 \
        } else {                                                                              \
            for (int64_t i = 0; i < n; i++) {                                                 \
                T v = x[i], g = (T)0;                                                         \
                (void)v;                                                                      \
                (void)g;                                                                      \
                out[i] = EXPR(T, F);                                                          \
            }                                                                                 \
        }                                                                                     \
    }

/* ---- streaming: compute into a stack block, copy out with non-temporal stores ---------------- */

#if FI_X86
#define ACT_AVX512_ATTR __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#endif

FI_INLINE void stream_copy_f32(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
#if FI_X86
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#endif
    for (; i < n; i++) dst[i] = src[i];
}

FI_INLINE void stream_copy_f64(double *dst, const double *src, int64_t n) {
    int64_t i = 0;
#if FI_X86
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
#endif
    for (; i < n; i++) dst[i] = src[i];
}

/* The AVX-512 build streams whole 64-byte lines, one store a line (leaky_relu' over 64 MB ran
 * 1.0-1.6x the copy bound with four 16-byte stores a line, 0.8-1.3x with one; noisy host). */
#if FI_X86
ACT_AVX512_ATTR FI_INLINE void stream_copy512_f32(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 63); i++) dst[i] = src[i];
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
ACT_AVX512_ATTR FI_INLINE void stream_copy512_f64(double *dst, const double *src, int64_t n) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 63); i++) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm512_stream_pd(dst + i, _mm512_loadu_pd(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
#define stream_copy_f32_avx512 stream_copy512_f32
#define stream_copy_f64_avx512 stream_copy512_f64
#else
#define stream_copy_f32_avx512 stream_copy_f32
#define stream_copy_f64_avx512 stream_copy_f64
#endif
#define stream_copy_f32_avx2 stream_copy_f32
#define stream_copy_f64_avx2 stream_copy_f64
#define stream_copy_f32_portable stream_copy_f32
#define stream_copy_f64_portable stream_copy_f64

FI_INLINE void act_fence(void) {
#if FI_X86
    _mm_sfence();
#endif
}

typedef void (*act_chunk_f32)(float *out, const float *x, const float *dy, int64_t n, float p,
                              int stream);
typedef void (*act_chunk_f64)(double *out, const double *x, const double *dy, int64_t n,
                              double p, int stream);

/* The vector builds contract a * b + c into fused multiply-adds (the transcendental formulas
 * are compute-bound: without FMA the AVX2 loops ran at 3x the copy time), and an AVX-512 build
 * (16 lanes, 32 registers: no spills) is chosen where the CPU has it. The portable build keeps
 * -ffp-contract=off. Results differ between builds by an ulp or so; every build is tested
 * against the float64 reference. */
#if FI_X86
#define ACT_AVX2 FI_TARGET_AVX2 __attribute__((optimize("fp-contract=fast")))
#define ACT_AVX512                                                                            \
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512"), \
                   optimize("fp-contract=fast")))
#else
#define ACT_AVX2
#define ACT_AVX512
#endif

/* 1 when the AVX-512 build may run (common.c decides for every kernel). */
static int act_use_avx512(void) { return fi_use_avx512; }

#define ACT_CHUNK_VARIANT(name, T, F, ISA, ATTR)                                              \
    ATTR __attribute__((unused)) static void name##_##F##_##ISA(T *out, const T *x, const T *dy, \
                                                                int64_t n, T p,               \
                                        int stream) {                                         \
        if (!stream) {                                                                        \
            name##_##F##_body(out, x, dy, n, p);                                              \
            return;                                                                           \
        }                                                                                     \
        T block[ACT_BLOCK] __attribute__((aligned(64)));                                      \
        for (int64_t lo = 0; lo < n; lo += ACT_BLOCK) {                                       \
            int64_t m = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;                              \
            name##_##F##_body(block, x + lo, dy ? dy + lo : NULL, m, p);                      \
            stream_copy_##F##_##ISA(out + lo, block, m);                                      \
        }                                                                                     \
        act_fence();                                                                          \
    }

#define ACT_OP(name, EXPR, BACKWARD)                                                          \
    ACT_BODY(name, float, f32, EXPR, BACKWARD)                                                \
    ACT_BODY(name, double, f64, EXPR, BACKWARD)                                               \
    ACT_CHUNK_VARIANT(name, float, f32, avx512, ACT_AVX512)                                   \
    ACT_CHUNK_VARIANT(name, float, f32, avx2, ACT_AVX2)                                       \
    ACT_CHUNK_VARIANT(name, float, f32, portable, )                                           \
    ACT_CHUNK_VARIANT(name, double, f64, avx512, ACT_AVX512)                                  \
    ACT_CHUNK_VARIANT(name, double, f64, avx2, ACT_AVX2)                                      \
    ACT_CHUNK_VARIANT(name, double, f64, portable, )

ACT_OP(relu, ACT_RELU, 0)
ACT_OP(relu_bwd, ACT_RELU_BWD, 1)
ACT_OP(leaky, ACT_LEAKY, 0)
ACT_OP(leaky_bwd, ACT_LEAKY_BWD, 1)
ACT_OP(elu, ACT_ELU, 0)
ACT_OP(elu_bwd, ACT_ELU_BWD, 1)
ACT_OP(tanh, ACT_TANH, 0)
ACT_OP(tanh_bwd, ACT_TANH_BWD, 1)
ACT_OP(sigmoid, ACT_SIGMOID, 0)
ACT_OP(sigmoid_bwd, ACT_SIGMOID_BWD, 1)
ACT_OP(gelu, ACT_GELU, 0)
ACT_OP(gelu_bwd, ACT_GELU_BWD, 1)
ACT_OP(gelu_tanh, ACT_GELU_TANH, 0)
ACT_OP(gelu_tanh_bwd, ACT_GELU_TANH_BWD, 1)
ACT_OP(identity, ACT_IDENTITY, 0)
ACT_OP(identity_bwd, ACT_IDENTITY_BWD, 1)

/* ---- gelu (tanh form), float32, AVX-512: intrinsics ----------------------------------------- */
/* The generic body spent most of its time in the division 1 / (1 + e) (vdivps): here the
 * reciprocal is an estimate refined by one Newton step (rcp14: relative error < 2^-14; after
 * the step about 2^-28, below float32's ulp), the power of two of exp is one vscalefps, and
 * the stream goes straight from registers (masked loads and stores at the ends, so every
 * element gets the same arithmetic whatever the alignment). Same formula as gelu_tanh_f32,
 * x sigmoid(2u) on [-10, 10] and max(x, 0) beyond, with sigmoid(t) = 1 / (1 + exp(-t)) (no
 * overflow on that range, no select on the sign of t). */
#if FI_X86
/* exp(a) for |a| <= 87.32 (no clamps): Cephes expf as exp_f32 (n = round(a log2 e), the
 * two-constant reduction, 1 + r + r^2 P(r) as 1 + r (1 + r P)), 2^n by one vscalefps. */
ACT_AVX512 FI_INLINE __m512 exp16_f32(__m512 a) {
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
ACT_AVX512 FI_INLINE __m512 rcp16_f32(__m512 d) {
    __m512 q = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(d, q, _mm512_set1_ps(1.0f)), q, q);
}

/* (E, s): E = exp(-t), s = sigmoid(t) = 1 / (1 + E) for t = 2u(x) = c1 x + c3 x^3, |x| <= 10
 * (|t| <= 87.32: E <= 8.6e37 never overflows). Lanes with |x| > 10 are garbage (inf, NaN):
 * the callers replace them. */
#define GELU_C1 ((float)(2.0 * SQRT_2_OVER_PI))
#define GELU_C3 ((float)(2.0 * SQRT_2_OVER_PI * GELU_C))
ACT_AVX512 FI_INLINE __m512 gelu_e16_f32(__m512 v, __m512 w2) {
    __m512 a = _mm512_mul_ps(v, _mm512_fmadd_ps(_mm512_set1_ps(-GELU_C3), w2,
                                                _mm512_set1_ps(-GELU_C1)));
    return exp16_f32(a);
}

ACT_AVX512 FI_INLINE __m512 gelu_tanh16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __m512 w2 = _mm512_mul_ps(v, v);
    __m512 e = gelu_e16_f32(v, w2);
    __m512 y = _mm512_mul_ps(v, rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(10.0f), _CMP_GT_OQ);
    return _mm512_mask_max_ps(y, big, v, _mm512_setzero_ps());
}

/* dy gelu'(x): gelu' = s + x s' t' with s' = s (1 - s) = E s^2 (no cancellation) and
 * t' = c1 + 3 c3 x^2: s (1 + x E s t'); 1 or 0 (dy or 0) for |x| > 10. */
ACT_AVX512 FI_INLINE __m512 gelu_tanh_bwd16_f32(__m512 v, __m512 g, __m512 p) {
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
ACT_AVX512 FI_INLINE __m512 expc16_f32(__m512 a) {
    __mmask16 under = _mm512_cmp_ps_mask(a, _mm512_set1_ps(EXP_LO), _CMP_LT_OQ);
    a = _mm512_max_ps(_mm512_set1_ps(EXP_LO), _mm512_min_ps(_mm512_set1_ps(EXP_HI), a));
    return _mm512_mask_mov_ps(exp16_f32(a), under, _mm512_setzero_ps());
}

ACT_AVX512 FI_INLINE __m512 sigmoid16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __m512 e = expc16_f32(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    __m512 r = rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NGE_UQ); /* !(v >= 0) */
    return _mm512_mask_mul_ps(r, neg, e, r);
}

ACT_AVX512 FI_INLINE __m512 sigmoid_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __m512 e = expc16_f32(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    __m512 r = rcp16_f32(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    return _mm512_mul_ps(g, _mm512_mul_ps(_mm512_mul_ps(e, r), r));
}

ACT_AVX512 FI_INLINE __m512 tanh_poly16_f32(__m512 v) {
    __m512 z = _mm512_mul_ps(v, v);
    __m512 q = _mm512_set1_ps(-5.70498872745e-3f);
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(2.06390887954e-2f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(-5.37397155531e-2f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.33314422036e-1f));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(-3.33332819422e-1f));
    return _mm512_fmadd_ps(_mm512_mul_ps(q, z), v, v);
}

ACT_AVX512 FI_INLINE __m512 tanh16_f32(__m512 v, __m512 g, __m512 p) {
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

ACT_AVX512 FI_INLINE __m512 tanh_bwd16_f32(__m512 v, __m512 g, __m512 p) {
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
ACT_AVX512 FI_INLINE __m512 elu16_f32(__m512 v, __m512 g, __m512 p) {
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

ACT_AVX512 FI_INLINE __m512 elu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    __m512 w = _mm512_min_ps(_mm512_setzero_ps(), v);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(g, p), expc16_f32(w));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), g);
}

/* Phi as ncdf_e_f32 (e = exp(-x^2 / 2) given), the division as rcp + Newton; |x| capped at 20
 * (e is 0 from 13.2 on) so that the Newton step never sees inf (inf * 0: NaN); a NaN x still
 * gives NaN, through e */
ACT_AVX512 FI_INLINE __m512 ncdf16_f32(__m512 v, __m512 e) {
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

ACT_AVX512 FI_INLINE __m512 gelu_e16_pdf(__m512 v) { /* exp(-x^2 / 2), 0 where it underflows */
    return expc16_f32(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), v), v));
}

ACT_AVX512 FI_INLINE __m512 gelu16_f32(__m512 v, __m512 g, __m512 p) {
    (void)g, (void)p;
    __mmask16 ninf = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    __m512 cdf = ncdf16_f32(v, gelu_e16_pdf(v));
    return _mm512_mask_mov_ps(_mm512_mul_ps(v, cdf), ninf, _mm512_setzero_ps());
}

ACT_AVX512 FI_INLINE __m512 gelu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
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
ACT_AVX512 FI_INLINE __m512 relu_bwd16_f32(__m512 v, __m512 g, __m512 p) {
    (void)p;
    __asm__("" : "+v"(g));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), g);
}

/* A chunk function over 16-lane vectors: VEXPR(v, g, pv) of x (and dy for backward ops), with
 * masked loads and stores at the ends (every element gets the same arithmetic whatever the
 * alignment), two vectors a step, streaming stores from 64-byte aligned outputs. */
#define ACT512_CHUNK(name, VEXPR, BACKWARD)                                                   \
    ACT_AVX512 static void name(float *out, const float *x, const float *dy, int64_t n,       \
                                float p, int stream) {                                        \
        __m512 pv = _mm512_set1_ps(p);                                                        \
        int64_t i = 0;                                                                        \
        if ((uintptr_t)out & 3) stream = 0; /* not float-aligned: no streaming */             \
        if (stream) {                                                                         \
            int64_t head = (int64_t)((64 - ((uintptr_t)out & 63)) & 63) / 4;                  \
            head = head < n ? head : n;                                                       \
            if (head > 0) {                                                                   \
                __mmask16 m = (__mmask16)((1u << head) - 1u);                                 \
                __m512 v = _mm512_maskz_loadu_ps(m, x);                                       \
                __m512 g = BACKWARD ? _mm512_maskz_loadu_ps(m, dy) : v;                       \
                _mm512_mask_storeu_ps(out, m, VEXPR(v, g, pv));                                   \
                i = head;                                                                     \
            }                                                                                 \
        }                                                                                     \
        for (; i + 32 <= n; i += 32) {                                                        \
            __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);             \
            __m512 g0 = BACKWARD ? _mm512_loadu_ps(dy + i) : v0;                              \
            __m512 g1 = BACKWARD ? _mm512_loadu_ps(dy + i + 16) : v1;                         \
            __m512 y0 = VEXPR(v0, g0, pv), y1 = VEXPR(v1, g1, pv);                                    \
            if (stream) {                                                                     \
                _mm512_stream_ps(out + i, y0);                                                \
                _mm512_stream_ps(out + i + 16, y1);                                           \
            } else {                                                                          \
                _mm512_storeu_ps(out + i, y0);                                                \
                _mm512_storeu_ps(out + i + 16, y1);                                           \
            }                                                                                 \
        }                                                                                     \
        for (; i < n; i += 16) {                                                              \
            int64_t m_n = n - i < 16 ? n - i : 16;                                            \
            __mmask16 m = (__mmask16)((1u << m_n) - 1u);                                      \
            __m512 v = _mm512_maskz_loadu_ps(m, x + i);                                       \
            __m512 g = BACKWARD ? _mm512_maskz_loadu_ps(m, dy + i) : v;                       \
            _mm512_mask_storeu_ps(out + i, m, VEXPR(v, g, pv));                                   \
        }                                                                                     \
        if (stream) act_fence();                                                              \
    }

ACT512_CHUNK(relu_bwd_f32_avx512x, relu_bwd16_f32, 1)
ACT512_CHUNK(elu_f32_avx512x, elu16_f32, 0)
ACT512_CHUNK(elu_bwd_f32_avx512x, elu_bwd16_f32, 1)
ACT512_CHUNK(tanh_f32_avx512x, tanh16_f32, 0)
ACT512_CHUNK(tanh_bwd_f32_avx512x, tanh_bwd16_f32, 1)
ACT512_CHUNK(sigmoid_f32_avx512x, sigmoid16_f32, 0)
ACT512_CHUNK(sigmoid_bwd_f32_avx512x, sigmoid_bwd16_f32, 1)
ACT512_CHUNK(gelu_f32_avx512x, gelu16_f32, 0)
ACT512_CHUNK(gelu_bwd_f32_avx512x, gelu_bwd16_f32, 1)
ACT512_CHUNK(gelu_tanh_f32_avx512x, gelu_tanh16_f32, 0)
ACT512_CHUNK(gelu_tanh_bwd_f32_avx512x, gelu_tanh_bwd16_f32, 1)
#define ACT512_F32(name) name##_f32_avx512x
#else
#define ACT512_F32(name) name##_f32_avx512
#endif

#define ACT_TABLE(F, ISA)                                                                     \
    {relu_##F##_##ISA,      relu_bwd_##F##_##ISA,    leaky_##F##_##ISA,                       \
     leaky_bwd_##F##_##ISA, elu_##F##_##ISA,         elu_bwd_##F##_##ISA,                     \
     tanh_##F##_##ISA,      tanh_bwd_##F##_##ISA,    sigmoid_##F##_##ISA,                     \
     sigmoid_bwd_##F##_##ISA, gelu_##F##_##ISA,      gelu_bwd_##F##_##ISA,                    \
     gelu_tanh_##F##_##ISA, gelu_tanh_bwd_##F##_##ISA, identity_##F##_##ISA,                  \
     identity_bwd_##F##_##ISA}

#define ACT_COUNT 16
/* float32 AVX-512: the intrinsics kernels where the compiled formula was slower than memory
 * (relu, leaky_relu and identity stay the compiled loops: already at copy speed) */
static const act_chunk_f32 act_f32_avx512[ACT_COUNT] = {
    relu_f32_avx512,         ACT512_F32(relu_bwd),  leaky_f32_avx512,
    leaky_bwd_f32_avx512,    ACT512_F32(elu),       ACT512_F32(elu_bwd),
    ACT512_F32(tanh),        ACT512_F32(tanh_bwd),  ACT512_F32(sigmoid),
    ACT512_F32(sigmoid_bwd), ACT512_F32(gelu),      ACT512_F32(gelu_bwd),
    ACT512_F32(gelu_tanh),   ACT512_F32(gelu_tanh_bwd), identity_f32_avx512,
    identity_bwd_f32_avx512};
static const act_chunk_f64 act_f64_avx512[ACT_COUNT] = ACT_TABLE(f64, avx512);
static const act_chunk_f32 act_f32_avx2[ACT_COUNT] = ACT_TABLE(f32, avx2);
static const act_chunk_f32 act_f32_portable[ACT_COUNT] = ACT_TABLE(f32, portable);
static const act_chunk_f64 act_f64_avx2[ACT_COUNT] = ACT_TABLE(f64, avx2);
static const act_chunk_f64 act_f64_portable[ACT_COUNT] = ACT_TABLE(f64, portable);

#define ACT_ENTRY(T, F)                                                                       \
    int fi_activation_##F(int op, T *out, const T *x, const T *dy, int64_t n, double param) { \
        if (op < 0 || op >= ACT_COUNT) return -1;                                             \
        act_chunk_##F fn = (act_use_avx512() ? act_##F##_avx512                                \
                            : fi_use_avx2    ? act_##F##_avx2                                  \
                                             : act_##F##_portable)[op];                        \
        int stream = (int64_t)(n * (int64_t)sizeof(T)) >= ACT_STREAM_MIN_BYTES;               \
        int64_t nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;                                    \
        T p = (T)param;                                                                       \
        if (stream && (op == FI_ACT_IDENTITY || op == FI_ACT_IDENTITY_BACKWARD)) {           \
            /* a copy: stream it straight from the source (no stack block, whose small       \
             * memcpy gcc emits as rep movs, slow to start 32 000 times) */                   \
            const T *src = op == FI_ACT_IDENTITY ? x : dy;                                    \
            _Pragma("omp parallel for num_threads(fi_threads()) schedule(static)")                 \
            for (int64_t c = 0; c < nchunks; c++) {                                           \
                int64_t lo = c * ACT_CHUNK, m = n - lo < ACT_CHUNK ? n - lo : ACT_CHUNK;      \
                stream_copy_##F(out + lo, src + lo, m);                                       \
                act_fence(); /* by the thread that streamed */                                \
            }                                                                                 \
            return 0;                                                                         \
        }                                                                                     \
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if (n >= ACT_PARALLEL_MIN)") \
        for (int64_t c = 0; c < nchunks; c++) {                                               \
            int64_t lo = c * ACT_CHUNK, m = n - lo < ACT_CHUNK ? n - lo : ACT_CHUNK;          \
            fn(out + lo, x + lo, dy ? dy + lo : NULL, m, p, stream);                          \
        }                                                                                     \
        return 0;                                                                             \
    }

ACT_ENTRY(float, f32)
ACT_ENTRY(double, f64)

/* ---- losses -------------------------------------------------------------------------------- */

#define LOSS_ROWS 64           /* rows per block of the cross-entropy (fixed) */
#define LOSS_CHUNK 16384       /* elements per chunk of the MSE (fixed) */

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

/* Rows [i0, i1) of softmax cross-entropy: returns their summed loss (float64) and writes
 * (softmax(z) - onehot(label)) * inv_n into d. */
#define CE_ROWS(T, F)                                                                         \
    static double ce_rows_##F(T *restrict d, const T *restrict z, const int64_t *labels,     \
                              int64_t i0, int64_t i1, int64_t k, T inv_n) {                   \
        ce_acc acc = {1.0, 0.0, 0};                                                           \
        for (int64_t i = i0; i < i1; i++) {                                                   \
            const T *zr = z + i * k;                                                          \
            T *dr = d + i * k;                                                                \
            T m = zr[0];                                                                      \
            for (int64_t j = 1; j < k; j++) m = zr[j] > m ? zr[j] : m;                        \
            for (int64_t j = 0; j < k; j++) dr[j] = exp_##F(zr[j] - m);                       \
            double s = 0.0;                                                                   \
            for (int64_t j = 0; j < k; j++) s += (double)dr[j];                               \
            T scale = (T)(1.0 / s) * inv_n;                                                   \
            for (int64_t j = 0; j < k; j++) dr[j] = dr[j] * scale;                            \
            dr[labels[i]] -= inv_n;                                                           \
            ce_acc_row(&acc, s, (double)zr[labels[i]] - (double)m);                           \
        }                                                                                     \
        return ce_acc_total(&acc);                                                            \
    }

CE_ROWS(float, f32)
CE_ROWS(double, f64)

#if FI_X86
/* float32 rows on 16-lane vectors (masked at the row's end): max, exp (expc16_f32: the
 * polynomial of exp_f32), float64 sum, scale. */
ACT_AVX512 static double ce_rows_f32_avx512(float *restrict d, const float *restrict z,
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
#define CE_ROWS_F32 (act_use_avx512() ? ce_rows_f32_avx512 : ce_rows_f32)
#else
#define CE_ROWS_F32 ce_rows_f32
#endif
#define CE_ROWS_F64 ce_rows_f64

#define LOSS_ENTRY(T, F, SUF)                                                                    \
    int fi_softmax_cross_entropy_##F(double *loss, T *dlogits, const T *logits,              \
                                     const int64_t *labels, int64_t n, int64_t k) {          \
        int64_t nb = (n + LOSS_ROWS - 1) / LOSS_ROWS;                                         \
        double *part = malloc(sizeof(double) * (nb > 0 ? nb : 1));                            \
        if (!part) return -1;                                                                 \
        T inv_n = (T)(1.0 / (double)n);                                                       \
        double (*rows)(T *, const T *, const int64_t *, int64_t, int64_t, int64_t, T) =       \
            CE_ROWS_##SUF;                                                                    \
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if (n * k >= ACT_PARALLEL_MIN)") \
        for (int64_t b = 0; b < nb; b++) {                                                    \
            int64_t hi = (b + 1) * LOSS_ROWS < n ? (b + 1) * LOSS_ROWS : n;                   \
            part[b] = rows(dlogits, logits, labels, b * LOSS_ROWS, hi, k, inv_n);             \
        }                                                                                     \
        double total = 0.0;                                                                   \
        for (int64_t b = 0; b < nb; b++) total += part[b];                                    \
        free(part);                                                                           \
        *loss = total / (double)n;                                                            \
        return 0;                                                                             \
    }                                                                                         \
    int fi_mse_##F(double *loss, T *dpred, const T *pred, const T *target, int64_t n) {      \
        int64_t nc = (n + LOSS_CHUNK - 1) / LOSS_CHUNK;                                       \
        double *part = malloc(sizeof(double) * (nc > 0 ? nc : 1));                            \
        if (!part) return -1;                                                                 \
        T two_n = (T)(2.0 / (double)n);                                                       \
        _Pragma("omp parallel for num_threads(fi_threads()) schedule(static) if (n >= ACT_PARALLEL_MIN)") \
        for (int64_t c = 0; c < nc; c++) {                                                    \
            int64_t lo = c * LOSS_CHUNK, hi = lo + LOSS_CHUNK < n ? lo + LOSS_CHUNK : n;      \
            double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;                                    \
            int64_t i = lo;                                                                   \
            for (; i + 4 <= hi; i += 4) {                                                     \
                double d0 = (double)pred[i] - (double)target[i];                              \
                double d1 = (double)pred[i + 1] - (double)target[i + 1];                      \
                double d2 = (double)pred[i + 2] - (double)target[i + 2];                      \
                double d3 = (double)pred[i + 3] - (double)target[i + 3];                      \
                a0 += d0 * d0;                                                                \
                a1 += d1 * d1;                                                                \
                a2 += d2 * d2;                                                                \
                a3 += d3 * d3;                                                                \
            }                                                                                 \
            for (; i < hi; i++) {                                                             \
                double d = (double)pred[i] - (double)target[i];                               \
                a0 += d * d;                                                                  \
            }                                                                                 \
            for (int64_t j = lo; j < hi; j++) dpred[j] = (pred[j] - target[j]) * two_n;       \
            part[c] = (a0 + a1) + (a2 + a3);                                                  \
        }                                                                                     \
        double total = 0.0;                                                                   \
        for (int64_t c = 0; c < nc; c++) total += part[c];                                    \
        free(part);                                                                           \
        *loss = total / (double)n;                                                            \
        return 0;                                                                             \
    }

LOSS_ENTRY(float, f32, F32)
LOSS_ENTRY(double, f64, F64)
