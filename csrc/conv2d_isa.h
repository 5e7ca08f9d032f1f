/* The general convolution engine of one (element type, ISA) instantiation: included by
 * conv2d.c through instances.h, right after gemm_tile.h (the register tile fi_tile_bias_<SFX>,
 * the transposes and the vector macros FI_V, FI_W, ...). conv2d.c describes the algorithm;
 * every function carries FI_ATTR so the tile inlines with this ISA's instructions.
 */
#define FI_NR (FI_NVEC * FI_W)
#define FI_FN(name) FI_CAT(name, FI_SFX)

/* ---- vector copies of short rows (a masked tail: rows here are a few values long) ---- */
FI_ATTR FI_INLINE void FI_FN(fi_cv_zero_)(FI_T *restrict d, int64_t n)
{
    int64_t i = 0;
    for (; i + FI_W <= n; i += FI_W) FI_VSTORE(d + i, FI_VZERO());
    if (i < n) FI_VMSTORE(d + i, FI_VZERO(), n - i);
}

/* Columns n.. of `rows` rows (ld apart) up to a whole tile width: the tile reads FI_NR columns
 * and stores only the first n, so the rest must hold zeros, not what the scratch held before
 * (denormals there cost a microcode assist per FMA: 28x on a small layer's dw) */
FI_ATTR static void FI_FN(fi_cv_tail_)(FI_T *restrict d, int64_t ld, int64_t rows, int64_t n)
{
    const int64_t pad = (n + FI_NR - 1) / FI_NR * FI_NR - n;
    if (pad)
        for (int64_t r = 0; r < rows; r++) FI_FN(fi_cv_zero_)(d + r * ld + n, pad);
}

/* d[i] = s[i*st] for i < n (add: d[i] += ...); st 1 and 2 are spelt out so that they vectorise */
FI_ATTR FI_INLINE void FI_FN(fi_cv_move_)(FI_T *restrict d, const FI_T *restrict s, int64_t n,
                                          int64_t st, const int add)
{
    if (st == 1) {
        int64_t i = 0;
        for (; i + FI_W <= n; i += FI_W)
            FI_VSTORE(d + i, add ? FI_VADD(FI_VLOAD(d + i), FI_VLOAD(s + i)) : FI_VLOAD(s + i));
        if (i < n)
            FI_VMSTORE(d + i, add ? FI_VADD(FI_VMLOAD(d + i, n - i), FI_VMLOAD(s + i, n - i))
                                  : FI_VMLOAD(s + i, n - i), n - i);
    } else if (st == 2) {
        for (int64_t i = 0; i < n; i++) d[i] = add ? d[i] + s[2 * i] : s[2 * i];
    } else {
        for (int64_t i = 0; i < n; i++) d[i] = add ? d[i] + s[i * st] : s[i * st];
    }
}

/* The patch matrix X[t, j] of group g: tap t = (c*R + r)*S + s, pixel j = (n*OH + oy)*OW + ox,
 * X[t, j] = x[n, g*Cg + c, oy*sh + r*dh - pt, ox*sw + s*dw - pl], zero in the padding, and a
 * block of it (taps t0.., pixels j0..) in col: X[t, j] at col[q*pq + r*pr + (j - j0)*pc] for
 * t - t0 = q*FI_MR + r (row-major with pq = FI_MR*ld, pr = ld, pc = 1; packed A panels of
 * FI_MR taps with pq = FI_MR*ld, pr = 1, pc = FI_MR). mode 0 builds the block (im2col), mode 1
 * adds it back into x (col2im, the adjoint). Pixels are walked in runs along one output row. */
FI_ATTR static void FI_FN(fi_cv_patches_)(FI_T *restrict col, int64_t pq, int64_t pr,
                                          int64_t pc, FI_T *restrict x, const fi_cv *q,
                                          int64_t g, int64_t t0, int64_t nt, int64_t j0,
                                          int64_t nj, const int mode)
{
    const int64_t sw = q->sw, W = q->W, OW = q->OW, CHW = q->C * q->HW;
    for (int64_t t = t0; t < t0 + nt; t++) {
        const int64_t c = t / q->RS, r = t / q->S % q->R, s = t % q->S;
        const int64_t offy = r * q->dh - q->pt, offx = s * q->dw - q->pl;
        /* the output columns ox whose input column ox*sw + offx lies in [0, W) */
        int64_t lo = offx < 0 ? (-offx + sw - 1) / sw : 0;
        int64_t hi = W - offx > 0 ? (W - offx + sw - 1) / sw : 0;
        if (hi > OW) hi = OW;
        if (lo > hi) lo = hi;
        FI_T *xc = x + (g * q->Cg + c) * q->HW + offx;
        FI_T *row = col + (t - t0) / FI_MR * pq + (t - t0) % FI_MR * pr;
        int64_t j = j0, n = j / q->P, oy = j % q->P / OW, ox = j % OW;
        while (j < j0 + nj) {
            const int64_t len = OW - ox < j0 + nj - j ? OW - ox : j0 + nj - j;
            const int64_t iy = oy * q->sh + offy;
            const int64_t a = iy < 0 || iy >= q->H ? ox + len : ox > lo ? ox : lo;
            const int64_t b = ox + len < hi ? ox + len : hi;
            FI_T *d = row + (j - j0 - ox) * pc;      /* d[ox'*pc] is pixel (n, oy, ox') */
            FI_T *src = xc + n * CHW + iy * W;
            if (mode == 0) {
                const int64_t zend = a < b ? a : ox + len;
                for (int64_t i = ox; i < zend; i++) d[i * pc] = 0;
                for (int64_t i = a < b ? b : zend; i < ox + len; i++) d[i * pc] = 0;
            }
            if (a < b) {
                if (pc == 1 && mode == 0) FI_FN(fi_cv_move_)(d + a, src + a * sw, b - a, sw, 0);
                else if (pc == 1 && sw == 1) FI_FN(fi_cv_move_)(src + a, d + a, b - a, 1, 1);
                else if (mode == 0) for (int64_t i = a; i < b; i++) d[i * pc] = src[i * sw];
                else for (int64_t i = a; i < b; i++) src[i * sw] += d[i * pc];
            }
            j += len;
            ox += len;
            if (ox == OW) {
                ox = 0;
                if (++oy == q->OH) { oy = 0; n++; }
            }
        }
    }
}

