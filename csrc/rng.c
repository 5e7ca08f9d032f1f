/* The random stream: Philox4x32-10 and its samplers, bit for bit the NumPy reference.
 *
 * The mapping from (key, draw, element index) to a number is specified in fastinit/rng.py;
 * fastinit/reference/rng.py is the oracle. The float32 paths repeat the reference's exact
 * sequence of IEEE float32 operations: constants rounded as NumPy rounds them, -ffp-contract=off
 * (global) forbids fused multiply-add, nothing here is built with fast-math. So uniform, normal
 * and truncated normal float32, and uniform float64, give NumPy's bits. float64 normal and
 * truncated normal call the C library (log, sin, cos, erfc, exp): within a few ulp of NumPy.
 *
 * How it is fast. Output is made in batches of FI_RNG_BATCH Philox blocks, in passes over small
 * buffers that stay in L1: (1) the Philox words, by explicit SIMD code (16 blocks at a time
 * with AVX-512, 8 with AVX2, 4 with SSE2: gcc's own vectorisation of the 32x32->64 multiply
 * shuffles too much); (2) the transforms, plain loops written once (FI_INLINE) that gcc
 * vectorises, compiled for AVX-512, for AVX2+FMA and for the portable baseline, chosen at run
 * time (dispatch.h); (3) square roots in a pass of their own
 * (sqrtps), because gcc never vectorises sqrtf while it may set errno (-fmath-errno is the
 * default and cannot be switched off per function). All builds give the same bits.
 * Threads: OpenMP over fixed chunks of FI_RNG_CHUNK elements, never sized from the thread
 * count, so every element is computed by the same code whatever the number of threads.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif

/* Elements per parallel chunk (a multiple of 4: each chunk starts on a Philox block). */
#define FI_RNG_CHUNK 65536
/* Below this many elements the kernels run on one thread (_config.PARALLEL_MIN_ELEMENTS). */
#define FI_RNG_PARALLEL_MIN 32768
/* Philox blocks per batch (a multiple of 32, the AVX-512 step): 4 KiB of words, in L1. */
#define FI_RNG_BATCH 256

/* ---- Philox4x32-10 (Salmon et al. 2011; Random123's constants) ---------------------------- */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* The ten round keys of a stream key, and the draw's counter words 2 and 3. */
typedef struct {
    uint32_t k0[10], k1[10];
    uint32_t d0, d1;
} fi_philox_key;

