/* Threads, fork handling, per-thread scratch and the instruction-set cap shared by every C
 * kernel (dispatch.h, scratch.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#include "scratch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- instruction sets: the CPU's best, and a cap (FASTINIT_C_ISA, read by fastinit/_c.py) */
static int fi_cpu_best = FI_ISA_BASE;
static int fi_cap = FI_ISA_BEST;

int fi_isa(void) {
    return fi_cap != FI_ISA_BEST && fi_cap < fi_cpu_best ? fi_cap : fi_cpu_best;
}

int fi_isa_cap(int cap) {
    const int previous = fi_cap;
    fi_cap = cap >= FI_ISA_BASE && cap <= FI_ISA_AVX512 ? cap : FI_ISA_BEST;
    return previous;
}

const char *fi_isa_name(int isa) {
    return isa == FI_ISA_AVX512 ? "avx512" : isa == FI_ISA_AVX2 ? "avx2" : "portable";
}

/* ---- fork: a child runs every kernel on one thread (see fi_threads in dispatch.h) ---- */
static volatile int fi_forked = 0;

static void fi_atfork_child(void) {
    fi_forked = 1;
#ifdef _OPENMP
    /* also the default of the forking thread (the child's only one), so a region without a
     * num_threads clause runs on one thread there too */
    omp_set_num_threads(1);
#endif
}

void fi_init(void) {
    static int registered = 0;
    if (!registered) {
        registered = 1;
        pthread_atfork(NULL, NULL, fi_atfork_child);
    }
#if FI_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        fi_cpu_best = FI_ISA_AVX2;
    if (fi_cpu_best == FI_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw"))
        fi_cpu_best = FI_ISA_AVX512;
#endif
    fi_isa_cap(fi_cap);
}

/* ---- threads ---- */
int fi_threads(void) {
#ifdef _OPENMP
    return fi_forked ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

int fi_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int fi_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

void fi_set_num_threads(int n) {
#ifdef _OPENMP
    if (n >= 1) omp_set_num_threads(fi_forked ? 1 : n);
#else
    (void)n;
#endif
}

int fi_get_num_threads(void) {
    return fi_threads();
}

/* ---- per-thread scratch (scratch.h) ---- */
struct fi_scratch_set {
    void *buf[FI_SCRATCH_SLOTS];
    size_t size[FI_SCRATCH_SLOTS];
};

static pthread_key_t fi_scratch_key;
static pthread_once_t fi_scratch_once = PTHREAD_ONCE_INIT;
static int fi_scratch_key_ok = 0;
/* the calling thread's set: found without a pthread_getspecific call; the key only exists so
 * that its destructor frees the set when the thread exits */
static _Thread_local struct fi_scratch_set *fi_scratch_mine = NULL;

static void fi_scratch_free(void *p) {
    struct fi_scratch_set *set = p;
    for (int i = 0; i < FI_SCRATCH_SLOTS; i++) free(set->buf[i]);
    free(set);
    fi_scratch_mine = NULL;
}

static void fi_scratch_key_create(void) {
    fi_scratch_key_ok = pthread_key_create(&fi_scratch_key, fi_scratch_free) == 0;
}

void *fi_scratch(int slot, size_t bytes) {
    struct fi_scratch_set *set = fi_scratch_mine;
    if (set == NULL) {
        pthread_once(&fi_scratch_once, fi_scratch_key_create);
        if (!fi_scratch_key_ok) return NULL;
        set = calloc(1, sizeof *set);
        if (set == NULL) return NULL;
        if (pthread_setspecific(fi_scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
        fi_scratch_mine = set;
    }
    if (bytes > set->size[slot]) {
        if (bytes > SIZE_MAX - 4095) return NULL;
        size_t size = (bytes + 4095) & ~(size_t)4095; /* whole pages: aligned_alloc's rule too */
        void *p = aligned_alloc(64, size);
        if (p == NULL) return NULL;
        /* zero when first handed out: register tiles read rows and columns past the valid ones
         * (their results are dropped), and heap garbage there can be denormals, which make
         * every multiply-add of the tile slow */
        memset(p, 0, size);
        free(set->buf[slot]);
        set->buf[slot] = p;
        set->size[slot] = size;
    }
    return set->buf[slot];
}
