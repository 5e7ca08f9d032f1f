/* The GEMM of one (element type, ISA) instantiation: packing, macro-kernel, small-product path
 * and the blocked driver. Included by gemm.c right after gemm_tile.h, with FI_T, FI_SFX, FI_ISA
 * and the tile shape FI_MR (rows) x FI_NVEC (vectors) defined; see gemm.c for the loop order.
 * Every function here carries FI_ATTR, so the tile inlines with this ISA's instructions.
 */
#define FI_NR (FI_NVEC * FI_W)
#define FI_FN(name) FI_CAT(name, FI_SFX)

/* One row tile of C over packed A (micro-panels FI_MR rows tall): the full tile computes all
 * FI_MR rows whatever mv is, so a partial last panel (mv rows) takes a 4- or 8-row tile that
 * reads only the first rows of its panel (on 12-row tiles an 8-row rest would cost a whole
 * tile). */
FI_ATTR FI_INLINE void FI_FN(fi_row_tile_)(int64_t mv, const int bmode, int64_t kc,
                                           const FI_T *ap, const FI_T *b, int64_t bstep,
                                           FI_T *c, int64_t ldc, int64_t nv, int beta,
                                           const FI_T *bias)
{
    if (FI_MR <= 8 || mv > 8)
        FI_FN(fi_tile_bias_)(FI_MR, FI_NVEC, FI_A_PACKED, bmode, kc, ap, 0, 0, b, bstep, NULL, c,
                             ldc, mv, nv, beta, bias);
    else if (mv > 4)
        FI_FN(fi_tile_bias_)(8, FI_NVEC, FI_A_PANEL, bmode, kc, ap, 0, FI_MR, b, bstep, NULL, c,
                             ldc, mv, nv, beta, bias);
    else
        FI_FN(fi_tile_bias_)(4, FI_NVEC, FI_A_PANEL, bmode, kc, ap, 0, FI_MR, b, bstep, NULL, c,
                             ldc, mv, nv, beta, bias);
}

/* panel[k*width + r] = S[r, k] for k < kc, r < rows, where S[r, k] = s[k*ld + r] (kmajor) or
 * s[r*ld + k]; rows past `rows` (up to width) are padding: zeros, or row rows - 1 again (the
 * transposes read whole row groups). A packed A micro-panel (width FI_MR) and a packed B panel
 * (FI_NR) are both this. When width is not a multiple of FI_W the transposes write up to FI_W
 * values past the panel. */
FI_ATTR FI_INLINE void FI_FN(fi_pack_panel_)(FI_T *restrict panel, const int width,
                                             const FI_T *restrict s, int kmajor, int64_t ld,
                                             int64_t rows, int64_t kc)
{
    if (kmajor) {
        for (int64_t k = 0; k < kc; k++) {
            const FI_T *src = s + k * ld;
            FI_T *restrict row = panel + k * width;
            if (rows == width) {       /* a constant trip count: vector moves */
                for (int r = 0; r < width; r++) row[r] = src[r];
            } else {
                for (int64_t r = 0; r < rows; r++) row[r] = src[r];
                for (int64_t r = rows; r < width; r++) row[r] = 0;
            }
        }
        return;
    }
    const int64_t kv = kc - kc % FI_W;
    for (int64_t k = 0; k < kv; k += FI_W)
        FI_CAT(fi_transpose_, FI_SFX)(width, s + k, ld, rows, panel + k * width, width);
    for (int64_t r = 0; r < width; r++) {
        const FI_T *src = s + (r < rows ? r : rows - 1) * ld;
        for (int64_t k = kv; k < kc; k++) panel[k * width + r] = src[k];
    }
}

/* dst[(q*kc + k)*MR + r] = A[i0 + q*MR + r, p0 + k] for r < mc - q*MR, padding beyond;
 * A = a (m x k, row length lda) or, when ta, a^T (a is k x m). dst needs FI_PACK_PAD values
 * past the panels (the transposes of a partial row group spill there). */
