/* Register tiles for the C kernels: a template, instantiated once per (element type, ISA).
 *
 * A tile computes C[0:m, 0:n] (+)= A[0:rows, 0:kc] @ B[0:kc, 0:cols] for one block of C held in
 * vector registers: rows x nvec accumulators of FI_W lanes (cols = nvec * FI_W). Per step k it
 * loads nvec vectors of row k of B, broadcasts each A[r, k] and issues rows * nvec fused
 * multiply-adds (explicit: the build has -ffp-contract=off). It is the C twin of
 * fastinit/_numba/_tile.py and takes the same addressing choices, as compile-time constants
 * (the function is always inlined, so every choice folds away):
 *
 *   amode FI_A_PACKED   A[r, k] = a[k*rows + r]                 (a packed micro-panel)
 *         FI_A_STRIDED  A[r, k] = a[r*a_rs + k*a_ks]            (rows >= m read row m-1)
 *         FI_A_TABLE    A[r, k] = a[r*a_rs + b_tab[k]]          (rows >= m read row m-1: an
 *                                                                 offset table, convolution)
 *         FI_A_ROWS     A[r, k] = a[b_tab[r] + k*a_ks]          (rows >= m read row m-1: a
 *                                                                 table of row offsets)
 *         FI_A_PANEL    A[r, k] = a[k*a_ks + r]                 (the first rows of a packed
 *                                                                 micro-panel a_ks rows tall)
 *   bmode FI_B_PACKED   B[k, j] = b[k*cols + j]                 (a packed micro-panel)
 *         FI_B_STRIDED  B[k, j] = b[k*b_step + j]               (all cols of a row are read)
 *         FI_B_TABLE    B[k, j] = b[b_tab[k] + j]               (offset table: convolution)
 *   C[r, j] = c[r*ldc + j], stored for r < m, j < n only (masked vector stores: no scalar
 *   clean-up loop); beta 0 overwrites C, else adds to it.
 *
 * Instantiation: define FI_T (float or double), FI_T_IS_DOUBLE (0 or 1), FI_ISA (FI_ISA_BASE,
 * FI_ISA_AVX2 or FI_ISA_AVX512) and FI_SFX (a name suffix, e.g. f32_avx512), then include this
 * file. It defines fi_tile_<FI_SFX>(...) and the vector macros FI_ATTR (the function target),
 * FI_V, FI_W (lanes), FI_VLOAD, FI_VSTORE, ... for the including code; the next inclusion
 * redefines them. Loads and stores take any address of an FI_T; FI_VSTREAM (a non-temporal
 * store) wants one aligned to the vector, and an _mm_sfence() before the data counts as
 * written.
 */
#include <stdint.h>
#include "dispatch.h"

#ifndef FI_GEMM_TILE_COMMON
#define FI_GEMM_TILE_COMMON
#if FI_X86
#include <immintrin.h>
#endif
#define FI_A_PACKED 0
#define FI_A_STRIDED 1
#define FI_A_PANEL 2
#define FI_A_TABLE 3
#define FI_A_ROWS 4
#define FI_B_PACKED 0
#define FI_B_STRIDED 1
#define FI_B_TABLE 2
#define FI_TILE_MAXR 16
#define FI_TILE_MAXV 4
#endif

#undef FI_ATTR
#undef FI_V
#undef FI_W
#undef FI_VZERO
#undef FI_VLOAD
#undef FI_VSTORE
#undef FI_VSET1
#undef FI_VFMA
#undef FI_VADD
#undef FI_VMASK
#undef FI_VMLOAD
#undef FI_VMSTORE
#undef FI_VSTREAM

