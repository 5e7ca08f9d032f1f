/* 2-D convolution, direct (no materialised im2col): forward, backward data, backward weights.
 *
 * x (N, C, H, W), w (K, C/groups, R, S), b (K,), y (N, K, OH, OW); stride (sh, sw), zero
 * padding (top pt, bottom pb, left pl, right pr), dilation (dh, dw), groups G; Cg = C/G input
 * and Kg = K/G output channels per group. The C twin of fastinit/_numba/conv.py (read its
 * docstring for the picture); every pass is a register tile (gemm_tile.h, shared with the GEMM)
 * whose B operand is read from a per-thread zero-padded copy of one image through an offset
 * table:
 *
 * forward   y[k, p] = sum_t w[k, t] xq[tab[t] + p]. xq holds channels of one image and group,
 *           zero-padded and split into stride phases (phase (py, px) = padded rows py, py+sh..
 *           and columns px, px+sw..), so output pixels along a row read consecutive values for
 *           any stride; tap t = (c, r, s) sits at channel c, phase ((r*dh)%sh, (s*dw)%sw),
 *           shifted by ((r*dh)/sh, (s*dw)/sw). Output pixels are flattened with the phase row
 *           width Wq >= OW (the Wq - OW extra columns are computed and dropped), tiles land
 *           in a per-thread tile buffer and are scattered into y with the bias.
 * dx        the transposed convolution, split into the sh*sw phases of dx: in phase (ry, rx)
 *           only taps with (r*dh)%sh == ry, (s*dw)%sw == rx contribute, as an ordinary
 *           stride-1 correlation of a zero-padded copy of dy. Same tile, per-phase tables.
 * dw        per block of output pixels: dy transposed (pixels x Kg), and per tap the input
 *           values it meets gathered (Cg x pixels); a GEMM tile (input channels x output
 *           channels) reduces over the block into a per-thread partial dw laid out
 *           (G, R*S, Cg, Kg). Groups with few output channels (depthwise) use a dot tile that
 *           reduces along the vector lanes instead, into a partial laid out like w.
 *
 * small images: im2col of one image at a time and the GEMM tile (see "small images" below).
 *
 * Memory: per thread one padded image (one group) and one tile buffer; no buffer grows with
 * N*H*W*R*S. Threads take (image, group, part) items: whole images when they balance the
 * threads, else parts of one image (pixel blocks), each thread padding its own copy.
 * Vector paths: AVX-512, AVX2+FMA, portable (chosen at run time).
 */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int64_t N, C, H, W, K, Cg, Kg, G, R, S, sh, sw, pt, pb, pl, pr, dh, dw;
    int64_t OH, OW, Hq, Wq, chan;
} fi_conv_geo;

static int fi_conv_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int fi_conv_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
static int fi_conv_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Scratch: one growing buffer per calling thread, reused (a fresh multi-megabyte buffer costs
 * a page fault per 4 KB on first touch). */
static _Thread_local void *fi_conv_buf = NULL;
static _Thread_local size_t fi_conv_buf_size = 0;

static void *fi_conv_scratch(size_t bytes) {
    if (bytes > fi_conv_buf_size) {
        size_t size = (bytes + 4095) & ~(size_t)4095;
        void *p = aligned_alloc(64, size);
        if (!p) return NULL;
        free(fi_conv_buf);
        fi_conv_buf = p;
        fi_conv_buf_size = size;
    }
    return fi_conv_buf;
}

static void fi_conv_geo_init(fi_conv_geo *g, int64_t N, int64_t C, int64_t H, int64_t W,
                             int64_t K, int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t pt,
                             int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                             int64_t groups) {
    g->N = N; g->C = C; g->H = H; g->W = W; g->K = K; g->R = R; g->S = S;
    g->sh = sh; g->sw = sw; g->pt = pt; g->pb = pb; g->pl = pl; g->pr = pr; g->dh = dh;
    g->dw = dw; g->G = groups; g->Cg = C / groups; g->Kg = K / groups;
    g->OH = (H + pt + pb - dh * (R - 1) - 1) / sh + 1;
    g->OW = (W + pl + pr - dw * (S - 1) - 1) / sw + 1;
    g->Hq = g->OH + ((R - 1) * dh) / sh;
    g->Wq = g->OW + ((S - 1) * dw) / sw;
    g->chan = sh * sw * g->Hq * g->Wq;
}

/* tab[(c*R + r)*S + s]: offset of tap (c, r, s) in the phase layout (see the top) */
static void fi_conv_forward_table(int64_t *tab, const fi_conv_geo *g) {
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t phase = ((r * g->dh) % g->sh) * g->sw + (s * g->dw) % g->sw;
                tab[(c * g->R + r) * g->S + s] = c * g->chan + phase * g->Hq * g->Wq +
                                                 ((r * g->dh) / g->sh) * g->Wq +
                                                 (s * g->dw) / g->sw;
            }
}

