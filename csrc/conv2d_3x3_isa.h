/* Winograd F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7) kernels of one (element type, ISA)
 * instantiation: included by conv2d_3x3.c right after gemm_tile.h (the register tile
 * fi_tile_<FI_SFX> and the vector macros), with FI_T, FI_SFX and the GEMM tile FI_WR x FI_WV
 * (tiles x vectors of output channels) defined. The 7x7 transforms are in conv2d_wino7_isa.h
 * (included below); the driver (fi_wino_forward_, fi_wino_run_) and the GEMMs serve all three.
 * See conv2d_3x3.c for the algorithm and the layouts.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)

/* subtraction and product of vectors (gemm_tile.h has fma and add only) */
#undef FI_WSUB
#undef FI_WMUL
#if FI_ISA == FI_ISA_AVX512 && FI_X86
#if FI_T_IS_DOUBLE
#define FI_WSUB(x, y) _mm512_sub_pd((x), (y))
#define FI_WMUL(x, y) _mm512_mul_pd((x), (y))
#else
#define FI_WSUB(x, y) _mm512_sub_ps((x), (y))
#define FI_WMUL(x, y) _mm512_mul_ps((x), (y))
#endif
#elif FI_ISA == FI_ISA_AVX2 && FI_X86
#if FI_T_IS_DOUBLE
#define FI_WSUB(x, y) _mm256_sub_pd((x), (y))
#define FI_WMUL(x, y) _mm256_mul_pd((x), (y))
#else
#define FI_WSUB(x, y) _mm256_sub_ps((x), (y))
#define FI_WMUL(x, y) _mm256_mul_ps((x), (y))
#endif
#else
#define FI_WSUB(x, y) ((x) - (y))
#define FI_WMUL(x, y) ((x) * (y))
#endif

#undef FI_WINO_TR16
#if FI_ISA == FI_ISA_AVX512 && FI_X86 && !FI_T_IS_DOUBLE
#define FI_WINO_TR16 1
#ifndef FI_WINO_TRANSPOSE16_DEFINED
#define FI_WINO_TRANSPOSE16_DEFINED
/* r[i] (16 rows of 16 floats) := its transpose, in registers */
FI_ATTR static inline void fi_wino_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}
#endif
#endif

/* Padded image, channels last: xh[(yy*Wp + xx)*Cp + c] = x[c, yy - pt, xx - pl] (0 outside, and
 * for the padding channels C <= c < Cp), for padded rows y0 <= yy < y1. x: one image (C, H, W). */
FI_ATTR static void FI_FN(fi_wino_pad_hwc_)(FI_T *restrict xh, const FI_T *restrict x,
                                            int64_t C, int64_t Cp, int64_t H, int64_t W,
                                            int64_t pt, int64_t pl, int64_t Wp, int64_t y0,
                                            int64_t y1)
{
    for (int64_t yy = y0; yy < y1; yy++) {
        FI_T *row = xh + yy * Wp * Cp;
        const int64_t iy = yy - pt;
        if (iy < 0 || iy >= H) {
            memset(row, 0, (size_t)(Wp * Cp) * sizeof(FI_T));
            continue;
        }
        const int64_t x0 = pl < Wp ? pl : Wp, x1 = pl + W < Wp ? pl + W : Wp;
        memset(row, 0, (size_t)(x0 * Cp) * sizeof(FI_T));
        memset(row + x1 * Cp, 0, (size_t)((Wp - x1) * Cp) * sizeof(FI_T));
        /* transpose x[:, iy, 0:n] (C x n) into row[x0*Cp:] (n x Cp) */
        const FI_T *src = x + iy * W;
        const int64_t n = x1 - x0, HW = H * W;
        int64_t j0 = 0;
#ifdef FI_WINO_TR16
        for (; j0 + 16 <= n; j0 += 16) {
            int64_t c0 = 0;
            for (; c0 + 16 <= C; c0 += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (c0 + i) * HW + j0);
                fi_wino_transpose16(r);
                for (int i = 0; i < 16; i++) _mm512_storeu_ps(row + (x0 + j0 + i) * Cp + c0, r[i]);
            }
            for (int64_t j = j0; j < j0 + 16; j++) {
                FI_T *d = row + (x0 + j) * Cp;
                for (int64_t c = c0; c < C; c++) d[c] = src[c * HW + j];
                for (int64_t c = C; c < Cp; c++) d[c] = 0;
            }
        }
#endif
        for (int64_t j = j0; j < n; j++) {
            FI_T *d = row + (x0 + j) * Cp;
            for (int64_t c = 0; c < C; c++) d[c] = src[c * HW + j];
            for (int64_t c = C; c < Cp; c++) d[c] = 0;
        }
    }
}

/* fi_wino_pad_hwc_ for the blocks of whole small images: xh was zeroed (once per call: the
 * same positions stay zero for every image), only the pixels of x are written; pixels beyond
 * the Hp x Wp buffer are not read by any tile and are skipped. AVX-512 float32: 16 channels x
 * 16 pixels (of the flattened image) transposed in registers. */
FI_ATTR static void FI_FN(fi_wino_pad_small_)(FI_T *restrict xh, const FI_T *restrict x,
                                              int64_t C, int64_t Cp, int64_t H, int64_t W,
                                              int64_t pt, int64_t pl, int64_t Hp, int64_t Wp)
{
    const int64_t HW = H * W;
    int64_t c0 = 0;
#ifdef FI_WINO_TR16
    for (; c0 + 16 <= C; c0 += 16)
        for (int64_t q0 = 0; q0 < HW; q0 += 16) {
            const int64_t nq = HW - q0 < 16 ? HW - q0 : 16;
            const __mmask16 mask = (__mmask16)((1u << nq) - 1u);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = _mm512_maskz_loadu_ps(mask, x + (c0 + i) * HW + q0);
            fi_wino_transpose16(r);   /* r[i]: the 16 channels of pixel q0 + i */
            for (int64_t i = 0; i < nq; i++) {
                const int64_t yy = (q0 + i) / W + pt, xx = (q0 + i) % W + pl;
                if (yy < Hp && xx < Wp) _mm512_storeu_ps(xh + (yy * Wp + xx) * Cp + c0, r[i]);
            }
        }
#endif
    for (int64_t q = 0; q < HW && c0 < C; q++) {
        const int64_t yy = q / W + pt, xx = q % W + pl;
        if (yy >= Hp || xx >= Wp) continue;
        FI_T *d = xh + (yy * Wp + xx) * Cp;
        for (int64_t c = c0; c < C; c++) d[c] = x[c * HW + q];
    }
}