/* ---- vector primitives of this instantiation ---- */
#if FI_ISA == FI_ISA_AVX512 && FI_X86
#define FI_ATTR FI_TARGET_AVX512
#if FI_T_IS_DOUBLE
#define FI_V __m512d
#define FI_W 8
#define FI_VZERO() _mm512_setzero_pd()
#define FI_VLOAD(p) _mm512_loadu_pd(p)
#define FI_VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define FI_VSET1(s) _mm512_set1_pd(s)
#define FI_VFMA(x, y, z) _mm512_fmadd_pd((x), (y), (z))
#define FI_VADD(x, y) _mm512_add_pd((x), (y))
#define FI_VMASK(nl) ((__mmask8)((nl) >= 8 ? 0xFFu : ((nl) <= 0 ? 0u : ((1u << (nl)) - 1u))))
#define FI_VMLOAD(p, nl) _mm512_maskz_loadu_pd(FI_VMASK(nl), (p))
#define FI_VMSTORE(p, v, nl) _mm512_mask_storeu_pd((p), FI_VMASK(nl), (v))
#define FI_VSTREAM(p, v) _mm512_stream_pd((p), (v))
#else
#define FI_V __m512
#define FI_W 16
#define FI_VZERO() _mm512_setzero_ps()
#define FI_VLOAD(p) _mm512_loadu_ps(p)
#define FI_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define FI_VSET1(s) _mm512_set1_ps(s)
#define FI_VFMA(x, y, z) _mm512_fmadd_ps((x), (y), (z))
#define FI_VADD(x, y) _mm512_add_ps((x), (y))
#define FI_VMASK(nl) ((__mmask16)((nl) >= 16 ? 0xFFFFu : ((nl) <= 0 ? 0u : ((1u << (nl)) - 1u))))
#define FI_VMLOAD(p, nl) _mm512_maskz_loadu_ps(FI_VMASK(nl), (p))
#define FI_VMSTORE(p, v, nl) _mm512_mask_storeu_ps((p), FI_VMASK(nl), (v))
#define FI_VSTREAM(p, v) _mm512_stream_ps((p), (v))
#endif

#elif FI_ISA == FI_ISA_AVX2 && FI_X86
#define FI_ATTR FI_TARGET_AVX2
#if FI_T_IS_DOUBLE
#define FI_V __m256d
#define FI_W 4
#define FI_VZERO() _mm256_setzero_pd()
#define FI_VLOAD(p) _mm256_loadu_pd(p)
#define FI_VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define FI_VSET1(s) _mm256_set1_pd(s)
#define FI_VFMA(x, y, z) _mm256_fmadd_pd((x), (y), (z))
#define FI_VADD(x, y) _mm256_add_pd((x), (y))
#define FI_VMASK(nl) _mm256_cmpgt_epi64(_mm256_set1_epi64x(nl), _mm256_setr_epi64x(0, 1, 2, 3))
#define FI_VMLOAD(p, nl) _mm256_maskload_pd((p), FI_VMASK(nl))
#define FI_VMSTORE(p, v, nl) _mm256_maskstore_pd((p), FI_VMASK(nl), (v))
#define FI_VSTREAM(p, v) _mm256_stream_pd((p), (v))
#else
#define FI_V __m256
#define FI_W 8
#define FI_VZERO() _mm256_setzero_ps()
#define FI_VLOAD(p) _mm256_loadu_ps(p)
#define FI_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define FI_VSET1(s) _mm256_set1_ps(s)
#define FI_VFMA(x, y, z) _mm256_fmadd_ps((x), (y), (z))
#define FI_VADD(x, y) _mm256_add_ps((x), (y))
#define FI_VMASK(nl) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(nl)), \
                                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define FI_VMLOAD(p, nl) _mm256_maskload_ps((p), FI_VMASK(nl))
#define FI_VMSTORE(p, v, nl) _mm256_maskstore_ps((p), FI_VMASK(nl), (v))
#define FI_VSTREAM(p, v) _mm256_stream_ps((p), (v))
#endif

#else /* portable: 16-byte GCC vectors, multiply then add (no FMA assumed) */
#define FI_ATTR
#if FI_T_IS_DOUBLE
#define FI_W 2
#else
#define FI_W 4
#endif
typedef FI_T FI_CAT(fi_vbase_, FI_SFX) __attribute__((vector_size(16), aligned(sizeof(FI_T))));
typedef FI_T FI_CAT(fi_vmem_, FI_SFX) FI_VEC_OF(FI_T, 16); /* for loads and stores */
#define FI_V FI_CAT(fi_vbase_, FI_SFX)
#define FI_VZERO() ((FI_V){0})
#define FI_VLOAD(p) ((FI_V) * (const FI_CAT(fi_vmem_, FI_SFX) *)(p))
#define FI_VSTORE(p, v) (*(FI_CAT(fi_vmem_, FI_SFX) *)(p) = (v))
#define FI_VSET1(s) ((s) - (FI_V){0})
#define FI_VFMA(x, y, z) ((x) * (y) + (z))
#define FI_VADD(x, y) ((x) + (y))
#define FI_VMLOAD(p, nl) FI_CAT(fi_vmload_, FI_SFX)((p), (nl))
#define FI_VMSTORE(p, v, nl) FI_CAT(fi_vmstore_, FI_SFX)((p), (v), (nl))
#if FI_X86 && FI_T_IS_DOUBLE
#define FI_VSTREAM(p, v) _mm_stream_pd((p), (__m128d)(v))
#elif FI_X86
#define FI_VSTREAM(p, v) _mm_stream_ps((p), (__m128)(v))
#else
#define FI_VSTREAM(p, v) FI_VSTORE(p, v)
#endif
FI_INLINE FI_V FI_CAT(fi_vmload_, FI_SFX)(const FI_T *p, int64_t nl) {
    FI_V v = FI_VZERO();
    for (int64_t i = 0; i < nl && i < FI_W; i++) v[i] = p[i];
    return v;
}
FI_INLINE void FI_CAT(fi_vmstore_, FI_SFX)(FI_T *p, FI_V v, int64_t nl) {
    for (int64_t i = 0; i < nl && i < FI_W; i++) p[i] = v[i];
}
#endif

