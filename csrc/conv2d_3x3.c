/* 3x3, 5x5 and 7x7 stride-1 convolution by Winograd F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): each 4x4
 * (2x2) block of outputs costs 36 products per (input, output) channel pair instead of 144
 * (100). The first two use the points 0, 1, -1, 2, -2, infinity, so they share B^T and the
 * input transform. The weight gradient of a 3x3 layer uses the transposed algorithm F(3x3,4x4), 36
 * GEMMs reducing over the tiles.
 *
 * 7x7 (conv2d_wino7_isa.h): F(2x2,7x7) on 8x8 tiles, the points 0, +-1, +-2, +-1/2 and
 * infinity (the B^T of F(6x6,3x3)): 64 products per 2x2 outputs instead of 196, 64 GEMMs per
 * block. The same driver, blocks and layouts with 64 transform positions; a tile's V and M
 * are padded by one cache line (64 x 16 floats is 4 KB: unpadded, the GEMM rows of one tile
 * block all fell into one L1 set). Chosen over the 1-D F(2,7) along the width (1.75x fewer
 * products) because its float32 error stays of the order of F(2x2,5x5)'s (measured max
 * error / max |y| against float64, N4 C64 16x16 K64: y 5.6e-6, dx 6.1e-6; direct 2.2e-6;
 * 3x3 and 5x5: 2e-6 - 7e-6), while the bigger tiles F(3x3,7x7) or 1-D F(4,7) lost a decade
 * (simulated: 1e-4, 4e-5). N32 C64 56x56 K64 float32 on 2 threads: 37 ms against 80 for
 * PyTorch and 82 for our direct kernel, the GEMMs near the FMA peak; the backward-data pass
 * (the same code with flipped, transposed weights) gains as much.
 *
 *   Y = A^T [ U (.) V ] A,   U = G g G^T (6x6 per filter),   V = B^T d B (6x6 per input tile)
 *
 * d is the 6x6 input patch under a 4x4 output tile (tiles overlap by 2). Summed over input
 * channels, the 36 elementwise products become 36 matrix products, one per position xi of the
 * 6x6 transform domain: M[xi] (tiles x K) = V[xi] (tiles x C) @ U[xi] (C x K). Those run on the
 * register tile shared with the GEMM (gemm_tile.h: rows = tiles, vectors = output channels).
 *
 * Layouts (per thread): the image, zero-padded and channels last (xh[(y*Wp + x)*C + c]), so the
 * input transform of a tile reads 36 vectors of consecutive channels and works on FI_W
 * channels at once; V[xi][t][c] and M[xi][t][k] for a block of TB tiles (the tile buffers);
 * the output transform works on FI_W output channels at once and writes the 4x4 pixels back
 * into NCHW. U[xi][c][k] is computed once per call from the weights (flipped and transposed
 * for the backward-data pass: dx of a 3x3 stride-1 convolution is itself one): for 3x3 in the
 * data type, FI_W output channels at once with G's structure spelt out (float32 rounding of
 * U is far below the transforms' own error; it was a float64 scalar loop that cost more than
 * the convolution of a small layer), for 5x5 in float64. The weight gradient's G^T M G runs
 * in float64, 8 channels at once; its bias gradient comes free with the dy transform (row 1
 * of A is all ones: element 7 of A dy A^T is the tile's sum).
 *
 * Small images (at most half a block of tiles each: one 6x6 tile per 4x4 image in the
 * teaching CNN) go in blocks of whole images instead of per image, so the 36 GEMMs get full
 * row tiles (one tile per image left 7 of 8 rows of the register tile idle: N64 C16 4x4 K32
 * took 66 us forward and 185 us for dw, now 17 and 20 on 2 threads); their padded copy is
 * zeroed once per call and only the pixels are written (16 channels x 16 pixels transposed in
 * registers). When K (dw: C) fits one vector, a taller 1-vector GEMM tile wastes no columns.
 *
 * Accuracy: the transforms multiply by up to 5 (7x7: 21/4 in B^T, 1/90 in G) and divide by
 * 24, so float32 results carry a few times the rounding error of direct convolution
 * (measured in tests/test_conv.py, tests/test_conv_7x7.py and fastinit/_numba/conv3x3.py).
 * Memory: one padded image plus the block buffers per thread.
 */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int fi_wino_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static int fi_wino_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
static int fi_wino_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static _Thread_local void *fi_wino_buf = NULL;
static _Thread_local size_t fi_wino_buf_size = 0;

