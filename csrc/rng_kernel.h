/* One sampler's body and its three builds: included by rng.c once per sampler with RK_NAME
 * (its batch function is RK_NAME##_batch), RK_T (the element type), RK_P (its parameter
 * struct) and RK_E (elements per Philox block), which this header undefines at its end.
 * RK_NAME##_body: the Philox words of a batch, then its batch function; full batches straight
 * into out, the last partial block through a buffer;
 * RK_NAME##_avx512 / _avx2 / _portable: the body compiled for each target (fi_rng_run). */
#define RK_FN(suffix) FI_CAT(RK_NAME, suffix)

FI_INLINE void RK_FN(_body)(RK_T *out, int64_t n, uint64_t j0, const fi_philox_key *key,
                            const RK_P *prm, const fi_rng_ops *ops) {
    uint32_t words[4 * FI_RNG_BATCH];
    const int64_t nb = n / RK_E;
    for (int64_t k = 0; k < nb; k += FI_RNG_BATCH) {
        const int64_t m = nb - k < FI_RNG_BATCH ? nb - k : FI_RNG_BATCH;
        ops->fill(words, m, j0 + (uint64_t)k, key);
        RK_FN(_batch)(out + RK_E * k, m, words, prm, ops);
    }
    if (n > RK_E * nb) {
        RK_T last[RK_E];
        ops->fill(words, 1, j0 + (uint64_t)nb, key);
        RK_FN(_batch)(last, 1, words, prm, ops);
        memcpy(out + RK_E * nb, last, (size_t)(n - RK_E * nb) * sizeof(RK_T));
    }
}

FI_TARGET_AVX512 static void RK_FN(_avx512)(void *out, int64_t n, uint64_t j0,
                                            const fi_philox_key *key, const void *prm) {
    RK_FN(_body)((RK_T *)out, n, j0, key, (const RK_P *)prm, &ops_avx512);
}

FI_TARGET_AVX2 static void RK_FN(_avx2)(void *out, int64_t n, uint64_t j0,
                                        const fi_philox_key *key, const void *prm) {
    RK_FN(_body)((RK_T *)out, n, j0, key, (const RK_P *)prm, &ops_avx2);
}

static void RK_FN(_portable)(void *out, int64_t n, uint64_t j0, const fi_philox_key *key,
                             const void *prm) {
    RK_FN(_body)((RK_T *)out, n, j0, key, (const RK_P *)prm, &ops_portable);
}

#undef RK_FN
#undef RK_NAME
#undef RK_T
#undef RK_P
#undef RK_E