static void philox_key(fi_philox_key *key, uint32_t k0, uint32_t k1, uint32_t d0, uint32_t d1) {
    for (int r = 0; r < 10; r++) {
        key->k0[r] = k0;
        key->k1[r] = k1;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    key->d0 = d0;
    key->d1 = d1;
}

/* Block j of the draw: counter (j lo, j hi, d0, d1) -> words x[0..3]. */
FI_INLINE void philox_block(uint64_t j, const fi_philox_key *key, uint32_t x[4]) {
    uint32_t c0 = (uint32_t)j, c1 = (uint32_t)(j >> 32), c2 = key->d0, c3 = key->d1;
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ key->k0[r];
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ key->k1[r];
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    x[0] = c0;
    x[1] = c1;
    x[2] = c2;
    x[3] = c3;
}

/* words[4k + w] = word w of block j0 + k, for k < nblocks (words in element order). */
typedef void (*fi_fill_fn)(uint32_t *words, int64_t nblocks, uint64_t j0,
                           const fi_philox_key *key);

static void philox_fill_scalar(uint32_t *words, int64_t nblocks, uint64_t j0,
                               const fi_philox_key *key) {
    for (int64_t k = 0; k < nblocks; k++) philox_block(j0 + (uint64_t)k, key, words + 4 * k);
}

#if FI_X86
/* philox_fill_avx2, philox_fill_avx512 (the AVX-512 one takes its last blocks to AVX2) */
#define PX_ISA FI_ISA_AVX2
#include "philox_isa.h"
#define PX_ISA FI_ISA_AVX512
#include "philox_isa.h"

/* 4 blocks at a time in 4 uint32 lanes (SSE2, part of x86-64). */
static void philox_fill_sse2(uint32_t *words, int64_t nblocks, uint64_t j0,
                             const fi_philox_key *key) {
    const __m128i m0 = _mm_set1_epi32((int)PHILOX_M0), m1 = _mm_set1_epi32((int)PHILOX_M1);
    const __m128i lo_mask = _mm_set1_epi64x(0xFFFFFFFF), hi_mask = _mm_slli_epi64(lo_mask, 32);
    const __m128i offsets = _mm_setr_epi32(0, 1, 2, 3);
    int64_t k = 0;
    for (; k + 4 <= nblocks; k += 4) {
        uint64_t j = j0 + (uint64_t)k;
        if ((uint32_t)j > 0xFFFFFFFFu - 3u) {
            philox_fill_scalar(words + 4 * k, 4, j, key);
            continue;
        }
        __m128i c0 = _mm_add_epi32(_mm_set1_epi32((int)(uint32_t)j), offsets);
        __m128i c1 = _mm_set1_epi32((int)(uint32_t)(j >> 32));
        __m128i c2 = _mm_set1_epi32((int)key->d0), c3 = _mm_set1_epi32((int)key->d1);
        for (int r = 0; r < 10; r++) {
            __m128i pe0 = _mm_mul_epu32(c0, m0), po0 = _mm_mul_epu32(_mm_srli_epi64(c0, 32), m0);
            __m128i pe1 = _mm_mul_epu32(c2, m1), po1 = _mm_mul_epu32(_mm_srli_epi64(c2, 32), m1);
            __m128i hi0 = _mm_or_si128(_mm_srli_epi64(pe0, 32), _mm_and_si128(po0, hi_mask));
            __m128i lo0 = _mm_or_si128(_mm_and_si128(pe0, lo_mask), _mm_slli_epi64(po0, 32));
            __m128i hi1 = _mm_or_si128(_mm_srli_epi64(pe1, 32), _mm_and_si128(po1, hi_mask));
            __m128i lo1 = _mm_or_si128(_mm_and_si128(pe1, lo_mask), _mm_slli_epi64(po1, 32));
            c0 = _mm_xor_si128(_mm_xor_si128(hi1, c1), _mm_set1_epi32((int)key->k0[r]));
            c2 = _mm_xor_si128(_mm_xor_si128(hi0, c3), _mm_set1_epi32((int)key->k1[r]));
            c1 = lo1;
            c3 = lo0;
        }
        __m128i t0 = _mm_unpacklo_epi32(c0, c1), t1 = _mm_unpackhi_epi32(c0, c1);
        __m128i t2 = _mm_unpacklo_epi32(c2, c3), t3 = _mm_unpackhi_epi32(c2, c3);
        _mm_storeu_si128((__m128i *)(words + 4 * k), _mm_unpacklo_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(words + 4 * k + 4), _mm_unpackhi_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(words + 4 * k + 8), _mm_unpacklo_epi64(t1, t3));
        _mm_storeu_si128((__m128i *)(words + 4 * k + 12), _mm_unpackhi_epi64(t1, t3));
    }
    philox_fill_scalar(words + 4 * k, nblocks - k, j0 + (uint64_t)k, key);
}
#endif

/* a[0..n) = sqrt(a[0..n)), IEEE (correctly rounded, as sqrtf). */
typedef void (*fi_sqrt_fn)(float *a, int64_t n);

#if FI_X86
FI_INLINE float sqrt_sse(float x) { return _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))); }

FI_TARGET_AVX512 static void sqrt_avx512(float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(a + i, _mm512_sqrt_ps(_mm512_loadu_ps(a + i)));
    for (; i < n; i++) a[i] = sqrt_sse(a[i]);
}
FI_TARGET_AVX2 static void sqrt_avx2(float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(a + i, _mm256_sqrt_ps(_mm256_loadu_ps(a + i)));
    for (; i < n; i++) a[i] = sqrt_sse(a[i]);
}
static void sqrt_sse2(float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(a + i, _mm_sqrt_ps(_mm_loadu_ps(a + i)));
    for (; i < n; i++) a[i] = sqrt_sse(a[i]);
}
#else
static void sqrt_scalar(float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = sqrtf(a[i]);
}
#endif

/* The hand-vectorised helpers of one build (AVX-512, AVX2 or portable). */
typedef struct {
    fi_fill_fn fill;
    fi_sqrt_fn sqrt;
} fi_rng_ops;

