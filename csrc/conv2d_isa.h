/* Direct convolution kernels of one (element type, ISA) instantiation: included by conv2d.c
 * right after gemm_tile.h (which defines the register tile fi_tile_<FI_SFX> and the vector
 * macros FI_V, FI_W, FI_VLOAD, ...), with FI_T, FI_SFX and the tile shapes defined:
 *   FI_CONV_FR x FI_CONV_FV   forward / backward-data tile (channels x vectors of pixels)
 *   FI_CONV_DR x FI_CONV_DV   weight-gradient tile (input channels x vectors of out channels)
 *   FI_CONV_SR x FI_CONV_SV   weight-gradient tile for groups of <= FI_CONV_SR input channels
 * The algorithms and layouts are described in conv2d.c; every function carries FI_ATTR so the
 * tile inlines with this ISA's instructions.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)

/* xq[((c*sh + py)*sw + px)*Hq*Wq + i*Wq + j] = x3[c, i*sh + py - pt, j*sw + px - pl], zero
 * outside x3 (x3: nc channels of H x W); then `slack` zeros. */
FI_ATTR static void FI_FN(fi_conv_fill_)(FI_T *restrict xq, const FI_T *restrict x3, int64_t H,
                                         int64_t W, int64_t nc, int64_t sh, int64_t sw,
                                         int64_t pt, int64_t pl, int64_t Hq, int64_t Wq,
                                         int64_t slack)
{
    const int64_t plane = Hq * Wq;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t py = 0; py < sh; py++)
            for (int64_t px = 0; px < sw; px++) {
                FI_T *base = xq + ((c * sh + py) * sw + px) * plane;
                int64_t jlo = pl > px ? (pl - px + sw - 1) / sw : 0;
                int64_t jhi = W - 1 + pl - px >= 0 ? (W - 1 + pl - px) / sw + 1 : 0;
                if (jhi > Wq) jhi = Wq;
                if (jhi < jlo) jhi = jlo;
                for (int64_t i = 0; i < Hq; i++) {
                    FI_T *row = base + i * Wq;
                    const int64_t iy = i * sh + py - pt;
                    if (iy < 0 || iy >= H || jhi == jlo) {
                        memset(row, 0, (size_t)Wq * sizeof(FI_T));
                        continue;
                    }
                    const FI_T *src = x3 + (c * H + iy) * W + jlo * sw + px - pl;
                    for (int64_t j = 0; j < jlo; j++) row[j] = 0;
                    if (sw == 1)
                        memcpy(row + jlo, src, (size_t)(jhi - jlo) * sizeof(FI_T));
                    else
                        for (int64_t j = 0; j < jhi - jlo; j++) row[jlo + j] = src[j * sw];
                    for (int64_t j = jhi; j < Wq; j++) row[j] = 0;
                }
            }
    memset(xq + nc * sh * sw * plane, 0, (size_t)slack * sizeof(FI_T));
}

/* out2[(k0 + k)*OH*OW + oy*OW + ox] = tb[k*ldt + j] (+ bias[k0 + k]) for the flattened pixels
 * p0 + j = oy*Wq + ox, j < nv; columns ox >= OW are dropped. */
FI_ATTR static void FI_FN(fi_conv_scatter_)(FI_T *restrict out2, int64_t plane_out, int64_t k0,
                                            int64_t nk, const FI_T *restrict tb, int64_t ldt,
                                            int64_t p0, int64_t nv, int64_t Wq, int64_t OW,
                                            const FI_T *restrict bias)
{
    int64_t j = 0;
    while (j < nv) {
        const int64_t p = p0 + j, oy = p / Wq, ox = p - oy * Wq;
        if (ox >= OW) { j += Wq - ox; continue; }
        const int64_t seg = OW - ox < nv - j ? OW - ox : nv - j;
        for (int64_t k = 0; k < nk; k++) {
            FI_T *restrict d = out2 + (k0 + k) * plane_out + oy * OW + ox;
            const FI_T *restrict s = tb + k * ldt + j;
            const FI_T bk = bias ? bias[k0 + k] : (FI_T)0;
            for (int64_t t = 0; t < seg; t++) d[t] = s[t] + bk;
        }
        j += seg;
    }
}

/* out2[(c0 + c)*H*W + (ybase + my*sh)*W + xbase + mx*sw] = tb[c*ldt + j] for the flattened
 * phase pixels p0 + j = my*Wd + mx, j < nv; columns mx >= Mx are dropped. */
FI_ATTR static void FI_FN(fi_conv_scatter_phase_)(FI_T *restrict out2, int64_t plane_out,
                                                  int64_t c0, int64_t nc,
                                                  const FI_T *restrict tb, int64_t ldt,
                                                  int64_t p0, int64_t nv, int64_t Wd, int64_t Mx,
                                                  int64_t ybase, int64_t xbase, int64_t sh,
                                                  int64_t sw, int64_t W)
{
    int64_t j = 0;
    while (j < nv) {
        const int64_t p = p0 + j, my = p / Wd, mx = p - my * Wd;
        if (mx >= Mx) { j += Wd - mx; continue; }
        const int64_t seg = Mx - mx < nv - j ? Mx - mx : nv - j;
        const int64_t d0 = (ybase + my * sh) * W + xbase + mx * sw;
        for (int64_t c = 0; c < nc; c++) {
            FI_T *restrict d = out2 + (c0 + c) * plane_out + d0;
            const FI_T *restrict s = tb + c * ldt + j;
            if (sw == 1)
                for (int64_t t = 0; t < seg; t++) d[t] = s[t];
            else
                for (int64_t t = 0; t < seg; t++) d[t * sw] = s[t];
        }
        j += seg;
    }
}

