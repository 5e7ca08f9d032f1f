/* Winograd kernels of one (element type, ISA) instantiation: included by winograd.c through
 * instances.h, right after gemm_tile.h (the register tile fi_tile_bias_<SFX> of FI_MR x FI_NVEC
 * vectors, the transposes, the vector macros). winograd.c describes the algorithm and layouts.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)
#define FI_NR (FI_NVEC * FI_W)

/* sum_k c[k] v[k*vs] over the n coefficients c: a table of winograd.c, whose entries are
 * constants once this is inlined and unrolled, so zero terms vanish and ones are additions */
FI_ATTR FI_INLINE FI_V FI_FN(fi_wn_dot_)(const double *c, const int n, const FI_V *v,
                                         const int vs)
{
    FI_V s = FI_VZERO();
    int first = 1;
#pragma GCC unroll 8
    for (int k = 0; k < n; k++) {
        if (c[k] == 0) continue;
        if (c[k] == 1) s = first ? v[k * vs] : FI_VADD(s, v[k * vs]);
        else s = FI_VFMA(FI_VSET1((FI_T)c[k]), v[k * vs], s);   /* s is zero when first */
        first = 0;
    }
    return s;
}

/* o[i*os + j*oc] = (T X T^T)[i, j] for i, j < p: the p x n table T on both sides of the n x n
 * vectors X[k, l] = x[k*xr + l*xc], columns first, then rows, in registers */
FI_ATTR FI_INLINE void FI_FN(fi_wn_2d_)(const double *T, const int p, const int n,
                                        const FI_T *x, int64_t xr, int64_t xc, FI_T *o,
                                        int64_t os, int64_t oc)
{
    FI_V X[64], Y[64];
#pragma GCC unroll 8
    for (int k = 0; k < n; k++)
#pragma GCC unroll 8
        for (int l = 0; l < n; l++) X[k * n + l] = FI_VLOAD(x + k * xr + l * xc);
#pragma GCC unroll 8
    for (int i = 0; i < p; i++)
#pragma GCC unroll 8
        for (int l = 0; l < n; l++) Y[i * n + l] = FI_FN(fi_wn_dot_)(T + i * n, n, X + l, n);
#pragma GCC unroll 8
    for (int i = 0; i < p; i++)
#pragma GCC unroll 8
        for (int j = 0; j < p; j++)
            FI_VSTORE(o + i * os + j * oc, FI_FN(fi_wn_dot_)(T + j * n, n, Y + i * n, 1));
}

/* c (+)= A B on the register tile, A[r, k] = a[r*a_rs + k*a_ks] for all the tile's rows (those
 * past mv read and write values no one uses: the buffers have room), so the compiler knows
 * every row's address; a tail of at most 8 (4) rows takes an 8- (4-) row tile */
FI_ATTR FI_INLINE void FI_FN(fi_wn_tile_)(int64_t mv, int64_t kc, const FI_T *a, int64_t a_rs,
                                          int64_t a_ks, const FI_T *b, int64_t bstep, FI_T *c,
                                          int64_t ldc, int64_t nv, int beta)
{
    const int rows = mv > 8 || FI_MR <= 4 ? FI_MR : mv > 4 ? (FI_MR > 8 ? 8 : FI_MR) : 4;
    if (rows == FI_MR)
        FI_CAT(fi_tile_bias_, FI_SFX)(FI_MR, FI_NVEC, FI_A_STRIDED, FI_B_STRIDED, kc, a, a_rs,
                                      a_ks, b, bstep, NULL, c, ldc, FI_MR, nv, beta, NULL);
    else if (rows == 8)
        FI_CAT(fi_tile_bias_, FI_SFX)(8, FI_NVEC, FI_A_STRIDED, FI_B_STRIDED, kc, a, a_rs, a_ks,
                                      b, bstep, NULL, c, ldc, 8, nv, beta, NULL);
    else
        FI_CAT(fi_tile_bias_, FI_SFX)(4, FI_NVEC, FI_A_STRIDED, FI_B_STRIDED, kc, a, a_rs, a_ks,
                                      b, bstep, NULL, c, ldc, 4, nv, beta, NULL);
}

FI_ATTR FI_INLINE void FI_FN(fi_wn_zero_)(FI_T *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] = 0;
}