/* Parts per (image, group): 1 when whole images balance the threads, else enough parts (at
 * most `units`) to keep every thread busy. */
static int64_t fi_conv_nsplit(int64_t items, int nthreads, int64_t units) {
    if (nthreads <= 1 || items % nthreads == 0 || items >= 4 * nthreads) return 1;
    int64_t parts = (int64_t)nthreads * 2 / (items > 0 ? items : 1) + 1;
    if (parts > units) parts = units;
    return parts < 1 ? 1 : parts;
}

/* Output pixels per weight-gradient block: the reduction length of one tile call. */
#define FI_CONV_PBLOCK 512

/* ---- instantiations: the tile (gemm_tile.h) and the kernels (conv2d_isa.h) per ISA ---- */
#define FI_ISA FI_ISA_BASE
#define FI_CONV_TR1 8
#define FI_CONV_TR2 4
#define FI_CONV_TR3 4
#define FI_CONV_FR 4
#define FI_CONV_FV 2
#define FI_CONV_DR 4
#define FI_CONV_DV 2
#define FI_CONV_SR 4
#define FI_CONV_SV 2
#define FI_CONV_OR 4
#define FI_CONV_OV 2
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX cf32_base
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX cf64_base
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_CONV_FR
#undef FI_CONV_FV
#undef FI_CONV_DR
#undef FI_CONV_DV
#undef FI_CONV_SR
#undef FI_CONV_SV
#undef FI_CONV_OR
#undef FI_CONV_OV
#undef FI_CONV_TR1
#undef FI_CONV_TR2
#undef FI_CONV_TR3

#if FI_X86
/* AVX2: 16 ymm registers: 4 x 3 (12 accumulators) forward, 6 x 2 weight gradient */
#define FI_ISA FI_ISA_AVX2
#define FI_CONV_TR1 8
#define FI_CONV_TR2 4
#define FI_CONV_TR3 4
#define FI_CONV_FR 4
#define FI_CONV_FV 3
#define FI_CONV_DR 6
#define FI_CONV_DV 2
#define FI_CONV_SR 4
#define FI_CONV_SV 2
#define FI_CONV_OR 6
#define FI_CONV_OV 2
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX cf32_avx2
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX cf64_avx2
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_CONV_FR
#undef FI_CONV_FV
#undef FI_CONV_DR
#undef FI_CONV_DV
#undef FI_CONV_SR
#undef FI_CONV_SV
#undef FI_CONV_OR
#undef FI_CONV_OV
#undef FI_CONV_TR1
#undef FI_CONV_TR2
#undef FI_CONV_TR3

/* AVX-512: 32 zmm registers: 8 x 3 forward (8x3, 6x4, 4x6 measured alike), 8 x 2 weight
 * gradient (12 x 2 wasted 8 of 72 rows at 64 channels), 4 x 4 for groups of <= 4 channels */
#define FI_ISA FI_ISA_AVX512
#define FI_CONV_TR1 16
#define FI_CONV_TR2 8
#define FI_CONV_TR3 8
#define FI_CONV_FR 8
#define FI_CONV_FV 3
#define FI_CONV_DR 8
#define FI_CONV_DV 2
#define FI_CONV_SR 4
#define FI_CONV_SV 4
#ifndef FI_CONV_OR_AVX512
#define FI_CONV_OR_AVX512 14
#define FI_CONV_OV_AVX512 2
#endif
#define FI_CONV_OR FI_CONV_OR_AVX512
#define FI_CONV_OV FI_CONV_OV_AVX512
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX cf32_avx512
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX cf64_avx512
#include "gemm_tile.h"
#include "conv2d_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_ISA
#undef FI_CONV_FR
#undef FI_CONV_FV
#undef FI_CONV_DR
#undef FI_CONV_DV
#undef FI_CONV_SR
#undef FI_CONV_SV
#undef FI_CONV_OR
#undef FI_CONV_OV
#undef FI_CONV_TR1
#undef FI_CONV_TR2
#undef FI_CONV_TR3
#endif

/* ---- run-time path ---- */
static int fi_conv_forced = 0;

static int fi_conv_isa(void) {
    int best = FI_ISA_BASE;
#if FI_X86
    if (fi_use_avx2) /* (common.c decides, FASTINIT_C_ISA included) */
        best = fi_use_avx512 ? FI_ISA_AVX512 : FI_ISA_AVX2;
#endif
    return fi_conv_forced && fi_conv_forced < best ? fi_conv_forced : best;
}

