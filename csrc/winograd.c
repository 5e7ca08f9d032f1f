/* Winograd convolution, stride 1 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", CVPR 2016): F(4x4,3x3), F(2x2,5x5) and F(2x2,7x7) forward (and dx, the forward of
 * dy with the weights turned and transposed), and F(3x3,4x4) for the 3x3 weight gradient. One
 * generic code for all: F(m x m, r x r) on tiles of a = m + r - 1,
 *
 *   Y = A^T [ U (.) V ] A,   U = G g G^T (a x a per filter),   V = B^T d B (per input tile)
 *
 * with B^T (a x a), G (a x r) and A^T (m x a) from Cook-Toom on the points 0, 1, -1, 2, -2
 * and infinity (a = 6), and 0, 1, -1, 2, -2, 1/2, -1/2, infinity (a = 8, 7x7): row j of B^T
 * holds the coefficients of prod_{l != j} (x - p_l) (the last row: of prod_l (x - p_l)),
 * G[j, k] = p_j^k / prod_{l != j} (p_j - p_l), A^T[i, j] = p_j^i (infinity: the unit rows and
 * columns); fastinit/_numba/conv3x3.py computes the same tables. They are data, not code: one
 * transform (fi_wn_2d_) applies any of them, and since it is inlined with a constant table,
 * the compiler drops the zero terms and turns the ones into additions.
 *
 * Summed over input channels, the a*a elementwise products are a*a matrix products, one per
 * transform position xi: M[:, xi] (tiles x K) = V[:, xi] (tiles x C) @ U[xi] (C x K), on the
 * GEMM's register tile (gemm_tile.h: rows = tiles, vectors = output channels). Tiles are
 * numbered across the images (g = (n*TH + ty)*TW + tx), so a block of tiles spans small
 * images and the tile's rows stay full; items are (block, part of the output channels), the
 * parts giving every thread work when the blocks are few (deep layers on small maps). Per item
 * a thread builds the a rows under each run of its tiles channels last (a band), the input
 * transform of its tiles (V), the products (M) and the output transform into y. Per-thread
 * scratch is a block: tb tiles' V and M and one band, whatever the image or batch size.
 *
 * The weight gradient is the transposed algorithm F(3x3,4x4): per 4x4 tile of dy and the 6x6
 * patch of x under it, dw = A'^T [ sum over tiles (G' dy G'^T) (.) (B^T d B) ] A' with G'
 * (6x4) and A'^T (3x6) from the same points; 36 products reducing over the tiles, into
 * per-thread sums added in thread order.
 *
 * Accuracy: the transforms scale by up to 5 (7x7: 21/4 in B^T) and divide by up to 24 (7x7:
 * 90), so float32 results carry a few times the rounding error of direct convolution
 * (tests/test_conv.py::test_winograd_error, tests/test_conv_7x7.py).
 */
#include "fastinit.h"
#include "dispatch.h"
#include "scratch.h"

/* the Cook-Toom tables (row-major); BT6 serves F(4x4,3x3), F(2x2,5x5) and F(3x3,4x4) */
static const double fi_wn_BT6[36] = {
    4, 0, -5, 0, 1, 0,   0, -4, -4, 1, 1, 0,   0, 4, -4, -1, 1, 0,
    0, -2, -1, 2, 1, 0,  0, 2, -1, -2, 1, 0,   0, 4, 0, -5, 0, 1};
static const double fi_wn_G3[18] = {
    1.0 / 4, 0, 0,   -1.0 / 6, -1.0 / 6, -1.0 / 6,   -1.0 / 6, 1.0 / 6, -1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6,   1.0 / 24, -1.0 / 12, 1.0 / 6,   0, 0, 1};
static const double fi_wn_AT4[24] = {
    1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 0,   0, 1, 1, 4, 4, 0,   0, 1, -1, 8, -8, 1};
static const double fi_wn_G5[30] = {
    1.0 / 4, 0, 0, 0, 0,   -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6,
    -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3,
    1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3,
    0, 0, 0, 0, 1};
static const double fi_wn_AT2[12] = {1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 1};
static const double fi_wn_BT8[64] = {
    -1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1, 0,
    0, 1, 1, -17.0 / 4, -17.0 / 4, 1, 1, 0,
    0, -1, 1, 17.0 / 4, -17.0 / 4, -1, 1, 0,
    0, 1.0 / 2, 1.0 / 4, -5.0 / 2, -5.0 / 4, 2, 1, 0,
    0, -1.0 / 2, 1.0 / 4, 5.0 / 2, -5.0 / 4, -2, 1, 0,
    0, 2, 4, -5.0 / 2, -5, 1.0 / 2, 1, 0,
    0, -2, 4, 5.0 / 2, -5, -1.0 / 2, 1, 0,
    0, -1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1};
static const double fi_wn_G7[56] = {
    -1, 0, 0, 0, 0, 0, 0,
    -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9,
    -2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9,
    1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45, 16.0 / 45, 32.0 / 45,
    1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45, -16.0 / 45, 32.0 / 45,
    32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45, 1.0 / 45, 1.0 / 90,
    32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45, -1.0 / 45, 1.0 / 90,
    0, 0, 0, 0, 0, 0, 1};
