/* What every C kernel shares: the instruction sets and their target attributes, run-time
 * dispatch, threads. One scheme for per-(type, ISA) bodies: a body header written once and
 * instantiated by instances.h for float and double on the portable, AVX2+FMA and AVX-512 builds
 * (FI_T, FI_ISA, FI_SFX, FI_ATTR and the vector primitives of gemm_tile.h are set there); the
 * entry point picks the build at run time with FI_ISA_CALL(fi_isa(), ...). The installed build
 * never needs -march=native.
 */
#ifndef FASTINIT_DISPATCH_H
#define FASTINIT_DISPATCH_H
#include <stdint.h>
#include <string.h>
#include "fastinit.h" /* enum fi_isa, fi_status, fi_isa() */

/* enum fi_isa again as macros, for the #if of the body headers (the preprocessor sees no
 * enums); checked against the enum here, before the names become macros. */
_Static_assert(FI_ISA_BASE == 1 && FI_ISA_AVX2 == 2 && FI_ISA_AVX512 == 3, "enum fi_isa");
#define FI_ISA_BASE 1
#define FI_ISA_AVX2 2
#define FI_ISA_AVX512 3

#define FI_INLINE static inline __attribute__((always_inline))
#define FI_CAT_(a, b) a##b
#define FI_CAT(a, b) FI_CAT_(a, b)

/* The target of each vector build, the one spelling of its feature set. AVX-512 means F, VL,
 * DQ and BW (what fi_init checks); prefer-vector-width=512 lets gcc vectorise plain loops with
 * 64-byte vectors (by default it stops at 32 bytes). */
#if defined(__x86_64__) || defined(__i386__)
#define FI_X86 1
#define FI_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FI_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")))
#else
#define FI_X86 0
#define FI_TARGET_AVX2
#define FI_TARGET_AVX512
#endif

/* A vector of `bytes` bytes of T that may lie at any address of a T and alias T: loads and
 * stores of arrays through it are defined behaviour, at any element offset. */
#define FI_VEC_OF(T, bytes) __attribute__((vector_size(bytes), aligned(sizeof(T)), may_alias))

/* A float32's bits and back (memcpy: the type-punning C defines). */
FI_INLINE uint32_t fi_f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

FI_INLINE float fi_f32_from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The threads a parallel region may use: omp_get_max_threads(), but 1 in a child of fork().
 * libgomp keeps the worker pool of the thread that forked, and in the child those workers do
 * not exist: a region of more than one thread there waits for them forever, while a region of
 * one thread never touches the pool. So every `#pragma omp parallel` carries
 * num_threads(fi_threads()) (or a count capped by it), and a forked child runs every kernel on
 * its calling thread, with the right result. */
int fi_threads(void);
/* Inside a parallel region: the calling thread's number and the team's size (0 and 1
 * without OpenMP). */
int fi_thread_num(void);
int fi_team_size(void);

#endif
