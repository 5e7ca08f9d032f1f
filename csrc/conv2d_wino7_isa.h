/* Winograd F(2x2,7x7) kernels of one (element type, ISA) instantiation: included by
 * conv2d_3x3_isa.h (before fi_wino_forward_, which calls them), with gemm_tile.h's vector
 * macros, FI_T, FI_SFX, FI_FN, FI_WSUB and FI_WMUL defined. See conv2d_3x3.c for the
 * algorithm and the layouts: the same as F(2x2,5x5) with 8x8 transform tiles (64 GEMMs)
 * instead of 6x6, on the 8 points 0, 1, -1, 1/2, -1/2, 2, -2 and infinity.
 */

/* B^T d (one axis) for the 8 values d0..d7 (the B^T of F(6x6,3x3), the same 8 points):
 *   B^T = [1   0    -21/4  0     21/4   0     -1  0;
 *          0   1     1    -17/4 -17/4   1      1  0;
 *          0  -1     1     17/4 -17/4  -1      1  0;
 *          0   1/2   1/4  -5/2  -5/4    2      1  0;
 *          0  -1/2   1/4   5/2  -5/4   -2      1  0;
 *          0   2     4    -5/2  -5      1/2    1  0;
 *          0  -2     4     5/2  -5     -1/2    1  0;
 *          0  -1     0     21/4  0     -21/4   0  1]
 * (rows 1-6 in pairs t = a + b, a - b: a from the even inputs, b from the odd ones) */
#define FI_WINO_BT8(d0, d1, d2, d3, d4, d5, d6, d7, t)                                          \
    do {                                                                                        \
        t[0] = FI_VFMA(FI_VSET1((FI_T)5.25), FI_WSUB(d4, d2), FI_WSUB(d0, d6));                 \
        t[7] = FI_VFMA(FI_VSET1((FI_T)5.25), FI_WSUB(d3, d5), FI_WSUB(d7, d1));                 \
        FI_V a_ = FI_VFMA(FI_VSET1((FI_T)-4.25), d4, FI_VADD(d2, d6));                          \
        FI_V b_ = FI_VFMA(FI_VSET1((FI_T)-4.25), d3, FI_VADD(d1, d5));                          \
        t[1] = FI_VADD(a_, b_);                                                                 \
        t[2] = FI_WSUB(a_, b_);                                                                 \
        a_ = FI_VFMA(FI_VSET1((FI_T)-1.25), d4, FI_VFMA(FI_VSET1((FI_T)0.25), d2, d6));        \
        b_ = FI_VFMA(FI_VSET1((FI_T)2), d5,                                                     \
                     FI_VFMA(FI_VSET1((FI_T)-2.5), d3, FI_WMUL(FI_VSET1((FI_T)0.5), d1)));      \
        t[3] = FI_VADD(a_, b_);                                                                 \
        t[4] = FI_WSUB(a_, b_);                                                                 \
        a_ = FI_VFMA(FI_VSET1((FI_T)-5), d4, FI_VFMA(FI_VSET1((FI_T)4), d2, d6));              \
        b_ = FI_VFMA(FI_VSET1((FI_T)0.5), d5,                                                   \
                     FI_VFMA(FI_VSET1((FI_T)-2.5), d3, FI_WMUL(FI_VSET1((FI_T)2), d1)));        \
        t[5] = FI_VADD(a_, b_);                                                                 \
        t[6] = FI_WSUB(a_, b_);                                                                 \
    } while (0)

/* A^T m (one axis), 8 values -> 2: A^T = [1 1 1 1 1 1 1 0; 0 1 -1 2 -2 1/2 -1/2 1] */
#define FI_WINO_AT8(m, y0, y1)                                                                  \
    do {                                                                                        \
        y0 = FI_VADD(FI_VADD(FI_VADD(m[0], FI_VADD(m[1], m[2])), FI_VADD(m[3], m[4])),          \
                     FI_VADD(m[5], m[6]));                                                      \
        y1 = FI_VADD(FI_VFMA(FI_VSET1((FI_T)2), FI_WSUB(m[3], m[4]), FI_WSUB(m[1], m[2])),     \
                     FI_VFMA(FI_VSET1((FI_T)0.5), FI_WSUB(m[5], m[6]), m[7]));                  \
    } while (0)

/* V[t*vts + xi*Cp + c] = (B^T d B)[xi] for the tiles tile0..tile0+nt-1 of F(2x2,7x7) (t
 * local to the block), tile t reading the 8x8 patch at (2 ty, 2 tx) of the padded image:
 * columns first (B^T along the height), then rows. The tiles of a tile row overlap by 6
 * columns, so the column transforms are kept in a ring of 8 (slot x mod 8 for column x) and
 * the next tile of the row transforms only its 2 new columns: 10 transforms of 8 values per
 * tile and channel vector instead of 16. */