/* ---- forward: y (N, K, OH, OW) = conv(x (N, C, H, W), w) + b ---- */
FI_ATTR static void FI_FN(fi_conv_forward_)(FI_T *y, const FI_T *x, const FI_T *wpack,
                                            const int64_t *tab, const FI_T *bias,
                                            const fi_conv_geo *g, int rowtile, FI_T *ws,
                                            int64_t per_thread, int64_t nsplit)
{
    const int rows = rowtile ? 1 : FI_CONV_FR;
    const int64_t cols = (rowtile ? 4 : FI_CONV_FV) * FI_W;
    const int64_t CRS = g->Cg * g->R * g->S, npan = (g->Kg + rows - 1) / rows;
    const int64_t P = (g->OH - 1) * g->Wq + g->OW, nblk = (P + cols - 1) / cols;
    const int64_t plane = g->Cg * g->chan, items = g->N * g->G * nsplit;
    const int64_t xq_size = plane + cols + 16;
#pragma omp parallel
    {
        FI_T *xq = ws + (int64_t)fi_conv_thread_id() * per_thread;
        FI_T *tb = xq + xq_size;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t n = item / (g->G * nsplit), grp = (item / nsplit) % g->G;
            const int64_t part = item % nsplit;
            FI_FN(fi_conv_fill_)(xq, x + (n * g->C + grp * g->Cg) * g->H * g->W, g->H, g->W,
                                 g->Cg, g->sh, g->sw, g->pt, g->pl, g->Hq, g->Wq, cols + 16);
            for (int64_t blk = part * nblk / nsplit; blk < (part + 1) * nblk / nsplit; blk++) {
                const int64_t p0 = blk * cols, nv = P - p0 < cols ? P - p0 : cols;
                for (int64_t q = 0; q < npan; q++) {
                    const FI_T *a = wpack + ((grp * npan + q) * CRS) * rows;
                    const int64_t m = g->Kg - q * rows < rows ? g->Kg - q * rows : rows;
                    if (rowtile)
                        FI_CAT(fi_tile_, FI_SFX)(1, 4, FI_A_PACKED, FI_B_TABLE, CRS, a, 0, 0,
                                                 xq + p0, 0, tab, tb + q * cols, cols, m, nv, 0);
                    else
                        FI_CAT(fi_tile_, FI_SFX)(FI_CONV_FR, FI_CONV_FV, FI_A_PACKED,
                                                 FI_B_TABLE, CRS, a, 0, 0, xq + p0, 0, tab,
                                                 tb + q * FI_CONV_FR * cols, cols, m, nv, 0);
                }
                FI_FN(fi_conv_scatter_)(y + n * g->K * g->OH * g->OW, g->OH * g->OW,
                                        grp * g->Kg, g->Kg, tb, cols, p0, nv, g->Wq, g->OW,
                                        bias);
            }
        }
    }
}

/* Channel-vector tile (large kernels): C[r, j] = sum_k A[r, k] B[k, j] with A[r, k] =
 * a[r + tab[k]] (rows: consecutive output pixels of one row, read from the padded image
 * through the tap table) and B[k, j] = b[k*FI_CONV_OV*FI_W + j] (packed weights, output
 * channels along the vectors). No dropped columns, unlike the pixel-vector tile. C rows are
 * FI_CONV_OV*FI_W long; rows >= m are computed but not stored. */
