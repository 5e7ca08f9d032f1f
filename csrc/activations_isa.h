/* Activations and losses of one (element type, ISA) instantiation: included by activations.c
 * through instances.h (FI_T, FI_ISA, FI_SFX, FI_ATTR and the vector macros of gemm_tile.h).
 * activations.c holds the elementary functions, the AVX-512 intrinsics and the contracts.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)
/* The vector builds contract a * b + c into fused multiply-adds (the transcendental formulas
 * are compute-bound: without FMA the AVX2 loops ran at 3x the copy time); the portable build
 * keeps -ffp-contract=off. Results differ between builds by an ulp or so; every build is
 * tested against the float64 reference. */
#if FI_ISA == FI_ISA_BASE
#define ACT_ATTR FI_ATTR
#else
#define ACT_ATTR FI_ATTR __attribute__((optimize("fp-contract=fast")))
#endif
#if FI_T_IS_DOUBLE
#define ACT_EXP exp
#define ACT_EXPM1 expm1
#define ACT_TANH tanh
#define ACT_TANH_GRAD tanh_grad_f64
#define ACT_SIGMOID sigmoid_f64
#define ACT_SIGMOID_GRAD sigmoid_grad_f64
#define ACT_NCDF ncdf_f64
#else
#define ACT_EXP exp_f32
#define ACT_EXPM1 expm1_f32
#define ACT_TANH tanh_f32
#define ACT_TANH_GRAD tanh_grad_f32
#define ACT_SIGMOID sigmoid_f32
#define ACT_SIGMOID_GRAD sigmoid_grad_f32
#define ACT_NCDF ncdf_f32
#endif

/* gelu's tanh form as a sigmoid: (1 + tanh(u)) / 2 = sigmoid(2u), so gelu(x) = x sigmoid(2u)
 * and gelu'(x) = sigmoid(2u) + x sigmoid'(2u) 2u'(x): one exp and one division, and no
 * 1 + tanh cancellation for negative x. The cubic runs on w = x clamped to [-10, 10]; beyond,
 * gelu is x or 0 and gelu' 1 or 0 in float32 (returned exactly), and x^3 never overflows. */
ACT_ATTR FI_INLINE FI_T FI_FN(gelu_tanh_)(FI_T v, const int grad) {
    const FI_T w = v < (FI_T)-10 ? (FI_T)-10 : (v > (FI_T)10 ? (FI_T)10 : v);
    const FI_T c = (FI_T)(2.0 * SQRT_2_OVER_PI), t = c * (w + (FI_T)GELU_C * w * w * w);
    const FI_T big = v > (FI_T)0 ? (grad ? (FI_T)1 : v) : (FI_T)0;
    const FI_T y = grad ? ACT_SIGMOID(t) + w * ACT_SIGMOID_GRAD(t) * c *
                              ((FI_T)1 + (FI_T)(3.0 * GELU_C) * w * w)
                        : v * ACT_SIGMOID(t); /* NaN: v * s, NaN */
    return v > (FI_T)10 || v < (FI_T)-10 ? big : y;
}

/* out[0..n) = f(x[i]) (forward ops, dy unread) or dy[i] f'(x[i]) (backward ops), p the op's
 * parameter (negative_slope, alpha). out may be x (no restrict: gcc versions the loops on
 * overlap and still vectorises them). The clamps in elu are written so NaN passes them. */