#if FI_X86
static const fi_rng_ops ops_avx512 = {philox_fill_avx512, sqrt_avx512};
static const fi_rng_ops ops_avx2 = {philox_fill_avx2, sqrt_avx2};
static const fi_rng_ops ops_portable = {philox_fill_sse2, sqrt_sse2};
#else
static const fi_rng_ops ops_avx512 = {philox_fill_scalar, sqrt_scalar};
static const fi_rng_ops ops_avx2 = {philox_fill_scalar, sqrt_scalar};
static const fi_rng_ops ops_portable = {philox_fill_scalar, sqrt_scalar};
#endif

/* ---- float32 elementary functions: the reference's operations, in its order ---------------- */

/* A float32 constant as NumPy makes it (np.float32(python_float)): decimal -> double -> float,
 * not the single rounding of a 1.0f literal (they could differ in the last bit). */
#define F32(x) ((float)(x))

/* cond ? a : b on the bits, for float32 selects inside vector loops: with a plain ?: gcc
 * may fold an operation into the branches (e.g. sqrt(max(w, 0)) - 3 -> w <= 0 ? -3 : ...),
 * then refuses to if-convert a float op that "could trap", and the loop stays scalar. */
FI_INLINE float select_f32(int cond, float a, float b) {
    uint32_t mask = (uint32_t)0 - (uint32_t)(cond != 0);
    return fi_f32_from_bits((fi_f32_bits(a) & mask) | (fi_f32_bits(b) & ~mask));
}

/* np.maximum(x, c) / np.minimum(x, c) for a non-NaN c: c when equal, x when x is NaN. */
FI_INLINE float max_f32(float x, float c) { return select_f32(x <= c, c, x); }
FI_INLINE float min_f32(float x, float c) { return select_f32(x >= c, c, x); }
FI_INLINE double max_f64(double x, double c) { return x <= c ? c : x; }
FI_INLINE double min_f64(double x, double c) { return x >= c ? c : x; }

/* Natural log of a positive normal float32 (Cephes logf, branch-free): reference ln_f32. */
FI_INLINE float ln_f32(float x) {
    const float P0 = F32(7.0376836292e-2), P1 = F32(-1.1514610310e-1),
                P2 = F32(1.1676998740e-1), P3 = F32(-1.2420140846e-1),
                P4 = F32(1.4249322787e-1), P5 = F32(-1.6668057665e-1),
                P6 = F32(2.0000714765e-1), P7 = F32(-2.4999993993e-1),
                P8 = F32(3.3333331174e-1);
    const float SQRTHF = F32(0.707106781186547524), LN2_LO = F32(-2.12194440e-4),
                LN2_HI = F32(0.693359375);
    uint32_t bits = fi_f32_bits(x);
    int32_t e = (int32_t)((bits >> 23) & 0xFFu) - 126;
    uint32_t mbits = (bits & 0x807FFFFFu) | 0x3F000000u;
    float m = fi_f32_from_bits(mbits); /* [0.5, 1) */
    int32_t small = m < SQRTHF;
    e -= small;
    /* m + m when small, done exactly on the bits (exponent + 1): a float op under a condition
     * "could trap" for gcc, which then keeps the branch and does not vectorise the loop. */
    float f = fi_f32_from_bits(mbits + ((uint32_t)small << 23)) - 1.0f;
    float ef = (float)e;
    float z = f * f;
    float y = P0 * f;
    y = (y + P1) * f;
    y = (y + P2) * f;
    y = (y + P3) * f;
    y = (y + P4) * f;
    y = (y + P5) * f;
    y = (y + P6) * f;
    y = (y + P7) * f;
    y = (y + P8) * f;
    y = y * z;
    y = y + LN2_LO * ef;
    y = y - 0.5f * z;
    float r = f + y;
    return r + LN2_HI * ef;
}

/* sin and cos of 2 pi k / 2^24 for 0 <= k < 2^24 (Cephes polynomials): reference
 * sincos_2pi_f32. The quadrant comes from integer arithmetic; negation is exact. */