FI_ATTR static void FI_FN(fi_pack_a_)(FI_T *restrict dst, const FI_T *restrict a, int ta,
                                      int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc)
{
    for (int64_t q = 0; q * FI_MR < mc; q++) {
        const int64_t i = i0 + q * FI_MR, rows = mc - q * FI_MR < FI_MR ? mc - q * FI_MR : FI_MR;
        FI_FN(fi_pack_panel_)(dst + q * kc * FI_MR, FI_MR, ta ? a + p0 * lda + i : a + i * lda + p0,
                              ta, lda, rows, kc);
    }
}

/* panel[k*NR + j] = B[p0 + k, j0 + j] for j < cols, padding beyond; B = b (k x n, row length
 * ldb) or, when tb, b^T (b is n x k). */
FI_ATTR static void FI_FN(fi_pack_b_)(FI_T *restrict panel, const FI_T *restrict b, int tb,
                                      int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t cols)
{
    FI_FN(fi_pack_panel_)(panel, FI_NR, tb ? b + j0 * ldb + p0 : b + p0 * ldb + j0, !tb, ldb, cols,
                          kc);
}

/* c (mc x nc block of C, row length ldc) (+)= Ap (mc x kc, packed) @ panels t0..t1-1 of Bp,
 * or, when bdir is not NULL, of B read where it lies (row length ldb; only a partial last
 * panel comes from Bp). */
FI_ATTR static void FI_FN(fi_macro_)(FI_T *c, int64_t ldc, const FI_T *ap, const FI_T *bp,
                                     const FI_T *bdir, int64_t ldb,
                                     int64_t mc, int64_t nc, int64_t t0, int64_t t1, int64_t kc,
                                     int beta, const FI_T *bias)
{
    for (int64_t t = t0; t < t1; t++) {
        const int64_t j = t * FI_NR;
        const int64_t nv = nc - j < FI_NR ? nc - j : FI_NR;
        if (bdir && nv == FI_NR) {
            for (int64_t i = 0; i < mc; i += FI_MR) {
                const int64_t mv = mc - i < FI_MR ? mc - i : FI_MR;
                FI_FN(fi_row_tile_)(mv, FI_B_STRIDED, kc, ap + i * kc, bdir + j, ldb,
                                    c + i * ldc + j, ldc, nv, beta, bias ? bias + j : NULL);
            }
            continue;
        }
        for (int64_t i = 0; i < mc; i += FI_MR) {
            const int64_t mv = mc - i < FI_MR ? mc - i : FI_MR;
            FI_FN(fi_row_tile_)(mv, FI_B_PACKED, kc, ap + i * kc, bp + t * kc * FI_NR, 0,
                                c + i * ldc + j, ldc, nv, beta, bias ? bias + j : NULL);
        }
    }
}

/* A tile of R rows of the direct path, A read where it lies: A[r, k] = a[r*lda + k], or
 * a[k*lda + r] when ta. Rows past mv repeat row mv - 1 (FI_A_STRIDED clamps), so nothing past
 * A is read; a full transposed tile takes FI_A_PANEL (one base pointer). */
FI_ATTR FI_INLINE void FI_FN(fi_tile_a_)(const int R, int64_t mv, int ta, const FI_T *a,
                                         int64_t lda, int64_t kc, const FI_T *b, int64_t bstep,
                                         FI_T *c, int64_t ldc, int64_t nv, int beta,
                                         const FI_T *bias)
{
    if (!ta)
        FI_FN(fi_tile_bias_)(R, FI_NVEC, FI_A_STRIDED, FI_B_STRIDED, kc, a, lda, 1, b, bstep,
                             NULL, c, ldc, mv, nv, beta, bias);
    else if (mv == R)
        FI_FN(fi_tile_bias_)(R, FI_NVEC, FI_A_PANEL, FI_B_STRIDED, kc, a, 0, lda, b, bstep, NULL,
                             c, ldc, mv, nv, beta, bias);
    else
        FI_FN(fi_tile_bias_)(R, FI_NVEC, FI_A_STRIDED, FI_B_STRIDED, kc, a, 1, lda, b, bstep,
                             NULL, c, ldc, mv, nv, beta, bias);
}