FI_ATTR FI_INLINE void FI_FN(fi_conv_otile_)(int64_t kc, const FI_T *restrict a,
                                             const int64_t *restrict tab,
                                             const FI_T *restrict b, FI_T *restrict c,
                                             int64_t m)
{
    FI_V acc[FI_CONV_OR][FI_CONV_OV];
#pragma GCC unroll 16
    for (int r = 0; r < FI_CONV_OR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < FI_CONV_OV; v++) acc[r][v] = FI_VZERO();
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        const FI_T *ak = a + tab[k];
        const FI_T *bk = b + k * FI_CONV_OV * FI_W;
        FI_V bv[FI_CONV_OV];
#pragma GCC unroll 4
        for (int v = 0; v < FI_CONV_OV; v++) bv[v] = FI_VLOAD(bk + v * FI_W);
#pragma GCC unroll 16
        for (int r = 0; r < FI_CONV_OR; r++) {
            const FI_V s = FI_VSET1(ak[r]);
#pragma GCC unroll 4
            for (int v = 0; v < FI_CONV_OV; v++) acc[r][v] = FI_VFMA(s, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < FI_CONV_OR; r++)
        if (r < m)
#pragma GCC unroll 4
            for (int v = 0; v < FI_CONV_OV; v++)
                FI_VSTORE(c + r * FI_CONV_OV * FI_W + v * FI_W, acc[r][v]);
}

/* Forward with the channel-vector tile: per output row, blocks of FI_CONV_OR pixels x
 * FI_CONV_OV vectors of output channels; wpackT (G, nkb, CRS, cols) packed weights. */
FI_ATTR static void FI_FN(fi_conv_forward_oc_)(FI_T *y, const FI_T *x, const FI_T *wpackT,
                                               const int64_t *tab, const FI_T *bias,
                                               const fi_conv_geo *g, FI_T *ws,
                                               int64_t per_thread, int64_t nsplit)
{
    const int64_t cols = FI_CONV_OV * FI_W, CRS = g->Cg * g->R * g->S;
    const int64_t nkb = (g->Kg + cols - 1) / cols, nxb = (g->OW + FI_CONV_OR - 1) / FI_CONV_OR;
    const int64_t plane = g->Cg * g->chan, items = g->N * g->G * nsplit;
    const int64_t xq_size = plane + FI_CONV_OR + 16, OHW = g->OH * g->OW;
#pragma omp parallel
    {
        FI_T *xq = ws + (int64_t)fi_conv_thread_id() * per_thread;
        FI_T *tb = xq + xq_size;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t n = item / (g->G * nsplit), grp = (item / nsplit) % g->G;
            const int64_t part = item % nsplit;
            FI_FN(fi_conv_fill_)(xq, x + (n * g->C + grp * g->Cg) * g->H * g->W, g->H, g->W,
                                 g->Cg, g->sh, g->sw, g->pt, g->pl, g->Hq, g->Wq,
                                 FI_CONV_OR + 16);
            FI_T *yn = y + (n * g->K + grp * g->Kg) * OHW;
            for (int64_t oy = part * g->OH / nsplit; oy < (part + 1) * g->OH / nsplit; oy++)
                for (int64_t xb = 0; xb < nxb; xb++) {
                    const int64_t ox0 = xb * FI_CONV_OR;
                    const int64_t m = g->OW - ox0 < FI_CONV_OR ? g->OW - ox0 : FI_CONV_OR;
                    for (int64_t kb = 0; kb < nkb; kb++) {
                        FI_FN(fi_conv_otile_)(CRS, xq + oy * g->Wq + ox0, tab,
                                              wpackT + (grp * nkb + kb) * CRS * cols, tb, m);
                        const int64_t nk = g->Kg - kb * cols < cols ? g->Kg - kb * cols : cols;
                        for (int64_t j = 0; j < nk; j++) {
                            FI_T *d = yn + (kb * cols + j) * OHW + oy * g->OW + ox0;
                            const FI_T bj = bias ? bias[grp * g->Kg + kb * cols + j] : (FI_T)0;
                            for (int64_t r = 0; r < m; r++) d[r] = tb[r * cols + j] + bj;
                        }
                    }
                }
        }
    }
}

/* ---- backward data: dx (N, C, H, W) from dy (N, K, OH, OW), phase by phase ---- */
FI_ATTR static void FI_FN(fi_conv_backward_data_)(FI_T *dx, const FI_T *dy, const FI_T *packs,
                                                  int64_t pack_stride, const int64_t *tabs,
                                                  const int64_t *rec, int64_t nphase,
                                                  const fi_conv_geo *g, int64_t Ty, int64_t Tx,
                                                  int64_t Hd, int64_t Wd, int rowtile, FI_T *ws,
                                                  int64_t per_thread, int64_t nsplit)
{
    const int rows = rowtile ? 1 : FI_CONV_FR;
    const int64_t cols = (rowtile ? 4 : FI_CONV_FV) * FI_W;
    const int64_t npan = (g->Cg + rows - 1) / rows;
    const int64_t plane = g->Kg * Hd * Wd, items = g->N * g->G * nsplit;
    const int64_t dq_size = plane + cols + 16;
#pragma omp parallel
    {
        FI_T *dq = ws + (int64_t)fi_conv_thread_id() * per_thread;
        FI_T *tb = dq + dq_size;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t n = item / (g->G * nsplit), grp = (item / nsplit) % g->G;
            const int64_t part = item % nsplit;
            FI_FN(fi_conv_fill_)(dq, dy + (n * g->K + grp * g->Kg) * g->OH * g->OW, g->OH,
                                 g->OW, g->Kg, 1, 1, Ty, Tx, Hd, Wd, cols + 16);
            for (int64_t ph = 0; ph < nphase; ph++) {
                const int64_t *r = rec + ph * 7;
                const int64_t t0 = r[0], ntap = r[1], pk0 = r[2], My = r[3], Mx = r[4];
                if (My <= 0 || Mx <= 0) continue;
                const int64_t P = (My - 1) * Wd + Mx, nblk = (P + cols - 1) / cols;
                for (int64_t blk = part * nblk / nsplit; blk < (part + 1) * nblk / nsplit;
                     blk++) {
                    const int64_t p0 = blk * cols, nv = P - p0 < cols ? P - p0 : cols;
                    if (ntap == 0) /* no tap reaches this phase: its dx is zero */
                        memset(tb, 0, (size_t)(g->Cg * cols) * sizeof(FI_T));
                    for (int64_t q = 0; q < npan && ntap; q++) {
                        const FI_T *a = packs + grp * pack_stride + pk0 + q * ntap * rows;
                        const int64_t m = g->Cg - q * rows < rows ? g->Cg - q * rows : rows;
                        if (rowtile)
                            FI_CAT(fi_tile_, FI_SFX)(1, 4, FI_A_PACKED, FI_B_TABLE, ntap, a, 0,
                                                     0, dq + p0, 0, tabs + t0, tb + q * cols,
                                                     cols, m, nv, 0);
                        else
                            FI_CAT(fi_tile_, FI_SFX)(FI_CONV_FR, FI_CONV_FV, FI_A_PACKED,
                                                     FI_B_TABLE, ntap, a, 0, 0, dq + p0, 0,
                                                     tabs + t0, tb + q * FI_CONV_FR * cols,
                                                     cols, m, nv, 0);
                    }
                    FI_FN(fi_conv_scatter_phase_)(dx + n * g->C * g->H * g->W, g->H * g->W,
                                                  grp * g->Cg, g->Cg, tb, cols, p0, nv, Wd, Mx,
                                                  r[5], r[6], g->sh, g->sw, g->W);
                }
            }
        }
    }
}