int fi_conv2d_set_path(int path) {
    fi_conv_forced = path >= FI_ISA_BASE && path <= FI_ISA_AVX512 ? path : 0;
    return fi_conv_isa();
}

const char *fi_conv2d_path(void) {
    switch (fi_conv_isa()) {
    case FI_ISA_AVX512: return "avx512";
    case FI_ISA_AVX2: return "avx2+fma";
    default: return "portable";
    }
}

/* Tile shapes of the current path: which 0 forward (pixel vectors), 1 weight gradient,
 * 2 weight gradient of small groups, 3 forward (channel vectors); rows and vectors, and lanes
 * of the element type. */
void fi_conv2d_tile(int which, int is_double, int *rows, int *nvec, int *lanes) {
    static const int shapes[3][4][2] = {
        {{4, 2}, {4, 2}, {4, 2}, {4, 2}},                                        /* portable */
        {{4, 3}, {6, 2}, {4, 2}, {6, 2}},                                        /* avx2 */
        {{8, 3}, {8, 2}, {4, 4}, {FI_CONV_OR_AVX512, FI_CONV_OV_AVX512}}};       /* avx512 */
    const int isa = fi_conv_isa();
    *rows = shapes[isa - 1][which][0];
    *nvec = shapes[isa - 1][which][1];
    const int bytes = isa == FI_ISA_AVX512 ? 64 : isa == FI_ISA_AVX2 ? 32 : 16;
    *lanes = bytes / (is_double ? 8 : 4);
}

/* The channel-vector tile (output channels along the vectors) for this forward? It has no
 * dropped columns, which the pixel-vector tile pays (S-1)*dw/Wq for, but needs the output
 * channels of a group to fill whole tiles. Measured (one core, float32, AVX-512): 7x7 C64 K64
 * 261 vs 236 GF/s at 56x56 and 248 vs 170 at 14x14, 5x5 257 vs 243; 3x3 about even; 1x1,
 * stride-2 3x3 and 16 output channels lose. */
static int fi_conv_use_channel_tile(const fi_conv_geo *g, int is_double) {
    int rows, nvec, lanes;
    fi_conv2d_tile(3, is_double, &rows, &nvec, &lanes);
    return g->R * g->S >= 25 && g->Kg % (nvec * lanes) == 0;
}

/* ---- small images ----
 * With few output pixels per image (the 8x8 and 4x4 images of the teaching CNN), the per-image
 * machinery above (a padded image, Wq - OW dropped columns, a tile buffer and its scatter)
 * costs more than the products. The small path (groups 1 only) builds the im2col of one image
 * at a time in a per-thread buffer (from the padded, phase-split image and the tap table, so
 * any stride, dilation and padding; a few KB: nothing grows with N) and runs the GEMM tile
 * straight on it, threads taking whole images:
 *   forward   y[n] (K x P) = [w | b] (K x CRS+1) @ [col; 1] (CRS+1 x P), stored straight into y
 *             (output channels down the tile rows, pixels along the vectors)
 *   dx        dcol (CRS x P) = w^T @ dy[n], then dx[n] = col2im(dcol) (taps down the rows)
 *   dw, db    acc (CRS+1 x K) += [col; 1] @ dy[n]^T per thread (taps down the rows, output
 *             channels along the vectors, dy[n] transposed in 16 x 16 register blocks; the
 *             row of ones gives db), the per-thread partials summed in thread order
 * The tile has FI_CONV_TR<v> rows x v vectors, v (1..3) chosen so that v vectors cover the
 * pixels (dw: output channels) in the fewest column blocks; dw splits its last panel of taps
 * into rows of 8, 4, 2.
 * When (fi_conv2d_small; measured on 2 threads, float32, AVX-512, against the kernels above,
 * N64 unless said): forward up to 144 output pixels (C1 8x8 K16 11 vs 17 us, C16 4x4 K32 50
 * vs 87, C8 12x12 73 vs 94; C8 16x16 lost, 147 vs 124); weight gradient up to 1024 (C1 8x8
 * 13 vs 63 us, C8 16x16 138 vs 276, C3 32x32 289 vs 946); dx only with C*R*S <= 32, where
 * the transposed kernel's rows of input channels go empty (C1 8x8 21 vs 40 us, C3 32x32 243
 * vs 420; C8 8x8 lost, 118 vs 60). Every per-thread buffer within FI_CONV_SMALL_BUF values.
 * Winograd, where it applies, runs before any of this (conv3x3.py has that rule). */