/* A row tile of the direct path at row i: as tall as the rows left (see fi_row_tile_). */
FI_ATTR FI_INLINE void FI_FN(fi_row_tile_a_)(int64_t mv, int ta, const FI_T *a, int64_t lda,
                                             int64_t i, int64_t kc, const FI_T *b,
                                             int64_t bstep, FI_T *c, int64_t ldc, int64_t nv,
                                             int beta, const FI_T *bias)
{
    const FI_T *ai = ta ? a + i : a + i * lda;
    if (FI_MR <= 8 || mv > 8)
        FI_FN(fi_tile_a_)(FI_MR, mv, ta, ai, lda, kc, b, bstep, c, ldc, nv, beta, bias);
    else if (mv > 4)
        FI_FN(fi_tile_a_)(8, mv, ta, ai, lda, kc, b, bstep, c, ldc, nv, beta, bias);
    else
        FI_FN(fi_tile_a_)(4, mv, ta, ai, lda, kc, b, bstep, c, ldc, nv, beta, bias);
}

/* C[i0:i1, column panels t0..t1-1] (+)= op(A) @ op(B), K in blocks of FI_GEMM_DIRECT_KB (one
 * for most products), nothing of A packed: the tile reads A's rows (or columns) and B's rows
 * where they lie; a B panel is copied into bpanel (kb * NR values, reused panel after panel)
 * only when B comes transposed, or for a partial last panel (the tile reads whole vectors).
 * Packing A bought nothing here: its rows stay in L1/L2 across the panels, and the copy (all of
 * A per thread, when split by panels) cost more than it saved. */
FI_ATTR static void FI_FN(fi_direct_block_)(FI_T *c, const FI_T *a, int ta, const FI_T *b,
                                            int tb, const FI_T *bias, int64_t m, int64_t n,
                                            int64_t k, int beta, FI_T *bpanel, int64_t i0,
                                            int64_t i1, int64_t t0, int64_t t1)
{
    const int64_t lda = ta ? m : k;
    /* K in blocks of at most FI_GEMM_DIRECT_KB (one block for every product the direct path
     * is chosen for by size; a long thin one, e.g. (16, 65536) @ (65536, 16), would otherwise
     * copy a K x NR panel of megabytes) */
    for (int64_t p0 = 0; p0 < k; p0 += FI_GEMM_DIRECT_KB) {
        const int64_t kc = k - p0 < FI_GEMM_DIRECT_KB ? k - p0 : FI_GEMM_DIRECT_KB;
        const FI_T *ablk = ta ? a + p0 * lda : a + p0;
        const int bet = p0 == 0 ? beta : 1;
        for (int64_t t = t0; t < t1; t++) {
            const int64_t j = t * FI_NR, nv = n - j < FI_NR ? n - j : FI_NR;
            const FI_T *bsrc = b + p0 * n + j;
            int64_t bstep = n;
            if (tb || nv < FI_NR) {
                FI_FN(fi_pack_b_)(bpanel, b, tb, tb ? k : n, p0, kc, j, nv);
                bsrc = bpanel;
                bstep = FI_NR;
            }
            for (int64_t i = i0; i < i1; i += FI_MR) {
                const int64_t mv = i1 - i < FI_MR ? i1 - i : FI_MR;
                FI_FN(fi_row_tile_a_)(mv, ta, ablk, lda, i, kc, bsrc, bstep, c + i * n + j, n,
                                      nv, bet, bias && p0 == 0 ? bias + j : NULL);
            }
        }
    }
}

/* Small and medium products: K in one block (or a few), A and B read where they lie (B copied
 * only when it comes transposed). Medium ones (macs >= FI_GEMM_PARALLEL_MIN_MACS) split over
 * the threads in one parallel region: by rows, unless B is the bigger operand or comes
 * transposed (each part would read or copy all of B) or there are too few rows, and there are
 * enough column panels: then by panels.
 * Nothing one thread writes is read by another (on this VM a line written by one core and
 * read by the other sometimes costs several times a local one). */