/* dst[j*nk + k] = src[k*lds + j] for k < nk, j < npix (16 x 16 blocks) */
FI_ATTR static void FI_FN(fi_conv_transpose_)(FI_T *restrict dst, const FI_T *restrict src,
                                              int64_t lds, int64_t nk, int64_t npix)
{
    for (int64_t j0 = 0; j0 < npix; j0 += 16)
        for (int64_t k0 = 0; k0 < nk; k0 += 16) {
            const int64_t j1 = j0 + 16 < npix ? j0 + 16 : npix;
            const int64_t k1 = k0 + 16 < nk ? k0 + 16 : nk;
            for (int64_t j = j0; j < j1; j++)
                for (int64_t k = k0; k < k1; k++) dst[j * nk + k] = src[k * lds + j];
        }
}

/* dst[c*ld + j] = xq[base + c*chan + oy*Wq + ox] for the output pixels p0 + j = oy*OW + ox */
FI_ATTR static void FI_FN(fi_conv_gather_)(FI_T *restrict dst, int64_t ld,
                                           const FI_T *restrict xq, int64_t base, int64_t chan,
                                           int64_t nc, int64_t p0, int64_t npix, int64_t OW,
                                           int64_t Wq)
{
    int64_t j = 0;
    while (j < npix) {
        const int64_t oy = (p0 + j) / OW, ox = p0 + j - oy * OW;
        const int64_t seg = OW - ox < npix - j ? OW - ox : npix - j;
        const FI_T *src = xq + base + oy * Wq + ox;
        for (int64_t c = 0; c < nc; c++)
            memcpy(dst + c * ld + j, src + c * chan, (size_t)seg * sizeof(FI_T));
        j += seg;
    }
}

/* sum of the lanes of v */
FI_ATTR static FI_T FI_FN(fi_conv_hsum_)(FI_V v)
{
    FI_T lanes[FI_W];
    FI_VSTORE(lanes, v);
    FI_T s = 0;
    for (int i = 0; i < FI_W; i++) s += lanes[i];
    return s;
}

/* Dot tile (depthwise and narrow groups): c[t] += sum over nrows rows of rowlen values of
 * a[y*a_ys + i] * b[tab[t] + y*b_ys + i], t < n <= FI_CONV_DOT. */
#define FI_CONV_DOT 8
FI_ATTR static void FI_FN(fi_conv_dot_)(int64_t nrows, int64_t rowlen, const FI_T *a,
                                        int64_t a_ys, const FI_T *b, const int64_t *tab,
                                        int64_t b_ys, FI_T *c, int64_t n)
{
    FI_V acc[FI_CONV_DOT];
    const FI_T *bc[FI_CONV_DOT];
    for (int t = 0; t < FI_CONV_DOT; t++) {
        acc[t] = FI_VZERO();
        bc[t] = b + tab[t < n ? t : n - 1];
    }
    const int64_t nfull = rowlen / FI_W, tail = rowlen - nfull * FI_W;
    for (int64_t y = 0; y < nrows; y++) {
        const FI_T *ar = a + y * a_ys;
        for (int64_t v = 0; v < nfull; v++) {
            const FI_V av = FI_VLOAD(ar + v * FI_W);
#pragma GCC unroll 8
            for (int t = 0; t < FI_CONV_DOT; t++)
                acc[t] = FI_VFMA(av, FI_VLOAD(bc[t] + y * b_ys + v * FI_W), acc[t]);
        }
        if (tail) {
            const FI_V av = FI_VMLOAD(ar + nfull * FI_W, tail);
#pragma GCC unroll 8
            for (int t = 0; t < FI_CONV_DOT; t++)
                acc[t] = FI_VFMA(av, FI_VMLOAD(bc[t] + y * b_ys + nfull * FI_W, tail), acc[t]);
        }
    }
    for (int t = 0; t < FI_CONV_DOT; t++)
        if (t < n) c[t] += FI_FN(fi_conv_hsum_)(acc[t]);
}