static const double fi_wn_AT2_8[16] = {1, 1, 1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 0.5, -0.5, 1};
static const double fi_wn_G34[24] = {
    1.0 / 4, 0, 0, 0,   -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6,
    -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3,   1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3,   0, 0, 0, 1};
static const double fi_wn_AT3[18] = {1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 0,   0, 1, 1, 4, 4, 1};

/* A call and its blocking: tiles of m x m outputs, TH x TW per image, T per image, tiles in
 * all; Cp, Kp: the channels padded to whole vectors (Kp: whole tile widths); Kl: the
 * output channels of the widest part */
typedef struct {
    int64_t N, C, H, W, K, r, pt, pl, OH, OW, Cp, Kp, Kl, TW, T, tiles, tb, blocks, kparts;
    int threads, transposed;
} fi_wn;


/* scratch: the calling thread's conv buffer (scratch.h), reused call after call; a Winograd
 * pass and a pass of conv2d.c never hold it at the same time */
static void *fi_wn_scratch(size_t bytes) {
    return fi_scratch(FI_SCRATCH_CONV, bytes);
}

#define FI_BODY "winograd_isa.h"
#include "instances.h"

/* the build: fi_isa(), the one cap (as conv2d.c) */
#define fi_wn_isa fi_isa

static fi_wn fi_wn_make(const fi_wino_plan *p, int64_t m) {
    const int isa = fi_wn_isa();
    const int64_t bytes = isa == FI_ISA_AVX512 ? 64 : isa == FI_ISA_AVX2 ? 32 : 16;
    const int64_t lanes = bytes / (p->bits / 8);
    fi_wn q = {p->n, p->c, p->h, p->w, p->k, p->r, p->pt, p->pl, p->oh, p->ow};
    q.Cp = (q.C + lanes - 1) / lanes * lanes;
    q.Kp = (q.K + 2 * lanes - 1) / (2 * lanes) * 2 * lanes;
    q.TW = (q.OW + m - 1) / m;
    q.T = (q.OH + m - 1) / m * q.TW;
    q.tiles = q.N * q.T;
    q.tb = p->tb > 0 ? p->tb : 1;
    q.blocks = (q.tiles + q.tb - 1) / q.tb;
    q.kparts = p->kparts > 0 ? p->kparts : 1;
    q.Kl = (q.Kp / (2 * lanes) + q.kparts - 1) / q.kparts * 2 * lanes;
    q.threads = p->threads > 0 ? (int)p->threads : 1;
    q.transposed = (int)p->transposed;
    return q;
}

fi_status fi_conv2d_winograd(void *y, const void *x, const void *w, const void *b,
                             const fi_wino_plan *p) {
    const int64_t m = p->r == 3 ? 4 : 2, a = m + p->r - 1, es = p->bits / 8;
    const fi_wn q = fi_wn_make(p, m);
    const int64_t per = (q.tb * a * a * (q.Cp + q.Kl) + (q.tb + 2) * 16 * 16
                         + (a * (m * q.tb + a) + 16) * q.Cp + 64 + 15) & ~(int64_t)15;
    const int64_t usize = (a * a * q.C * q.Kp + 15) & ~(int64_t)15;
    char *ws = fi_wn_scratch((size_t)(usize + per * q.threads) * es);
    if (!ws) return FI_ERR_NOMEM;
    void *t = ws + usize * es;
    if (p->bits == 64) FI_ISA_CALL(fi_wn_isa(), fi_wn_conv_, f64, (y, x, w, b, &q, ws, t, per));
    else FI_ISA_CALL(fi_wn_isa(), fi_wn_conv_, f32, (y, x, w, b, &q, ws, t, per));
    return FI_OK;
}

fi_status fi_conv2d_winograd_dw(void *dw, void *db, const void *dy, const void *x,
                                const fi_wino_plan *p) {
    const int64_t es = p->bits / 8;
    const fi_wn q = fi_wn_make(p, 4);
    const int64_t per = (q.tb * 36 * (q.Cp + q.Kp) + (16 * q.tb + 16) * q.Kp
                         + (6 * (4 * q.tb + 6) + 16) * q.Cp + 64 + 15) & ~(int64_t)15;
    const int64_t per_acc = (36 * (q.K + 12) * q.Cp + q.Kp + 15) & ~(int64_t)15;
    char *ws = fi_wn_scratch((size_t)((per + per_acc) * q.threads) * es);
    if (!ws) return FI_ERR_NOMEM;
    void *acc = ws + per * q.threads * es, *t = ws;
    if (p->bits == 64)
        FI_ISA_CALL(fi_wn_isa(), fi_wn_dw_, f64, (dw, db, dy, x, acc, per_acc, &q, t, per));
    else
        FI_ISA_CALL(fi_wn_isa(), fi_wn_dw_, f32, (dw, db, dy, x, acc, per_acc, &q, t, per));
    return FI_OK;
}