#define FI_CONV_SMALL_PIXELS 1024
#define FI_CONV_SMALL_FORWARD 144
#define FI_CONV_SMALL_DX_TAPS 32
#define FI_CONV_SMALL_BUF 65536
static int64_t fi_conv_small_pixels = FI_CONV_SMALL_PIXELS;

int fi_conv2d_small_pixels(int64_t pixels) {
    const int64_t old = fi_conv_small_pixels;
    if (pixels >= 0) fi_conv_small_pixels = pixels;
    return (int)old;
}

/* vectors per tile row (1..3) and the padded row length for `count` columns */
static void fi_conv_small_shape(int64_t count, int is_double, int *nvec, int64_t *ld) {
    int rows, nv, lanes;
    fi_conv2d_tile(0, is_double, &rows, &nv, &lanes);
    const int64_t v = (count + lanes - 1) / lanes, nb = (v + 2) / 3;
    *nvec = (int)((v + nb - 1) / nb);
    *ld = nb * *nvec * lanes;
}

int fi_conv2d_small(int kind, int is_double, int64_t c, int64_t k, int64_t r, int64_t s,
                    int64_t oh, int64_t ow, int64_t groups) {
    const int64_t CRS = c * r * s, P = oh * ow, most = fi_conv_small_pixels;
    if (groups != 1 || P > most) return 0;
    int nvec;
    int64_t ld;
    if (kind == 2) {   /* dyT (P x K) and col (CRS+1 x P) */
        fi_conv_small_shape(k, is_double, &nvec, &ld);
        return P * ld + (CRS + 1) * (P + 16) <= FI_CONV_SMALL_BUF;
    }
    if (kind == 0 ? P > FI_CONV_SMALL_FORWARD : CRS > FI_CONV_SMALL_DX_TAPS) return 0;
    fi_conv_small_shape(P, is_double, &nvec, &ld);
    return (CRS + 1 + (kind == 1 ? k : 0)) * ld <= FI_CONV_SMALL_BUF;
}

static int fi_conv_use_small(const fi_conv_geo *g, int kind, int is_double) {
    return fi_conv2d_small(kind, is_double, g->C, g->K, g->R, g->S, g->OH, g->OW, g->G);
}

#define FI_CONV_SMALL_DRIVERS(T, TS)                                                          \
static int fi_conv_small_forward_##TS(T *y, const T *x, const T *w, const T *b,              \
                                      const fi_conv_geo *g)                                   \
{                                                                                             \
    int nvec;                                                                                 \
    int64_t ld;                                                                               \
    fi_conv_small_shape(g->OH * g->OW, sizeof(T) == 8, &nvec, &ld);                           \
    const int64_t CRS = g->C * g->R * g->S, kc = CRS + (b != NULL);                           \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = (kc * ld + g->C * g->chan + 31) & ~(int64_t)15;                \
    const int64_t wb_size = ((b ? g->K * kc : 0) + 15) & ~(int64_t)15;                        \
    T *ws = fi_conv_scratch((size_t)(per_thread * nth + wb_size) * sizeof(T) +               \
                            (size_t)CRS * sizeof(int64_t));                                   \
    if (!ws) return -1;                                                                       \
    int64_t *tab = (int64_t *)(ws + per_thread * nth + wb_size);                              \
    fi_conv_forward_table(tab, g);                                                            \
    const T *wb = w;                                                                          \
    if (b) { /* [w | b]: the bias rides on a row of ones under the im2col */                  \
        T *p = ws + per_thread * nth;                                                         \
        for (int64_t kk = 0; kk < g->K; kk++) {                                               \
            memcpy(p + kk * kc, w + kk * CRS, (size_t)CRS * sizeof(T));                       \
            p[kk * kc + CRS] = b[kk];                                                         \
        }                                                                                     \
        wb = p;                                                                               \
    }                                                                                         \
    switch (fi_conv_isa()) {                                                                  \
    FI_CONV_CASES(small_forward, (y, x, wb, kc, tab, g, nvec, ld, ws, per_thread))            \
    }                                                                                         \
    return 0;                                                                                 \
}                                                                                             \
                                                                                              \
static int fi_conv_small_data_##TS(T *dx, const T *dy, const T *w, const fi_conv_geo *g)      \
{                                                                                             \
    int nvec;                                                                                 \
    int64_t ld;                                                                               \
    fi_conv_small_shape(g->OH * g->OW, sizeof(T) == 8, &nvec, &ld);                           \
    const int64_t CRS = g->C * g->R * g->S;                                                   \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = ((g->K + CRS) * ld + g->C * g->chan + 31) & ~(int64_t)15;      \
    T *ws = fi_conv_scratch((size_t)(per_thread * nth) * sizeof(T) +                          \
                            (size_t)CRS * sizeof(int64_t));                                   \
    if (!ws) return -1;                                                                       \
    int64_t *tab = (int64_t *)(ws + per_thread * nth);                                        \
    fi_conv_forward_table(tab, g);                                                            \
    switch (fi_conv_isa()) {                                                                  \
    FI_CONV_CASES(small_data, (dx, dy, w, tab, g, nvec, ld, ws, per_thread))                  \
    }                                                                                         \
    return 0;                                                                                 \
}                                                                                             \
                                                                                              \