/* ---- backward weights: per-thread partial dw (see conv2d.c for the two layouts) ---- */
FI_ATTR static void FI_FN(fi_conv_backward_weights_)(FI_T *dwp, const FI_T *x, const FI_T *dy,
                                                     const int64_t *tab, const fi_conv_geo *g,
                                                     int dot, FI_T *ws, int64_t per_thread,
                                                     int64_t wsize, int64_t pblock,
                                                     int64_t nsplit)
{
    const int64_t CRS = g->Cg * g->R * g->S, RS = g->R * g->S, P = g->OH * g->OW;
    const int64_t plane = g->Cg * g->chan, items = g->N * g->G * nsplit;
    const int small = g->Cg <= FI_CONV_SR;
    const int rows = small ? FI_CONV_SR : FI_CONV_DR;
    const int64_t ncol = (small ? FI_CONV_SV : FI_CONV_DV) * FI_W;
    const int64_t npan = (g->Cg + rows - 1) / rows;
    const int64_t xq_size = plane + 16, xt_size = dot ? 0 : g->Cg * pblock;
#pragma omp parallel
    {
        const int tid = fi_conv_thread_id();
        FI_T *xq = ws + (int64_t)tid * per_thread;
        FI_T *xt = xq + xq_size;
        FI_T *dyt = xt + xt_size;
        FI_T *acc = dwp + (int64_t)tid * wsize;
        memset(acc, 0, (size_t)wsize * sizeof(FI_T));
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t n = item / (g->G * nsplit), grp = (item / nsplit) % g->G;
            const int64_t part = item % nsplit;
            FI_FN(fi_conv_fill_)(xq, x + (n * g->C + grp * g->Cg) * g->H * g->W, g->H, g->W,
                                 g->Cg, g->sh, g->sw, g->pt, g->pl, g->Hq, g->Wq, 16);
            const FI_T *dyg = dy + (n * g->K + grp * g->Kg) * P;
            if (dot) {
                const int64_t oy0 = part * g->OH / nsplit, oy1 = (part + 1) * g->OH / nsplit;
                for (int64_t k = 0; k < g->Kg && oy1 > oy0; k++)
                    for (int64_t t0 = 0; t0 < CRS; t0 += FI_CONV_DOT)
                        FI_FN(fi_conv_dot_)(oy1 - oy0, g->OW, dyg + k * P + oy0 * g->OW, g->OW,
                                            xq + oy0 * g->Wq, tab + t0, g->Wq,
                                            acc + (grp * g->Kg + k) * CRS + t0,
                                            CRS - t0 < FI_CONV_DOT ? CRS - t0 : FI_CONV_DOT);
                continue;
            }
            const int64_t nblk = (P + pblock - 1) / pblock;
            for (int64_t blk = part * nblk / nsplit; blk < (part + 1) * nblk / nsplit; blk++) {
                const int64_t p0 = blk * pblock;
                const int64_t npix = P - p0 < pblock ? P - p0 : pblock;
                FI_FN(fi_conv_transpose_)(dyt, dyg + p0, P, g->Kg, npix);
                for (int64_t rs = 0; rs < RS; rs++) {
                    FI_FN(fi_conv_gather_)(xt, pblock, xq, tab[rs], g->chan, g->Cg, p0, npix,
                                           g->OW, g->Wq);
                    for (int64_t q = 0; q < npan; q++) {
                        const int64_t c0 = q * rows;
                        const int64_t m = g->Cg - c0 < rows ? g->Cg - c0 : rows;
                        FI_T *cb = acc + ((grp * RS + rs) * g->Cg + c0) * g->Kg;
                        for (int64_t kb = 0; kb < g->Kg; kb += ncol) {
                            const int64_t nn = g->Kg - kb < ncol ? g->Kg - kb : ncol;
                            if (small)
                                FI_CAT(fi_tile_, FI_SFX)(FI_CONV_SR, FI_CONV_SV, FI_A_STRIDED,
                                                         FI_B_STRIDED, npix, xt + c0 * pblock,
                                                         pblock, 1, dyt + kb, g->Kg, 0, cb + kb,
                                                         g->Kg, m, nn, 1);
                            else
                                FI_CAT(fi_tile_, FI_SFX)(FI_CONV_DR, FI_CONV_DV, FI_A_STRIDED,
                                                         FI_B_STRIDED, npix, xt + c0 * pblock,
                                                         pblock, 1, dyt + kb, g->Kg, 0, cb + kb,
                                                         g->Kg, m, nn, 1);
                        }
                    }
                }
            }
        }
    }
}

/* ---- small images: im2col of one image at a time + GEMM tiles (see conv2d.c) ---- */

/* d[0:n] = s[0:n] and d[0:n] = 0 in vectors and one masked tail (tiny rows: gcc would call
 * memcpy / memset for the plain loops) */
FI_ATTR FI_INLINE void FI_FN(fi_conv_copy_)(FI_T *restrict d, const FI_T *restrict s, int64_t n)
{
    int64_t i = 0;
    for (; i + FI_W <= n; i += FI_W) FI_VSTORE(d + i, FI_VLOAD(s + i));
    if (i < n) FI_VMSTORE(d + i, FI_VMLOAD(s + i, n - i), n - i);
}
FI_ATTR FI_INLINE void FI_FN(fi_conv_zero_)(FI_T *restrict d, int64_t n)
{
    int64_t i = 0;
    for (; i + FI_W <= n; i += FI_W) FI_VSTORE(d + i, FI_VZERO());
    if (i < n) FI_VMSTORE(d + i, FI_VZERO(), n - i);
}

/* im2col from the padded image: col[t*ld + oy*OW + ox] = xq[tab[t] + oy*Wq + ox] for the
 * CRS taps (sizes by value: with -fno-strict-aliasing, struct fields would be reloaded after
 * every store) */