FI_ATTR static void FI_FN(fi_wino_input8_)(FI_T *restrict V, const FI_T *restrict xh,
                                           int64_t Cp, int64_t Wp, int64_t TW, int64_t tile0,
                                           int64_t nt, int64_t vts)
{
    FI_T ring[64 * FI_W] __attribute__((aligned(64)));   /* ring[(slot*8 + i)*FI_W + l] */
    const int64_t s = Wp * Cp;
    for (int64_t c0 = 0; c0 < Cp; c0 += FI_W) {
        int64_t next_ty = -1, next_tx = -1;   /* the tile whose 6 first columns are in ring */
        for (int64_t t = 0; t < nt; t++) {
            const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
            const FI_T *base = xh + ((2 * ty) * Wp + 2 * tx) * Cp + c0;
            const int j0 = ty == next_ty && tx == next_tx ? 6 : 0;
            for (int j = j0; j < 8; j++) {   /* column 2tx + j: (B^T d[:, j])[i] */
                const FI_T *p = base + j * Cp;
                FI_V r[8];
                FI_WINO_BT8(FI_VLOAD(p), FI_VLOAD(p + s), FI_VLOAD(p + 2 * s),
                            FI_VLOAD(p + 3 * s), FI_VLOAD(p + 4 * s), FI_VLOAD(p + 5 * s),
                            FI_VLOAD(p + 6 * s), FI_VLOAD(p + 7 * s), r);
                FI_T *q = ring + ((2 * tx + j) & 7) * 8 * FI_W;
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) FI_VSTORE(q + i * FI_W, r[i]);
            }
            next_ty = ty;
            next_tx = tx + 1;
            const FI_T *col[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) col[j] = ring + ((2 * tx + j) & 7) * 8 * FI_W;
            FI_T *q = V + t * vts + c0;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {   /* row i: V[i*8 + j] = (row i of B^T d, times B)[j] */
                FI_V v[8];
                FI_WINO_BT8(FI_VLOAD(col[0] + i * FI_W), FI_VLOAD(col[1] + i * FI_W),
                            FI_VLOAD(col[2] + i * FI_W), FI_VLOAD(col[3] + i * FI_W),
                            FI_VLOAD(col[4] + i * FI_W), FI_VLOAD(col[5] + i * FI_W),
                            FI_VLOAD(col[6] + i * FI_W), FI_VLOAD(col[7] + i * FI_W), v);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) FI_VSTORE(q + (i * 8 + j) * Cp, v[j]);
            }
        }
    }
}

/* F(2x2,7x7): y[k, 2ty + i, 2tx + j] = (A^T M A)[i, j] + b[k]: rows first (M read in order;
 * 16 vectors in registers), then the 2 columns. The 2 pixels of a row are adjacent in y:
 * AVX-512 float32 interleaves them in registers and stores 8 bytes per channel and row, the
 * other builds go element by element. */