FI_ATTR static fi_status FI_FN(fi_gemm_direct_)(FI_T *c, const FI_T *a, int ta, const FI_T *b, int tb,
                                          const FI_T *bias, int64_t m, int64_t n, int64_t k,
                                          int beta)
{
    const int64_t npan = (n + FI_NR - 1) / FI_NR, nrow = (m + FI_MR - 1) / FI_MR;
    const int64_t kb = k < FI_GEMM_DIRECT_KB ? k : FI_GEMM_DIRECT_KB;
    const int64_t size = (kb * FI_NR + 15) & ~(int64_t)15;  /* a B panel; 64-byte multiples */
    int64_t chunks = m * n * k >= FI_GEMM_PARALLEL_MIN_MACS ? fi_threads() : 1;
    if (chunks > (npan > nrow ? npan : nrow)) chunks = npan > nrow ? npan : nrow;
    FI_T *bpanel = fi_scratch(FI_SCRATCH_GEMM, (size_t)(size * (chunks > 1 ? chunks : 1)) * sizeof(FI_T));
    if (!bpanel) return FI_ERR_NOMEM;
    if (chunks <= 1) {
        FI_FN(fi_direct_block_)(c, a, ta, b, tb, bias, m, n, k, beta, bpanel, 0, m, 0, npan);
        return FI_OK;
    }
    /* split by panels when B is the bigger operand (by rows every part reads all of B) or
     * comes transposed (every part would copy all of it), or when there are too few rows */
    const int by_panels = npan >= chunks && (tb || nrow < chunks || m < n);
#pragma omp parallel for schedule(static) num_threads((int)chunks)
    for (int64_t ch = 0; ch < chunks; ch++) {
        if (by_panels)
            FI_FN(fi_direct_block_)(c, a, ta, b, tb, bias, m, n, k, beta, bpanel + ch * size, 0, m,
                                    ch * npan / chunks, (ch + 1) * npan / chunks);
        else {
            /* equal shares of rows (not whole MR panels: 128 rows as 64 + 64 rather than
             * 60 + 68 evens out the partial tiles, see fi_row_tile_) */
            const int64_t i0 = ch * m / chunks, i1 = (ch + 1) * m / chunks;
            if (i0 < i1)
                FI_FN(fi_direct_block_)(c, a, ta, b, tb, bias, m, n, k, beta, bpanel + ch * size,
                                        i0, i1, 0, npan);
        }
    }
    return FI_OK;
}

/* sum_p x[p] y[p] over len values, FI_W lanes in 4 accumulators (a masked tail), then the
 * lanes in order */
FI_ATTR static FI_T FI_FN(fi_dot_)(const FI_T *x, const FI_T *y, int64_t len)
{
    FI_V s0 = FI_VZERO(), s1 = FI_VZERO(), s2 = FI_VZERO(), s3 = FI_VZERO();
    int64_t p = 0;
    for (; p + 4 * FI_W <= len; p += 4 * FI_W) {
        s0 = FI_VFMA(FI_VLOAD(x + p), FI_VLOAD(y + p), s0);
        s1 = FI_VFMA(FI_VLOAD(x + p + FI_W), FI_VLOAD(y + p + FI_W), s1);
        s2 = FI_VFMA(FI_VLOAD(x + p + 2 * FI_W), FI_VLOAD(y + p + 2 * FI_W), s2);
        s3 = FI_VFMA(FI_VLOAD(x + p + 3 * FI_W), FI_VLOAD(y + p + 3 * FI_W), s3);
    }
    for (; p < len; p += FI_W)
        s0 = FI_VFMA(FI_VMLOAD(x + p, len - p), FI_VMLOAD(y + p, len - p), s0);
    FI_T lanes[FI_W];
    FI_VSTORE(lanes, FI_VADD(FI_VADD(s0, s1), FI_VADD(s2, s3)));
    FI_T sum = 0;
    for (int l = 0; l < FI_W; l++) sum += lanes[l];
    return sum;
}