/* B^T d (one axis) for the 6 values d0..d5: t = B^T d with
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *          0 4 0 -5 0 1]                                   (Lavin & Gray 2015, points 0 +-1 +-2) */
#define FI_WINO_BT(d0, d1, d2, d3, d4, d5, t0, t1, t2, t3, t4, t5)                             \
    do {                                                                                        \
        const FI_V a_ = FI_VFMA(FI_VSET1((FI_T)-4), d2, d4);   /* d4 - 4 d2 */                 \
        const FI_V b_ = FI_VFMA(FI_VSET1((FI_T)-4), d1, d3);   /* d3 - 4 d1 */                 \
        const FI_V c_ = FI_WSUB(d4, d2);                                                        \
        const FI_V e_ = FI_WMUL(FI_VSET1((FI_T)2), FI_WSUB(d3, d1));                            \
        t0 = FI_VFMA(FI_VSET1((FI_T)4), d0, FI_VFMA(FI_VSET1((FI_T)-5), d2, d4));               \
        t1 = FI_VADD(a_, b_);                                                                   \
        t2 = FI_WSUB(a_, b_);                                                                   \
        t3 = FI_VADD(c_, e_);                                                                   \
        t4 = FI_WSUB(c_, e_);                                                                   \
        t5 = FI_VFMA(FI_VSET1((FI_T)4), d1, FI_VFMA(FI_VSET1((FI_T)-5), d3, d5));               \
    } while (0)

/* A^T m (one axis), 6 values -> 4: A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1] */
#define FI_WINO_AT(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                                      \
    do {                                                                                        \
        const FI_V p_ = FI_VADD(m1, m2), q_ = FI_WSUB(m1, m2);                                  \
        const FI_V r_ = FI_VADD(m3, m4), s_ = FI_WSUB(m3, m4);                                  \
        y0 = FI_VADD(FI_VADD(m0, p_), r_);                                                      \
        y1 = FI_VFMA(FI_VSET1((FI_T)2), s_, q_);                                                \
        y2 = FI_VFMA(FI_VSET1((FI_T)4), r_, p_);                                                \
        y3 = FI_VADD(FI_VFMA(FI_VSET1((FI_T)8), s_, q_), m5);                                   \
    } while (0)

/* V[(t*36 + xi)*Cp + c] = (B^T d B)[xi] for the tiles tile0..tile0+nt-1 (t local to the
 * block), tile t reading the 6x6 patch at (mt*ty, mt*tx): rows first (6 loads, 6 results into
 * a 36-vector buffer in L1), then columns. B^T is the same for F(4x4,3x3) and F(2x2,5x5). */
FI_ATTR static void FI_FN(fi_wino_input_)(FI_T *restrict V, const FI_T *restrict xh, int64_t Cp,
                                          int64_t Wp, int64_t TW, int64_t tile0, int64_t nt,
                                          int64_t TB, int64_t mt)
{
    FI_T buf[36 * FI_W] __attribute__((aligned(64)));
    for (int64_t t = 0; t < nt; t++) {
        const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
        const FI_T *base = xh + ((mt * ty) * Wp + mt * tx) * Cp;
        for (int64_t c0 = 0; c0 < Cp; c0 += FI_W) {
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++) {
                const FI_T *p = base + i * Wp * Cp + c0;
                FI_V r0, r1, r2, r3, r4, r5;
                FI_WINO_BT(FI_VLOAD(p), FI_VLOAD(p + Cp), FI_VLOAD(p + 2 * Cp),
                           FI_VLOAD(p + 3 * Cp), FI_VLOAD(p + 4 * Cp), FI_VLOAD(p + 5 * Cp),
                           r0, r1, r2, r3, r4, r5);
                FI_VSTORE(buf + (i * 6 + 0) * FI_W, r0);
                FI_VSTORE(buf + (i * 6 + 1) * FI_W, r1);
                FI_VSTORE(buf + (i * 6 + 2) * FI_W, r2);
                FI_VSTORE(buf + (i * 6 + 3) * FI_W, r3);
                FI_VSTORE(buf + (i * 6 + 4) * FI_W, r4);
                FI_VSTORE(buf + (i * 6 + 5) * FI_W, r5);
            }
            FI_T *q = V + t * 36 * Cp + c0;
            const int64_t xs = Cp;
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++) {
                FI_V v0, v1, v2, v3, v4, v5;
                FI_WINO_BT(FI_VLOAD(buf + (0 + j) * FI_W), FI_VLOAD(buf + (6 + j) * FI_W),
                           FI_VLOAD(buf + (12 + j) * FI_W), FI_VLOAD(buf + (18 + j) * FI_W),
                           FI_VLOAD(buf + (24 + j) * FI_W), FI_VLOAD(buf + (30 + j) * FI_W),
                           v0, v1, v2, v3, v4, v5);
                FI_VSTORE(q + (0 * 6 + j) * xs, v0);
                FI_VSTORE(q + (1 * 6 + j) * xs, v1);
                FI_VSTORE(q + (2 * 6 + j) * xs, v2);
                FI_VSTORE(q + (3 * 6 + j) * xs, v3);
                FI_VSTORE(q + (4 * 6 + j) * xs, v4);
                FI_VSTORE(q + (5 * 6 + j) * xs, v5);
            }
        }
    }
}

/* M[:, xi] (nt x K) = V[:, xi] (nt x C) @ U[xi] (C x K) for the npos xi (36, or 64 for
 * F(2x2,7x7)); the tiles' V rows are vts apart (npos*Cp, plus a pad for 7x7), M rows mts;
 * U[xi][c][k] at U[xi*ux + c*uc + k] (see fi_wino_filter_) */
FI_ATTR static void FI_FN(fi_wino_gemm_)(FI_T *restrict M, const FI_T *restrict V,
                                         const FI_T *restrict U, int64_t C, int64_t Cp,
                                         int64_t K, int64_t Kp, int64_t nt, int64_t uc,
                                         int64_t ux, int64_t npos, int64_t vts, int64_t mts)
{
    const int64_t cols = FI_WV * FI_W;
    if (K <= FI_W) {   /* one vector of output channels: a taller tile, no wasted columns */
        for (int64_t xi = 0; xi < npos; xi++)
            for (int64_t t0 = 0; t0 < nt; t0 += FI_WR1) {
                const int64_t m = nt - t0 < FI_WR1 ? nt - t0 : FI_WR1;
                FI_CAT(fi_tile_, FI_SFX)(FI_WR1, 1, FI_A_STRIDED, FI_B_STRIDED, C,
                                         V + t0 * vts + xi * Cp, vts, 1, U + xi * ux, uc, 0,
                                         M + t0 * mts + xi * Kp, mts, m, K, 0);
            }
        return;
    }
    for (int64_t xi = 0; xi < npos; xi++)
        for (int64_t t0 = 0; t0 < nt; t0 += FI_WR) {
            const int64_t m = nt - t0 < FI_WR ? nt - t0 : FI_WR;
            for (int64_t k0 = 0; k0 < K; k0 += cols)
                FI_CAT(fi_tile_, FI_SFX)(FI_WR, FI_WV, FI_A_STRIDED, FI_B_STRIDED, C,
                                         V + t0 * vts + xi * Cp, vts, 1, U + xi * ux + k0, uc,
                                         0, M + t0 * mts + xi * Kp + k0, mts, m,
                                         K - k0 < cols ? K - k0 : cols, 0);
        }
}