FI_ATTR static void FI_FN(fi_wino_output8_)(FI_T *restrict y, const FI_T *restrict M,
                                            const FI_T *restrict biasp, int64_t K, int64_t Kp,
                                            int64_t OH, int64_t OW, int64_t TW, int64_t tile0,
                                            int64_t nt, int64_t mts)
{
    FI_T tmp[4 * FI_W] __attribute__((aligned(64)));
    for (int64_t t = 0; t < nt; t++) {
        const int64_t ty = (tile0 + t) / TW, tx = (tile0 + t) % TW;
        const int64_t rows = OH - 2 * ty < 2 ? OH - 2 * ty : 2;
        const int64_t cols = OW - 2 * tx < 2 ? OW - 2 * tx : 2;
        for (int64_t k0 = 0; k0 < K; k0 += FI_W) {
            const int64_t nl = K - k0 < FI_W ? K - k0 : FI_W;
            const FI_T *m = M + t * mts + k0;
            FI_V u0[8], u1[8];   /* u0[i], u1[i] = (m A)[i, 0], (m A)[i, 1] */
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {   /* row i: positions i*8 .. i*8 + 7, Kp apart */
                FI_V c[8];
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++, m += Kp) c[j] = FI_VLOAD(m);
                FI_WINO_AT8(c, u0[i], u1[i]);
            }
            const FI_V bv = FI_VLOAD(biasp + k0);
            FI_V out[4];   /* out[i*2 + j]: pixel (i, j) of the FI_W channels */
            FI_WINO_AT8(u0, out[0], out[2]);
            FI_WINO_AT8(u1, out[1], out[3]);
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) out[p] = FI_VADD(out[p], bv);
            FI_T *dst = y + (k0 * OH + 2 * ty) * OW + 2 * tx;
#ifdef FI_WINO_TR16
            if (rows == 2 && cols == 2 && nl == 16) {
                /* interleave the two pixels of a row: 64-bit lane 2q + h of lo / hi holds
                 * channel 4p + h / 4p + 2 + h of 128-bit lane p; one 8-byte store each */
                const int64_t plane = OH * OW;
                for (int i = 0; i < 2; i++) {
                    const __m512 lo = _mm512_unpacklo_ps(out[2 * i], out[2 * i + 1]);
                    const __m512 hi = _mm512_unpackhi_ps(out[2 * i], out[2 * i + 1]);
                    FI_T *o = dst + i * OW;
#define FI_WINO_ST2(p)                                                                          \
    do {                                                                                        \
        const __m128 l_ = _mm512_extractf32x4_ps(lo, p), h_ = _mm512_extractf32x4_ps(hi, p);    \
        _mm_storel_pi((__m64 *)(o + (4 * (p)) * plane), l_);                                   \
        _mm_storeh_pi((__m64 *)(o + (4 * (p) + 1) * plane), l_);                               \
        _mm_storel_pi((__m64 *)(o + (4 * (p) + 2) * plane), h_);                               \
        _mm_storeh_pi((__m64 *)(o + (4 * (p) + 3) * plane), h_);                               \
    } while (0)
                    FI_WINO_ST2(0);
                    FI_WINO_ST2(1);
                    FI_WINO_ST2(2);
                    FI_WINO_ST2(3);
#undef FI_WINO_ST2
                }
                continue;
            }
#endif
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) FI_VSTORE(tmp + p * FI_W, out[p]);
            if (rows == 2 && cols == 2) {
                for (int64_t l = 0; l < nl; l++) {
                    FI_T *o = dst + l * OH * OW;
                    o[0] = tmp[l];
                    o[1] = tmp[FI_W + l];
                    o[OW] = tmp[2 * FI_W + l];
                    o[OW + 1] = tmp[3 * FI_W + l];
                }
                continue;
            }
            for (int64_t l = 0; l < nl; l++)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++)
                        dst[l * OH * OW + i * OW + j] = tmp[(i * 2 + j) * FI_W + l];
        }
    }
}

/* U[xi*ux + c*uc + k] = (G g G^T)[xi] (8x8) of the 7x7 filter from input channel c to output
 * channel k, G the 8x7 of F(2x2,7x7) (conv2d_3x3.c): g = w[k, c] (w is (K, C, 7, 7)), or, when
 * transposed, w[c, k] flipped (w is (C, K, 7, 7)); columns K..Kp-1 are zero. In float64, 8
 * output channels (one fi_wd8) at once, per input channel (an orphaned omp for). */
FI_ATTR static void FI_FN(fi_wino_filter7_)(FI_T *U, const FI_T *w, int64_t C, int64_t K,
                                            int64_t Kp, int64_t uc, int64_t ux, int transposed,
                                            const double *Gp)
{
    double G[56];   /* a local copy: stores into U cannot alias it */
    for (int i = 0; i < 56; i++) G[i] = Gp[i];
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        for (int64_t k0 = 0; k0 < Kp; k0 += 8) {
            fi_wd8 g[49];   /* g[rs][l]: filter value rs of output channel k0 + l */
            for (int rs = 0; rs < 49; rs++) g[rs] = (fi_wd8){0};
            for (int l = 0; l < 8 && k0 + l < K; l++) {
                const FI_T *src = transposed ? w + (c * K + k0 + l) * 49
                                             : w + ((k0 + l) * C + c) * 49;
                for (int rs = 0; rs < 49; rs++)
                    g[rs][l] = (double)src[transposed ? 48 - rs : rs];
            }
            fi_wd8 tmp[8][7];   /* tmp = G g (over the kernel rows) */
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
#pragma GCC unroll 7
                for (int s = 0; s < 7; s++) {
                    fi_wd8 sum = g[s] * G[i * 7];
#pragma GCC unroll 7
                    for (int a = 1; a < 7; a++) sum += G[i * 7 + a] * g[a * 7 + s];
                    tmp[i][s] = sum;
                }
            const int64_t nk = Kp - k0 < 8 ? Kp - k0 : 8;
            for (int i = 0; i < 8; i++)   /* U = tmp G^T (over the kernel columns) */
                for (int j = 0; j < 8; j++) {
                    fi_wd8 sum = tmp[i][0] * G[j * 7];
#pragma GCC unroll 7
                    for (int s = 1; s < 7; s++) sum += tmp[i][s] * G[j * 7 + s];
                    FI_T *u = U + c * uc + (i * 8 + j) * ux + k0;
                    if (nk == 8)
                        FI_WD8_STORE(u, sum);
                    else
                        for (int l = 0; l < nk; l++) u[l] = (FI_T)sum[l];
                }
        }
    }
}
