/* The pooling entry points of one element type: included twice by pool.c with FI_T (float,
 * double) and FI_TS (its name suffix: f32, f64), which this header undefines at its end.
 * Max pooling without padding and with stride == kernel goes to the vector builds of
 * pool_isa.h; every other window, stride and padding runs the generic loops here. */
#define PG_FN(name) FI_CAT(name, FI_TS)

/* planes in blocks of POOL_PLANE_BLOCK, on threads from POOL_PARALLEL_MIN_* inputs */
static void PG_FN(mp_nonoverlap_)(FI_T *y, FI_T *dx, const FI_T *dy, const FI_T *x, int64_t p,
                                  int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t k_h,
                                  int64_t k_w) {
    const int isa = fi_isa();
    void (*fn)(FI_T *, FI_T *, const FI_T *, const FI_T *, int64_t, int64_t, int64_t, int64_t,
               int64_t, int64_t, int64_t, int64_t) =
        dx ? FI_ISA_PICK(isa, mp_bwd_, FI_TS) : FI_ISA_PICK(isa, mp_fwd_, FI_TS);
    if (p * h * w < (dx ? POOL_PARALLEL_MIN_BWD : POOL_PARALLEL_MIN_FWD)) {
        fn(y, dx, dy, x, 0, p, h, w, oh, ow, k_h, k_w);
        return;
    }
    int64_t nb = (p + POOL_PLANE_BLOCK - 1) / POOL_PLANE_BLOCK;
#pragma omp parallel for num_threads(fi_threads()) schedule(static)
    for (int64_t i = 0; i < nb; i++)
        fn(y, dx, dy, x, i * POOL_PLANE_BLOCK, FI_MIN(p, (i + 1) * POOL_PLANE_BLOCK), h, w, oh, ow,
           k_h, k_w);
}

static int64_t PG_FN(max_window_)(const FI_T *x, int64_t h, int64_t w, int64_t r0, int64_t c0,
                                  int64_t kh, int64_t kw, FI_T *best_out) {
    FI_T best = -INFINITY;
    int64_t at = 0;
    for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)
        for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)
            if (x[r * w + c] > best) {
                best = x[r * w + c];
                at = r * w + c;
            }
    *best_out = best;
    return at;
}

static FI_T PG_FN(avg_count_)(int64_t r0, int64_t c0, int64_t h, int64_t w, int64_t kh,
                              int64_t kw, int64_t ph, int64_t pw, int include_pad) {
    if (include_pad)
        return (FI_T)((FI_MIN(r0 + kh, h + ph) - r0) * (FI_MIN(c0 + kw, w + pw) - c0));
    return (FI_T)((FI_MIN(r0 + kh, h) - FI_MAX(r0, 0)) * (FI_MIN(c0 + kw, w) - FI_MAX(c0, 0)));
}

/* The generic backward of both poolings: each plane of dx zeroed, then, window by window in
 * output order, its dy added to its first maximum (x given: max pooling) or divided by its
 * count and added to each of its in-bounds positions (x NULL: average pooling). */
static void PG_FN(pool_backward_)(FI_T *dx, const FI_T *dy, const FI_T *x, int64_t p, int64_t h,
                                  int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                                  int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                                  int include_pad) {
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (p * h * w > 32768)
    for (int64_t q = 0; q < p; q++) {
        FI_T *d = dx + q * h * w;
        memset(d, 0, (size_t)(h * w) * sizeof(FI_T));
        for (int64_t a = 0; a < oh; a++)
            for (int64_t b = 0; b < ow; b++) {
                const int64_t r0 = a * sh - ph, c0 = b * sw - pw;
                FI_T g = dy[(q * oh + a) * ow + b];
                if (x) {
                    FI_T best;
                    d[PG_FN(max_window_)(x + q * h * w, h, w, r0, c0, kh, kw, &best)] += g;
                    continue;
                }
                g /= PG_FN(avg_count_)(r0, c0, h, w, kh, kw, ph, pw, include_pad);
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++) d[r * w + c] += g;
            }
    }
}

void PG_FN(fi_max_pool2d_)(FI_T *y, const FI_T *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                           int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw) {
    if (MP_NONOVERLAP(kh, kw, sh, sw, ph, pw)) {
        PG_FN(mp_nonoverlap_)(y, NULL, NULL, x, p, h, w, oh, ow, kh, kw);
        return;
    }
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (p * oh * ow > 32768)
    for (int64_t q = 0; q < p; q++)
        for (int64_t a = 0; a < oh; a++)
            for (int64_t b = 0; b < ow; b++)
                PG_FN(max_window_)(x + q * h * w, h, w, a * sh - ph, b * sw - pw, kh, kw,
                                   y + (q * oh + a) * ow + b);
}

void PG_FN(fi_max_pool2d_backward_)(FI_T *dx, const FI_T *dy, const FI_T *x, int64_t p,
                                    int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t kh,
                                    int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    if (MP_NONOVERLAP(kh, kw, sh, sw, ph, pw))
        PG_FN(mp_nonoverlap_)(NULL, dx, dy, x, p, h, w, oh, ow, kh, kw);
    else
        PG_FN(pool_backward_)(dx, dy, x, p, h, w, oh, ow, kh, kw, sh, sw, ph, pw, 0);
}

void PG_FN(fi_avg_pool2d_)(FI_T *y, const FI_T *x, int64_t p, int64_t h, int64_t w, int64_t oh,
                           int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int include_pad) {
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (p * oh * ow > 32768)
    for (int64_t q = 0; q < p; q++)
        for (int64_t a = 0; a < oh; a++)
            for (int64_t b = 0; b < ow; b++) {
                int64_t r0 = a * sh - ph, c0 = b * sw - pw;
                double s = 0.0;
                for (int64_t r = FI_MAX(r0, 0); r < FI_MIN(r0 + kh, h); r++)
                    for (int64_t c = FI_MAX(c0, 0); c < FI_MIN(c0 + kw, w); c++)
                        s += x[(q * h + r) * w + c];
                y[(q * oh + a) * ow + b] =
                    (FI_T)(s / PG_FN(avg_count_)(r0, c0, h, w, kh, kw, ph, pw, include_pad));
            }
}

void PG_FN(fi_avg_pool2d_backward_)(FI_T *dx, const FI_T *dy, int64_t p, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,
                                    int64_t sw, int64_t ph, int64_t pw, int include_pad) {
    PG_FN(pool_backward_)(dx, dy, NULL, p, h, w, oh, ow, kh, kw, sh, sw, ph, pw, include_pad);
}

#undef PG_FN
#undef FI_T
#undef FI_TS