/* A tile of at most FI_MR rows (mv) over a packed A panel (FI_MR rows, k-major; a_ks is the
 * panel's height) and a B read as rows (b_step apart): a partial panel takes an 8- or 4-row
 * tile that reads only its first rows. */
FI_ATTR FI_INLINE void FI_FN(fi_cv_tile_)(int64_t mv, int64_t kc, const FI_T *a, const FI_T *b,
                                          int64_t bstep, FI_T *c, int64_t ldc, int64_t nv,
                                          int beta)
{
#if FI_MR > 8
    if (mv > 8)
        FI_CAT(fi_tile_bias_, FI_SFX)(FI_MR, FI_NVEC, FI_A_PACKED, FI_B_STRIDED, kc, a, 0, 0, b,
                                      bstep, 0, c, ldc, mv, nv, beta, NULL);
    else if (mv > 4)
        FI_CAT(fi_tile_bias_, FI_SFX)(8, FI_NVEC, FI_A_PANEL, FI_B_STRIDED, kc, a, 0, FI_MR, b,
                                      bstep, 0, c, ldc, mv, nv, beta, NULL);
    else
        FI_CAT(fi_tile_bias_, FI_SFX)(4, FI_NVEC, FI_A_PANEL, FI_B_STRIDED, kc, a, 0, FI_MR, b,
                                      bstep, 0, c, ldc, mv, nv, beta, NULL);
#else
    FI_CAT(fi_tile_bias_, FI_SFX)(FI_MR, FI_NVEC, FI_A_PACKED, FI_B_STRIDED, kc, a, 0, 0, b,
                                  bstep, 0, c, ldc, mv, nv, beta, NULL);
#endif
}

/* Rows k0..k1-1 of a pixel block (row k - k0 at cb + (k - k0)*ldc, pixels j0..j0+nj-1) and an
 * NCHW array z of `chans` channels per image: to z (dir 0: z = cb + bias[k], bias may be
 * NULL) or from z (dir 1: cb = z). Pixels are walked image by image. */
FI_ATTR static void FI_FN(fi_cv_rows_)(FI_T *restrict z, int64_t chans, int64_t zc0,
                                       FI_T *restrict cb, int64_t ldc, int64_t k0, int64_t k1,
                                       int64_t j0, int64_t nj, int64_t P,
                                       const FI_T *restrict bias, const int dir)
{
    for (int64_t j = j0; j < j0 + nj;) {
        const int64_t n = j / P, p = j % P, len = P - p < j0 + nj - j ? P - p : j0 + nj - j;
        for (int64_t k = k0; k < k1; k++) {
            FI_T *zr = z + (n * chans + zc0 + k) * P + p, *cr = cb + (k - k0) * ldc + j - j0;
            if (dir) { FI_FN(fi_cv_move_)(cr, zr, len, 1, 0); continue; }
            const FI_T bk = bias ? bias[k] : (FI_T)0;
            int64_t i = 0;
            for (; i + FI_W <= len; i += FI_W)
                FI_VSTORE(zr + i, FI_VADD(FI_VLOAD(cr + i), FI_VSET1(bk)));
            if (i < len)
                FI_VMSTORE(zr + i, FI_VADD(FI_VMLOAD(cr + i, len - i), FI_VSET1(bk)), len - i);
        }
        j += len;
    }
}

/* ---- forward: y[n, g*Kg + k, p] = sum_t W_g[k, t] X_g[t, (n, p)] + b ----
 * Items are (group, pixel chunk, part of the output channels); per item, per block of kc taps,
 * the block of X (kc x nj) is built in the thread's buffer and every panel of packed weights
 * (FI_MR output channels, wpack) runs the tile over it into a block of y (the thread's cb),
 * which is then written to y with the bias. */
FI_ATTR static void FI_FN(fi_cv_forward_)(void *y_, const void *x_, const void *wpack_,
                                          const void *bias_, const fi_cv *q, void *ws_,
                                          int64_t per_thread)
{
    FI_T *y = y_, *ws = ws_;
    const FI_T *x = x_, *wpack = wpack_, *bias = bias_;
    const int64_t nchunk = q->chunks, ldc = fi_cv_ld(q->nc), mp = (q->J + FI_NR - 1) / FI_NR;
    const int64_t npan = (q->Kg + FI_MR - 1) / FI_MR, items = q->G * nchunk * q->parts;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t item = 0; item < items; item++) {
        FI_T *col = ws + fi_thread_num() * per_thread, *cb = col + q->kc * ldc;
        const int64_t g = item / (nchunk * q->parts), ch = item / q->parts % nchunk;
        /* chunks of whole tile widths (FI_NR pixels), as even as they come */
        const int64_t part = item % q->parts, j0 = ch * mp / nchunk * FI_NR;
        const int64_t j1 = (ch + 1) * mp / nchunk * FI_NR, nj = (j1 < q->J ? j1 : q->J) - j0;
        const int64_t p0 = part * npan / q->parts, p1 = (part + 1) * npan / q->parts;
        for (int64_t t0 = 0; t0 < q->T; t0 += q->kc) {
            const int64_t kc = q->T - t0 < q->kc ? q->T - t0 : q->kc;
            FI_FN(fi_cv_patches_)(col, FI_MR * ldc, ldc, 1, (FI_T *)x, q, g, t0, kc, j0, nj, 0);
            FI_FN(fi_cv_tail_)(col, ldc, kc, nj);
            for (int64_t pn = p0; pn < p1; pn++) {
                const int64_t mv = q->Kg - pn * FI_MR < FI_MR ? q->Kg - pn * FI_MR : FI_MR;
                const FI_T *ap = wpack + ((g * npan + pn) * q->T + t0) * FI_MR;
                for (int64_t jb = 0; jb < nj; jb += FI_NR)
                    FI_FN(fi_cv_tile_)(mv, kc, ap, col + jb, ldc,
                                       cb + (pn - p0) * FI_MR * ldc + jb, ldc,
                                       nj - jb < FI_NR ? nj - jb : FI_NR, t0 > 0);
            }
        }
        const int64_t k0 = p0 * FI_MR, k1 = p1 * FI_MR < q->Kg ? p1 * FI_MR : q->Kg;
        FI_FN(fi_cv_rows_)(y, q->K, g * q->Kg, cb, ldc, k0, k1, j0, nj, q->P,
                           bias ? bias + g * q->Kg : NULL, 0);
    }
}