/* U[(xi*C + c)*Kp + k0 + l] = (G g G^T)[xi] for l < FI_W, g the r x r filter from input
 * channel c to output channel k = k0 + l: w[k, c] (w (K, C, r, r)) or, transposed, w[c, k]
 * turned by 180 degrees (w (C, K, r, r)); zero for k >= K. Gathered filter-value-major. */
FI_ATTR FI_INLINE void FI_FN(fi_wn_filter_)(FI_T *U, const FI_T *w, const fi_wn *q, int64_t c,
                                            int64_t k0, const int r)
{
    const int64_t C = q->C, K = q->K, Kp = q->Kp, rr = r * r, a = r == 3 ? 6 : r == 5 ? 6 : 8;
    FI_T g[49 * FI_W];
    for (int64_t l = 0; l < FI_W; l++)
        for (int64_t s = 0; s < rr; s++)
            g[s * FI_W + l] = k0 + l >= K ? 0
                              : q->transposed ? w[(c * K + k0 + l) * rr + rr - 1 - s]
                              : w[((k0 + l) * C + c) * rr + s];
    FI_FN(fi_wn_2d_)(r == 3 ? fi_wn_G3 : r == 5 ? fi_wn_G5 : fi_wn_G7, a, r, g, r * FI_W, FI_W,
                     U + c * Kp + k0, a * C * Kp, C * Kp);
}

/* d[kk*d_ld + i] = s[min(i, valid-1)*s_ld + kk] for kk, i < FI_W, zero for kk >= nl: a
 * transpose (gemm_tile.h) of rows of which only nl values may be read */
FI_ATTR FI_INLINE void FI_FN(fi_wn_tr_)(const FI_T *s, int64_t s_ld, int64_t valid, int64_t nl,
                                        FI_T *d, int64_t d_ld)
{
    FI_T t[FI_W * FI_W] __attribute__((aligned(64)));
    for (int64_t i = 0; i < FI_W; i++)
        FI_VSTORE(t + i * FI_W, FI_VMLOAD(s + (i < valid ? i : valid - 1) * s_ld, nl));
    FI_CAT(fi_transpose_, FI_SFX)(FI_W, t, FI_W, FI_W, d, d_ld);
}

/* xb[(i*bw + j)*Cp + c] = x[n, c, y0 + i, x0 + j] for i < a, j < bw, x (N, C, H, W), zero
 * outside the image: the a rows under a run of tiles, channels last. Channels C..Cp-1 hold
 * copies or zeros (no product reads them). FI_W x FI_W blocks are transposed in registers;
 * the last block of a row writes up to FI_W pixels past it (zeros: the band has room, the next
 * row follows and is written after). */
FI_ATTR static void FI_FN(fi_wn_band_)(FI_T *restrict xb, const FI_T *restrict x, int64_t C,
                                       int64_t Cp, int64_t H, int64_t W, int64_t n,
                                       int64_t y0, int64_t x0, int a, int64_t bw)
{
    const int64_t HW = H * W;
    const int64_t j0 = x0 < 0 ? (-x0 < bw ? -x0 : bw) : 0;
    const int64_t j1 = W - x0 < bw ? (W - x0 > j0 ? W - x0 : j0) : bw;
    for (int i = 0; i < a; i++) {
        FI_T *row = xb + i * bw * Cp;
        const int64_t iy = y0 + i;
        if (iy < 0 || iy >= H) {
            FI_FN(fi_wn_zero_)(row, bw * Cp);
            continue;
        }
        FI_FN(fi_wn_zero_)(row, j0 * Cp);
        const FI_T *src = x + (n * C * H + iy) * W + x0;   /* src[c*HW + j] */
        int64_t j = j0;
        for (; j + FI_W <= j1; j += FI_W)
            for (int64_t c0 = 0; c0 < C; c0 += FI_W)
                FI_CAT(fi_transpose_, FI_SFX)(FI_W, src + c0 * HW + j, HW, C - c0,
                                              row + j * Cp + c0, Cp);
        if (j < j1)   /* the last pixels: zeros past them, into the padding and next row */
            for (int64_t c0 = 0; c0 < C; c0 += FI_W)
                FI_FN(fi_wn_tr_)(src + c0 * HW + j, HW, C - c0, j1 - j, row + j * Cp + c0, Cp);
        FI_FN(fi_wn_zero_)(row + j1 * Cp, (bw - j1) * Cp);
    }
}