FI_INLINE void sincos_2pi_f32(int32_t k, float *sin_out, float *cos_out) {
    const float S0 = F32(-1.9515295891e-4), S1 = F32(8.3321608736e-3),
                S2 = F32(-1.6666654611e-1);
    const float C0 = F32(2.443315711809948e-5), C1 = F32(-1.388731625493765e-3),
                C2 = F32(4.166664568298827e-2);
    const float PI_2M23 = (float)(M_PI / 8388608.0); /* pi 2^-23 */
    int32_t n = (k + (1 << 21)) >> 22;
    int32_t t = k - (n << 22);
    float phi = (float)t * PI_2M23;
    float z = phi * phi;
    float s = S0 * z;
    s = (s + S1) * z;
    s = (s + S2) * z;
    s = s * phi + phi;
    float c = C0 * z;
    c = (c + C1) * z;
    c = (c + C2) * z;
    c = c * z - 0.5f * z + 1.0f;
    float sn = (n & 1) ? c : s; /* quadrant n mod 4: sin = s, c, -s, -c; cos = c, -s, -c, s */
    float cs = (n & 1) ? s : c;
    *sin_out = (n & 2) ? -sn : sn;
    *cos_out = ((n + 1) & 2) ? -cs : cs;
}

/* Giles (2010) single-precision erfinv polynomials (reference _ERFINV_A / _ERFINV_B), highest
 * power first. */
static const float GILES_A[9] = {
    F32(2.81022636e-08), F32(3.43273939e-07), F32(-3.5233877e-06), F32(-4.39150654e-06),
    F32(0.00021858087), F32(-0.00125372503), F32(-0.00417768164), F32(0.246640727),
    F32(1.50140941)};
static const float GILES_B[9] = {
    F32(-0.000200214257), F32(0.000100950558), F32(0.00134934322), F32(-0.00367342844),
    F32(0.00573950773), F32(-0.0076224613), F32(0.00943887047), F32(1.00167406),
    F32(2.83297682)};

/* Horner's rule, c[k] + g * w from g = c[0], as the reference (its leading `c0 + 0 * w` is c0
 * exactly: w is finite wherever it is used); in float32 and, on the same float32
 * coefficients, in float64. */
FI_INLINE float giles_f32(const float c[9], float w) {
    float g = c[0];
    for (int k = 1; k < 9; k++) g = c[k] + g * w;
    return g;
}

FI_INLINE double giles_f64(const float c[9], double w) {
    double g = c[0];
    for (int k = 1; k < 9; k++) g = (double)c[k] + g * w;
    return g;
}

/* The float32 standard normal quantile from p and q = 1 - p (reference ndtri_pq_f32) is
 * sqrt(2) erfinv(p - q) with w = -ln_f32(4 p q): this is its part after the square root,
 * given w, root = sqrt(max(w, 0)) and x = p - q. Giles' polynomials, both evaluated, one kept. */
FI_INLINE float giles_erfinv_sqrt2(float w, float root, float x) {
    float pa = giles_f32(GILES_A, w - 2.5f);
    float pb = giles_f32(GILES_B, root - 3.0f);
    float g = select_f32(w < 5.0f, pa, pb);
    return F32(1.41421356237309504880) * (g * x);
}

/* Standard normal quantile in float64 from p and q = 1 - p: reference ndtri_pq_f64 (Giles
 * start or the tail asymptote, then three Newton steps on ln Phi(y) = ln t, t = min(p, q)). */
static double ndtri_pq_f64(double p, double q) {
    /* as the reference computes them from the double 2 pi (gcc folds these exactly): the
     * decimal constants of sqrt(2 pi) and ln(2 pi) round to different last bits */
    const double INV_SQRT2 = 1.0 / sqrt(2.0);
    const double INV_SQRT2PI = 1.0 / sqrt(2.0 * M_PI);
    const double LN_2PI = log(2.0 * M_PI);
    double t = min_f64(p, q), big = max_f64(p, q);
    double w = -log((4.0 * t) * big);
    double y;
    if (w <= 16.0) {
        double x = t - big;
        double g = w < 5.0 ? giles_f64(GILES_A, w - 2.5)
                           : giles_f64(GILES_B, sqrt(max_f64(w, 0.0)) - 3.0);
        y = M_SQRT2 * (g * x);
    } else {
        double big_l = -2.0 * log(t);
        y = -sqrt(max_f64(big_l - log(big_l) - LN_2PI, 0.0));
    }
    double log_t = log(t);
    for (int it = 0; it < 3; it++) {
        double cdf = 0.5 * erfc(-y * INV_SQRT2);
        y = y - (log(cdf) - log_t) * cdf / (exp(-0.5 * y * y) * INV_SQRT2PI);
    }
    return p <= q ? y : -y;
}

