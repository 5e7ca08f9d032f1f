/* Philox4x32-10 on vectors of PX_L blocks, two independent groups a step so their dependency
 * chains overlap: included by rng.c once per vector build with PX_ISA (FI_ISA_AVX2: 8 blocks
 * in 8 uint32 lanes; FI_ISA_AVX512: 16), which this header undefines at its end. Defines
 * philox_fill_avx2 / philox_fill_avx512 (fi_fill_fn). The SSE2 build of rng.c stays apart: it
 * has neither the blends nor the masked shuffles a round is made of here.
 *
 * A round: 32x32->64 products of the even lanes and of the odd lanes (vpmuludq), split into hi
 * and lo words (AVX2: shifts and blends; AVX-512: masked in-pair swaps, one op each, and
 * vpternlogd xors three at once). Lanes are ordered so that the in-lane 4x4 transposes of the
 * store leave the blocks in order (AVX2: lanes 0-3 hold blocks 0, 2, 4, 6, lanes 4-7 blocks
 * 1, 3, 5, 7; AVX-512: lane 4q + i holds block 4i + q). */
#if PX_ISA == FI_ISA_AVX512
#define PX_FN(name) FI_CAT(name, avx512)
#define PX_ATTR FI_TARGET_AVX512
#define PX_V __m512i
#define PX_L 16
#define PX_(op) _mm512_##op
#define PX_HI(pe, po) _mm512_mask_shuffle_epi32(po, 0x5555, pe, _MM_PERM_CDAB)
#define PX_LO(pe, po) _mm512_mask_shuffle_epi32(pe, 0xAAAA, po, _MM_PERM_CDAB)
#define PX_XOR3(a, b, c) _mm512_ternarylogic_epi32(a, b, c, 0x96)
#define PX_OFFSETS _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
#define PX_STORE(p, v) _mm512_storeu_si512((PX_V *)(p), v)
#define PX_TAIL philox_fill_avx2 /* the last < 32 blocks */
#else
#define PX_FN(name) FI_CAT(name, avx2)
#define PX_ATTR FI_TARGET_AVX2
#define PX_V __m256i
#define PX_L 8
#define PX_(op) _mm256_##op
#define PX_HI(pe, po) _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA)
#define PX_LO(pe, po) _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA)
#define PX_XOR3(a, b, c) _mm256_xor_si256(_mm256_xor_si256(a, b), c)
#define PX_OFFSETS _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)
#define PX_STORE(p, v) _mm256_storeu_si256((PX_V *)(p), v)
#define PX_TAIL philox_fill_scalar
#endif

PX_ATTR FI_INLINE void PX_FN(philox_round_)(PX_V *c0, PX_V *c1, PX_V *c2, PX_V *c3, PX_V m0,
                                            PX_V m1, PX_V kk0, PX_V kk1) {
    const PX_V pe0 = PX_(mul_epu32)(*c0, m0), po0 = PX_(mul_epu32)(PX_(srli_epi64)(*c0, 32), m0);
    const PX_V pe1 = PX_(mul_epu32)(*c2, m1), po1 = PX_(mul_epu32)(PX_(srli_epi64)(*c2, 32), m1);
    *c0 = PX_XOR3(PX_HI(pe1, po1), *c1, kk0);
    *c2 = PX_XOR3(PX_HI(pe0, po0), *c3, kk1);
    *c1 = PX_LO(pe1, po1);
    *c3 = PX_LO(pe0, po0);
}

/* Transpose the words of a group's PX_L blocks into element order and store them. */
PX_ATTR FI_INLINE void PX_FN(philox_store_)(uint32_t *dst, PX_V c0, PX_V c1, PX_V c2, PX_V c3) {
    const PX_V t0 = PX_(unpacklo_epi32)(c0, c1), t1 = PX_(unpackhi_epi32)(c0, c1);
    const PX_V t2 = PX_(unpacklo_epi32)(c2, c3), t3 = PX_(unpackhi_epi32)(c2, c3);
    PX_STORE(dst, PX_(unpacklo_epi64)(t0, t2));
    PX_STORE(dst + PX_L, PX_(unpackhi_epi64)(t0, t2));
    PX_STORE(dst + 2 * PX_L, PX_(unpacklo_epi64)(t1, t3));
    PX_STORE(dst + 3 * PX_L, PX_(unpackhi_epi64)(t1, t3));
}

PX_ATTR static void PX_FN(philox_fill_)(uint32_t *words, int64_t nblocks, uint64_t j0,
                                        const fi_philox_key *key) {
    const PX_V m0 = PX_(set1_epi32)((int)PHILOX_M0), m1 = PX_(set1_epi32)((int)PHILOX_M1);
    const PX_V offsets = PX_OFFSETS, group = PX_(set1_epi32)(PX_L);
    const PX_V d0 = PX_(set1_epi32)((int)key->d0), d1 = PX_(set1_epi32)((int)key->d1);
    PX_V k0[10], k1[10];
    for (int r = 0; r < 10; r++) {
        k0[r] = PX_(set1_epi32)((int)key->k0[r]);
        k1[r] = PX_(set1_epi32)((int)key->k1[r]);
    }
    int64_t k = 0;
    for (; k + 2 * PX_L <= nblocks; k += 2 * PX_L) {
        uint64_t j = j0 + (uint64_t)k;
        if ((uint32_t)j > 0xFFFFFFFFu - (2u * PX_L - 1u)) { /* the low counter word wraps */
            philox_fill_scalar(words + 4 * k, 2 * PX_L, j, key);
            continue;
        }
        PX_V a0 = PX_(add_epi32)(PX_(set1_epi32)((int)(uint32_t)j), offsets);
        PX_V b0 = PX_(add_epi32)(a0, group);
        PX_V a1 = PX_(set1_epi32)((int)(uint32_t)(j >> 32)), b1 = a1;
        PX_V a2 = d0, a3 = d1, b2 = d0, b3 = d1;
        for (int r = 0; r < 10; r++) {
            PX_FN(philox_round_)(&a0, &a1, &a2, &a3, m0, m1, k0[r], k1[r]);
            PX_FN(philox_round_)(&b0, &b1, &b2, &b3, m0, m1, k0[r], k1[r]);
        }
        PX_FN(philox_store_)(words + 4 * k, a0, a1, a2, a3);
        PX_FN(philox_store_)(words + 4 * k + 4 * PX_L, b0, b1, b2, b3);
    }
    PX_TAIL(words + 4 * k, nblocks - k, j0 + (uint64_t)k, key);
}

#undef PX_ISA
#undef PX_FN
#undef PX_ATTR
#undef PX_V
#undef PX_L
#undef PX_
#undef PX_HI
#undef PX_LO
#undef PX_XOR3
#undef PX_OFFSETS
#undef PX_STORE
#undef PX_TAIL