/* V[(t*a*a + xi)*Cp + c] = (B^T d B)[xi] for the tiles g0..g1-1 (t = g - g0), d the a x a
 * input patch of tile g: runs of tiles along a row share one band */
FI_ATTR FI_INLINE void FI_FN(fi_wn_input_)(FI_T *V, FI_T *xb, const FI_T *x, const fi_wn *q,
                                           int64_t g0, int64_t g1, const double *BT,
                                           const int m, const int a)
{
    const int64_t Cp = q->Cp, vts = a * a * Cp;
    for (int64_t g = g0; g < g1;) {
        const int64_t n = g / q->T, ty = g % q->T / q->TW, tx = g % q->TW;
        const int64_t len = q->TW - tx < g1 - g ? q->TW - tx : g1 - g, bw = m * len + a - m;
        FI_FN(fi_wn_band_)(xb, x, q->C, Cp, q->H, q->W, n, m * ty - q->pt, m * tx - q->pl, a,
                           bw);
        for (int64_t s = 0; s < len; s++)
            for (int64_t c0 = 0; c0 < Cp; c0 += FI_W)
                FI_FN(fi_wn_2d_)(BT, a, a, xb + m * s * Cp + c0, bw * Cp, Cp,
                                 V + (g - g0 + s) * vts + c0, a * Cp, Cp);
        g += len;
    }
}

/* ---- forward (and dx): y = A^T [ U (.) V ] A + b per tile ----
 * One item: block blk of tiles, part of the output channels. V of the block's tiles; per
 * transform position xi, M[:, xi] (tiles x the part's channels) = V[:, xi] @ U[xi] on the
 * register tile; then A^T M A of each tile and output vector, written to y with the bias.
 * r is a constant here (see fi_wn_conv_), so the tables fold into the transforms. */
FI_ATTR FI_INLINE void FI_FN(fi_wn_item_)(FI_T *y, const FI_T *x, const FI_T *U,
                                          const FI_T *bias, const fi_wn *q, FI_T *ws,
                                          int64_t blk, int64_t part, const int r)
{
    const int m = r == 3 ? 4 : 2, a = m + r - 1;
    const double *AT = r == 3 ? fi_wn_AT4 : r == 5 ? fi_wn_AT2 : fi_wn_AT2_8;
    const int64_t C = q->C, K = q->K, Kp = q->Kp, npan = Kp / FI_NR, Kl = q->Kl;
    const int64_t vts = a * a * q->Cp, mts = a * a * Kl;
    FI_T *V = ws, *M = V + q->tb * vts, *o = M + q->tb * mts, *o2 = o + 16 * FI_W;
    FI_T *xb = o2 + (q->tb * 16 + 1) * FI_W;
    const int64_t g0 = blk * q->tiles / q->blocks, g1 = (blk + 1) * q->tiles / q->blocks;
    const int64_t kb = part * npan / q->kparts * FI_NR;
    const int64_t ke_ = (part + 1) * npan / q->kparts * FI_NR, ke = ke_ < K ? ke_ : K;
    const int64_t nt = g1 - g0;
    FI_FN(fi_wn_input_)(V, xb, x, q, g0, g1, r == 7 ? fi_wn_BT8 : fi_wn_BT6, m, a);
    for (int64_t xi = 0; xi < a * a; xi++)
        for (int64_t t0 = 0; t0 < nt; t0 += FI_MR)
            for (int64_t k0 = kb; k0 < ke; k0 += FI_NR)
                FI_FN(fi_wn_tile_)(nt - t0, C, V + t0 * vts + xi * q->Cp, vts, 1,
                                   U + xi * C * Kp + k0, Kp, M + t0 * mts + xi * Kl + k0 - kb, mts,
                                   ke - k0 < FI_NR ? ke - k0 : FI_NR, 0);
    /* per run of tiles along a row and vector of channels: A^T M A of each tile (pixel-major,
     * at o), turned into channel rows ld2 apart (tile s at o2 + s*ts); then channel by channel
     * the run's rows go to y tile after tile, so a line of y is filled while it is in the L1
     * (channel planes of 4 KB would put every channel's line into one L1 set) */
    const int64_t ld2 = FI_W * ((m * m + FI_W - 1) / FI_W), ts = FI_W * ld2;
    for (int64_t g = g0; g < g1;) {
        const int64_t n = g / q->T, oy = g % q->T / q->TW * m, tx = g % q->TW;
        const int64_t run = q->TW - tx < g1 - g ? q->TW - tx : g1 - g;
        const int64_t rows = q->OH - oy < m ? q->OH - oy : m;
        for (int64_t k0 = kb; k0 < ke; k0 += FI_W) {
            for (int64_t s = 0; s < run; s++) {
                FI_FN(fi_wn_2d_)(AT, m, a, M + (g - g0 + s) * mts + k0 - kb, a * Kl, Kl, o,
                                 m * FI_W, FI_W);
                for (int64_t p0 = 0; p0 < m * m; p0 += FI_W)
                    FI_CAT(fi_transpose_, FI_SFX)(FI_W, o + p0 * FI_W, FI_W, m * m - p0,
                                                  o2 + s * ts + p0, ld2);
            }
            for (int64_t l = 0; l < FI_W && k0 + l < ke; l++) {
                const FI_V bk = FI_VSET1(bias ? bias[k0 + l] : 0);
                FI_T *yk = y + ((n * K + k0 + l) * q->OH + oy) * q->OW + tx * m;
                for (int64_t s = 0; s < run; s++) {
                    const FI_T *ok = o2 + s * ts + l * ld2;
                    const int64_t cols = q->OW - m * (tx + s) < m ? q->OW - m * (tx + s) : m;
                    /* row i of the tile: m pixels, two vectors when m = 4 > FI_W = 2 */
                    for (int64_t i = 0; i < rows; i++)
                        for (int64_t j = 0; j < cols; j += FI_W)
                            FI_VMSTORE(yk + s * m + i * q->OW + j,
                                       FI_VADD(FI_VLOAD(ok + i * m + j), bk), cols - j);
                }
            }
        }
        g += run;
    }
}