FI_ATTR FI_INLINE void FI_FN(fi_conv_im2col_)(FI_T *restrict col, int64_t ld,
                                              const FI_T *restrict xq,
                                              const int64_t *restrict tab, int64_t CRS,
                                              int64_t OH, int64_t OW, int64_t Wq)
{
    for (int64_t t = 0; t < CRS; t++) {
        const FI_T *src = xq + tab[t];
        FI_T *d = col + t * ld;
        if (OW < FI_W)   /* one masked copy per row, the mask computed once */
            for (int64_t oy = 0; oy < OH; oy++)
                FI_VMSTORE(d + oy * OW, FI_VMLOAD(src + oy * Wq, OW), OW);
        else
            for (int64_t oy = 0; oy < OH; oy++)
                FI_FN(fi_conv_copy_)(d + oy * OW, src + oy * Wq, OW);
    }
}

/* Between x3 (nc, H, W) and the padded, phase-split image xq of fi_conv_fill_ (zeros outside
 * x3): mode 0 fills xq from x3, mode 1 only copies x3 in (xq's zeros were written before: the
 * same positions are zero for every image), mode 2 writes the interior of xq to x3. Vector
 * copies: rows here are a few values long. */
FI_ATTR static void FI_FN(fi_conv_pad_small_)(FI_T *restrict xq, FI_T *restrict x3, int64_t H,
                                              int64_t W, int64_t nc, const fi_conv_geo *g,
                                              const int mode)
{
    const int64_t sh = g->sh, sw = g->sw, Hq = g->Hq, Wq = g->Wq, plane = Hq * Wq;
    const int64_t pt = g->pt, pl = g->pl;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t py = 0; py < sh; py++)
            for (int64_t px = 0; px < sw; px++) {
                FI_T *base = xq + ((c * sh + py) * sw + px) * plane;
                int64_t jlo = pl > px ? (pl - px + sw - 1) / sw : 0;
                int64_t jhi = W - 1 + pl - px >= 0 ? (W - 1 + pl - px) / sw + 1 : 0;
                if (jhi > Wq) jhi = Wq;
                if (jhi < jlo) jhi = jlo;
                const int64_t n = jhi - jlo;
                for (int64_t i = 0; i < Hq; i++) {
                    FI_T *row = base + i * Wq;
                    const int64_t iy = i * sh + py - pt;
                    const int inside = iy >= 0 && iy < H && n > 0;
                    if (!inside) {
                        if (mode == 0) FI_FN(fi_conv_zero_)(row, Wq);
                        continue;
                    }
                    FI_T *xr = x3 + (c * H + iy) * W + jlo * sw + px - pl;
                    if (mode == 2) {
                        if (sw == 1)
                            FI_FN(fi_conv_copy_)(xr, row + jlo, n);
                        else
                            for (int64_t j = 0; j < n; j++) xr[j * sw] = row[jlo + j];
                        continue;
                    }
                    if (mode == 0) FI_FN(fi_conv_zero_)(row, jlo);
                    if (sw == 1)
                        FI_FN(fi_conv_copy_)(row + jlo, xr, n);
                    else
                        for (int64_t j = 0; j < n; j++) row[jlo + j] = xr[j * sw];
                    if (mode == 0) FI_FN(fi_conv_zero_)(row + jhi, Wq - jhi);
                }
            }
}

/* y2 (K, P) = wb (K, kc) @ col (kc, ld): output channels down the tile rows, pixels along
 * the vectors; kc = CRS, or CRS + 1 with the bias as the last column of wb and a row of ones */
FI_ATTR FI_INLINE void FI_FN(fi_conv_small_fwd_img_)(FI_T *y2, const FI_T *wb, int64_t kc,
                                                     const FI_T *col, int64_t ld, int64_t K,
                                                     int64_t P, const int rows, const int nvec)
{
    const int64_t cols = nvec * FI_W;
    for (int64_t k0 = 0; k0 < K; k0 += rows) {
        const int64_t m = K - k0 < rows ? K - k0 : rows;
        for (int64_t p0 = 0; p0 < P; p0 += cols)
            FI_CAT(fi_tile_, FI_SFX)(rows, nvec, FI_A_STRIDED, FI_B_STRIDED, kc, wb + k0 * kc,
                                     kc, 1, col + p0, ld, 0, y2 + k0 * P + p0, P, m,
                                     P - p0 < cols ? P - p0 : cols, 0);
    }
}