/* ---- batches: out from words, the Philox words of nblocks <= FI_RNG_BATCH blocks ---------- */

#define TWO_M24F F32(5.9604644775390625e-08)  /* 2^-24 */
#define TWO_M25F F32(2.98023223876953125e-08) /* 2^-25 */
#define TWO_M21 4.76837158203125e-07          /* 2^-21 */
#define TWO_M53 1.1102230246251565e-16        /* 2^-53 */
#define TWO_M54 5.5511151231257827e-17        /* 2^-54 */

/* value = shift + scale * sample: (low, high - low) for uniform, (mean, std) for normal. */
typedef struct { float shift, scale; } fi_affine_f32;
typedef struct { double shift, scale; } fi_affine_f64;
/* Truncated-normal parameters, rounded to the output's precision by the caller. */
typedef struct { float mean, std, a, b, pa, qb, span, lo, hi; } fi_tn_f32;
typedef struct { double mean, std, a, b, pa, qb, span, lo, hi; } fi_tn_f64;

/* The 53-bit integer ((hi << 32) | lo) >> 11 as a double, exactly: hi 2^21 + (lo >> 11) are
 * both exact and so is their sum (< 2^53); two uint32 -> double conversions vectorise where
 * one int64 -> double does not (no AVX-512 here). */
FI_INLINE double m53_f64(uint32_t lo, uint32_t hi) {
    return (double)hi * 2097152.0 + (double)(lo >> 11);
}

FI_INLINE uint64_t m53(uint32_t lo, uint32_t hi) {
    return (((uint64_t)hi << 32) | lo) >> 11;
}

/* out is (4 nblocks,) float32: element i = low + (high - low) * u, u = (word i >> 8) 2^-24. */
FI_INLINE void uniform_f32_batch(float *restrict out, int64_t nblocks, const uint32_t *words,
                                 const fi_affine_f32 *prm, const fi_rng_ops *ops) {
    const float lo = prm->shift, span = prm->scale; /* locals: out cannot alias them */
    for (int64_t i = 0; i < 4 * nblocks; i++)
        out[i] = lo + span * ((float)(int32_t)(words[i] >> 8) * TWO_M24F);
}

/* out is (2 nblocks,) float64: element i from words 2i (lo) and 2i+1 (hi); u = m53 2^-53. */
FI_INLINE void uniform_f64_batch(double *restrict out, int64_t nblocks, const uint32_t *words,
                                 const fi_affine_f64 *prm, const fi_rng_ops *ops) {
    const double low = prm->shift, span = prm->scale;
    for (int64_t i = 0; i < 2 * nblocks; i++)
        out[i] = low + span * (m53_f64(words[2 * i], words[2 * i + 1]) * TWO_M53);
}

/* out is (4 nblocks,) float32. Pair k (elements 2k, 2k+1) uses words 2k, 2k+1 (Box-Muller):
 * u1 = (m(x_2k) + 1) 2^-24 in (0, 1], r = sqrt(-2 ln u1), angle index m(x_2k+1). */
FI_INLINE void normal_f32_batch(float *restrict out, int64_t nblocks, const uint32_t *words,
                                const fi_affine_f32 *prm, const fi_rng_ops *ops) {
    const float mean = prm->shift, std = prm->scale;
    float r[2 * FI_RNG_BATCH];
    int64_t npairs = 2 * nblocks;
    for (int64_t k = 0; k < npairs; k++) {
        float u1 = (float)(int32_t)((words[2 * k] >> 8) + 1u) * TWO_M24F;
        r[k] = -2.0f * ln_f32(u1);
    }
    ops->sqrt(r, npairs);
    for (int64_t k = 0; k < npairs; k++) {
        float s, c;
        sincos_2pi_f32((int32_t)(words[2 * k + 1] >> 8), &s, &c);
        out[2 * k] = mean + std * (r[k] * c);
        out[2 * k + 1] = mean + std * (r[k] * s);
    }
}

/* out is (2 nblocks,) float64: block k gives elements 2k, 2k+1; u1 from words (0, 1),
 * u2 from words (2, 3); log, sqrt, cos, sin from the C library. */