/* the filter transform into U, then the items, in parallel. r is tested inside the loops:
 * OpenMP outlines a parallel region before inlining, so a table chosen outside it would be a
 * variable in the region, and the transforms would multiply by every zero of it */
FI_ATTR static void FI_FN(fi_wn_conv_)(void *y_, const void *x_, const void *w_,
                                       const void *b_, const fi_wn *q, void *U_, void *ws_,
                                       int64_t per)
{
    FI_T *y = y_, *U = U_, *ws = ws_;
    const FI_T *x = x_, *w = w_, *b = b_;
    const int64_t nkv = q->Kp / FI_W, items = q->blocks * q->kparts;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t i = 0; i < q->C * nkv; i++) {
        if (q->r == 3) FI_FN(fi_wn_filter_)(U, w, q, i / nkv, i % nkv * FI_W, 3);
        else if (q->r == 5) FI_FN(fi_wn_filter_)(U, w, q, i / nkv, i % nkv * FI_W, 5);
        else FI_FN(fi_wn_filter_)(U, w, q, i / nkv, i % nkv * FI_W, 7);
    }
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t i = 0; i < items; i++) {
        FI_T *t = ws + fi_thread_num() * per;
        if (q->r == 3) FI_FN(fi_wn_item_)(y, x, U, b, q, t, i / q->kparts, i % q->kparts, 3);
        else if (q->r == 5) FI_FN(fi_wn_item_)(y, x, U, b, q, t, i / q->kparts, i % q->kparts, 5);
        else FI_FN(fi_wn_item_)(y, x, U, b, q, t, i / q->kparts, i % q->kparts, 7);
    }
}

/* ---- the 3x3 weight gradient: dw = A'^T [ sum over tiles (G' dy G'^T) (.) (B^T d B) ] A' ----
 * Threads take runs of blocks and sum into their own acc[xi][k][c] (36 x Kr x Cp; the bias
 * gradient after it), the tiles of a block being the product's reduction; the threads' sums
 * are then added in thread order and transformed, FI_W input channels at a time. */