/* y[k, 4ty + i, 4tx + j] = (A^T M A)[i, j] + b[k] for the tiles of the block: columns first
 * (24 vectors stay in registers), then rows; the 16 pixel vectors of FI_W output channels are
 * transposed into FI_W channel vectors of 16 pixels and stored as 4 rows of 4. */
FI_ATTR static void FI_FN(fi_wino_output_)(FI_T *restrict y, const FI_T *restrict M,
                                           const FI_T *restrict biasp, int64_t K, int64_t Kp,
                                           int64_t OH, int64_t OW, int64_t TW, int64_t tile0,
                                           int64_t nt, int64_t TB)
{
    FI_T tmp[16 * FI_W] __attribute__((aligned(64)));
    const int64_t xs = Kp;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
        const int64_t rows = OH - 4 * ty < 4 ? OH - 4 * ty : 4;
        const int64_t cols = OW - 4 * tx < 4 ? OW - 4 * tx : 4;
        for (int64_t k0 = 0; k0 < K; k0 += FI_W) {
            const int64_t nl = K - k0 < FI_W ? K - k0 : FI_W;
            const FI_T *m = M + t * 36 * Kp + k0;
            FI_V u[4][6];
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++)
                FI_WINO_AT(FI_VLOAD(m + (0 + j) * xs), FI_VLOAD(m + (6 + j) * xs),
                           FI_VLOAD(m + (12 + j) * xs), FI_VLOAD(m + (18 + j) * xs),
                           FI_VLOAD(m + (24 + j) * xs), FI_VLOAD(m + (30 + j) * xs), u[0][j],
                           u[1][j], u[2][j], u[3][j]);
            const FI_V bv = FI_VLOAD(biasp + k0);   /* biasp has Kp entries (zeros when no bias) */
            FI_V out[16];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                FI_V y0, y1, y2, y3;
                FI_WINO_AT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], y0, y1, y2, y3);
                out[i * 4 + 0] = FI_VADD(y0, bv);
                out[i * 4 + 1] = FI_VADD(y1, bv);
                out[i * 4 + 2] = FI_VADD(y2, bv);
                out[i * 4 + 3] = FI_VADD(y3, bv);
            }
            FI_T *dst = y + (k0 * OH + 4 * ty) * OW + 4 * tx;
#ifdef FI_WINO_TR16
            if (rows == 4 && cols == 4) {
                fi_wino_transpose16(out);  /* out[l]: the 4x4 pixels of channel k0 + l */
                if (OW == 4) {   /* the 4 rows are contiguous: one store per channel */
                    for (int64_t l = 0; l < nl; l++) _mm512_storeu_ps(dst + l * OH * OW, out[l]);
                    continue;
                }
                for (int64_t l = 0; l < nl; l++) {
                    FI_T *o = dst + l * OH * OW;
                    _mm_storeu_ps(o, _mm512_castps512_ps128(out[l]));
                    _mm_storeu_ps(o + OW, _mm512_extractf32x4_ps(out[l], 1));
                    _mm_storeu_ps(o + 2 * OW, _mm512_extractf32x4_ps(out[l], 2));
                    _mm_storeu_ps(o + 3 * OW, _mm512_extractf32x4_ps(out[l], 3));
                }
                continue;
            }
#endif
            for (int p = 0; p < 16; p++) FI_VSTORE(tmp + p * FI_W, out[p]);
            for (int64_t l = 0; l < nl; l++) {
                FI_T *o = dst + l * OH * OW;
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++) o[i * OW + j] = tmp[(i * 4 + j) * FI_W + l];
            }
        }
    }
}

#ifndef FI_WINO_WD8_DEFINED
#define FI_WINO_WD8_DEFINED
/* 8 doubles: the filter transforms run in float64, 8 output (or input) channels at once */
typedef double fi_wd8 __attribute__((vector_size(64)));
typedef double fi_wd8u __attribute__((vector_size(64), aligned(8)));   /* unaligned access */
typedef float fi_wf8 __attribute__((vector_size(32)));
typedef float fi_wf8u __attribute__((vector_size(32), aligned(4)));
#endif

/* the 8 lanes of v into p[0..7] as FI_T, and the 8 FI_T at p as float64 (whole vectors: lane
 * by lane, gcc goes through the stack) */
#undef FI_WD8_STORE
#undef FI_WD8_LOAD
#if FI_T_IS_DOUBLE
#define FI_WD8_STORE(p, v) (*(fi_wd8u *)(p) = (v))
#define FI_WD8_LOAD(p) (*(const fi_wd8u *)(p))
#else
#define FI_WD8_STORE(p, v) (*(fi_wf8u *)(p) = __builtin_convertvector((v), fi_wf8))
#define FI_WD8_LOAD(p) __builtin_convertvector(*(const fi_wf8u *)(p), fi_wd8)
#endif

/* U[xi*ux + c*uc + k0 + l] = (G g G^T)[xi] for l < 8 (those with k0 + l < Kp are stored),
 * g[rs] the r x r filter values of the 8 output channels: st[rs*64 + l], float64 inside */
#ifndef FI_WINO_G3
/* G g along one axis of a 3x3 filter, 3 values -> 6 (G of F(4x4,3x3), see conv2d_3x3.c):
 * [g0/4, -(g0+g1+g2)/6, -(g0-g1+g2)/6, g0/24 + g1/12 + g2/6, g0/24 - g1/12 + g2/6, g2] */
#define FI_WINO_G3(g0, g1, g2, t)                                                               \
    do {                                                                                        \
        const fi_wd8 e_ = (g0) + (g2), f_ = (g0) * (1.0 / 24) + (g2) * (1.0 / 6);             \
        const fi_wd8 h_ = (g1) * (1.0 / 12);                                                    \
        t[0] = (g0) * 0.25;                                                                     \
        t[1] = (e_ + (g1)) * (-1.0 / 6);                                                        \
        t[2] = (e_ - (g1)) * (-1.0 / 6);                                                        \
        t[3] = f_ + h_;                                                                         \
        t[4] = f_ - h_;                                                                         \
        t[5] = (g2);                                                                            \
    } while (0)
/* G^T m along one axis, 6 values -> 3: [m0/4 - (m1+m2)/6 + (m3+m4)/24,
 * (m2-m1)/6 + (m3-m4)/12, -(m1+m2)/6 + (m3+m4)/6 + m5] */