/* wpack[((g*npan + pn)*T + t)*FI_MR + r] = w[g*Kg + pn*FI_MR + r, t] (zero past Kg): the
 * weights as packed A panels of FI_MR output channels, k-major */
FI_ATTR static void FI_FN(fi_cv_pack_w_)(void *wpack_, const void *w_, const fi_cv *q)
{
    FI_T *wpack = wpack_;
    const FI_T *w = w_;
    const int64_t npan = (q->Kg + FI_MR - 1) / FI_MR;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t gp = 0; gp < q->G * npan; gp++) {
        const int64_t g = gp / npan, pn = gp % npan;
        FI_T *dst = wpack + gp * q->T * FI_MR;
        for (int64_t r = 0; r < FI_MR; r++) {
            const int64_t k = pn * FI_MR + r;
            const FI_T *src = w + (g * q->Kg + (k < q->Kg ? k : 0)) * q->T;
            for (int64_t t = 0; t < q->T; t++) dst[t * FI_MR + r] = k < q->Kg ? src[t] : (FI_T)0;
        }
    }
}

/* ---- backward data: dx = col2im(W_g^T dy_g) ----
 * Items are (group, range of images, part of the input channels): nothing one item adds to
 * dx is touched by another. Per pixel chunk of its images: the chunk of dy (Kg x nj) is
 * copied into the thread's buffer; per block of tb taps (of its channels) the tile computes
 * dcol = W_g^T[taps, :] @ dy chunk from the packed panels of W_g^T (fi_cv_pack_wt_), and dcol
 * is added into dx. */
FI_ATTR static void FI_FN(fi_cv_backward_data_)(void *dx_, const void *dy_, const void *wtp_,
                                                const fi_cv *q, void *ws_, int64_t per_thread)
{
    FI_T *dx = dx_, *ws = ws_;
    const FI_T *dy = dy_, *wtp = wtp_;
    const int64_t ldc = fi_cv_ld(q->nc), nimg = q->imgs, parts = q->parts;
    const int64_t items = q->G * nimg * parts, tmax = fi_cv_tmax(q, FI_MR);
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t item = 0; item < items; item++) {
        FI_T *dyc = ws + fi_thread_num() * per_thread, *dcol = dyc + q->Kg * ldc;
        const int64_t g = item / (nimg * parts), ib = item / parts % nimg, part = item % parts;
        const int64_t n0 = ib * q->N / nimg, n1 = (ib + 1) * q->N / nimg;
        const int64_t c0 = part * q->Cg / parts, c1 = (part + 1) * q->Cg / parts;
        const FI_T *wp = wtp + (g * parts + part) * tmax * q->Kg;
        for (int64_t n = n0; n < n1; n++)
            for (int64_t c = c0; c < c1; c++)
                FI_FN(fi_cv_zero_)(dx + (n * q->C + g * q->Cg + c) * q->HW, q->HW);
        for (int64_t j0 = n0 * q->P; j0 < n1 * q->P; j0 += q->nc) {
            const int64_t nj = n1 * q->P - j0 < q->nc ? n1 * q->P - j0 : q->nc;
            FI_FN(fi_cv_rows_)((FI_T *)dy, q->K, g * q->Kg, dyc, ldc, 0, q->Kg, j0, nj, q->P,
                               NULL, 1);
            FI_FN(fi_cv_tail_)(dyc, ldc, q->Kg, nj);
            for (int64_t tp = 0; tp < (c1 - c0) * q->RS; tp += q->tb) {
                const int64_t nt = (c1 - c0) * q->RS - tp < q->tb ? (c1 - c0) * q->RS - tp : q->tb;
                for (int64_t kb = 0; kb < q->Kg; kb += q->kc) {
                    const int64_t kc = q->Kg - kb < q->kc ? q->Kg - kb : q->kc;
                    for (int64_t t = 0; t < nt; t += FI_MR)
                        for (int64_t jb = 0; jb < nj; jb += FI_NR)
                            FI_FN(fi_cv_tile_)(nt - t < FI_MR ? nt - t : FI_MR, kc,
                                               wp + ((tp + t) / FI_MR * q->Kg + kb) * FI_MR,
                                               dyc + kb * ldc + jb, ldc, dcol + t * ldc + jb,
                                               ldc, nj - jb < FI_NR ? nj - jb : FI_NR, kb > 0);
                }
                FI_FN(fi_cv_patches_)(dcol, FI_MR * ldc, ldc, 1, dx, q, g, c0 * q->RS + tp, nt,
                                      j0, nj, 1);
            }
        }
    }
}

/* W_g^T as packed A panels of FI_MR taps, per (group, part of the input channels), k-major
 * over Kg: wtp[((g*parts + part)*tmax + t)*Kg... = w[g*Kg + k, c0*RS + t] (zero past the
 * part's taps), so every part's taps start on a panel */