static int fi_conv_small_weights_##TS(T *dw, T *db, const T *dy, const T *x,                  \
                                      const fi_conv_geo *g)                                   \
{                                                                                             \
    int nvec, rows, nv, lanes;                                                                \
    int64_t ldk;                                                                              \
    const int64_t CRS = g->C * g->R * g->S, nt = CRS + (db != NULL), P = g->OH * g->OW;       \
    fi_conv_small_shape(g->K, sizeof(T) == 8, &nvec, &ldk);                                   \
    fi_conv2d_tile(0, sizeof(T) == 8, &rows, &nv, &lanes);                                    \
    const int64_t ldp = (P + lanes - 1) / lanes * lanes;                                      \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = (P * ldk + nt * ldp + g->C * g->chan + 31) & ~(int64_t)15;     \
    const int64_t dwp_size = (nt * ldk + 15) & ~(int64_t)15;                                  \
    T *ws = fi_conv_scratch((size_t)((per_thread + dwp_size) * nth) * sizeof(T) +             \
                            (size_t)CRS * sizeof(int64_t));                                   \
    if (!ws) return -1;                                                                       \
    int64_t *tab = (int64_t *)(ws + (per_thread + dwp_size) * nth);                           \
    fi_conv_forward_table(tab, g);                                                            \
    switch (fi_conv_isa()) {                                                                  \
    FI_CONV_CASES(small_weights, (dw, db, dy, x, tab, g, nvec, ldk, ws, per_thread,           \
                                  ws + per_thread * nth, dwp_size))                           \
    }                                                                                         \
    return 0;                                                                                 \
}