#define FI_WINO_GT3(m0, m1, m2, m3, m4, m5, o)                                                  \
    do {                                                                                        \
        const fi_wd8 p_ = ((m1) + (m2)) * (1.0 / 6), s_ = (m3) + (m4);                          \
        o[0] = (m0) * 0.25 - p_ + s_ * (1.0 / 24);                                              \
        o[1] = ((m2) - (m1)) * (1.0 / 6) + ((m3) - (m4)) * (1.0 / 12);                          \
        o[2] = s_ * (1.0 / 6) - p_ + (m5);                                                      \
    } while (0)
#endif

/* F(4x4,3x3) in the data type, FI_W output channels at once: U[xi*ux + c*uc + k0 + l] =
 * (G g G^T)[xi] with g[rs] = st[rs*FI_W + l], l < nk (G's structure spelt out as in
 * FI_WINO_G3). Rounding: a few units of the last place of U, far below the transforms' own
 * (float32 Winograd carries a few 1e-6 relative, see the top of conv2d_3x3.c). */
#undef FI_WINO_G3V
#define FI_WINO_G3V(g0, g1, g2, t)                                                              \
    do {                                                                                        \
        const FI_V e_ = FI_VADD(g0, g2);                                                        \
        const FI_V f_ = FI_VFMA(g0, FI_VSET1((FI_T)(1.0 / 24)),                                 \
                                FI_WMUL(g2, FI_VSET1((FI_T)(1.0 / 6))));                        \
        const FI_V h_ = FI_WMUL(g1, FI_VSET1((FI_T)(1.0 / 12)));                                \
        t[0] = FI_WMUL(g0, FI_VSET1((FI_T)0.25));                                               \
        t[1] = FI_WMUL(FI_VADD(e_, g1), FI_VSET1((FI_T)(-1.0 / 6)));                            \
        t[2] = FI_WMUL(FI_WSUB(e_, g1), FI_VSET1((FI_T)(-1.0 / 6)));                            \
        t[3] = FI_VADD(f_, h_);                                                                 \
        t[4] = FI_WSUB(f_, h_);                                                                 \
        t[5] = (g2);                                                                            \
    } while (0)
FI_ATTR FI_INLINE void FI_FN(fi_wino_filter_item3_)(FI_T *restrict U, const FI_T *restrict st,
                                                    int64_t uc, int64_t ux, int64_t Kp,
                                                    int64_t c, int64_t k0, int64_t nk)
{
    FI_V t[3][6];   /* t[s][i] = (G g)[i, s] */
    for (int s = 0; s < 3; s++)
        FI_WINO_G3V(FI_VLOAD(st + s * FI_W), FI_VLOAD(st + (3 + s) * FI_W),
                    FI_VLOAD(st + (6 + s) * FI_W), t[s]);
    for (int i = 0; i < 6; i++) {
        FI_V u[6];
        FI_WINO_G3V(t[0][i], t[1][i], t[2][i], u);
        for (int j = 0; j < 6; j++) {
            FI_T *d = U + c * uc + (i * 6 + j) * ux + k0;
            if (nk == FI_W)
                FI_VSTORE(d, u[j]);
            else
                FI_VMSTORE(d, u[j], nk);
        }
    }
}

FI_ATTR FI_INLINE void FI_FN(fi_wino_filter_item_)(FI_T *restrict U, const double *restrict st,
                                                   int64_t uc, int64_t ux, int64_t Kp,
                                                   const double *restrict G, const int r,
                                                   int64_t c, int64_t k0)
{
    fi_wd8 tmp[6][5];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)          /* tmp = G g (over the kernel rows) */
#pragma GCC unroll 5
        for (int s = 0; s < r; s++) {
            fi_wd8 sum = *(const fi_wd8 *)(st + s * 64) * G[i * r];
#pragma GCC unroll 5
            for (int a = 1; a < r; a++)
                sum += G[i * r + a] * *(const fi_wd8 *)(st + (a * r + s) * 64);
            tmp[i][s] = sum;
        }
    const int64_t nk = Kp - k0 < 8 ? Kp - k0 : 8;
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)          /* U = tmp G^T (over the kernel columns) */
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
            fi_wd8 sum = tmp[i][0] * G[j * r];
#pragma GCC unroll 5
            for (int s = 1; s < r; s++) sum += tmp[i][s] * G[j * r + s];
            FI_T *u = U + c * uc + (i * 6 + j) * ux + k0;
            if (nk == 8)
                FI_WD8_STORE(u, sum);
            else
                for (int l = 0; l < nk; l++) u[l] = (FI_T)sum[l];
        }
}

/* U[xi*ux + c*uc + k] = (G g G^T)[xi] of the r x r filter from input
 * channel c to output channel k: g = w[k, c] (w is (K, C, r, r)), or, when transposed, w[c, k]
 * flipped (w is (C, K, r, r)); G is 6 x r; columns K..Kp-1 are zero. Per input channel (an
 * orphaned omp for: called inside a parallel region), 64 output channels at a time are staged
 * as float64, filter value major, then transformed 8 channels (one vector) at once. */
FI_ATTR static void FI_FN(fi_wino_filter_)(FI_T *U, const FI_T *w, int64_t C, int64_t K,
                                           int64_t Kp, int64_t uc, int64_t ux, int transposed,
                                           const double *Gp, int r)
{
    double G[30];   /* a local copy: stores into U cannot alias it */
    for (int i = 0; i < 6 * r; i++) G[i] = Gp[i];
    const int rr = r * r;
    if (r == 3) {   /* float32: in float32, FI_W channels at once (FI_WINO_G3V) */
        const int64_t nkb = (Kp + FI_W - 1) / FI_W;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < C * nkb; item++) {
            const int64_t c = item / nkb, k0 = (item % nkb) * FI_W;
            const int64_t nk = Kp - k0 < FI_W ? Kp - k0 : FI_W;
            FI_T st[9 * FI_W] __attribute__((aligned(64)));
            for (int64_t l = 0; l < FI_W; l++) {
                const int64_t k = k0 + l;
                if (k >= K)
                    for (int rs = 0; rs < 9; rs++) st[rs * FI_W + l] = 0;
                else if (transposed)
                    for (int rs = 0; rs < 9; rs++) st[rs * FI_W + l] = w[(c * K + k) * 9 + 8 - rs];
                else
                    for (int rs = 0; rs < 9; rs++) st[rs * FI_W + l] = w[(k * C + c) * 9 + rs];
            }
            FI_FN(fi_wino_filter_item3_)(U, st, uc, ux, Kp, c, k0, nk);
        }
        return;
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double st[25 * 64] __attribute__((aligned(64)));
        for (int64_t kc = 0; kc < Kp; kc += 64) {
            const int64_t nk = Kp - kc < 64 ? Kp - kc : 64;
            for (int64_t l = 0; l < (nk + 7) / 8 * 8; l++) {
                const int64_t k = kc + l;
                if (k >= K)
                    for (int rs = 0; rs < rr; rs++) st[rs * 64 + l] = 0.0;
                else if (transposed)
                    for (int rs = 0; rs < rr; rs++)
                        st[rs * 64 + l] = (double)w[(c * K + k) * rr + rr - 1 - rs];
                else
                    for (int rs = 0; rs < rr; rs++)
                        st[rs * 64 + l] = (double)w[(k * C + c) * rr + rs];
            }
            for (int64_t l0 = 0; l0 < nk; l0 += 8)
                FI_FN(fi_wino_filter_item_)(U, st + l0, uc, ux, Kp, G, 5, c, kc + l0);
        }
    }
}