FI_ATTR static void FI_FN(fi_wn_dw_)(FI_T *dw, FI_T *db, const FI_T *dy, const FI_T *x,
                                     FI_T *acc, int64_t per_acc, const fi_wn *q, FI_T *ws,
                                     int64_t per)
{
    const int64_t C = q->C, Cp = q->Cp, K = q->K, Kp = q->Kp, vts = 36 * Cp, dts = 36 * Kp;
    const int64_t Kr = (K + FI_MR - 1) / FI_MR * FI_MR;   /* acc's rows: whole tiles */
#pragma omp parallel num_threads(q->threads)
    {
        const int tid = fi_thread_num(), nth = fi_team_size();
        FI_T *V = ws + tid * per, *D = V + q->tb * vts, *g = D + q->tb * dts;
        FI_T *xb = g + (16 * q->tb + FI_W) * Kp;
        FI_T *A = acc + tid * per_acc, *dbs = A + 36 * Kr * Cp;
        int fresh = 1;
        FI_FN(fi_wn_zero_)(dbs, Kp);
        for (int64_t blk = tid * q->blocks / nth; blk < (tid + 1) * q->blocks / nth; blk++) {
            const int64_t g0 = blk * q->tiles / q->blocks, g1 = (blk + 1) * q->tiles / q->blocks;
            FI_FN(fi_wn_input_)(V, xb, x, q, g0, g1, fi_wn_BT6, 4, 6);
            for (int64_t t = g0; t < g1;) {   /* runs of 4x4 dy tiles: a band of 4 rows */
                const int64_t n = t / q->T, tx = t % q->TW;
                const int64_t run = q->TW - tx < g1 - t ? q->TW - tx : g1 - t;
                FI_FN(fi_wn_band_)(g, dy, K, Kp, q->OH, q->OW, n, t % q->T / q->TW * 4, tx * 4,
                                   4, 4 * run);
                for (int64_t k0 = 0; k0 < Kp; k0 += FI_W) {
                    for (int64_t s = 0; s < run; s++)
                        FI_FN(fi_wn_2d_)(fi_wn_G34, 6, 4, g + 4 * s * Kp + k0, 4 * run * Kp, Kp,
                                         D + (t - g0 + s) * dts + k0, 6 * Kp, Kp);
                    if (!db) continue;
                    FI_V v = FI_VLOAD(dbs + k0);   /* the bias gradient: dy's sums */
                    for (int64_t p = 0; p < 16 * run; p++)
                        v = FI_VADD(v, FI_VLOAD(g + p * Kp + k0));
                    FI_VSTORE(dbs + k0, v);
                }
                t += run;
            }
            for (int64_t xi = 0; xi < 36; xi++)
                for (int64_t k0 = 0; k0 < K; k0 += FI_MR)
                    for (int64_t c0 = 0; c0 < C; c0 += FI_NR)
                        FI_FN(fi_wn_tile_)(K - k0, g1 - g0, D + xi * Kp + k0, 1, dts,
                                           V + xi * Cp + c0, vts, A + (xi * Kr + k0) * Cp + c0,
                                           Cp, C - c0 < FI_NR ? C - c0 : FI_NR, !fresh);
            fresh = 0;
        }
        if (fresh) FI_FN(fi_wn_zero_)(A, 36 * Kr * Cp);
#pragma omp barrier
        const int64_t ncv = Cp / FI_W;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < K * ncv; item++) {
            const int64_t k = item / ncv, c0 = item % ncv * FI_W;
            FI_T s[36 * FI_W], o[9 * FI_W];
            for (int xi = 0; xi < 36; xi++) {
                FI_V v = FI_VLOAD(acc + (xi * Kr + k) * Cp + c0);
                for (int th = 1; th < nth; th++)
                    v = FI_VADD(v, FI_VLOAD(acc + th * per_acc + (xi * Kr + k) * Cp + c0));
                FI_VSTORE(s + xi * FI_W, v);
            }
            FI_FN(fi_wn_2d_)(fi_wn_AT3, 3, 6, s, 6 * FI_W, FI_W, o, 3 * FI_W, FI_W);
            for (int64_t l = 0; l < FI_W && c0 + l < C; l++)
                for (int p = 0; p < 9; p++) dw[(k * C + c0 + l) * 9 + p] = o[p * FI_W + l];
        }
        if (db && tid == 0)
            for (int64_t k = 0; k < K; k++) {
                FI_T s = 0;
                for (int th = 0; th < nth; th++) s += acc[th * per_acc + 36 * Kr * Cp + k];
                db[k] = s;
            }
    }
}

#undef FI_FN
#undef FI_NR
