/* Threads and CPU dispatch shared by every C kernel. */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int fi_use_avx2 = 0;
int fi_use_avx512 = 0;

void fi_init(void) {
#if FI_X86
    __builtin_cpu_init();
    fi_use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    fi_use_avx512 = fi_use_avx2 && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512bw");
#endif
    const char *force = getenv("FASTINIT_C_PORTABLE");
    if (force && force[0] && strcmp(force, "0") != 0) fi_use_avx2 = fi_use_avx512 = 0;
    /* FASTINIT_C_ISA=avx2 caps the kernels at the AVX2 build (to test it on an AVX-512 CPU) */
    const char *isa = getenv("FASTINIT_C_ISA");
    if (isa && strcmp(isa, "avx2") == 0) fi_use_avx512 = 0;
    if (isa && strcmp(isa, "portable") == 0) fi_use_avx2 = fi_use_avx512 = 0;
}

void fi_set_num_threads(int n) {
#ifdef _OPENMP
    if (n >= 1) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int fi_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

const char *fi_cpu_path(void) {
    return fi_use_avx512 ? "avx512" : fi_use_avx2 ? "avx2+fma" : "portable";
}
