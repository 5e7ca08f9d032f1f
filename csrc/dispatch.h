/* Run-time CPU dispatch for the vector kernels.
 *
 * A kernel body is written once as a static inline function (FI_INLINE) and compiled twice:
 * for AVX2+FMA (FI_TARGET_AVX2) and for the portable baseline. fi_has_avx2() picks at run time,
 * so the installed build never needs -march=native (shared PERF_NOTES.md).
 */
#ifndef FASTINIT_DISPATCH_H
#define FASTINIT_DISPATCH_H

#define FI_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) || defined(__i386__)
#define FI_X86 1
#define FI_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FI_X86 0
#define FI_TARGET_AVX2
#endif

/* 1 when the CPU has AVX2 and FMA (and FASTINIT_C_PORTABLE is not set); set by fi_init(). */
extern int fi_use_avx2;
/* 1 when it also has AVX-512 F, VL, DQ and BW (the set every AVX-512 kernel here assumes). */
extern int fi_use_avx512;

/* The threads a parallel region may use: omp_get_max_threads(), but 1 in a child of fork().
 * libgomp keeps the worker pool of the thread that forked, and in the child those workers do
 * not exist: a region of more than one thread there waits for them forever, while a region of
 * one thread never touches the pool. So every `#pragma omp parallel` carries
 * num_threads(fi_threads()) (or a count capped by it), and a forked child runs every kernel on
 * its calling thread, with the right result. */
int fi_threads(void);

#endif