FI_ATTR static void FI_FN(fi_cv_pack_wt_)(void *wtp_, const void *w_, const fi_cv *q)
{
    FI_T *wtp = wtp_;
    const FI_T *w = w_;
    const int64_t tmax = fi_cv_tmax(q, FI_MR), gp = q->G * q->parts;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t i = 0; i < gp * (tmax / FI_MR); i++) {
        const int64_t g = i / (tmax / FI_MR) / q->parts, part = i / (tmax / FI_MR) % q->parts;
        const int64_t pn = i % (tmax / FI_MR);
        const int64_t c0 = part * q->Cg / q->parts, c1 = (part + 1) * q->Cg / q->parts;
        FI_T *dst = wtp + ((g * q->parts + part) * tmax + pn * FI_MR) * q->Kg;
        for (int64_t k = 0; k < q->Kg; k++)
            for (int64_t r = 0; r < FI_MR; r++) {
                const int64_t t = pn * FI_MR + r;
                dst[k * FI_MR + r] = t < (c1 - c0) * q->RS
                    ? w[(g * q->Kg + k) * q->T + c0 * q->RS + t] : (FI_T)0;
            }
    }
}

/* ap[q*FI_MR*ld + k*FI_MR + r] = col[(q*FI_MR + r)*ld + k] for the nt rows and nk columns of
 * a row-major block: packed A panels of FI_MR rows, FI_W x FI_W blocks in registers (rows
 * past nt repeat the last: their sums are never stored) */
FI_ATTR static void FI_FN(fi_cv_panels_)(FI_T *restrict ap, const FI_T *restrict col,
                                         int64_t ld, int64_t nt, int64_t nk)
{
    for (int64_t t = 0; t < nt; t += FI_MR) {
        const int64_t rows = nt - t < FI_MR ? nt - t : FI_MR;
        FI_T *panel = ap + t * ld;
        int64_t k = 0;
        for (; k + FI_W <= nk; k += FI_W)
            FI_CAT(fi_transpose_, FI_SFX)(FI_MR, col + t * ld + k, ld, rows, panel + k * FI_MR,
                                          FI_MR);
        for (; k < nk; k++)
            for (int64_t r = 0; r < FI_MR; r++)
                panel[k * FI_MR + r] = col[(t + (r < rows ? r : rows - 1)) * ld + k];
    }
}

/* dyt[(j - j0)*ldk + k] = dy[n, g*Kg + k, p] for the pixels j = n*P + p of a chunk: the chunk
 * of dy transposed, 16 x 16 (8 x 8, ...) blocks in registers where a run of pixels allows */
FI_ATTR static void FI_FN(fi_cv_dyt_)(FI_T *restrict dyt, int64_t ldk, const FI_T *restrict dy,
                                      const fi_cv *q, int64_t g, int64_t j0, int64_t nj)
{
    for (int64_t j = j0; j < j0 + nj;) {
        const int64_t n = j / q->P, p = j % q->P;
        const int64_t len = q->P - p < j0 + nj - j ? q->P - p : j0 + nj - j;
        const FI_T *src = dy + (n * q->K + g * q->Kg) * q->P + p;
        FI_T *dst = dyt + (j - j0) * ldk;
        int64_t i = 0;
        for (; i + FI_W <= len; i += FI_W)
            for (int64_t k0 = 0; k0 < q->Kg; k0 += FI_W)
                FI_CAT(fi_transpose_, FI_SFX)(FI_W, src + k0 * q->P + i, q->P, q->Kg - k0,
                                              dst + i * ldk + k0, ldk);
        for (; i < len; i++)
            for (int64_t k = 0; k < q->Kg; k++) dst[i * ldk + k] = src[k * q->P + i];
        j += len;
    }
    FI_FN(fi_cv_tail_)(dyt, ldk, nj, q->Kg);
}

/* ---- backward weights: dwt_g (T x Kg) = sum over pixels X_g[t, j] dy_g[k, j] ----
 * Items are (group, part): a part is a range of pixels, its own partial sum at acc + part *
 * per_acc (q->split 0: the parts are added afterwards, in order), or a range of taps over all
 * pixels, written to acc directly (q->split 1). Per pixel chunk: dy transposed (dyt, nj x
 * ldk), then per block of tb taps the patch block (tb x nj) and the tiles, which reduce over
 * the chunk's pixels. */
FI_ATTR static void FI_FN(fi_cv_backward_weights_)(void *acc_, int64_t per_acc,
                                                   const void *dy_, const void *x_,
                                                   const fi_cv *q, void *ws_, int64_t per_thread)
{
    FI_T *acc = acc_, *ws = ws_;
    const FI_T *dy = dy_, *x = x_;
    const int64_t ldc = fi_cv_ld(q->nc), ldk = fi_cv_ld(q->Kg), items = q->G * q->parts;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t item = 0; item < items; item++) {
        FI_T *dyt = ws + fi_thread_num() * per_thread, *col = dyt + q->nc * ldk;
        FI_T *ap = col + fi_cv_tpad(q->tb, FI_MR) * ldc;
        const int64_t g = item / q->parts, part = item % q->parts;
        int64_t ja = 0, jb = q->J, ta = 0, tz = q->T;
        FI_T *out = acc + g * q->T * ldk;
        if (q->split == 0) {
            ja = part * q->J / q->parts;
            jb = (part + 1) * q->J / q->parts;
            out = acc + part * per_acc + g * q->T * ldk;
        } else {
            const int64_t npan = (q->T + FI_MR - 1) / FI_MR;
            ta = part * npan / q->parts * FI_MR;
            tz = (part + 1) * npan / q->parts * FI_MR;
            if (tz > q->T) tz = q->T;
        }
        for (int64_t t = ta; t < tz; t++) FI_FN(fi_cv_zero_)(out + t * ldk, ldk);
        for (int64_t j0 = ja; j0 < jb; j0 += q->nc) {
            const int64_t nj = jb - j0 < q->nc ? jb - j0 : q->nc;
            FI_FN(fi_cv_dyt_)(dyt, ldk, dy, q, g, j0, nj);
            for (int64_t t0 = ta; t0 < tz; t0 += q->tb) {
                const int64_t nt = tz - t0 < q->tb ? tz - t0 : q->tb;
                FI_FN(fi_cv_patches_)(col, FI_MR * ldc, ldc, 1, (FI_T *)x, q, g, t0, nt, j0, nj,
                                      0);
                FI_FN(fi_cv_panels_)(ap, col, ldc, nt, nj);
                for (int64_t k0 = 0; k0 < q->Kg; k0 += q->kc)   /* dyt's block in L2 */
                    for (int64_t t = 0; t < nt; t += FI_MR)
                        for (int64_t kb = k0; kb < k0 + q->kc && kb < q->Kg; kb += FI_NR)
                            FI_FN(fi_cv_tile_)(nt - t < FI_MR ? nt - t : FI_MR, nj,
                                               ap + t * ldc, dyt + kb, ldk,
                                               out + (t0 + t) * ldk + kb, ldk,
                                               q->Kg - kb < FI_NR ? q->Kg - kb : FI_NR, 1);
            }
        }
    }
}