/* F(2x2,5x5): y[k, 2ty + i, 2tx + j] = (A^T M A)[i, j] + b[k] with A^T = [1 1 1 1 1 0;
 * 0 1 -1 2 -2 1]; the 4 pixels go to y element by element (1 store per output against 25 C
 * products). */
FI_ATTR static void FI_FN(fi_wino_output2_)(FI_T *restrict y, const FI_T *restrict M,
                                            const FI_T *restrict biasp, int64_t K, int64_t Kp,
                                            int64_t OH, int64_t OW, int64_t TW, int64_t tile0,
                                            int64_t nt)
{
    FI_T tmp[4 * FI_W] __attribute__((aligned(64)));
    const int64_t xs = Kp;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
        const int64_t rows = OH - 2 * ty < 2 ? OH - 2 * ty : 2;
        const int64_t cols = OW - 2 * tx < 2 ? OW - 2 * tx : 2;
        for (int64_t k0 = 0; k0 < K; k0 += FI_W) {
            const int64_t nl = K - k0 < FI_W ? K - k0 : FI_W;
            const FI_T *m = M + t * 36 * Kp + k0;
            FI_V u0[6], u1[6];
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++) {   /* columns: A^T m[:, j] */
                const FI_V m0 = FI_VLOAD(m + (0 + j) * xs), m1 = FI_VLOAD(m + (6 + j) * xs);
                const FI_V m2 = FI_VLOAD(m + (12 + j) * xs), m3 = FI_VLOAD(m + (18 + j) * xs);
                const FI_V m4 = FI_VLOAD(m + (24 + j) * xs), m5 = FI_VLOAD(m + (30 + j) * xs);
                const FI_V q = FI_WSUB(m1, m2);
                u0[j] = FI_VADD(FI_VADD(m0, FI_VADD(m1, m2)), FI_VADD(m3, m4));
                u1[j] = FI_VADD(FI_VFMA(FI_VSET1((FI_T)2), FI_WSUB(m3, m4), q), m5);
            }
            const FI_V bv = FI_VLOAD(biasp + k0);
            const FI_V *u[2] = {u0, u1};
            for (int i = 0; i < 2; i++) {   /* rows */
                const FI_V p = FI_VADD(u[i][1], u[i][2]), q = FI_WSUB(u[i][1], u[i][2]);
                FI_VSTORE(tmp + (i * 2 + 0) * FI_W,
                          FI_VADD(FI_VADD(FI_VADD(u[i][0], p), FI_VADD(u[i][3], u[i][4])), bv));
                FI_VSTORE(tmp + (i * 2 + 1) * FI_W,
                          FI_VADD(FI_VADD(FI_VFMA(FI_VSET1((FI_T)2), FI_WSUB(u[i][3], u[i][4]),
                                                  q), u[i][5]), bv));
            }
            FI_T *dst = y + (k0 * OH + 2 * ty) * OW + 2 * tx;
            for (int64_t l = 0; l < nl; l++)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++)
                        dst[l * OH * OW + i * OW + j] = tmp[(i * 2 + j) * FI_W + l];
        }
    }
}

#include "conv2d_wino7_isa.h"

/* The input transform of the block's tiles: 6x6 (r 3, 5) or 8x8 (r 7) */
FI_ATTR FI_INLINE void FI_FN(fi_wino_input_any_)(FI_T *restrict V, const FI_T *restrict xh,
                                                 int64_t Cp, int64_t Wp, int64_t TW,
                                                 int64_t tile0, int64_t nt, int64_t TB, int r,
                                                 int64_t vts)
{
    if (r == 7)   /* tiles vts apart (3x3, 5x5: 36*Cp) */
        FI_FN(fi_wino_input8_)(V, xh, Cp, Wp, TW, tile0, nt, vts);
    else
        FI_FN(fi_wino_input_)(V, xh, Cp, Wp, TW, tile0, nt, TB, r == 3 ? 4 : 2);
}

/* The output transform of the block's tiles into y (one image): F(4x4,3x3), F(2x2,5x5) or
 * F(2x2,7x7) */
FI_ATTR FI_INLINE void FI_FN(fi_wino_output_any_)(FI_T *restrict y, const FI_T *restrict M,
                                                  const FI_T *restrict bias, int64_t K,
                                                  int64_t Kp, int64_t OH, int64_t OW,
                                                  int64_t TW, int64_t tile0, int64_t nt,
                                                  int64_t TB, int r, int64_t mts)
{
    if (r == 3)   /* tiles mts apart (3x3, 5x5: 36*Kp) */
        FI_FN(fi_wino_output_)(y, M, bias, K, Kp, OH, OW, TW, tile0, nt, TB);
    else if (r == 5)
        FI_FN(fi_wino_output2_)(y, M, bias, K, Kp, OH, OW, TW, tile0, nt);
    else
        FI_FN(fi_wino_output8_)(y, M, bias, K, Kp, OH, OW, TW, tile0, nt, mts);
}

/* One call: y (N, K, OH, OW) from x (N, C, H, W), U (npos, C, Kp) and the bias (Kp,) for an
 * r x r filter: output tiles of mt x mt (4: F(4x4,3x3); 2: F(2x2,5x5), F(2x2,7x7)) from
 * input tiles of a x a (6; 8 for r = 7), npos = a*a transform positions; see conv2d_3x3.c.
 * Run by every thread of a parallel region (orphaned omp for). */