/* ---- drivers, one per element type ---- */
#define FI_CONV_DRIVERS(T, TS)                                                                \
int fi_conv2d_forward_##TS(T *y, const T *x, const T *w, const T *b, int64_t n, int64_t c,     \
                           int64_t h, int64_t width, int64_t k, int64_t r, int64_t s,         \
                           int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl,        \
                           int64_t pr, int64_t dh, int64_t dw, int64_t groups)                \
{                                                                                             \
    /* x (n, c, h, width), w (k, c/groups, r, s), b (k,) or NULL -> y (n, k, oh, ow) */       \
    fi_conv_geo g;                                                                            \
    fi_conv_geo_init(&g, n, c, h, width, k, r, s, sh, sw, pt, pb, pl, pr, dh, dw, groups);   \
    if (fi_conv_use_small(&g, 0, sizeof(T) == 8))                                             \
        return fi_conv_small_forward_##TS(y, x, w, b, &g);                                    \
    const int isa = fi_conv_isa();                                                            \
    int rows, nvec, lanes;                                                                    \
    if (fi_conv_use_channel_tile(&g, sizeof(T) == 8)) {                                       \
        fi_conv2d_tile(3, sizeof(T) == 8, &rows, &nvec, &lanes);                              \
        const int64_t cols = nvec * lanes, CRS = g.Cg * r * s;                                \
        const int64_t nkb = (g.Kg + cols - 1) / cols;                                         \
        const int nth = fi_conv_max_threads();                                                \
        const int64_t per_thread = ((g.Cg * g.chan + rows + 16) + rows * cols + 15) & ~15;    \
        const int64_t pack_size = (groups * nkb * CRS * cols + 15) & ~(int64_t)15;            \
        char *mem = fi_conv_scratch((size_t)(per_thread * nth + pack_size) * sizeof(T) +      \
                                    (size_t)CRS * sizeof(int64_t));                           \
        if (!mem) return -1;                                                                  \
        T *ws = (T *)mem, *wpack = ws + per_thread * nth;                                     \
        int64_t *tab = (int64_t *)(wpack + pack_size);                                        \
        fi_conv_forward_table(tab, &g);                                                       \
        for (int64_t gi = 0; gi < groups; gi++)                                               \
            for (int64_t kb = 0; kb < nkb; kb++)                                              \
                for (int64_t t = 0; t < CRS; t++)                                             \
                    for (int64_t j = 0; j < cols; j++) {                                      \
                        const int64_t kk = kb * cols + j;                                     \
                        wpack[((gi * nkb + kb) * CRS + t) * cols + j] =                       \
                            kk < g.Kg ? w[(gi * g.Kg + kk) * CRS + t] : (T)0;                 \
                    }                                                                         \
        const int64_t nsplit = fi_conv_nsplit(n * groups, nth, g.OH);                         \
        switch (isa) {                                                                        \
        FI_CONV_CASES(forward_oc, (y, x, wpack, tab, b, &g, ws, per_thread, nsplit))          \
        }                                                                                     \
        return 0;                                                                             \
    }                                                                                         \
    fi_conv2d_tile(0, sizeof(T) == 8, &rows, &nvec, &lanes);                                  \
    const int rowtile = g.Kg == 1;                                                            \
    if (rowtile) { rows = 1; nvec = 4; }                                                      \
    const int64_t cols = nvec * lanes, CRS = g.Cg * r * s;                                    \
    const int64_t npan = (g.Kg + rows - 1) / rows;                                            \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = ((g.Cg * g.chan + cols + 16) + npan * rows * cols + 15) & ~15; \
    const int64_t pack_size = (groups * npan * CRS * rows + 15) & ~(int64_t)15;               \
    char *mem = fi_conv_scratch((size_t)(per_thread * nth + pack_size) * sizeof(T) +          \
                                (size_t)CRS * sizeof(int64_t));                               \
    if (!mem) return -1;                                                                      \
    T *ws = (T *)mem, *wpack = ws + per_thread * nth;                                         \
    int64_t *tab = (int64_t *)(wpack + pack_size);                                            \
    fi_conv_forward_table(tab, &g);                                                           \
    for (int64_t gi = 0; gi < groups; gi++)                                                   \
        for (int64_t q = 0; q < npan; q++)                                                    \
            for (int64_t t = 0; t < CRS; t++)                                                 \
                for (int64_t i = 0; i < rows; i++) {                                          \
                    const int64_t kk = q * rows + i;                                          \
                    wpack[((gi * npan + q) * CRS + t) * rows + i] =                           \
                        kk < g.Kg ? w[(gi * g.Kg + kk) * CRS + t] : (T)0;                     \
                }                                                                             \
    const int64_t P = (g.OH - 1) * g.Wq + g.OW;                                               \
    const int64_t nsplit = fi_conv_nsplit(n * groups, nth, (P + cols - 1) / cols);            \
    switch (isa) {                                                                            \
    FI_CONV_CASES(forward, (y, x, wpack, tab, b, &g, rowtile, ws, per_thread, nsplit))        \
    }                                                                                         \
    return 0;                                                                                 \
}                                                                                             \
                                                                                              \