/* dw[g*Kg + k, t] = sum over the nacc partial sums dwt (G*T x ldk each, per_acc apart), in
 * order */
FI_ATTR static void FI_FN(fi_cv_sum_dw_)(void *dw_, const void *acc_, int64_t per_acc,
                                         int64_t nacc, const fi_cv *q)
{
    FI_T *dw = dw_;
    const FI_T *acc = acc_;
    const int64_t ldk = fi_cv_ld(q->Kg);
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t gt = 0; gt < q->G * q->T; gt++) {
        const int64_t g = gt / q->T, t = gt % q->T;
        for (int64_t k = 0; k < q->Kg; k++) {
            FI_T s = acc[gt * ldk + k];
            for (int64_t a = 1; a < nacc; a++) s += acc[a * per_acc + gt * ldk + k];
            dw[(g * q->Kg + k) * q->T + t] = s;
        }
    }
}

/* db[k] = sum over images and pixels of dy (N, K, P), float64 sums in 8 lanes */
FI_ATTR static void FI_FN(fi_cv_bias_grad_)(void *db_, const void *dy_, const fi_cv *q)
{
    FI_T *db = db_;
    const FI_T *dy = dy_;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t k = 0; k < q->K; k++) {
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t n = 0; n < q->N; n++) {
            const FI_T *row = dy + (n * q->K + k) * q->P;
            int64_t j = 0;
            for (; j + 8 <= q->P; j += 8)
                for (int l = 0; l < 8; l++) part[l] += (double)row[j + l];
            for (; j < q->P; j++) part[j & 7] += (double)row[j];
        }
        db[k] = (FI_T)(((part[0] + part[1]) + (part[2] + part[3])) +
                       ((part[4] + part[5]) + (part[6] + part[7])));
    }
}

/* ---- depthwise (Cg = Kg = 1): channels along the vectors ----
 * One image and a block of FI_W channels at a time: the planes are transposed into a
 * channel-interleaved, zero-padded buffer xi (Hp x Wp pixels of FI_W values, covering input
 * rows -pt .. -pt + Hp - 1 and columns -pl .. -pl + Wp - 1), so every tap of every output
 * pixel is one vector load; results are transposed back. Hp, Wp are what the outputs read:
 * (OH-1)*sh + (R-1)*dh + 1 rows, whatever the stride. */

/* between the planes z[v] (v < nch, n values each, ldz apart) and zi[p*FI_W + v] (the same
 * values interleaved): dir 0 z -> zi, dir 1 zi -> z; FI_W x FI_W blocks in registers */
FI_ATTR static void FI_FN(fi_dw_flat_)(FI_T *restrict z, int64_t ldz, int64_t n, int64_t nch,
                                       FI_T *restrict zi, const int dir)
{
    int64_t p = 0;
    if (nch == FI_W)
        for (; p + FI_W <= n; p += FI_W) {
            if (dir == 0) FI_CAT(fi_transpose_, FI_SFX)(FI_W, z + p, ldz, FI_W, zi + p * FI_W, FI_W);
            else FI_CAT(fi_transpose_, FI_SFX)(FI_W, zi + p * FI_W, FI_W, FI_W, z + p, ldz);
        }
    for (; p < n; p++)
        for (int64_t v = 0; v < nch; v++) {
            if (dir == 0) zi[p * FI_W + v] = z[v * ldz + p];
            else z[v * ldz + p] = zi[p * FI_W + v];
        }
}

/* between the interleaved image zf (H x W pixels) and the padded buffer zi (Hp x Wp pixels,
 * zf's (0, 0) at zi's (oy0, ox0)): dir 0 zf -> zi, dir 1 zi -> zf (zero where zi does not
 * reach); only what lies inside both moves */
FI_ATTR static void FI_FN(fi_dw_pad_)(FI_T *restrict zf, int64_t H, int64_t W,
                                      FI_T *restrict zi, int64_t Hp, int64_t Wp, int64_t oy0,
                                      int64_t ox0, const int dir)
{
    const int64_t ya = oy0 < 0 ? -oy0 : 0, yb = H < Hp - oy0 ? H : Hp - oy0;
    const int64_t xa = ox0 < 0 ? -ox0 : 0, xb = W < Wp - ox0 ? W : Wp - ox0;
    for (int64_t iy = 0; iy < H; iy++) {
        FI_T *zr = zf + iy * W * FI_W;
        if (iy < ya || iy >= yb || xa >= xb) {
            if (dir == 1) FI_FN(fi_cv_zero_)(zr, W * FI_W);
            continue;
        }
        FI_T *zir = zi + ((iy + oy0) * Wp + ox0) * FI_W;
        if (dir == 0) {
            FI_FN(fi_cv_move_)(zir + xa * FI_W, zr + xa * FI_W, (xb - xa) * FI_W, 1, 0);
        } else {
            FI_FN(fi_cv_zero_)(zr, xa * FI_W);
            FI_FN(fi_cv_move_)(zr + xa * FI_W, zir + xa * FI_W, (xb - xa) * FI_W, 1, 0);
            FI_FN(fi_cv_zero_)(zr + xb * FI_W, (W - xb) * FI_W);
        }
    }
}