/* ---- the tile ----
 * fi_tile_bias_: the same, plus a row vector added to every row of the tile (bias[j], j < n;
 * NULL: none) as the result is stored: C = (C + bias) + AB when beta, else bias + AB, the
 * values a bias written into C first and the product added on would give, without that pass. */
FI_ATTR FI_INLINE void FI_CAT(fi_tile_bias_, FI_SFX)(
    const int rows, const int nvec, const int amode, const int bmode, int64_t kc,
    const FI_T *restrict a, int64_t a_rs, int64_t a_ks,
    const FI_T *restrict b, int64_t b_step, const int64_t *restrict b_tab,
    FI_T *restrict c, int64_t ldc, int64_t m, int64_t n, int beta, const FI_T *restrict bias)
{
    /* c[r*ldc + j] (+)= sum_k A[r, k] B[k, j]: see the addressing table at the top */
    FI_V acc[FI_TILE_MAXR][FI_TILE_MAXV];
    const FI_T *arow[FI_TILE_MAXR];
    const int cols = nvec * FI_W;
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < nvec; v++) acc[r][v] = FI_VZERO();
        if (amode == FI_A_STRIDED || amode == FI_A_TABLE) arow[r] = a + (r < m ? r : m - 1) * a_rs;
        if (amode == FI_A_ROWS) arow[r] = a + b_tab[r < m ? r : m - 1];
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const FI_T *brow = bmode == FI_B_PACKED ? b + k * cols
                         : bmode == FI_B_STRIDED ? b + k * b_step : b + b_tab[k];
        FI_V bv[FI_TILE_MAXV];
#pragma GCC unroll 4
        for (int v = 0; v < nvec; v++) bv[v] = FI_VLOAD(brow + v * FI_W);
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            const FI_V s = FI_VSET1(amode == FI_A_PACKED ? a[k * rows + r]
                                   : amode == FI_A_PANEL ? a[k * a_ks + r]
                                   : amode == FI_A_TABLE ? arow[r][b_tab[k]] : arow[r][k * a_ks]);
#pragma GCC unroll 4
            for (int v = 0; v < nvec; v++) acc[r][v] = FI_VFMA(s, bv[v], acc[r][v]);
        }
    }
    FI_V bv[FI_TILE_MAXV];
    if (bias) {
#pragma GCC unroll 4
        for (int v = 0; v < nvec; v++) bv[v] = FI_VMLOAD(bias + v * FI_W, n - v * FI_W);
    }
    if (m == rows && n == cols) {
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
#pragma GCC unroll 4
            for (int v = 0; v < nvec; v++) {
                FI_T *p = c + r * ldc + v * FI_W;
                if (bias)
                    FI_VSTORE(p, FI_VADD(acc[r][v], beta ? FI_VADD(FI_VLOAD(p), bv[v]) : bv[v]));
                else
                    FI_VSTORE(p, beta ? FI_VADD(acc[r][v], FI_VLOAD(p)) : acc[r][v]);
            }
        }
    } else {
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            if (r < m) {
#pragma GCC unroll 4
                for (int v = 0; v < nvec; v++) {
                    FI_T *p = c + r * ldc + v * FI_W;
                    const int64_t nl = n - v * FI_W;
                    if (bias)
                        FI_VMSTORE(p, FI_VADD(acc[r][v], beta ? FI_VADD(FI_VMLOAD(p, nl), bv[v])
                                                              : bv[v]), nl);
                    else
                        FI_VMSTORE(p, beta ? FI_VADD(acc[r][v], FI_VMLOAD(p, nl)) : acc[r][v],
                                   nl);
                }
            }
        }
    }
}