FI_ATTR static void FI_FN(fi_wino_forward_)(FI_T *y, const FI_T *x, const FI_T *U,
                                            const FI_T *bias, int64_t N, int64_t C, int64_t Cp,
                                            int64_t H, int64_t W, int64_t K, int64_t Kp, int64_t pt,
                                            int64_t pl, int64_t OH, int64_t OW, FI_T *ws,
                                            int64_t per_thread, int64_t TB, int64_t nsplit,
                                            int64_t nimg_blocks, int r, int64_t uc, int64_t ux)
{
    const int64_t mt = r == 3 ? 4 : 2, a = r == 7 ? 8 : 6, npos = a * a;
    /* tile strides of V and M: 64*Cp values are a multiple of 4 KB when Cp is one of 16, and
     * the GEMM's rows then fell into one L1 set (7x7, C = K = 16 ran at a third of the speed):
     * one cache line more (FI_WINO_PAD values, see conv2d_3x3.c) */
    const int64_t pad = r == 7 ? FI_WINO_PAD(FI_T) : 0;
    const int64_t vts = npos * Cp + pad, mts = npos * Kp + pad;
    const int64_t TH = (OH + mt - 1) / mt, TW = (OW + mt - 1) / mt, T = TH * TW;
    const int64_t Hp = mt * (TH - 1) + a, Wp = mt * (TW - 1) + a;
    const int64_t nblk = (T + TB - 1) / TB, items = N * nsplit;
    if (nimg_blocks > 0) {   /* small images: blocks of whole images (their tiles <= TB) */
        {
            FI_T *xh = ws + (int64_t)fi_wino_thread_id() * per_thread;
            FI_T *V = xh + Hp * Wp * Cp;
            FI_T *M = V + TB * vts;
            memset(xh, 0, (size_t)(Hp * Wp * Cp) * sizeof(FI_T));
#pragma omp for schedule(static)
            for (int64_t blk = 0; blk < nimg_blocks; blk++) {
                const int64_t n0 = blk * N / nimg_blocks, n1 = (blk + 1) * N / nimg_blocks;
                for (int64_t n = n0; n < n1; n++) {
                    FI_FN(fi_wino_pad_small_)(xh, x + n * C * H * W, C, Cp, H, W, pt, pl, Hp,
                                              Wp);
                    FI_FN(fi_wino_input_any_)(V + (n - n0) * T * vts, xh, Cp, Wp, TW, 0, T,
                                              TB, r, vts);
                }
                FI_FN(fi_wino_gemm_)(M, V, U, C, Cp, K, Kp, (n1 - n0) * T, uc, ux, npos, vts,
                                     mts);
                for (int64_t n = n0; n < n1; n++)
                    FI_FN(fi_wino_output_any_)(y + n * K * OH * OW, M + (n - n0) * T * mts,
                                               bias, K, Kp, OH, OW, TW, 0, T, TB, r, mts);
            }
        }
        return;
    }
    {
        FI_T *xh = ws + (int64_t)fi_wino_thread_id() * per_thread;
        FI_T *V = xh + Hp * Wp * Cp;
        FI_T *M = V + TB * vts;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t n = item / nsplit, part = item % nsplit;
            const int64_t b0 = part * nblk / nsplit, b1 = (part + 1) * nblk / nsplit;
            if (b1 <= b0) continue;
            /* pad only the rows this part's tiles read */
            const int64_t y0 = mt * ((b0 * TB) / TW);
            const int64_t t_end = b1 * TB < T ? b1 * TB : T;
            const int64_t y1 = mt * ((t_end - 1) / TW) + a;
            FI_FN(fi_wino_pad_hwc_)(xh, x + n * C * H * W, C, Cp, H, W, pt, pl, Wp, y0, y1);
            for (int64_t blk = b0; blk < b1; blk++) {
                const int64_t tile0 = blk * TB, nt = T - tile0 < TB ? T - tile0 : TB;
                FI_FN(fi_wino_input_any_)(V, xh, Cp, Wp, TW, tile0, nt, TB, r, vts);
                FI_FN(fi_wino_gemm_)(M, V, U, C, Cp, K, Kp, nt, uc, ux, npos, vts, mts);
                FI_FN(fi_wino_output_any_)(y + n * K * OH * OW, M, bias, K, Kp, OH, OW, TW,
                                           tile0, nt, TB, r, mts);
            }
        }
    }
}

/* ---- weight gradient: dw_tile = G^T [ (A dy A^T) (.) (B^T x B) ] G, summed over tiles ----
 * (the transposed form of F(4x4,3x3): F(3x3,4x4) with A = (A^T)^T of the forward, 6x4). */

/* A dy along one axis, 4 values -> 6: [d0, d0+d1+d2+d3, d0-d1+d2-d3, d0+2d1+4d2+8d3,
 * d0-2d1+4d2-8d3, d3] */
#define FI_WINO_A(d0, d1, d2, d3, w0, w1, w2, w3, w4, w5)                                        \
    do {                                                                                        \
        const FI_V e_ = FI_VADD(d0, d2), o_ = FI_VADD(d1, d3);                                  \
        const FI_V e4_ = FI_VFMA(FI_VSET1((FI_T)4), d2, d0);                                    \
        const FI_V o4_ = FI_VFMA(FI_VSET1((FI_T)8), d3, FI_WMUL(FI_VSET1((FI_T)2), d1));        \
        w0 = d0;                                                                                \
        w1 = FI_VADD(e_, o_);                                                                   \
        w2 = FI_WSUB(e_, o_);                                                                   \
        w3 = FI_VADD(e4_, o4_);                                                                 \
        w4 = FI_WSUB(e4_, o4_);                                                                 \
        w5 = d3;                                                                                \
    } while (0)

/* Wd[(t*36 + xi)*Kp + k] = (A dy A^T)[xi] of the 4x4 dy tiles of the block (zero beyond OH,
 * OW and K); dy is one image (K, OH, OW). */
FI_ATTR static void FI_FN(fi_wino_dytile_)(FI_T *restrict Wd, const FI_T *restrict dy,
                                           int64_t K, int64_t Kp, int64_t OH, int64_t OW,
                                           int64_t TW, int64_t tile0, int64_t nt)
{
    FI_T tmp[16 * FI_W] __attribute__((aligned(64)));
    FI_T buf[24 * FI_W] __attribute__((aligned(64)));
    const int64_t plane = OH * OW;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
        const int64_t rows = OH - 4 * ty < 4 ? OH - 4 * ty : 4;
        const int64_t cols = OW - 4 * tx < 4 ? OW - 4 * tx : 4;
        const FI_T *src = dy + (4 * ty) * OW + 4 * tx;
        for (int64_t k0 = 0; k0 < Kp; k0 += FI_W) {
            const int64_t nl = K - k0 < FI_W ? (K - k0 > 0 ? K - k0 : 0) : FI_W;
            FI_V px[16];
#ifdef FI_WINO_TR16
            if (rows == 4 && cols == 4 && nl == 16) {
                for (int l = 0; l < 16; l++) {
                    const FI_T *q = src + (k0 + l) * plane;
                    if (OW == 4) {   /* contiguous rows */
                        px[l] = _mm512_loadu_ps(q);
                        continue;
                    }
                    __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(q));
                    v = _mm512_insertf32x4(v, _mm_loadu_ps(q + OW), 1);
                    v = _mm512_insertf32x4(v, _mm_loadu_ps(q + 2 * OW), 2);
                    px[l] = _mm512_insertf32x4(v, _mm_loadu_ps(q + 3 * OW), 3);
                }
                fi_wino_transpose16(px);   /* px[p]: pixel p of the 16 channels */
            } else
#endif
            {
                memset(tmp, 0, sizeof(tmp));
                for (int64_t l = 0; l < nl; l++)
                    for (int64_t i = 0; i < rows; i++)
                        for (int64_t j = 0; j < cols; j++)
                            tmp[(i * 4 + j) * FI_W + l] = src[(k0 + l) * plane + i * OW + j];
                for (int p = 0; p < 16; p++) px[p] = FI_VLOAD(tmp + p * FI_W);
            }
            /* columns: buf[(i6*4 + j)] = (A px[:, j])[i6] */
            for (int j = 0; j < 4; j++) {
                FI_V w0, w1, w2, w3, w4, w5;
                FI_WINO_A(px[j], px[4 + j], px[8 + j], px[12 + j], w0, w1, w2, w3, w4, w5);
                FI_VSTORE(buf + (0 * 4 + j) * FI_W, w0);
                FI_VSTORE(buf + (1 * 4 + j) * FI_W, w1);
                FI_VSTORE(buf + (2 * 4 + j) * FI_W, w2);
                FI_VSTORE(buf + (3 * 4 + j) * FI_W, w3);
                FI_VSTORE(buf + (4 * 4 + j) * FI_W, w4);
                FI_VSTORE(buf + (5 * 4 + j) * FI_W, w5);
            }
            FI_T *q = Wd + t * 36 * Kp + k0;
            for (int i = 0; i < 6; i++) {   /* rows */
                FI_V w0, w1, w2, w3, w4, w5;
                FI_WINO_A(FI_VLOAD(buf + (i * 4 + 0) * FI_W), FI_VLOAD(buf + (i * 4 + 1) * FI_W),
                          FI_VLOAD(buf + (i * 4 + 2) * FI_W), FI_VLOAD(buf + (i * 4 + 3) * FI_W),
                          w0, w1, w2, w3, w4, w5);
                FI_VSTORE(q + (i * 6 + 0) * Kp, w0);
                FI_VSTORE(q + (i * 6 + 1) * Kp, w1);
                FI_VSTORE(q + (i * 6 + 2) * Kp, w2);
                FI_VSTORE(q + (i * 6 + 3) * Kp, w3);
                FI_VSTORE(q + (i * 6 + 4) * Kp, w4);
                FI_VSTORE(q + (i * 6 + 5) * Kp, w5);
            }
        }
    }
}