/* acc[t] (+)= sum over the pixels of dyi[p] * xi[p's tap t], row by row (the input rows an
 * output row reads stay in cache across the taps), 4 accumulators per tap */
FI_ATTR static void FI_FN(fi_dw_wgrad_)(FI_T *restrict acc, const FI_T *restrict xi,
                                        const FI_T *restrict dyi, const fi_cv *q, int64_t Wp,
                                        const int64_t *toff)
{
    const int64_t st = q->sw * FI_W;
    for (int64_t oy = 0; oy < q->OH; oy++) {
        const FI_T *xrow = xi + oy * q->sh * Wp * FI_W, *dr = dyi + oy * q->OW * FI_W;
        for (int64_t t = 0; t < q->RS; t++) {
            const FI_T *xr = xrow + toff[t];
            FI_V a0 = FI_VZERO(), a1 = FI_VZERO(), a2 = FI_VZERO(), a3 = FI_VZERO();
            int64_t ox = 0;
            for (; ox + 4 <= q->OW; ox += 4) {
                a0 = FI_VFMA(FI_VLOAD(dr + ox * FI_W), FI_VLOAD(xr + ox * st), a0);
                a1 = FI_VFMA(FI_VLOAD(dr + (ox + 1) * FI_W), FI_VLOAD(xr + (ox + 1) * st), a1);
                a2 = FI_VFMA(FI_VLOAD(dr + (ox + 2) * FI_W), FI_VLOAD(xr + (ox + 2) * st), a2);
                a3 = FI_VFMA(FI_VLOAD(dr + (ox + 3) * FI_W), FI_VLOAD(xr + (ox + 3) * st), a3);
            }
            for (; ox < q->OW; ox++)
                a0 = FI_VFMA(FI_VLOAD(dr + ox * FI_W), FI_VLOAD(xr + ox * st), a0);
            FI_VSTORE(acc + t * FI_W, FI_VADD(FI_VLOAD(acc + t * FI_W),
                                              FI_VADD(FI_VADD(a0, a1), FI_VADD(a2, a3))));
        }
    }
}

/* pass 0 forward (out = y, a = x, b = w, bias), 1 dx (out = dx, a = dy, b = w), 2 dw (out =
 * the partial sums: part p at out + p * C*RS, a = dy, b = x). Items: (part of the images,
 * channel block); per image the block is moved into the interleaved buffers and back. */
FI_ATTR static void FI_FN(fi_dw_run_)(void *out_, const void *a_, const void *b_,
                                      const void *bias_, const fi_cv *q, void *ws_,
                                      int64_t per_thread, const int pass)
{
    FI_T *out = out_, *ws = ws_;
    const FI_T *a = a_, *b = b_, *bias = bias_;
    const int64_t Hp = (q->OH - 1) * q->sh + (q->R - 1) * q->dh + 1;
    const int64_t Wp = (q->OW - 1) * q->sw + (q->S - 1) * q->dw + 1;
    const int64_t nblk = (q->C + FI_W - 1) / FI_W, items = q->parts * nblk, RS = q->RS;
    const int64_t xst = q->sw * FI_W, yst = q->sh * Wp * FI_W;
    const int64_t big = q->HW > q->P ? q->HW : q->P;
#pragma omp parallel num_threads(q->threads)
    {
        FI_T *xi = ws + fi_thread_num() * per_thread, *oi = xi + Hp * Wp * FI_W;
        FI_T *fl = oi + q->P * FI_W, *wv = fl + big * FI_W, *bv = wv + RS * FI_W;
        int64_t toff[RS];   /* the taps' offsets in xi */
        for (int64_t t = 0; t < RS; t++)
            toff[t] = ((t / q->S) * q->dh * Wp + t % q->S * q->dw) * FI_W;
        FI_FN(fi_cv_zero_)(xi, Hp * Wp * FI_W);
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            const int64_t part = item / nblk, c0 = item % nblk * FI_W;
            const int64_t nch = q->C - c0 < FI_W ? q->C - c0 : FI_W;
            /* the block's weights (forward, dx) or its partial dw, and bias, as vectors */
            for (int64_t v = 0; v < FI_W; v++) {
                for (int64_t t = 0; t < RS; t++)
                    wv[t * FI_W + v] = pass < 2 && v < nch ? b[(c0 + v) * RS + t] : (FI_T)0;
                bv[v] = bias && v < nch ? bias[c0 + v] : (FI_T)0;
            }
            for (int64_t n = part * q->N / q->parts; n < (part + 1) * q->N / q->parts; n++) {
                FI_T *zx = (FI_T *)(pass == 0 ? a : pass == 1 ? out : b) + (n * q->C + c0) * q->HW;
                FI_T *zy = (FI_T *)(pass == 0 ? out : a) + (n * q->C + c0) * q->P;
                if (pass > 0) FI_FN(fi_dw_flat_)(zy, q->P, q->P, nch, oi, 0);
                if (pass == 1) {
                    FI_FN(fi_cv_zero_)(xi, Hp * Wp * FI_W);
                } else {
                    FI_FN(fi_dw_flat_)(zx, q->HW, q->HW, nch, fl, 0);
                    FI_FN(fi_dw_pad_)(fl, q->H, q->W, xi, Hp, Wp, q->pt, q->pl, 0);
                }
                if (pass == 2) {
                    FI_FN(fi_dw_wgrad_)(wv, xi, oi, q, Wp, toff);
                    continue;
                }
                for (int64_t oy = 0; oy < q->OH; oy++) {
                    FI_T *xr = xi + oy * yst, *orow = oi + oy * q->OW * FI_W;
                    int64_t ox = 0;
                    if (pass == 1) {   /* scatter dy into the padded dx */
                        for (; ox < q->OW; ox++, xr += xst) {
                            const FI_V d = FI_VLOAD(orow + ox * FI_W);
                            for (int64_t t = 0; t < RS; t++)
                                FI_VSTORE(xr + toff[t], FI_VFMA(d, FI_VLOAD(wv + t * FI_W),
                                                                 FI_VLOAD(xr + toff[t])));
                        }
                        continue;
                    }
                    for (; ox + 4 <= q->OW; ox += 4, xr += 4 * xst) {   /* 4 pixels a step */
                        FI_V a0 = FI_VLOAD(bv), a1 = a0, a2 = a0, a3 = a0;
                        for (int64_t t = 0; t < RS; t++) {
                            const FI_V wt = FI_VLOAD(wv + t * FI_W);
                            const FI_T *xt = xr + toff[t];
                            a0 = FI_VFMA(wt, FI_VLOAD(xt), a0);
                            a1 = FI_VFMA(wt, FI_VLOAD(xt + xst), a1);
                            a2 = FI_VFMA(wt, FI_VLOAD(xt + 2 * xst), a2);
                            a3 = FI_VFMA(wt, FI_VLOAD(xt + 3 * xst), a3);
                        }
                        FI_VSTORE(orow + ox * FI_W, a0);
                        FI_VSTORE(orow + (ox + 1) * FI_W, a1);
                        FI_VSTORE(orow + (ox + 2) * FI_W, a2);
                        FI_VSTORE(orow + (ox + 3) * FI_W, a3);
                    }
                    for (; ox < q->OW; ox++, xr += xst) {
                        FI_V acc = FI_VLOAD(bv);
                        for (int64_t t = 0; t < RS; t++)
                            acc = FI_VFMA(FI_VLOAD(wv + t * FI_W), FI_VLOAD(xr + toff[t]), acc);
                        FI_VSTORE(orow + ox * FI_W, acc);
                    }
                }
                if (pass == 0) {
                    FI_FN(fi_dw_flat_)(zy, q->P, q->P, nch, oi, 1);
                } else {   /* dx: the padded buffer's inside (zero where no output reads) */
                    FI_FN(fi_dw_pad_)(fl, q->H, q->W, xi, Hp, Wp, q->pt, q->pl, 1);
                    FI_FN(fi_dw_flat_)(zx, q->HW, q->HW, nch, fl, 1);
                }
            }
            if (pass == 2)
                for (int64_t v = 0; v < nch; v++)
                    for (int64_t t = 0; t < RS; t++)
                        out[part * q->C * RS + (c0 + v) * RS + t] = wv[t * FI_W + v];
        }
    }
}