static void *fi_wino_scratch(size_t bytes) {
    if (bytes > fi_wino_buf_size) {
        size_t size = (bytes + 4095) & ~(size_t)4095;
        void *p = aligned_alloc(64, size);
        if (!p) return NULL;
        free(fi_wino_buf);
        fi_wino_buf = p;
        fi_wino_buf_size = size;
    }
    return fi_wino_buf;
}

/* G (6x3) of F(4x4,3x3) and G (6x5) of F(2x2,5x5): G[j][k] = p_j^k / prod_{l != j}(p_j - p_l)
 * for the points p = 0, 1, -1, 2, -2, and the row of the point at infinity (Cook-Toom). */
static const double fi_wino_G5[6][5] = {
    {1.0 / 4, 0, 0, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
    {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
    {0, 0, 0, 0, 1}};
/* G (8x7) of F(2x2,7x7), the same construction for the points 0, 1, -1, 2, -2, 1/2, -1/2 and
 * infinity (row 0 negated, with row 0 of B^T: the conventional B^T of F(6x6,3x3)) */
static const double fi_wino_G7[8][7] = {
    {1, 0, 0, 0, 0, 0, 0},
    {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
    {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
    {1.0 / 90, 2.0 / 90, 4.0 / 90, 8.0 / 90, 16.0 / 90, 32.0 / 90, 64.0 / 90},
    {1.0 / 90, -2.0 / 90, 4.0 / 90, -8.0 / 90, 16.0 / 90, -32.0 / 90, 64.0 / 90},
    {64.0 / 90, 32.0 / 90, 16.0 / 90, 8.0 / 90, 4.0 / 90, 2.0 / 90, 1.0 / 90},
    {64.0 / 90, -32.0 / 90, 16.0 / 90, -8.0 / 90, 4.0 / 90, -2.0 / 90, 1.0 / 90},
    {0, 0, 0, 0, 0, 0, 1}};
static const double fi_wino_G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1}};

/* Tiles per block: V and M of a block (36 x TB x (C + K) values; 64 x for F(2x2,7x7)) stay in
 * the L2. The weight gradient reduces over the tiles of a block, so longer blocks mean longer
 * tile reductions. */
#define FI_WINO_TB 32
#define FI_WINO_TB7 32
/* F(2x2,7x7): a tile's V and M (64 x Cp, 64 x Kp values) are padded by one cache line, so the
 * GEMM's rows (one per tile) do not all fall into one L1 set when Cp, Kp are multiples of 16 */
#define FI_WINO_PAD(T) ((int64_t)(64 / sizeof(T)))
#define FI_WINO_TB_DW 64

/* Small images (at most half a block of tiles each, e.g. one 6x6 tile per 4x4 image): blocks
 * of whole images instead, so the GEMMs get full row tiles (one tile per image left 7 of 8
 * rows of the register tile idle). Tiles per such block: */
#ifndef FI_WINO_TB_SMALL
#define FI_WINO_TB_SMALL 32
#define FI_WINO_TB_SMALL_DW 32
#endif

/* Blocks of whole images when an image has at most half of `TB` tiles: the images split
 * evenly over a multiple of the threads, at most TB / tiles per block; 0: per-image blocks. */
static int64_t fi_wino_image_blocks(int64_t n, int64_t tiles, int64_t TB, int nth) {
    if (2 * tiles > TB) return 0;
    int64_t nb = (n + TB / tiles - 1) / (TB / tiles);
    if (nth > 1) nb = (nb + nth - 1) / nth * nth;
    return nb > n ? n : nb;
}

/* ---- instantiations: GEMM tile FI_WR tiles x FI_WV vectors of output channels ---- */
#define FI_ISA FI_ISA_BASE
#define FI_WR 4
#define FI_WV 2
#define FI_WR1 8
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX wf32_base
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX wf64_base
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_WR
#undef FI_WV
#undef FI_WR1

#if FI_X86
#define FI_ISA FI_ISA_AVX2
#define FI_WR 6
#define FI_WV 2
#define FI_WR1 12
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX wf32_avx2
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX wf64_avx2
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_WR
#undef FI_WV
#undef FI_WR1

#define FI_ISA FI_ISA_AVX512
#define FI_WR 8
#define FI_WV 2
#define FI_WR1 16
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX wf32_avx512
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX wf64_avx512
#include "gemm_tile.h"
#include "conv2d_3x3_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_WR
#undef FI_WV
#undef FI_WR1
#endif

/* the vector path: the one conv2d.c uses (fi_conv2d_set_path caps both) */
static int fi_wino_isa(void) {
    const char *p = fi_conv2d_path();
    return p[0] == 'a' ? (p[3] == '5' ? FI_ISA_AVX512 : FI_ISA_AVX2) : FI_ISA_BASE;
}

/* GEMM tile of the path: rows (tiles), vectors, lanes of the element type */
void fi_conv2d_winograd_tile(int is_double, int *rows, int *nvec, int *lanes) {
    const int isa = fi_wino_isa();
    *rows = isa == FI_ISA_AVX512 ? 8 : isa == FI_ISA_AVX2 ? 6 : 4;
    *nvec = 2;
    *lanes = (isa == FI_ISA_AVX512 ? 64 : isa == FI_ISA_AVX2 ? 32 : 16) / (is_double ? 8 : 4);
}

#define FI_WINO_DRIVER(T, TS)                                                                 \
int fi_conv2d_winograd_##TS(T *y, const T *x, const T *w, const T *b, int64_t n, int64_t c,    \
                            int64_t h, int64_t width, int64_t k, int64_t r, int64_t pt,       \
                            int64_t pl, int64_t oh, int64_t ow, int64_t tiles_per_block,      \
                            int transposed)                                                   \
{                                                                                             \
    /* x (n, c, h, width) -> y (n, k, oh, ow); w (k, c, r, r), or (c, k, r, r) flipped when   \
     * transposed; r 3 (F(4x4,3x3)), 5 (F(2x2,5x5)) or 7 (F(2x2,7x7)); b (k,) or NULL; x    \
     * zero-padded by pt (top) and pl (left) */                                               \
    int rows, nvec, lanes;                                                                    \
    fi_conv2d_winograd_tile(sizeof(T) == 8, &rows, &nvec, &lanes);                            \
    const int64_t mt = r == 3 ? 4 : 2, a = r == 7 ? 8 : 6, npos = a * a;                      \
    const int64_t cols = nvec * lanes;                                                        \
    const int64_t Kp = k <= lanes ? lanes : (k + cols - 1) / cols * cols; /* 1 vector: K<=W */ \
    const int64_t Cp = (c + lanes - 1) / lanes * lanes;                                       \
    const int64_t TH = (oh + mt - 1) / mt, TW = (ow + mt - 1) / mt, T_ = TH * TW;             \
    const int64_t Hp = mt * (TH - 1) + a, Wp = mt * (TW - 1) + a;                             \
    const int nth = fi_wino_max_threads();                                                    \
    int64_t TB = tiles_per_block > 0 ? tiles_per_block : r == 7 ? FI_WINO_TB7 : FI_WINO_TB;   \
    const int64_t nimg = fi_wino_image_blocks(n, T_, TB, nth);                                \
    if (nimg && tiles_per_block <= 0) TB = FI_WINO_TB_SMALL > T_ ? FI_WINO_TB_SMALL : T_;     \
    TB = (TB + rows - 1) / rows * rows;                                                       \
    const int64_t pad = r == 7 ? FI_WINO_PAD(T) : 0;                                           \
    const int64_t per_thread = (Hp * Wp * Cp + TB * (npos * (Cp + Kp) + 2 * pad) + 15)         \
                               & ~(int64_t)15;                                                \
    const int64_t usize = (c * (npos * Kp + pad) + cols + Kp + 15) & ~(int64_t)15;            \
    T *ws = fi_wino_scratch((size_t)(per_thread * nth + usize) * sizeof(T));                  \
    if (!ws) return -1;                                                                       \
    T *U = ws + per_thread * nth, *biasp = U + c * (npos * Kp + pad) + cols;                  \
    for (int64_t i = 0; i < Kp; i++) biasp[i] = b && i < k ? b[i] : (T)0;                     \
    int64_t nsplit = 1;                                                                       \
    const int64_t nblk = (T_ + TB - 1) / TB;                                                  \
    if (nth > 1 && n % nth != 0 && n < 4 * nth) {                                             \
        nsplit = nth * 2 / n + 1;                                                             \
        if (nsplit > nblk) nsplit = nblk;                                                     \
    }                                                                                         \
    const double *G = r == 3 ? &fi_wino_G[0][0] : r == 5 ? &fi_wino_G5[0][0] : &fi_wino_G7[0][0]; \
    switch (fi_wino_isa()) {                                                                  \
    FI_WINO_CASES(TS, (y, x, w, U, biasp, n, c, Cp, h, width, k, Kp, pt, pl, oh, ow, ws,      \
                       per_thread, TB, nsplit, nimg ? fi_wino_image_blocks(n, T_, TB, nth)   \
                       : 0, transposed, G, (int)r))                                           \
    }                                                                                         \
    return 0;                                                                                 \
}

#if FI_X86
#define FI_WINO_CASES(TS, args)                                                               \
    case FI_ISA_AVX512: fi_wino_run_w##TS##_avx512 args; break;                               \
    case FI_ISA_AVX2: fi_wino_run_w##TS##_avx2 args; break;                                   \
    default: fi_wino_run_w##TS##_base args; break;
#else
#define FI_WINO_CASES(TS, args) default: fi_wino_run_w##TS##_base args; break;
#endif

FI_WINO_DRIVER(float, f32)
FI_WINO_DRIVER(double, f64)

/* weight gradient: dw[k, c, r, s] = (G^T M[:, k, c] G)[r, s], M summed over the threads */
#define FI_WINO_DW_DRIVER(T, TS)                                                              \
int fi_conv2d_winograd_dw_##TS(T *dw, T *db, const T *dy, const T *x, int64_t n, int64_t c,   \
                               int64_t h, int64_t width, int64_t k, int64_t pt, int64_t pl,   \
                               int64_t oh, int64_t ow, int64_t tiles_per_block)               \
{                                                                                             \
    /* dy (n, k, oh, ow), x (n, c, h, width) zero-padded by pt/pl -> dw (k, c, 3, 3), and     \
     * db (k,) unless NULL */                                                                 \
    int rows, nvec, lanes;                                                                    \
    fi_conv2d_winograd_tile(sizeof(T) == 8, &rows, &nvec, &lanes);                            \
    const int64_t Kp = (k + lanes - 1) / lanes * lanes, Cp = (c + lanes - 1) / lanes * lanes; \
    const int64_t TH = (oh + 3) / 4, TW = (ow + 3) / 4, T_ = TH * TW;                         \
    const int64_t Hp = 4 * TH + 2, Wp = 4 * TW + 2;                                           \
    const int nth = fi_wino_max_threads();                                                    \
    int64_t TB = tiles_per_block > 0 ? tiles_per_block : FI_WINO_TB_DW;                       \
    const int64_t nimg = fi_wino_image_blocks(n, T_, TB, nth);                                \
    if (nimg && tiles_per_block <= 0) TB = FI_WINO_TB_SMALL_DW > T_ ? FI_WINO_TB_SMALL_DW : T_;\
    const int64_t per_thread = (Hp * Wp * Cp + 36 * TB * (Cp + Kp) + 64 + 15) & ~(int64_t)15; \
    const int64_t macc = (36 * k * Cp + Kp + nvec * lanes + 15) & ~(int64_t)15;               \
    T *ws = fi_wino_scratch((size_t)((per_thread + macc) * nth) * sizeof(T));                 \
    if (!ws) return -1;                                                                       \
    T *Macc = ws + per_thread * nth;                                                          \
    int64_t nsplit = 1;                                                                       \
    const int64_t nblk = (T_ + TB - 1) / TB;                                                  \
    if (nth > 1 && n % nth != 0 && n < 4 * nth) {                                             \
        nsplit = nth * 2 / n + 1;                                                             \
        if (nsplit > nblk) nsplit = nblk;                                                     \
    }                                                                                         \
    switch (fi_wino_isa()) {                                                                  \
    FI_WINO_DW_CASES(TS, (Macc, dy, x, n, c, Cp, h, width, k, Kp, pt, pl, oh, ow, ws,         \
                          per_thread, macc, TB, nsplit,                                       \
                          nimg ? fi_wino_image_blocks(n, T_, TB, nth) : 0, dw, db,            \
                          &fi_wino_G[0][0]))                                                  \
    }                                                                                         \
    return 0;                                                                                 \
}

#if FI_X86
#define FI_WINO_DW_CASES(TS, args)                                                            \
    case FI_ISA_AVX512: fi_wino_dw_w##TS##_avx512 args; break;                                \
    case FI_ISA_AVX2: fi_wino_dw_w##TS##_avx2 args; break;                                    \
    default: fi_wino_dw_w##TS##_base args; break;
#else
#define FI_WINO_DW_CASES(TS, args) default: fi_wino_dw_w##TS##_base args; break;
#endif

FI_WINO_DW_DRIVER(float, f32)
FI_WINO_DW_DRIVER(double, f64)