ACT_ATTR FI_INLINE void FI_FN(act_body_)(int op, FI_T *out, const FI_T *x, const FI_T *dy,
                                        int64_t n, FI_T p) {
    const FI_T zero = 0, one = 1, inf = (FI_T)INFINITY;
#define ACT_LOOP(EXPR) for (int64_t i = 0; i < n; i++) { FI_T v = x[i]; out[i] = EXPR; }
#define ACT_LOOP2(EXPR) for (int64_t i = 0; i < n; i++) { FI_T v = x[i], g = dy[i]; out[i] = EXPR; }
    switch (op) {
    case FI_ACT_RELU: ACT_LOOP(v < zero ? zero : v) break;
    case FI_ACT_RELU_BACKWARD: ACT_LOOP2(v <= zero ? zero : g) break;
    case FI_ACT_LEAKY_RELU: ACT_LOOP(v > zero ? v : v * p) break;
    case FI_ACT_LEAKY_RELU_BACKWARD: ACT_LOOP2(v > zero ? g : g * p) break;
    case FI_ACT_ELU: ACT_LOOP(v > zero ? v : p * ACT_EXPM1(v > zero ? zero : v)) break;
    case FI_ACT_ELU_BACKWARD:
        ACT_LOOP2(v > zero ? g : g * p * ACT_EXP(v > zero ? zero : v)) break;
    case FI_ACT_TANH: ACT_LOOP(ACT_TANH(v)) break;
    case FI_ACT_TANH_BACKWARD: ACT_LOOP2(g * ACT_TANH_GRAD(v)) break;
    case FI_ACT_SIGMOID: ACT_LOOP(ACT_SIGMOID(v)) break;
    case FI_ACT_SIGMOID_BACKWARD: ACT_LOOP2(g * ACT_SIGMOID_GRAD(v)) break;
    /* gelu at -inf is 0, gelu' at +-inf 1 or 0 (the limits: the formulas give inf * 0) */
    case FI_ACT_GELU: ACT_LOOP(v == -inf ? zero : v * ACT_NCDF(v)) break;
    case FI_ACT_GELU_BACKWARD:
        ACT_LOOP2(g * (v == inf || v == -inf ? (v > zero ? one : zero)
                       : ACT_NCDF(v) + v * (FI_T)INV_SQRT_2PI * ACT_EXP((FI_T)-0.5 * v * v)))
        break;
    case FI_ACT_GELU_TANH: ACT_LOOP(FI_FN(gelu_tanh_)(v, 0)) break;
    case FI_ACT_GELU_TANH_BACKWARD: ACT_LOOP2(g * FI_FN(gelu_tanh_)(v, 1)) break;
    case FI_ACT_IDENTITY: ACT_LOOP(v) break;
    default: /* FI_ACT_IDENTITY_BACKWARD */
        for (int64_t i = 0; i < n; i++) out[i] = dy[i];
    }
#undef ACT_LOOP
#undef ACT_LOOP2
}

/* dst[0..n) = src[0..n) with non-temporal stores where dst is aligned to the vector */
ACT_ATTR FI_INLINE void FI_FN(act_stream_)(FI_T *dst, const FI_T *src, int64_t n) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & (sizeof(FI_V) - 1)); i++) dst[i] = src[i];
    for (; i + FI_W <= n; i += FI_W) FI_VSTREAM(dst + i, FI_VLOAD(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

/* One chunk: straight into out, or (stream) into a stack block then streamed out. */
ACT_ATTR static void FI_FN(act_chunk_)(int op, FI_T *out, const FI_T *x, const FI_T *dy,
                                      int64_t n, FI_T p, int stream) {
#if FI_ISA == FI_ISA_AVX512 && FI_X86 && !FI_T_IS_DOUBLE
    if (act512_chunk(op, out, x, dy, n, p, stream)) return;
#endif
    if (!stream) {
        FI_FN(act_body_)(op, out, x, dy, n, p);
        return;
    }
    FI_T block[ACT_BLOCK] __attribute__((aligned(64)));
    for (int64_t lo = 0; lo < n; lo += ACT_BLOCK) {
        const int64_t m = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;
        FI_FN(act_body_)(op, block, x + lo, dy ? dy + lo : NULL, m, p);
        FI_FN(act_stream_)(out + lo, block, m);
    }
    act_fence();
}

ACT_ATTR static fi_status FI_FN(act_run_)(int op, FI_T *out, const FI_T *x, const FI_T *dy,
                                          int64_t n, double param) {
    const int stream = n * (int64_t)sizeof(FI_T) >= ACT_STREAM_MIN_BYTES;
    const int64_t nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    const FI_T p = (FI_T)param;
    if (stream && (op == FI_ACT_IDENTITY || op == FI_ACT_IDENTITY_BACKWARD)) {
        /* a copy: streamed straight from the source (no stack block, whose small memcpy gcc
         * emits as rep movs, slow to start thousands of times) */
        const FI_T *src = op == FI_ACT_IDENTITY ? x : dy;
#pragma omp parallel for num_threads(fi_threads()) schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t lo = c * ACT_CHUNK, m = n - lo < ACT_CHUNK ? n - lo : ACT_CHUNK;
            FI_FN(act_stream_)(out + lo, src + lo, m);
            act_fence();
        }
        return FI_OK;
    }
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n >= ACT_PARALLEL_MIN)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t lo = c * ACT_CHUNK, m = n - lo < ACT_CHUNK ? n - lo : ACT_CHUNK;
        FI_FN(act_chunk_)(op, out + lo, x + lo, dy ? dy + lo : NULL, m, p, stream);
    }
    return FI_OK;
}

/* ---- losses ---- */

/* Rows [i0, i1) of softmax cross-entropy: returns their summed loss (float64) and writes
 * (softmax(z) - onehot(label)) * inv_n into d. */