/* A C of at most FI_GEMM_DOTS_MAX_OUT values over a long K whose rows of op(A) and columns of
 * op(B) lie contiguous (A[i, p] = a[i*a_rs + p], B[p, j] = b[j*b_cs + p]), e.g. (1, K) @ (K, 1):
 * each C value a dot product over fixed K chunks (in parallel), the chunks' sums added in order
 * (the same result on any number of threads). The tiles would use 1 of 12 x 32 lanes here and
 * copy a padded panel of B. */
FI_ATTR static fi_status FI_FN(fi_gemm_dots_)(FI_T *c, const FI_T *a, int64_t a_rs, const FI_T *b,
                                        int64_t b_cs, const FI_T *bias, int64_t m, int64_t n,
                                        int64_t k, int beta)
{
    const int64_t outs = m * n, nch = (k + FI_GEMM_DOTS_CHUNK - 1) / FI_GEMM_DOTS_CHUNK;
    FI_T *part = fi_scratch(FI_SCRATCH_GEMM, (size_t)(nch * outs) * sizeof(FI_T));
    if (!part) return FI_ERR_NOMEM;
    const int threads = k * outs >= FI_GEMM_PARALLEL_MIN_MACS ? fi_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        const int64_t p0 = ch * FI_GEMM_DOTS_CHUNK;
        const int64_t len = k - p0 < FI_GEMM_DOTS_CHUNK ? k - p0 : FI_GEMM_DOTS_CHUNK;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                part[ch * outs + i * n + j] = FI_FN(fi_dot_)(a + i * a_rs + p0, b + j * b_cs + p0,
                                                             len);
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            FI_T s = part[i * n + j];
            for (int64_t ch = 1; ch < nch; ch++) s += part[ch * outs + i * n + j];
            FI_T *p = c + i * n + j;
            if (bias) *p = s + (beta ? *p + bias[j] : bias[j]);   /* as the tiles: see there */
            else *p = beta ? s + *p : s;
        }
    return FI_OK;
}

/* acc[j] += X[i, j] for each row i in order (X rows x cols, row-major): the bias gradient's
 * column sums, float64 accumulators, vectorised across j (each column keeps its row order, so
 * the sums are the same on every build) */
FI_ATTR static void FI_FN(fi_column_acc_)(double *restrict acc, const FI_T *restrict x,
                                          int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < rows; i++) {
        const FI_T *restrict row = x + i * cols;
        for (int64_t j = 0; j < cols; j++) acc[j] += (double)row[j];
    }
}