/* ---- direct (few output channels per group): no patch matrix at all ----
 * Per (image, group) the input planes are copied zero-padded to Hp x Wp (the extent the
 * outputs read: (OH-1)*sh + (R-1)*dh + 1 rows, likewise columns; never more than the image and
 * its padding), and the tile reads them where they lie:
 *   forward  per output row, per block of FI_MR pixels: rows = pixels, vectors = output
 *            channels, over all T taps: A[r, k] = xp[oy*sh*Wp + (ox0 + r)*sw + tab[k]] (tab:
 *            each tap's offset), B = the weights packed as panels of FI_NR output channels;
 *            the tile lands in a small buffer and goes to y transposed, with the bias.
 *   dw       per output row, per panel of FI_MR taps: dW^T[taps, :] += the row's sum over
 *            its pixels of xp[oy*sh*Wp + tab[t] + ox*sw] * dy[:, oy, ox]: A the padded input
 *            read where it lies through the tap table (one row per tap), B the output row of
 *            dy transposed; each part of the batch its own partial sums, added in order. */

/* xp[(c*Hp + i)*Wp + j] = x[n, g*Cg + c, i - pt, j - pl], zero outside x */
FI_ATTR static void FI_FN(fi_dp_pad_)(FI_T *restrict xp, const FI_T *restrict x, const fi_cv *q,
                                      int64_t n, int64_t g, int64_t Hp, int64_t Wp)
{
    const int64_t ja = q->pl < Wp ? q->pl : Wp;
    const int64_t jb = q->pl + q->W < Wp ? q->pl + q->W : Wp;
    for (int64_t c = 0; c < q->Cg; c++)
        for (int64_t i = 0; i < Hp; i++) {
            FI_T *row = xp + (c * Hp + i) * Wp;
            const int64_t iy = i - q->pt;
            if (iy < 0 || iy >= q->H || jb <= ja) {
                FI_FN(fi_cv_zero_)(row, Wp);
                continue;
            }
            FI_FN(fi_cv_zero_)(row, ja);
            FI_FN(fi_cv_move_)(row + ja, x + ((n * q->C + g * q->Cg + c) * q->H + iy) * q->W,
                               jb - ja, 1, 0);
            FI_FN(fi_cv_zero_)(row + jb, Wp - jb);
        }
}

/* Output channels per panel of the direct forward: one vector when a group's channels fit in
 * one (the tile's other vector would multiply zeros), else FI_NR */
#define FI_DP_NR(q) ((q)->Kg <= FI_W ? FI_W : FI_NR)

/* wt[((g*npan + pn)*T + t)*nr + j] = w[g*Kg + pn*nr + j, t], zero past Kg (nr = FI_DP_NR):
 * the weights as packed B panels of nr output channels */
FI_ATTR static void FI_FN(fi_dp_pack_)(void *wt_, const void *w_, const fi_cv *q)
{
    FI_T *wt = wt_;
    const FI_T *w = w_;
    const int64_t nr = FI_DP_NR(q), npan = (q->Kg + nr - 1) / nr;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t gp = 0; gp < q->G * npan; gp++)
        for (int64_t t = 0; t < q->T; t++)
            for (int64_t j = 0; j < nr; j++) {
                const int64_t k = gp % npan * nr + j;
                wt[(gp * q->T + t) * nr + j] =
                    k < q->Kg ? w[(gp / npan * q->Kg + k) * q->T + t] : (FI_T)0;
            }
}

/* A tile of at most FI_MR rows (mv; 8 or 4 rows for fewer) and nvec (FI_NVEC or 1) vectors,
 * A and B as amode, bmode say */