/* forward, groups 1: per image, col (kc x ld) = im2col (+ a row of ones), y[n] = wb @ col */
FI_ATTR static void FI_FN(fi_conv_small_forward_)(FI_T *y, const FI_T *x, const FI_T *wb,
                                                  int64_t kc, const int64_t *tab,
                                                  const fi_conv_geo *g, int nvec, int64_t ld,
                                                  FI_T *ws, int64_t per_thread)
{
    const int64_t CRS = g->C * g->R * g->S, P = g->OH * g->OW, OW = g->OW, Wq = g->Wq;
#pragma omp parallel
    {
        FI_T *col = ws + (int64_t)fi_conv_thread_id() * per_thread;
        FI_T *xq = col + kc * ld;
        memset(col, 0, (size_t)(kc * ld) * sizeof(FI_T));
        memset(xq, 0, (size_t)(g->C * g->chan) * sizeof(FI_T));
        for (int64_t p = 0; p < P && kc > CRS; p++) col[CRS * ld + p] = 1;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->N; n++) {
            FI_FN(fi_conv_pad_small_)(xq, (FI_T *)(x + n * g->C * g->H * g->W), g->H, g->W, g->C,
                                      g, 1);
            FI_FN(fi_conv_im2col_)(col, ld, xq, tab, CRS, g->OH, OW, Wq);
            FI_T *yn = y + n * g->K * P;
            if (nvec == 1)
                FI_FN(fi_conv_small_fwd_img_)(yn, wb, kc, col, ld, g->K, P, FI_CONV_TR1, 1);
            else if (nvec == 2)
                FI_FN(fi_conv_small_fwd_img_)(yn, wb, kc, col, ld, g->K, P, FI_CONV_TR2, 2);
            else
                FI_FN(fi_conv_small_fwd_img_)(yn, wb, kc, col, ld, g->K, P, FI_CONV_TR3, 3);
        }
    }
}

/* acc (nt, ldk) += col (nt taps, P) @ dyT (P, ldk): taps down the tile rows, output channels
 * along the vectors, reducing over the pixels of one image. The rows of the last panel are
 * split 8 + 4 + 2 (+ 2) so that no more than one tap row is computed and dropped. */
FI_ATTR FI_INLINE void FI_FN(fi_conv_small_dw_img_)(FI_T *acc, const FI_T *col, int64_t ldp,
                                                    int64_t nt, const FI_T *dyT, int64_t ldk,
                                                    int64_t P, const int rows, const int nvec)
{
    const int64_t cols = nvec * FI_W;
#define FI_CONV_DW_TILE(R_)                                                                     \
    for (int64_t kb = 0; kb < ldk; kb += cols)                                                  \
        FI_CAT(fi_tile_, FI_SFX)((R_), nvec, FI_A_STRIDED, FI_B_STRIDED, P, col + t0 * ldp, ldp, \
                                 1, dyT + kb, ldk, 0, acc + t0 * ldk + kb, ldk,                 \
                                 nt - t0 < (R_) ? nt - t0 : (R_), cols, 1)
    int64_t t0 = 0;
    for (; t0 + rows <= nt; t0 += rows) FI_CONV_DW_TILE(rows);
    if (rows > 8) for (; t0 + 8 <= nt; t0 += 8) FI_CONV_DW_TILE(8);
    if (rows > 4) for (; t0 + 4 <= nt; t0 += 4) FI_CONV_DW_TILE(4);
    for (; t0 < nt; t0 += 2) FI_CONV_DW_TILE(2);
#undef FI_CONV_DW_TILE
}

/* dst (npix, ldk) = src (nk, P)^T for npix <= P pixels: 16 x 16 blocks in registers
 * (fi_transpose_; rows beyond nk repeat the last one), a scalar tail for a partial block (the
 * block loads would read past src) */
FI_ATTR static void FI_FN(fi_conv_transpose_pix_)(FI_T *restrict dst, int64_t ldk,
                                                  const FI_T *restrict src, int64_t nk,
                                                  int64_t P)
{
    int64_t p0 = 0;
    for (; p0 + FI_W <= P; p0 += FI_W)
        for (int64_t k0 = 0; k0 < nk; k0 += FI_W)
            FI_CAT(fi_transpose_, FI_SFX)(FI_W, src + k0 * P + p0, P, nk - k0,
                                          dst + p0 * ldk + k0, ldk);
    for (; p0 < P; p0++)
        for (int64_t k = 0; k < nk; k++) dst[p0 * ldk + k] = src[k * P + p0];
}

/* weight gradient (and bias gradient when db), groups 1: per image, col (CRS x P) = im2col
 * (+ a row of ones at CRS for db) and dyT (P x K) = dy[n] transposed; per-thread partial
 * acc (CRS+1 x ldk) += col @ dyT; then the partials summed in thread order into dw (K, CRS)
 * and db (K,) */
FI_ATTR static void FI_FN(fi_conv_small_weights_)(FI_T *dw, FI_T *db, const FI_T *dy,
                                                  const FI_T *x, const int64_t *tab,
                                                  const fi_conv_geo *g, int nvec, int64_t ldk,
                                                  FI_T *ws, int64_t per_thread, FI_T *dwp,
                                                  int64_t dwp_size)
{
    const int64_t CRS = g->C * g->R * g->S, P = g->OH * g->OW, K = g->K;
    const int64_t nt = CRS + (db != NULL), ldp = (P + FI_W - 1) / FI_W * FI_W;
#pragma omp parallel
    {
        const int tid = fi_conv_thread_id();
        FI_T *dyT = ws + (int64_t)tid * per_thread;
        FI_T *col = dyT + P * ldk;
        FI_T *xq = col + nt * ldp;
        FI_T *acc = dwp + (int64_t)tid * dwp_size;
        memset(dyT, 0, (size_t)(P * ldk) * sizeof(FI_T));
        memset(col, 0, (size_t)(nt * ldp) * sizeof(FI_T));
        for (int64_t p = 0; p < P && db; p++) col[CRS * ldp + p] = 1;
        memset(acc, 0, (size_t)(nt * ldk) * sizeof(FI_T));
        memset(xq, 0, (size_t)(g->C * g->chan) * sizeof(FI_T));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->N; n++) {
            FI_FN(fi_conv_pad_small_)(xq, (FI_T *)(x + n * g->C * g->H * g->W), g->H, g->W, g->C,
                                      g, 1);
            FI_FN(fi_conv_im2col_)(col, ldp, xq, tab, CRS, g->OH, g->OW, g->Wq);
            FI_FN(fi_conv_transpose_pix_)(dyT, ldk, dy + n * K * P, K, P);
            if (nvec == 1)
                FI_FN(fi_conv_small_dw_img_)(acc, col, ldp, nt, dyT, ldk, P, FI_CONV_TR1, 1);
            else if (nvec == 2)
                FI_FN(fi_conv_small_dw_img_)(acc, col, ldp, nt, dyT, ldk, P, FI_CONV_TR2, 2);
            else
                FI_FN(fi_conv_small_dw_img_)(acc, col, ldp, nt, dyT, ldk, P, FI_CONV_TR3, 3);
        }
        const int nth = fi_conv_team_size();
#pragma omp for schedule(static)
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < nt; t++) {
                FI_T sum = dwp[t * ldk + k];
                for (int i = 1; i < nth; i++) sum += dwp[i * dwp_size + t * ldk + k];
                if (t < CRS)
                    dw[k * CRS + t] = sum;
                else
                    db[k] = sum;
            }
    }
}