FI_ATTR FI_INLINE void FI_CAT(fi_tile_, FI_SFX)(
    const int rows, const int nvec, const int amode, const int bmode, int64_t kc,
    const FI_T *restrict a, int64_t a_rs, int64_t a_ks,
    const FI_T *restrict b, int64_t b_step, const int64_t *restrict b_tab,
    FI_T *restrict c, int64_t ldc, int64_t m, int64_t n, int beta)
{
    FI_CAT(fi_tile_bias_, FI_SFX)(rows, nvec, amode, bmode, kc, a, a_rs, a_ks, b, b_step, b_tab,
                                  c, ldc, m, n, beta, NULL);
}

/* ---- block transpose for packing ----
 * For kk < FI_W, r < rows:  dst[kk*d_ld + r] = src[min(r, valid-1)*s_ld + kk]
 * Row segments of a row-major array become the k-major layout of a packed panel: FI_W vector
 * loads per group of FI_W rows, log2(FI_W) rounds of two-input shuffles (round h swaps bit h of
 * the row index with bit h of the lane index), FI_W vector stores. When rows is not a multiple
 * of FI_W the last group writes its extra lanes too: into the next kk's row (stores run in
 * ascending kk and overwrite them) or, after the last kk, up to FI_W values past the block;
 * the caller leaves room. Rows >= valid repeat row valid-1 (padding of a partial panel). */
#undef FI_VI
#undef FI_SHUF_LO
#undef FI_SHUF_HI
#undef FI_MASKS
#if FI_T_IS_DOUBLE
typedef int64_t FI_CAT(fi_vi_, FI_SFX) __attribute__((vector_size(FI_W * 8)));
#else
typedef int32_t FI_CAT(fi_vi_, FI_SFX) __attribute__((vector_size(FI_W * 4)));
#endif
#define FI_VI FI_CAT(fi_vi_, FI_SFX)
#define FI_SHUF_LO(h, j) (((j) & (h)) ? FI_W + (j) - (h) : (j))
#define FI_SHUF_HI(h, j) (((j) & (h)) ? FI_W + (j) : (j) + (h))
#if FI_W == 16
#define FI_MASKS(F, h) {F(h, 0), F(h, 1), F(h, 2), F(h, 3), F(h, 4), F(h, 5), F(h, 6), F(h, 7), \
    F(h, 8), F(h, 9), F(h, 10), F(h, 11), F(h, 12), F(h, 13), F(h, 14), F(h, 15)}
#elif FI_W == 8
#define FI_MASKS(F, h) {F(h, 0), F(h, 1), F(h, 2), F(h, 3), F(h, 4), F(h, 5), F(h, 6), F(h, 7)}
#elif FI_W == 4
#define FI_MASKS(F, h) {F(h, 0), F(h, 1), F(h, 2), F(h, 3)}
#else
#define FI_MASKS(F, h) {F(h, 0), F(h, 1)}
#endif

/* Round h (a power of two below FI_W) of the transpose of v[0..FI_W). */
FI_ATTR FI_INLINE void FI_CAT(fi_transpose_round_, FI_SFX)(FI_V *v, const int h)
{
    const FI_VI lo = FI_MASKS(FI_SHUF_LO, h), hi = FI_MASKS(FI_SHUF_HI, h);
#pragma GCC unroll 16
    for (int i = 0; i < FI_W; i++) {
        if (i & h) continue;
        const FI_V x = v[i], y = v[i + h];
        v[i] = __builtin_shuffle(x, y, lo);
        v[i + h] = __builtin_shuffle(x, y, hi);
    }
}

FI_ATTR FI_INLINE void FI_CAT(fi_transpose_, FI_SFX)(
    const int rows, const FI_T *restrict src, int64_t s_ld, int64_t valid,
    FI_T *restrict dst, int64_t d_ld)
{
    enum { groups = 4 };
    FI_V v[groups][FI_W];
    const int ng = (rows + FI_W - 1) / FI_W;
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++) {
#pragma GCC unroll 16
        for (int i = 0; i < FI_W; i++) {
            const int64_t r = g * FI_W + i < valid ? g * FI_W + i : valid - 1;
            v[g][i] = FI_VLOAD(src + r * s_ld);
        }
#pragma GCC unroll 4
        for (int lg = 0; lg < __builtin_ctz(FI_W); lg++)
            FI_CAT(fi_transpose_round_, FI_SFX)(v[g], 1 << lg);
    }
#pragma GCC unroll 16
    for (int kk = 0; kk < FI_W; kk++) {
#pragma GCC unroll 4
        for (int g = 0; g < ng; g++) FI_VSTORE(dst + kk * d_ld + g * FI_W, v[g][kk]);
    }
}
