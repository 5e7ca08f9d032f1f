/* Gradient clipping of one (element type, ISA) instantiation: included by clip.c through
 * instances.h (FI_T, FI_T_IS_DOUBLE, FI_ISA, FI_SFX, FI_ATTR). clip_partial_<sfx> is the
 * float64 partial of one chunk of n elements at p (*nans counts its NaNs for the inf norm);
 * clip_scale_<sfx> and clip_clamp_<sfx> update one chunk in place.
 */
#define FI_FN(name) FI_CAT(name, FI_SFX)
#if FI_T_IS_DOUBLE
#define CL_LOAD4(q) (*(const cl_v4d_u *)(q))
#define CL_LOAD8(q) _mm512_loadu_pd(q)
#else
#define CL_LOAD4(q) __builtin_convertvector(*(const cl_v4f_u *)(q), cl_v4d)
#define CL_LOAD8(q) _mm512_cvtps_pd(_mm256_loadu_ps(q))
#endif
#define CL_ELEM ((int64_t)sizeof(FI_T))

/* The vector loop takes two vectors a step into two accumulators (AVX-512: 8 doubles a vector,
 * one prefetch per 64-byte line, norm types 1, 2 and inf; 4 doubles otherwise); the tail, and
 * every element of another p (pow is scalar), is scalar. */
FI_ATTR static double FI_FN(clip_partial_)(const void *p, int64_t n, int kind, double pw,
                                            double *nans) {
    const FI_T *g = (const FI_T *)p;
    const char *base = (const char *)p;
    int64_t i = 0;
#if FI_ISA == FI_ISA_AVX512
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    int64_t bad = 0;
    for (; kind != KIND_P && i + 16 <= n; i += 16) {
        for (int64_t b = 0; b < 16 * CL_ELEM; b += 64)
            __builtin_prefetch(base + i * CL_ELEM + b + CLIP_PREFETCH_BYTES);
        __m512d v0 = CL_LOAD8(g + i), v1 = CL_LOAD8(g + i + 8);
        if (kind == KIND_TWO) {
            a0 = _mm512_fmadd_pd(v0, v0, a0);
            a1 = _mm512_fmadd_pd(v1, v1, a1);
        } else if (kind == KIND_ONE) {
            a0 = _mm512_add_pd(a0, _mm512_abs_pd(v0));
            a1 = _mm512_add_pd(a1, _mm512_abs_pd(v1));
        } else { /* max: a NaN lane keeps the accumulator (second operand); counted */
            a0 = _mm512_max_pd(_mm512_abs_pd(v0), a0);
            a1 = _mm512_max_pd(_mm512_abs_pd(v1), a1);
            bad += __builtin_popcount(_mm512_cmp_pd_mask(v0, v0, _CMP_UNORD_Q)) +
                   __builtin_popcount(_mm512_cmp_pd_mask(v1, v1, _CMP_UNORD_Q));
        }
    }
    double t = 0.0, cnt = (double)bad;
#else
    cl_v4d a0 = {0}, a1 = {0};
    cl_v4l c0 = {0}, c1 = {0};
    for (; kind != KIND_P && i + 8 <= n; i += 8) {
        if (((i * CL_ELEM) & 63) < 8 * CL_ELEM)
            __builtin_prefetch(base + i * CL_ELEM + CLIP_PREFETCH_BYTES);
        cl_v4d v0 = CL_LOAD4(g + i), v1 = CL_LOAD4(g + i + 4);
        if (kind == KIND_TWO) {
            a0 += v0 * v0;
            a1 += v1 * v1;
        } else if (kind == KIND_ONE) {
            a0 += vabs(v0);
            a1 += vabs(v1);
        } else {
            v0 = vabs(v0);
            v1 = vabs(v1);
            a0 = vmax(v0, a0);
            a1 = vmax(v1, a1);
            c0 -= (cl_v4l)(v0 != v0);
            c1 -= (cl_v4l)(v1 != v1);
        }
    }
    double t = 0.0, cnt = 0.0;
#endif
    for (; i < n; i++) {
        double v = fabs((double)g[i]);
        if (kind == KIND_TWO) t += v * v;
        else if (kind == KIND_ONE) t += v;
        else if (kind == KIND_INF) {
            t = v > t ? v : t;
            cnt += v != v;
        } else t += pow(v, pw);
    }
#if FI_ISA == FI_ISA_AVX512
    const double m = _mm512_reduce_max_pd(_mm512_max_pd(a0, a1));
    const double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
#else
    const cl_v4d mm = vmax(a0, a1);
    const cl_v4l c = c0 + c1;
    const double m = hmax(mm), s = hsum(a0 + a1);
    cnt += (double)(c[0] + c[1] + c[2] + c[3]);
#endif
    if (kind == KIND_INF) {
        *nans = cnt;
        return t > m ? t : m;
    }
    *nans = 0.0;
    return s + t;
}

FI_ATTR static void FI_FN(clip_scale_)(void *p, int64_t n, double s) {
    FI_T *g = (FI_T *)p;
    const FI_T t = (FI_T)s;
    for (int64_t i = 0; i < n; i++) g[i] = g[i] * t;
}

FI_ATTR static void FI_FN(clip_clamp_)(void *p, int64_t n, double c) {
    FI_T *g = (FI_T *)p;
    const FI_T hi = (FI_T)c, lo = -hi;
    for (int64_t i = 0; i < n; i++) {
        const FI_T v = g[i];
        g[i] = v > hi ? hi : (v < lo ? lo : v); /* NaN fails both tests and stays */
    }
}

#undef FI_FN
#undef CL_LOAD4
#undef CL_LOAD8
#undef CL_ELEM