ACT_ATTR static double FI_FN(ce_rows_)(FI_T *restrict d, const FI_T *restrict z,
                                      const int64_t *labels, int64_t i0, int64_t i1, int64_t k,
                                      FI_T inv_n) {
#if FI_ISA == FI_ISA_AVX512 && FI_X86 && !FI_T_IS_DOUBLE
    return ce_rows512_f32(d, z, labels, i0, i1, k, inv_n);
#elif FI_ISA != FI_ISA_BASE
    /* the portable rows: the scalar exp calls of a vector build ran slower */
#if FI_T_IS_DOUBLE
    return ce_rows_f64_base(d, z, labels, i0, i1, k, inv_n);
#else
    return ce_rows_f32_base(d, z, labels, i0, i1, k, inv_n);
#endif
#endif
    ce_acc acc = {1.0, 0.0, 0};
    for (int64_t i = i0; i < i1; i++) {
        const FI_T *zr = z + i * k;
        FI_T *dr = d + i * k;
        FI_T m = zr[0];
        for (int64_t j = 1; j < k; j++) m = zr[j] > m ? zr[j] : m;
        for (int64_t j = 0; j < k; j++) dr[j] = ACT_EXP(zr[j] - m);
        double s = 0.0;
        for (int64_t j = 0; j < k; j++) s += (double)dr[j];
        const FI_T scale = (FI_T)(1.0 / s) * inv_n;
        for (int64_t j = 0; j < k; j++) dr[j] = dr[j] * scale;
        dr[labels[i]] -= inv_n;
        ce_acc_row(&acc, s, (double)zr[labels[i]] - (double)m);
    }
    return ce_acc_total(&acc);
}

ACT_ATTR static fi_status FI_FN(softmax_ce_)(double *loss, FI_T *dlogits, const FI_T *logits,
                                    const int64_t *labels, int64_t n, int64_t k) {
    const int64_t nb = (n + LOSS_ROWS - 1) / LOSS_ROWS;
    double *part = malloc(sizeof(double) * (nb > 0 ? nb : 1));
    if (!part) return FI_ERR_NOMEM;
    const FI_T inv_n = (FI_T)(1.0 / (double)n);
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n * k >= ACT_PARALLEL_MIN)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t hi = (b + 1) * LOSS_ROWS < n ? (b + 1) * LOSS_ROWS : n;
        part[b] = FI_FN(ce_rows_)(dlogits, logits, labels, b * LOSS_ROWS, hi, k, inv_n);
    }
    double total = 0.0;
    for (int64_t b = 0; b < nb; b++) total += part[b];
    free(part);
    *loss = total / (double)n;
    return FI_OK;
}

/* The squares in float64, four accumulators, per fixed chunk; chunks combined in order. One
 * build, the portable: the vector builds were slower on small inputs. */
#if FI_ISA == FI_ISA_BASE
static fi_status FI_FN(mse_)(double *loss, FI_T *dpred, const FI_T *pred,
                                     const FI_T *target, int64_t n) {
    const int64_t nc = (n + LOSS_CHUNK - 1) / LOSS_CHUNK;
    double *part = malloc(sizeof(double) * (nc > 0 ? nc : 1));
    if (!part) return FI_ERR_NOMEM;
    const FI_T two_n = (FI_T)(2.0 / (double)n);
#pragma omp parallel for num_threads(fi_threads()) schedule(static) if (n >= ACT_PARALLEL_MIN)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t lo = c * LOSS_CHUNK, hi = lo + LOSS_CHUNK < n ? lo + LOSS_CHUNK : n;
        double a[4] = {0.0, 0.0, 0.0, 0.0};
        int64_t i = lo;
        for (; i + 4 <= hi; i += 4)
            for (int l = 0; l < 4; l++) {
                const double d = (double)pred[i + l] - (double)target[i + l];
                a[l] += d * d;
            }
        for (; i < hi; i++) {
            const double d = (double)pred[i] - (double)target[i];
            a[0] += d * d;
        }
        for (int64_t j = lo; j < hi; j++) dpred[j] = (pred[j] - target[j]) * two_n;
        part[c] = (a[0] + a[1]) + (a[2] + a[3]);
    }
    double total = 0.0;
    for (int64_t c = 0; c < nc; c++) total += part[c];
    free(part);
    *loss = total / (double)n;
    return FI_OK;
}
#endif

#undef ACT_ATTR
#undef ACT_EXP
#undef ACT_EXPM1
#undef ACT_TANH
#undef ACT_TANH_GRAD
#undef ACT_SIGMOID
#undef ACT_SIGMOID_GRAD
#undef ACT_NCDF
#undef FI_FN