/* Macc[(xi*K + k)*Cp + c] (+)= sum_t Wd[t, xi, k] V[t, xi, c] over the nt tiles of the block
 * (beta 0: =) */
FI_ATTR static void FI_FN(fi_wino_dw_gemm_)(FI_T *restrict Macc, const FI_T *restrict Wd,
                                            const FI_T *restrict V, int64_t C, int64_t Cp,
                                            int64_t K, int64_t Kp, int64_t nt, int beta)
{
    const int64_t cols = FI_WV * FI_W;
    if (C <= FI_W) {   /* one vector of input channels: a taller tile, no wasted columns */
        for (int64_t xi = 0; xi < 36; xi++)
            for (int64_t k0 = 0; k0 < K; k0 += FI_WR1) {
                const int64_t m = K - k0 < FI_WR1 ? K - k0 : FI_WR1;
                FI_CAT(fi_tile_, FI_SFX)(FI_WR1, 1, FI_A_STRIDED, FI_B_STRIDED, nt,
                                         Wd + xi * Kp + k0, 1, 36 * Kp, V + xi * Cp, 36 * Cp, 0,
                                         Macc + (xi * K + k0) * Cp, Cp, m, C, beta);
            }
        return;
    }
    for (int64_t xi = 0; xi < 36; xi++)
        for (int64_t k0 = 0; k0 < K; k0 += FI_WR) {
            const int64_t m = K - k0 < FI_WR ? K - k0 : FI_WR;
            for (int64_t c0 = 0; c0 < C; c0 += cols)
                FI_CAT(fi_tile_, FI_SFX)(FI_WR, FI_WV, FI_A_STRIDED, FI_B_STRIDED, nt,
                                         Wd + xi * Kp + k0, 1, 36 * Kp, V + xi * Cp + c0,
                                         36 * Cp, 0, Macc + (xi * K + k0) * Cp + c0, Cp, m,
                                         C - c0 < cols ? C - c0 : cols, beta);
        }
}

/* dw[k, c0 + l, r, s] = (G^T M G)[r, s], M = Macc[:, k, c0 + l] summed over the nth threads
 * accumulators (macc_size apart), l < 8 and c0 + l < C; float64 inside */
FI_ATTR FI_INLINE void FI_FN(fi_wino_dw_out_item_)(FI_T *restrict dw, const FI_T *restrict Macc,
                                                   int64_t macc_size, int nth, int64_t C,
                                                   int64_t Cp, int64_t K, const double *G,
                                                   int64_t k, int64_t c0)
{
    const int64_t nc = C - c0 < 8 ? C - c0 : 8;
    fi_wd8 m[36];
    for (int xi = 0; xi < 36; xi++) {
        const FI_T *src = Macc + (xi * K + k) * Cp + c0;
        fi_wd8 sum = {0};
        for (int t = 0; t < nth; t++) {
            if (nc == 8)
                sum += FI_WD8_LOAD(src + t * macc_size);
            else
                for (int l = 0; l < nc; l++) sum[l] += (double)src[t * macc_size + l];
        }
        m[xi] = sum;
    }
    (void)G;
    fi_wd8 t[6][3];   /* t[j][r] = (G^T m)[r, j] */
    for (int j = 0; j < 6; j++)
        FI_WINO_GT3(m[j], m[6 + j], m[12 + j], m[18 + j], m[24 + j], m[30 + j], t[j]);
    for (int r = 0; r < 3; r++) {
        fi_wd8 o[3];
        FI_WINO_GT3(t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r], o);
        for (int s2 = 0; s2 < 3; s2++)
            for (int l = 0; l < nc; l++) dw[((k * C + c0 + l) * 3 + r) * 3 + s2] = (FI_T)o[s2][l];
    }
}

/* dbacc[k] += sum over the nt tiles of Wd[t, 7, k]: row 1 of A is all ones, so element
 * (1, 1) of A dy A^T is the sum of the tile's dy (zero beyond OH, OW): the bias gradient */
FI_ATTR FI_INLINE void FI_FN(fi_wino_db_)(FI_T *restrict dbacc, const FI_T *restrict Wd,
                                          int64_t Kp, int64_t nt)
{
    for (int64_t k0 = 0; k0 < Kp; k0 += FI_W) {
        FI_V s = FI_VLOAD(dbacc + k0);
        for (int64_t t = 0; t < nt; t++) s = FI_VADD(s, FI_VLOAD(Wd + (t * 36 + 7) * Kp + k0));
        FI_VSTORE(dbacc + k0, s);
    }
}

/* Per-thread Macc (threads, 36, K, Cp), and the bias gradient (Kp values after it) when db,
 * for dy (N, K, OH, OW) and x (N, C, H, W); then (after the barrier) dw (K, C, 3, 3) and db
 * (K,) from their sums */