FI_ATTR FI_INLINE void FI_FN(fi_dp_tile_)(int64_t mv, const int nvec, const int amode,
                                          const int bmode, int64_t kc, const FI_T *a,
                                          int64_t a_rs, int64_t a_ks, const FI_T *b,
                                          int64_t bstep, const int64_t *tab, FI_T *c,
                                          int64_t ldc, int64_t nv, int beta)
{
    if (mv > (FI_MR > 8 ? 8 : 4))
        FI_CAT(fi_tile_, FI_SFX)(FI_MR, nvec, amode, bmode, kc, a, a_rs, a_ks, b, bstep, tab, c,
                                 ldc, mv, nv, beta);
#if FI_MR > 8
    else if (mv > 4)
        FI_CAT(fi_tile_, FI_SFX)(8, nvec, amode, bmode, kc, a, a_rs, a_ks, b, bstep, tab, c, ldc,
                                 mv, nv, beta);
#endif
    else
        FI_CAT(fi_tile_, FI_SFX)(4, nvec, amode, bmode, kc, a, a_rs, a_ks, b, bstep, tab, c, ldc,
                                 mv, nv, beta);
}

FI_ATTR static void FI_FN(fi_dp_forward_)(void *y_, const void *x_, const void *wt_,
                                          const void *bias_, const fi_cv *q,
                                          const int64_t *tab, void *ws_, int64_t per_thread)
{
    FI_T *y = y_, *ws = ws_;
    const FI_T *x = x_, *wt = wt_, *bias = bias_;
    const int64_t Hp = (q->OH - 1) * q->sh + (q->R - 1) * q->dh + 1;
    const int64_t Wp = (q->OW - 1) * q->sw + (q->S - 1) * q->dw + 1;
    const int64_t nr = FI_DP_NR(q), npan = (q->Kg + nr - 1) / nr, parts = q->parts;
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t item = 0; item < q->N * q->G * parts; item++) {
        FI_T *xp = ws + fi_thread_num() * per_thread, *tbuf = xp + q->Cg * Hp * Wp;
        const int64_t n = item / (q->G * parts), g = item / parts % q->G, part = item % parts;
        FI_FN(fi_dp_pad_)(xp, x, q, n, g, Hp, Wp);
        for (int64_t oy = part * q->OH / parts; oy < (part + 1) * q->OH / parts; oy++)
            for (int64_t ox0 = 0; ox0 < q->OW; ox0 += FI_MR) {
                const int64_t mv = q->OW - ox0 < FI_MR ? q->OW - ox0 : FI_MR;
                const FI_T *a = xp + oy * q->sh * Wp + ox0 * q->sw;
                for (int64_t pn = 0; pn < npan; pn++) {
                    const FI_T *b = wt + (g * npan + pn) * q->T * nr;
                    const int64_t nv = q->Kg - pn * nr < nr ? q->Kg - pn * nr : nr;
                    if (nr == FI_W)   /* nvec a constant at each call: the tile unrolls */
                        FI_FN(fi_dp_tile_)(mv, 1, FI_A_TABLE, FI_B_PACKED, q->T, a, q->sw, 0, b,
                                           0, tab, tbuf, nr, nv, 0);
                    else
                        FI_FN(fi_dp_tile_)(mv, FI_NVEC, FI_A_TABLE, FI_B_PACKED, q->T, a, q->sw,
                                           0, b, 0, tab, tbuf, nr, nv, 0);
                    for (int64_t j = 0; j < nv; j++) {   /* to y, transposed, with the bias */
                        const int64_t k = g * q->Kg + pn * nr + j;
                        FI_T *yr = y + ((n * q->K + k) * q->OH + oy) * q->OW + ox0;
                        const FI_T bk = bias ? bias[k] : (FI_T)0;
                        for (int64_t r = 0; r < mv; r++) yr[r] = tbuf[r * nr + j] + bk;
                    }
                }
            }
    }
}

FI_ATTR static void FI_FN(fi_dp_weights_)(void *acc_, int64_t per_acc, const void *dy_,
                                          const void *x_, const fi_cv *q, const int64_t *tab,
                                          void *ws_, int64_t per_thread)
{
    FI_T *acc = acc_, *ws = ws_;
    const FI_T *dy = dy_, *x = x_;
    const int64_t Hp = (q->OH - 1) * q->sh + (q->R - 1) * q->dh + 1;
    const int64_t Wp = (q->OW - 1) * q->sw + (q->S - 1) * q->dw + 1;
    const int64_t ldk = fi_cv_ld(q->Kg);
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int64_t part = 0; part < q->parts; part++) {
        FI_T *xp = ws + fi_thread_num() * per_thread, *dyt = xp + q->Cg * Hp * Wp;
        FI_T *out = acc + part * per_acc;
        for (int64_t i = 0; i < q->G * q->T; i++) FI_FN(fi_cv_zero_)(out + i * ldk, ldk);
        for (int64_t n = part * q->N / q->parts; n < (part + 1) * q->N / q->parts; n++)
            for (int64_t g = 0; g < q->G; g++) {
                FI_FN(fi_dp_pad_)(xp, x, q, n, g, Hp, Wp);
                for (int64_t oy = 0; oy < q->OH; oy++) {
                    FI_FN(fi_cv_dyt_)(dyt, ldk, dy, q, g, (n * q->OH + oy) * q->OW, q->OW);
                    const FI_T *a = xp + oy * q->sh * Wp;
                    for (int64_t t0 = 0; t0 < q->T; t0 += FI_MR)
                        for (int64_t kb = 0; kb < q->Kg; kb += FI_NR)
                            FI_FN(fi_dp_tile_)(q->T - t0 < FI_MR ? q->T - t0 : FI_MR,
                                               FI_NVEC, FI_A_ROWS, FI_B_STRIDED, q->OW, a, 0, q->sw,
                                               dyt + kb, ldk, tab + t0,
                                               out + (g * q->T + t0) * ldk + kb, ldk,
                                               q->Kg - kb < FI_NR ? q->Kg - kb : FI_NR, 1);
                }
            }
    }
}

#undef FI_NR
#undef FI_FN