/* C (m x n, C-contiguous) (+)= op(A) @ op(B) [+ bias, a row vector of n values, or NULL] */
FI_ATTR static fi_status FI_FN(fi_gemm_)(FI_T *c, const FI_T *a, int ta, const FI_T *b, int tb,
                                   const FI_T *bias, int64_t m, int64_t n, int64_t k, int beta)
{
    if (m <= 0 || n <= 0) return 0;
    if (m * n <= FI_GEMM_DOTS_MAX_OUT && k >= FI_GEMM_DOTS_MIN_K && (!ta || m == 1) &&
        (tb || n == 1))
        return FI_FN(fi_gemm_dots_)(c, a, k, b, k, bias, m, n, k, beta);
    if (n < FI_NR && m > n && k > 0) {
        /* A narrow C (e.g. a linear layer with 10 outputs) would leave most of every tile's
         * columns idle: compute C^T = op(B)^T op(A)^T (M along the tile's columns) instead,
         * then add it (and the bias) into C. */
        FI_T *ct = fi_scratch(FI_SCRATCH_GEMM_T, (size_t)(m * n) * sizeof(FI_T));
        if (!ct) return FI_ERR_NOMEM;
        const fi_status st = FI_FN(fi_gemm_)(ct, b, !tb, a, !ta, NULL, n, m, k, 0);
        if (st != FI_OK) return st;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] = (beta ? c[i * n + j] : 0) + (bias ? bias[j] : 0) + ct[j * m + i];
        return FI_OK;
    }
    if (k <= 0) {       /* C = [C +] bias, or zeros; C itself (bit for bit) when beta only */
        if (beta && !bias) return 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] = (beta ? c[i * n + j] : 0) + (bias ? bias[j] : 0);
        return FI_OK;
    }
    /* the bias is added by the tiles as they store (with K's first block) */
    const int64_t lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
    const int64_t KC = FI_T_IS_DOUBLE ? FI_GEMM_KC_F64 : FI_GEMM_KC_F32;
    /* K in one block and all of A small enough to stay in L2 while the B panels stream by:
     * the direct path (each thread copies only the B panels it uses, when B comes transposed)
     * beats sharing a packed B, which pays only with several row blocks per thread; e.g. a
     * linear layer's 128 x 784 @ 784 x 256. So does a C of at most one row block (MC rows):
     * every thread would pack the same A, e.g. a batch of 50 through 8192 -> 100 */
    const int64_t MC = FI_MR * FI_GEMM_MC_PANELS;
    if (m * n * k <= FI_GEMM_DIRECT_MAX_MACS || m <= MC ||
        (k <= KC && m * k * (int64_t)sizeof(FI_T) <= FI_GEMM_DIRECT_MAX_A_BYTES))
        return FI_FN(fi_gemm_direct_)(c, a, ta, b, tb, bias, m, n, k, beta);
    const int64_t NC = FI_T_IS_DOUBLE ? FI_GEMM_NC_F64 : FI_GEMM_NC_F32;
    /* K in equal blocks (a multiple of the vector width) rather than KC and a stub */
    const int64_t nkb = (k + KC - 1) / KC;
    const int64_t kc_step = ((k + nkb - 1) / nkb + FI_W - 1) / FI_W * FI_W;
    const int maxth = fi_threads();
    const int64_t aslot = (MC * KC + FI_PACK_PAD + 15) & ~(int64_t)15;  /* 64-byte multiples */
    const int64_t ncp = ((n < NC ? n : NC) + FI_NR - 1) / FI_NR * FI_NR;
    FI_T *ws = fi_scratch(FI_SCRATCH_GEMM, (size_t)(aslot * maxth + KC * ncp) * sizeof(FI_T));
    if (!ws) return FI_ERR_NOMEM;
    FI_T *bpack = ws + aslot * maxth;
    const int64_t npan_m = (m + FI_MR - 1) / FI_MR;
    /* B's rows are read where they lie (only a partial last panel packed) unless B comes
     * transposed or its row stride is a multiple of a large power of two (see
     * fi_gemm_b_rows_direct) */
    const int b_direct = !tb && fi_gemm_b_rows_direct(n * (int64_t)sizeof(FI_T));