/* dcol (CRS, ldp) = w^T (CRS, K) @ dyp (K, ldp): taps down the tile rows, pixels along the
 * vectors */
FI_ATTR FI_INLINE void FI_FN(fi_conv_small_dx_img_)(FI_T *dcol, const FI_T *w, int64_t CRS,
                                                    const FI_T *dyp, int64_t ldp, int64_t K,
                                                    const int rows, const int nvec)
{
    const int64_t cols = nvec * FI_W;
    for (int64_t t0 = 0; t0 < CRS; t0 += rows) {
        const int64_t m = CRS - t0 < rows ? CRS - t0 : rows;
        for (int64_t p0 = 0; p0 < ldp; p0 += cols)
            FI_CAT(fi_tile_, FI_SFX)(rows, nvec, FI_A_STRIDED, FI_B_STRIDED, K, w + t0, 1, CRS,
                                     dyp + p0, ldp, 0, dcol + t0 * ldp + p0, ldp, m, cols, 0);
    }
}

/* backward data, groups 1: per image dcol = w^T @ dy[n] (copied into rows of ldp), then
 * dx[n] = col2im(dcol) (the adjoint of fi_conv_im2col_) */
FI_ATTR static void FI_FN(fi_conv_small_data_)(FI_T *dx, const FI_T *dy, const FI_T *w,
                                               const int64_t *tab, const fi_conv_geo *g,
                                               int nvec, int64_t ldp, FI_T *ws,
                                               int64_t per_thread)
{
    const int64_t CRS = g->C * g->R * g->S, P = g->OH * g->OW, K = g->K;
    const int64_t OW = g->OW, Wq = g->Wq, xq_size = g->C * g->chan;
#pragma omp parallel
    {
        FI_T *dyp = ws + (int64_t)fi_conv_thread_id() * per_thread;
        FI_T *dcol = dyp + K * ldp;
        FI_T *xq = dcol + CRS * ldp;
        memset(dyp, 0, (size_t)(K * ldp) * sizeof(FI_T));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->N; n++) {
            for (int64_t k = 0; k < K; k++)
                FI_FN(fi_conv_copy_)(dyp + k * ldp, dy + (n * K + k) * P, P);
            if (nvec == 1)
                FI_FN(fi_conv_small_dx_img_)(dcol, w, CRS, dyp, ldp, K, FI_CONV_TR1, 1);
            else if (nvec == 2)
                FI_FN(fi_conv_small_dx_img_)(dcol, w, CRS, dyp, ldp, K, FI_CONV_TR2, 2);
            else
                FI_FN(fi_conv_small_dx_img_)(dcol, w, CRS, dyp, ldp, K, FI_CONV_TR3, 3);
            /* col2im into the padded layout (the adjoint of the im2col), then its interior */
            FI_FN(fi_conv_zero_)(xq, xq_size);
            for (int64_t t = 0; t < CRS; t++)
                for (int64_t oy = 0; oy < g->OH; oy++) {
                    FI_T *d = xq + tab[t] + oy * Wq;
                    const FI_T *sr = dcol + t * ldp + oy * OW;
                    int64_t ox = 0;
                    for (; ox + FI_W <= OW; ox += FI_W)
                        FI_VSTORE(d + ox, FI_VADD(FI_VLOAD(d + ox), FI_VLOAD(sr + ox)));
                    if (ox < OW)
                        FI_VMSTORE(d + ox, FI_VADD(FI_VMLOAD(d + ox, OW - ox),
                                                   FI_VMLOAD(sr + ox, OW - ox)), OW - ox);
                }
            /* x pixels that no output reads (stride > 1, kernels narrower than the stride)
             * are not in the padded layout: their dx is zero */
            FI_FN(fi_conv_zero_)(dx + n * g->C * g->H * g->W, g->C * g->H * g->W);
            FI_FN(fi_conv_pad_small_)(xq, dx + n * g->C * g->H * g->W, g->H, g->W, g->C, g, 2);
        }
    }
}

#undef FI_FN