FI_ATTR static void FI_FN(fi_wino_dw_)(FI_T *Macc, const FI_T *dy, const FI_T *x, int64_t N,
                                       int64_t C, int64_t Cp, int64_t H, int64_t W, int64_t K,
                                       int64_t Kp, int64_t pt, int64_t pl, int64_t OH,
                                       int64_t OW, FI_T *ws, int64_t per_thread,
                                       int64_t macc_size, int64_t TB, int64_t nsplit,
                                       int64_t nimg_blocks, FI_T *dw, FI_T *db, const double *Gp)
{
    const int64_t TH = (OH + 3) / 4, TW = (OW + 3) / 4, T = TH * TW;
    const int64_t Hp = 4 * TH + 2, Wp = 4 * TW + 2;
    const int64_t nblk = (T + TB - 1) / TB, items = N * nsplit;
#pragma omp parallel
    {
        const int tid = fi_wino_thread_id();
        FI_T *xh = ws + (int64_t)tid * per_thread;
        FI_T *V = xh + Hp * Wp * Cp;
        FI_T *Wd = V + 36 * TB * Cp;
        FI_T *acc = Macc + (int64_t)tid * macc_size;
        FI_T *dbacc = acc + 36 * K * Cp;
        int fresh = 1;   /* the first block of this thread overwrites acc: no memset */
        if (db) memset(dbacc, 0, (size_t)Kp * sizeof(FI_T));
        if (nimg_blocks > 0) {   /* small images: blocks of whole images (their tiles <= TB) */
            memset(xh, 0, (size_t)(Hp * Wp * Cp) * sizeof(FI_T));
#pragma omp for schedule(static)
            for (int64_t blk = 0; blk < nimg_blocks; blk++) {
                const int64_t n0 = blk * N / nimg_blocks, n1 = (blk + 1) * N / nimg_blocks;
                for (int64_t n = n0; n < n1; n++) {
                    FI_FN(fi_wino_pad_small_)(xh, x + n * C * H * W, C, Cp, H, W, pt, pl, Hp,
                                              Wp);
                    FI_FN(fi_wino_input_)(V + (n - n0) * T * 36 * Cp, xh, Cp, Wp, TW, 0, T, TB,
                                          4);
                    FI_FN(fi_wino_dytile_)(Wd + (n - n0) * T * 36 * Kp, dy + n * K * OH * OW, K,
                                           Kp, OH, OW, TW, 0, T);
                }
                FI_FN(fi_wino_dw_gemm_)(acc, Wd, V, C, Cp, K, Kp, (n1 - n0) * T, !fresh);
                if (db) FI_FN(fi_wino_db_)(dbacc, Wd, Kp, (n1 - n0) * T);
                fresh = 0;
            }
        } else {
#pragma omp for schedule(static)
            for (int64_t item = 0; item < items; item++) {
                const int64_t n = item / nsplit, part = item % nsplit;
                const int64_t b0 = part * nblk / nsplit, b1 = (part + 1) * nblk / nsplit;
                if (b1 <= b0) continue;
                const int64_t y0 = 4 * ((b0 * TB) / TW);
                const int64_t t_end = b1 * TB < T ? b1 * TB : T;
                const int64_t y1 = 4 * ((t_end - 1) / TW) + 6;
                FI_FN(fi_wino_pad_hwc_)(xh, x + n * C * H * W, C, Cp, H, W, pt, pl, Wp, y0, y1);
                for (int64_t blk = b0; blk < b1; blk++) {
                    const int64_t tile0 = blk * TB, nt = T - tile0 < TB ? T - tile0 : TB;
                    FI_FN(fi_wino_input_)(V, xh, Cp, Wp, TW, tile0, nt, TB, 4);
                    FI_FN(fi_wino_dytile_)(Wd, dy + n * K * OH * OW, K, Kp, OH, OW, TW, tile0,
                                           nt);
                    FI_FN(fi_wino_dw_gemm_)(acc, Wd, V, C, Cp, K, Kp, nt, !fresh);
                    if (db) FI_FN(fi_wino_db_)(dbacc, Wd, Kp, nt);
                    fresh = 0;
                }
            }
        }
        if (fresh) memset(acc, 0, (size_t)(36 * K * Cp) * sizeof(FI_T));   /* no block here */
#pragma omp barrier
        double G[18];
        for (int i = 0; i < 18; i++) G[i] = Gp[i];
        const int64_t ncb = (C + 7) / 8;
        const int nth = fi_wino_team_size();
#pragma omp for schedule(static) nowait
        for (int64_t item = 0; item < K * ncb; item++)
            FI_FN(fi_wino_dw_out_item_)(dw, Macc, macc_size, nth, C, Cp, K, G, item / ncb,
                                        (item % ncb) * 8);
        if (db && tid == 0)
            for (int64_t k = 0; k < K; k++) {
                double sum = 0.0;
                for (int t = 0; t < nth; t++) sum += (double)Macc[t * macc_size + 36 * K * Cp + k];
                db[k] = (FI_T)sum;
            }
    }
}

/* filter transform, then the convolution */
FI_ATTR static void FI_FN(fi_wino_run_)(FI_T *y, const FI_T *x, const FI_T *w, FI_T *U,
                                        const FI_T *biasp, int64_t N, int64_t C, int64_t Cp,
                                        int64_t H, int64_t W, int64_t K, int64_t Kp, int64_t pt,
                                        int64_t pl, int64_t OH, int64_t OW, FI_T *ws,
                                        int64_t per_thread, int64_t TB, int64_t nsplit,
                                        int64_t nimg_blocks, int transposed,
                                        const double *G, int r)
{
    /* U[xi][c][k] at U[xi*ux + c*uc + k]: xi-major (the GEMM's B operand U[xi] contiguous)
     * in general, c-major for small images (the npos stores of one filter land 4-5 KB apart
     * instead of C*Kp: with C*Kp*4 a multiple of 2 KB they fell into two L1 sets; the layers
     * here are small, so U[xi]'s rows npos*Kp apart stay in L1; for 7x7 one cache line more,
     * or 64*Kp would put them all into one L1 set) */
    const int64_t npos = r == 7 ? 64 : 36, pad = r == 7 ? FI_WINO_PAD(FI_T) : 0;
    const int64_t uc = nimg_blocks ? npos * Kp + pad : Kp, ux = nimg_blocks ? Kp : C * Kp;
    /* one parallel region: the filter transform, its barrier, the convolution */
#pragma omp parallel
    {
        if (r == 7)
            FI_FN(fi_wino_filter7_)(U, w, C, K, Kp, uc, ux, transposed, G);
        else
            FI_FN(fi_wino_filter_)(U, w, C, K, Kp, uc, ux, transposed, G, r);
        FI_FN(fi_wino_forward_)(y, x, U, biasp, N, C, Cp, H, W, K, Kp, pt, pl, OH, OW, ws,
                                per_thread, TB, nsplit, nimg_blocks, r, uc, ux);
    }
}

#undef FI_FN