static int fi_conv2d_backward_data_##TS(T *dx, const T *dy, const T *w, const fi_conv_geo *g)  \
{                                                                                             \
    const int isa = fi_conv_isa();                                                            \
    int rows, nvec, lanes;                                                                    \
    fi_conv2d_tile(0, sizeof(T) == 8, &rows, &nvec, &lanes);                                  \
    const int rowtile = g->Cg == 1;                                                           \
    if (rowtile) { rows = 1; nvec = 4; }                                                      \
    const int64_t cols = nvec * lanes, R = g->R, S = g->S;                                    \
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;                             \
    const int64_t Ty = ((R - 1) * dh) / sh, Tx = ((S - 1) * dw) / sw;                         \
    int64_t Hd = (g->pt + g->H + sh - 1) / sh, Wd = (g->pl + g->W + sw - 1) / sw;             \
    Hd = (Hd > g->OH ? Hd : g->OH) + Ty;                                                      \
    Wd = (Wd > g->OW ? Wd : g->OW) + Tx;                                                      \
    const int64_t npan = (g->Cg + rows - 1) / rows, ntot = g->Kg * R * S;                     \
    const int64_t pack_stride = npan * rows * ntot;                                           \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = ((g->Kg * Hd * Wd + cols + 16) + npan * rows * cols + 15) & ~15;\
    const int64_t pack_size = (g->G * pack_stride + 15) & ~(int64_t)15;                       \
    const int64_t nphase = sh * sw;                                                           \
    char *mem = fi_conv_scratch((size_t)(per_thread * nth + pack_size) * sizeof(T) +          \
                                (size_t)(ntot + 7 * nphase + R + S) * sizeof(int64_t));       \
    if (!mem) return -1;                                                                      \
    T *ws = (T *)mem, *packs = ws + per_thread * nth;                                         \
    int64_t *tabs = (int64_t *)(packs + pack_size), *rec = tabs + ntot;                       \
    int64_t *rt = rec + 7 * nphase, *st = rt + R;                                             \
    int64_t t0 = 0, pk0 = 0;                                                                  \
    for (int64_t ry = 0; ry < sh; ry++) {                                                     \
        int64_t nr = 0;                                                                       \
        for (int64_t rr = 0; rr < R; rr++) if ((rr * dh) % sh == ry) rt[nr++] = rr;           \
        const int64_t ylo = (g->pt - ry + sh - 1) / sh;                                       \
        const int64_t My = (g->pt + g->H - ry + sh - 1) / sh - ylo;                           \
        for (int64_t rx = 0; rx < sw; rx++) {                                                 \
            int64_t ns = 0;                                                                   \
            for (int64_t ss = 0; ss < S; ss++) if ((ss * dw) % sw == rx) st[ns++] = ss;       \
            const int64_t xlo = (g->pl - rx + sw - 1) / sw;                                   \
            const int64_t Mx = (g->pl + g->W - rx + sw - 1) / sw - xlo;                       \
            const int64_t ntap = g->Kg * nr * ns;                                             \
            int64_t *re = rec + (ry * sw + rx) * 7;                                           \
            re[0] = t0; re[1] = ntap; re[2] = pk0; re[3] = My; re[4] = Mx;                    \
            re[5] = ylo * sh + ry - g->pt; re[6] = xlo * sw + rx - g->pl;                     \
            for (int64_t kk = 0; kk < g->Kg; kk++)                                            \
                for (int64_t i = 0; i < nr; i++)                                              \
                    for (int64_t j = 0; j < ns; j++) {                                        \
                        const int64_t t = (kk * nr + i) * ns + j;                             \
                        tabs[t0 + t] = kk * Hd * Wd + (ylo - (rt[i] * dh) / sh + Ty) * Wd +   \
                                       (xlo - (st[j] * dw) / sw + Tx);                        \
                        for (int64_t gi = 0; gi < g->G; gi++)                                 \
                            for (int64_t q = 0; q < npan; q++)                                \
                                for (int64_t e = 0; e < rows; e++) {                          \
                                    const int64_t cc = q * rows + e;                          \
                                    packs[gi * pack_stride + pk0 + (q * ntap + t) * rows + e] \
                                        = cc < g->Cg ? w[(((gi * g->Kg + kk) * g->Cg + cc) *  \
                                                          R + rt[i]) * S + st[j]] : (T)0;     \
                                }                                                             \
                    }                                                                         \
            t0 += ntap;                                                                       \
            pk0 += npan * rows * ntap;                                                        \
        }                                                                                     \
    }                                                                                         \
    const int64_t nsplit = fi_conv_nsplit(g->N * g->G, nth, (g->H * Wd + cols - 1) / cols);  \
    switch (isa) {                                                                            \
    FI_CONV_CASES(backward_data, (dx, dy, packs, pack_stride, tabs, rec, nphase, g, Ty, Tx,   \
                                  Hd, Wd, rowtile, ws, per_thread, nsplit))                   \
    }                                                                                         \
    return 0;                                                                                 \
}                                                                                             \
                                                                                              \
static int fi_conv2d_backward_weights_##TS(T *dw_out, const T *dy, const T *x,                \
                                           const fi_conv_geo *g)                              \
{                                                                                             \
    const int isa = fi_conv_isa();                                                            \
    int rows, nvec, lanes;                                                                    \
    fi_conv2d_tile(1, sizeof(T) == 8, &rows, &nvec, &lanes);                                  \
    const int dot = 2 * g->Kg < nvec * lanes;                                                 \
    const int64_t CRS = g->Cg * g->R * g->S, RS = g->R * g->S, wsize = g->K * CRS;            \
    const int64_t pblock = FI_CONV_PBLOCK;                                                    \
    const int nth = fi_conv_max_threads();                                                    \
    const int64_t per_thread = ((g->Cg * g->chan + 16) + (dot ? 0 : g->Cg * pblock) +         \
                                (dot ? 0 : pblock * g->Kg + 4 * lanes + 16) + 15) & ~15;      \
    const int64_t dwp_size = (wsize + 15) & ~(int64_t)15;                                     \
    char *mem = fi_conv_scratch((size_t)(per_thread + dwp_size) * nth * sizeof(T) +          \
                                (size_t)CRS * sizeof(int64_t));                               \
    if (!mem) return -1;                                                                      \
    T *ws = (T *)mem, *dwp = ws + per_thread * nth;                                           \
    int64_t *tab = (int64_t *)(dwp + dwp_size * nth);                                         \
    fi_conv_forward_table(tab, g);                                                            \
    const int64_t units = dot ? g->OH : (g->OH * g->OW + pblock - 1) / pblock;                \
    const int64_t nsplit = fi_conv_nsplit(g->N * g->G, nth, units);                           \
    switch (isa) {                                                                            \
    FI_CONV_CASES(backward_weights, (dwp, x, dy, tab, g, dot, ws, per_thread, dwp_size,       \
                                     pblock, nsplit))                                         \
    }                                                                                         \
    _Pragma("omp parallel for schedule(static)")                                              \
    for (int64_t i = 0; i < wsize; i++) {                                                     \
        int64_t src = i;                                                                      \
        if (!dot) { /* dw[(gi*Kg + kk)*CRS + cc*RS + rs] <- dwp[((gi*RS + rs)*Cg + cc)*Kg + kk] */ \
            const int64_t kk_all = i / CRS, rem = i % CRS;                                    \
            const int64_t gi = kk_all / g->Kg, kk = kk_all % g->Kg;                           \
            const int64_t cc = rem / RS, rs = rem % RS;                                       \
            src = ((gi * RS + rs) * g->Cg + cc) * g->Kg + kk;                                 \
        }                                                                                     \
        T sum = 0;                                                                            \
        for (int t = 0; t < nth; t++) sum += dwp[t * dwp_size + src];                         \
        dw_out[i] = sum;                                                                      \
    }                                                                                         \
    return 0;                                                                                 \
}                                                                                             \
                                                                                              \