FI_INLINE void normal_f64_batch(double *restrict out, int64_t nblocks, const uint32_t *words,
                                const fi_affine_f64 *prm, const fi_rng_ops *ops) {
    const double mean = prm->shift, std = prm->scale;
    for (int64_t k = 0; k < nblocks; k++) {
        const uint32_t *x = words + 4 * k;
        double u1 = (double)(int64_t)(m53(x[0], x[1]) + 1) * TWO_M53;
        double u2 = m53_f64(x[2], x[3]) * TWO_M53;
        double r = sqrt(-2.0 * log(u1));
        double theta = (2.0 * M_PI) * u2;
        out[2 * k] = mean + std * (r * cos(theta));
        out[2 * k + 1] = mean + std * (r * sin(theta));
    }
}

/* out is (4 nblocks,) float32: element i from word i, by inverse CDF (reference
 * truncated_normal): v = (2m + 1) 2^-25 and 1 - v from its own integer (no cancellation),
 * p = pa + span v, q = qb + span (1 - v), z = ndtri_pq_f32(p, q) clamped to [a, b], then
 * mean + std z clamped to [lo, hi]. ndtri_pq_f32 is split around its square root. */
FI_INLINE void truncated_normal_f32_batch(float *restrict out, int64_t nblocks,
                                          const uint32_t *words, const fi_tn_f32 *prm,
                                          const fi_rng_ops *ops) {
    const fi_tn_f32 t = *prm;
    float ws[4 * FI_RNG_BATCH], xs[4 * FI_RNG_BATCH], roots[4 * FI_RNG_BATCH];
    int64_t n = 4 * nblocks;
    for (int64_t i = 0; i < n; i++) {
        uint32_t m = words[i] >> 8;
        float v = (float)(int32_t)((m << 1) + 1u) * TWO_M25F; /* 2m + 1 < 2^25: rounded once */
        float v1 = (float)(int32_t)((((1u << 24) - m) << 1) - 1u) * TWO_M25F; /* 1 - v */
        float p = t.pa + t.span * v;
        float q = t.qb + t.span * v1;
        float w = -ln_f32((4.0f * p) * q);
        ws[i] = w;
        xs[i] = p - q;
        roots[i] = max_f32(w, 0.0f);
    }
    ops->sqrt(roots, n);
    for (int64_t i = 0; i < n; i++) {
        float z = min_f32(max_f32(giles_erfinv_sqrt2(ws[i], roots[i], xs[i]), t.a), t.b);
        out[i] = min_f32(max_f32(t.mean + t.std * z, t.lo), t.hi);
    }
}

/* out is (2 nblocks,) float64: element i from words 2i (lo), 2i+1 (hi): v = (2 m53 + 1) 2^-54,
 * the quantile by ndtri_pq_f64 (libm). */
FI_INLINE void truncated_normal_f64_batch(double *restrict out, int64_t nblocks,
                                          const uint32_t *words, const fi_tn_f64 *prm,
                                          const fi_rng_ops *ops) {
    const fi_tn_f64 t = *prm;
    for (int64_t i = 0; i < 2 * nblocks; i++) {
        uint64_t m = m53(words[2 * i], words[2 * i + 1]);
        double v = (double)(int64_t)((m << 1) + 1) * TWO_M54; /* 2m + 1 < 2^54: rounded once */
        double v1 = (double)(int64_t)((((UINT64_C(1) << 53) - m) << 1) - 1) * TWO_M54;
        double p = t.pa + t.span * v;
        double q = t.qb + t.span * v1;
        double z = min_f64(max_f64(ndtri_pq_f64(p, q), t.a), t.b);
        out[i] = min_f64(max_f64(t.mean + t.std * z, t.lo), t.hi);
    }
}

/* ---- bodies (n elements from block j0, in batches) and their two builds -------------------- */

/* name##_body and its builds name##_avx512 / _avx2 / _portable (rng_kernel.h) */
#define RK_NAME uniform_f32
#define RK_T float
#define RK_P fi_affine_f32
#define RK_E 4
#include "rng_kernel.h"
#define RK_NAME uniform_f64
#define RK_T double
#define RK_P fi_affine_f64
#define RK_E 2
#include "rng_kernel.h"
#define RK_NAME normal_f32
#define RK_T float
#define RK_P fi_affine_f32
#define RK_E 4
#include "rng_kernel.h"
#define RK_NAME normal_f64
#define RK_T double
#define RK_P fi_affine_f64
#define RK_E 2
#include "rng_kernel.h"
#define RK_NAME truncated_normal_f32
#define RK_T float
#define RK_P fi_tn_f32
#define RK_E 4
#include "rng_kernel.h"
#define RK_NAME truncated_normal_f64
#define RK_T double
#define RK_P fi_tn_f64
#define RK_E 2
#include "rng_kernel.h"