#pragma omp parallel num_threads(maxth)
    {
        const int nth = fi_team_size(), tid = fi_thread_num();
        FI_T *ap = ws + aslot * tid;
        for (int64_t jc = 0; jc < n; jc += NC) {
            const int64_t nc = n - jc < NC ? n - jc : NC;
            const int64_t npan_n = (nc + FI_NR - 1) / FI_NR;
            /* blocks of at most MC rows, a multiple of the threads; split columns too when C
             * has fewer row panels than threads */
            int64_t mblocks = (npan_m * FI_MR + MC - 1) / MC;
            if (mblocks % nth) mblocks += nth - mblocks % nth;
            if (mblocks > npan_m) mblocks = npan_m;
            int64_t nsplit = 1;
            if (mblocks < nth) {
                nsplit = (nth + mblocks - 1) / mblocks;
                if (nsplit > npan_n) nsplit = npan_n;
            }
            const int64_t items = mblocks * nsplit;
            for (int64_t pc = 0; pc < k; pc += kc_step) {
                const int64_t kc = k - pc < kc_step ? k - pc : kc_step;
#pragma omp for schedule(static)
                for (int64_t t = b_direct ? nc / FI_NR : 0; t < npan_n; t++) {
                    const int64_t j0 = jc + t * FI_NR;
                    FI_FN(fi_pack_b_)(bpack + t * kc * FI_NR, b, tb, ldb, pc, kc, j0,
                                      n - j0 < FI_NR ? n - j0 : FI_NR);
                }
                const int bet = pc == 0 ? beta : 1;
#pragma omp for schedule(static)
                for (int64_t it = 0; it < items; it++) {
                    const int64_t bi = it / nsplit, bj = it % nsplit;
                    const int64_t q0 = bi * npan_m / mblocks, q1 = (bi + 1) * npan_m / mblocks;
                    const int64_t t0 = bj * npan_n / nsplit, t1 = (bj + 1) * npan_n / nsplit;
                    /* one block per thread: equal shares of rows (see fi_gemm_direct_); else
                     * blocks of whole panels */
                    const int even = mblocks == nth && nsplit == 1;
                    const int64_t i0 = even ? bi * m / mblocks : q0 * FI_MR;
                    const int64_t mc = (even ? (bi + 1) * m / mblocks
                                             : (q1 * FI_MR < m ? q1 * FI_MR : m)) - i0;
                    FI_FN(fi_pack_a_)(ap, a, ta, lda, i0, mc, pc, kc);
                    FI_FN(fi_macro_)(c + i0 * ldc + jc, ldc, ap, bpack,
                                     b_direct ? b + pc * ldb + jc : NULL, ldb,
                                     mc, nc, t0, t1, kc, bet,
                                     bias && pc == 0 ? bias + jc : NULL);
                }
            }
        }
    }
    return FI_OK;
}

/* out[j] = sum_i X[i, j] (float64 sums, each column in row order), X (rows, cols) = x, or
 * x^T when trans (x is (cols, rows)): the linear layer's bias gradient */
FI_ATTR static fi_status FI_FN(fi_column_sums_)(FI_T *out, const FI_T *x, int64_t rows,
                                                int64_t cols, int trans)
{
    if (trans) {
        for (int64_t j = 0; j < cols; j++) {
            double s = 0.0;
            for (int64_t i = 0; i < rows; i++) s += x[j * rows + i];
            out[j] = (FI_T)s;
        }
        return FI_OK;
    }
    double stack[1024];
    double *acc = cols <= 1024 ? stack : malloc((size_t)cols * sizeof(double));
    if (!acc) return FI_ERR_NOMEM;
    memset(acc, 0, (size_t)(cols > 0 ? cols : 0) * sizeof(double));
    FI_FN(fi_column_acc_)(acc, x, rows, cols);
    for (int64_t j = 0; j < cols; j++) out[j] = (FI_T)acc[j];
    if (acc != stack) free(acc);
    return FI_OK;
}

/* The linear layer's backward: dx = dy @ w, dw = dy^T @ x, db = column sums of dy; dy
 * (n, fout), x (n, fin), w (fout, fin), each stored transposed when its flag is set; a NULL
 * output is not computed (db NULL also when there is no bias). */
FI_ATTR static fi_status FI_FN(fi_linear_backward_)(FI_T *dx, FI_T *dw, FI_T *db,
                                                    const FI_T *dy, const FI_T *x,
                                                    const FI_T *w, int64_t n, int64_t fin,
                                                    int64_t fout, int tdy, int tx, int tw)
{
    fi_status st = FI_OK;
    if (dx) st = FI_FN(fi_gemm_)(dx, dy, tdy, w, tw, NULL, n, fin, fout, 0);
    if (dw && st == FI_OK) st = FI_FN(fi_gemm_)(dw, dy, !tdy, x, tx, NULL, fout, fin, n, 0);
    if (db && st == FI_OK) st = FI_FN(fi_column_sums_)(db, dy, n, fout, tdy);
    return st;
}

#undef FI_NR
#undef FI_FN