int fi_conv2d_backward_##TS(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,          \
                            int64_t n, int64_t c, int64_t h, int64_t width, int64_t k,        \
                            int64_t r, int64_t s, int64_t sh, int64_t sw, int64_t pt,         \
                            int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dwl,      \
                            int64_t groups)                                                   \
{                                                                                             \
    /* dy (n, k, oh, ow), x (n, c, h, width), w (k, c/groups, r, s) -> dx like x, dw like w,  \
     * db (k,); a NULL output is not computed */                                              \
    fi_conv_geo g;                                                                            \
    fi_conv_geo_init(&g, n, c, h, width, k, r, s, sh, sw, pt, pb, pl, pr, dh, dwl, groups);  \
    if (dx && (fi_conv_use_small(&g, 1, sizeof(T) == 8) ? fi_conv_small_data_##TS(dx, dy, w, &g) \
               : fi_conv2d_backward_data_##TS(dx, dy, w, &g))) return -1;                     \
    if (dw && fi_conv_use_small(&g, 2, sizeof(T) == 8)) {                                     \
        if (fi_conv_small_weights_##TS(dw, db, dy, x, &g)) return -1;                         \
        db = NULL; /* done beside dw */                                                       \
    } else if (dw && fi_conv2d_backward_weights_##TS(dw, dy, x, &g)) return -1;               \
    if (db) {                                                                                 \
        const int64_t P = g.OH * g.OW;                                                        \
        _Pragma("omp parallel for schedule(static)")                                          \
        for (int64_t kk = 0; kk < k; kk++) {                                                  \
            double part[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* 8 lanes: vectorised, fixed order */ \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const T *row = dy + (i * k + kk) * P;                                         \
                int64_t p = 0;                                                                \
                for (; p + 8 <= P; p += 8)                                                    \
                    for (int l = 0; l < 8; l++) part[l] += (double)row[p + l];                \
                for (; p < P; p++) part[p - (P & ~(int64_t)7)] += (double)row[p];             \
            }                                                                                 \
            db[kk] = (T)(((part[0] + part[1]) + (part[2] + part[3])) +                        \
                         ((part[4] + part[5]) + (part[6] + part[7])));                        \
        }                                                                                     \
    }                                                                                         \
    return 0;                                                                                 \
}

#if FI_X86
#define FI_CONV_CASES(kernel, args)                                                           \
    case FI_ISA_AVX512: FI_CAT(fi_conv_##kernel##_, FI_CONV_SFX(avx512)) args; break;         \
    case FI_ISA_AVX2: FI_CAT(fi_conv_##kernel##_, FI_CONV_SFX(avx2)) args; break;             \
    default: FI_CAT(fi_conv_##kernel##_, FI_CONV_SFX(base)) args; break;
#else
#define FI_CONV_CASES(kernel, args)                                                           \
    default: FI_CAT(fi_conv_##kernel##_, FI_CONV_SFX(base)) args; break;
#endif

#define FI_CONV_SFX(isa) cf32_##isa
FI_CONV_SMALL_DRIVERS(float, f32)
FI_CONV_DRIVERS(float, f32)
#undef FI_CONV_SFX
#define FI_CONV_SFX(isa) cf64_##isa
FI_CONV_SMALL_DRIVERS(double, f64)
FI_CONV_DRIVERS(double, f64)
#undef FI_CONV_SFX