/* ---- the chunked parallel driver and the kernels ------------------------------------------ */

typedef void (*fi_rng_run)(void *out, int64_t n, uint64_t j0, const fi_philox_key *key,
                           const void *prm);

/* Fill out (n elements of elem_size bytes, per_block elements per Philox block) in fixed
 * chunks of FI_RNG_CHUNK elements: chunk c starts at element c * FI_RNG_CHUNK, block
 * c * FI_RNG_CHUNK / per_block, whichever thread runs it. Chunks are handed out dynamically:
 * on a shared machine a thread that gets less CPU time simply does fewer of them. */
static void rng_run(const fi_rng_run runs[3], char *out, size_t elem_size, int64_t per_block,
                    int64_t n, uint32_t k0, uint32_t k1, uint32_t d0, uint32_t d1,
                    const void *prm) {
    fi_philox_key key;
    philox_key(&key, k0, k1, d0, d1);
    fi_rng_run run = runs[fi_isa() - FI_ISA_BASE];
    int64_t nchunks = (n + FI_RNG_CHUNK - 1) / FI_RNG_CHUNK;
#pragma omp parallel for num_threads(fi_threads()) schedule(dynamic) if (n >= FI_RNG_PARALLEL_MIN)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t start = c * FI_RNG_CHUNK;
        int64_t len = n - start < FI_RNG_CHUNK ? n - start : FI_RNG_CHUNK;
        run(out + (size_t)start * elem_size, len, (uint64_t)(start / per_block), &key, prm);
    }
}

#define FI_RNG_RUNS(name) (const fi_rng_run[3]){name##_portable, name##_avx2, name##_avx512}

/* out is (n,) float32 / float64, C-contiguous; element i of draw (d0, d1) under key (k0, k1). */
void fi_rng_uniform_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                        uint32_t d1, float low, float high) {
    fi_affine_f32 prm = {low, high - low};
    rng_run(FI_RNG_RUNS(uniform_f32), (char *)out, sizeof *out, 4, n, k0, k1, d0,
            d1, &prm);
}

void fi_rng_uniform_f64(double *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                        uint32_t d1, double low, double high) {
    fi_affine_f64 prm = {low, high - low};
    rng_run(FI_RNG_RUNS(uniform_f64), (char *)out, sizeof *out, 2, n, k0, k1, d0,
            d1, &prm);
}

void fi_rng_normal_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                       uint32_t d1, float mean, float std) {
    fi_affine_f32 prm = {mean, std};
    rng_run(FI_RNG_RUNS(normal_f32), (char *)out, sizeof *out, 4, n, k0, k1, d0,
            d1, &prm);
}

void fi_rng_normal_f64(double *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                       uint32_t d1, double mean, double std) {
    fi_affine_f64 prm = {mean, std};
    rng_run(FI_RNG_RUNS(normal_f64), (char *)out, sizeof *out, 2, n, k0, k1, d0,
            d1, &prm);
}

void fi_rng_truncated_normal_f32(float *out, int64_t n, uint32_t k0, uint32_t k1, uint32_t d0,
                                 uint32_t d1, float mean, float std, float a, float b, float pa,
                                 float qb, float span, float lo, float hi) {
    fi_tn_f32 prm = {mean, std, a, b, pa, qb, span, lo, hi};
    rng_run(FI_RNG_RUNS(truncated_normal_f32), (char *)out, sizeof *out,
            4, n, k0, k1, d0, d1, &prm);
}

void fi_rng_truncated_normal_f64(double *out, int64_t n, uint32_t k0, uint32_t k1,
                                 uint32_t d0, uint32_t d1, double mean, double std, double a,
                                 double b, double pa, double qb, double span, double lo,
                                 double hi) {
    fi_tn_f64 prm = {mean, std, a, b, pa, qb, span, lo, hi};
    rng_run(FI_RNG_RUNS(truncated_normal_f64), (char *)out, sizeof *out,
            2, n, k0, k1, d0, d1, &prm);
}
