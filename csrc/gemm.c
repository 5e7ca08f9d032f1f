/* Dense kernels: blocked GEMM (C = op(A) @ op(B) [+ bias], float32/float64), the linear
 * layer's backward and its bias gradient. No BLAS: fastinit's own GEMM, the C twin of
 * fastinit/_numba/gemm.py (read that docstring for the measurements behind the choices).
 *
 * Large products, BLIS loop order (Van Zee & van de Geijn, ACM TOMS 2015), one parallel region:
 *
 *   for jc in N by NC:                  B panel KC x NC, shared by the threads
 *     for pc in K by KC:
 *       pack B[pc:+kc, jc:+nc]          NR-column panels, k-major  (omp for over panels)
 *       for each block of C rows:       (omp for) each thread packs its A block MC x KC
 *         for jr in nc by NR:           a B micro-panel KC x NR
 *           for ir in mc by MR:         tile: C[ir:+MR, jr:+NR] (+)= Ap @ Bp in registers
 *
 * with a deep KC; a B that is not transposed is read where it lies unless its row stride would
 * thrash the caches (fi_gemm_b_rows_direct). Small and medium products (m*n*k <=
 * FI_GEMM_DIRECT_MAX_MACS, a C of at most one row block, or K in one block and A of at most
 * FI_GEMM_DIRECT_MAX_A_BYTES) take
 * K in one block (blocks of FI_GEMM_DIRECT_KB past that) and read A and B where they lie (a B
 * panel is copied only when B comes transposed), on one thread or, from
 * FI_GEMM_PARALLEL_MIN_MACS on, split over the threads (nothing one thread writes is read by
 * another). A bias is added by the tiles as they store (fi_tile_bias_ in gemm_tile.h), with K's
 * first block. A C of at most FI_GEMM_DOTS_MAX_OUT values over a long K is a few dot products
 * (fi_gemm_dots_). A narrow C (n < NR) is computed as C^T = op(B)^T op(A)^T. op(X) is X or X^T:
 * a transposed operand is read where it lies by the packing routines (register transposes),
 * never copied whole.
 *
 * The tile and the transposes (gemm_tile.h) and the per-ISA GEMM (gemm_isa.h) are instantiated
 * for AVX-512, AVX2+FMA and portable 16-byte vectors; the path is chosen at run time (fi_init's
 * CPU check, plus AVX-512 here). Tiles: 12 x 2 vectors on AVX-512 (24 of 32 registers
 * accumulate; at 14 x 2 the compilers spill), 6 x 2 on AVX2, 4 x 2 portable.
 */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#include "scratch.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Blocking, in elements (measured on Zen 5, 1 MB L2, 48 KB L1; see fastinit/_numba/gemm.py):
 * a deep KC pays most, since every pass over K re-reads and re-writes the C tiles and restarts
 * the tile loop; both micro-panels then stream from L2, which keeps up. */
#define FI_GEMM_KC_F32 1024
#define FI_GEMM_KC_F64 512
#define FI_GEMM_MC_PANELS 8
#define FI_GEMM_NC_F32 4096
#define FI_GEMM_NC_F64 2048
/* values a packed A block needs past its end (transposes of a partial row group spill) */
#define FI_PACK_PAD 64
/* products of at most this many multiply-adds skip packing; from PARALLEL_MIN on they use
 * the threads (an OpenMP launch costs a few microseconds) */
#define FI_GEMM_DIRECT_MAX_MACS (256 * 256 * 256)
#define FI_GEMM_PARALLEL_MIN_MACS (100 * 100 * 100)
/* a C of at most DOTS_MAX_OUT values with K >= DOTS_MIN_K, rows of op(A) and columns of op(B)
 * contiguous, is computed as dot products over K chunks of DOTS_CHUNK (fi_gemm_dots_) */
#define FI_GEMM_DOTS_MAX_OUT 16
#define FI_GEMM_DOTS_MIN_K 2048
#define FI_GEMM_DOTS_CHUNK 8192
/* the direct path's K block: its B panel (K x NR values) stays in L2 */
#define FI_GEMM_DIRECT_KB 4096
/* larger products still go direct when K fits one block and A at most this many bytes */
#define FI_GEMM_DIRECT_MAX_A_BYTES (512 * 1024)

/* ---- scratch: one growing buffer per calling thread, reused (a fresh multi-megabyte buffer
 * costs a page fault per 4 KB on first touch); freed when the thread exits (scratch.h) ---- */
static void *fi_gemm_scratch(size_t bytes) { return fi_scratch(FI_SCRATCH_GEMM, bytes); }

/* a second buffer, for the transposed result of a narrow product (fi_gemm_ then runs again
 * and uses the first) */
static void *fi_gemm_scratch2(size_t bytes) { return fi_scratch(FI_SCRATCH_GEMM_T, bytes); }

/* Whether the tile may read B's rows where they lie (no packing) at this row stride: a tile
 * re-reads a KC x NR strip of B for every row panel of A, and rows whose stride is a multiple
 * of a large power of two fall into few cache sets and thrash (n = 1024: 257 GFLOP/s packed,
 * 193 not); otherwise reading B in place saves the copy. */
static int fi_gemm_b_rows_direct(int64_t row_bytes) {
    return (row_bytes & -row_bytes) <= 256;
}

static int fi_gemm_max_threads(void) {
    return fi_threads(); /* 1 in a forked child: see dispatch.h */
}
static int fi_gemm_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
static int fi_gemm_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- instantiations ---- */
#define FI_MR 4
#define FI_NVEC 2
#define FI_ISA FI_ISA_BASE
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX f32_base
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX f64_base
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_MR
#undef FI_NVEC
#undef FI_ISA

#if FI_X86
#define FI_MR 6
#define FI_NVEC 2
#define FI_ISA FI_ISA_AVX2
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX f32_avx2
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX f64_avx2
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_MR
#undef FI_NVEC
#undef FI_ISA

#define FI_MR 12
#define FI_NVEC 2
#define FI_ISA FI_ISA_AVX512
#define FI_T float
#define FI_T_IS_DOUBLE 0
#define FI_SFX f32_avx512
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#define FI_T double
#define FI_T_IS_DOUBLE 1
#define FI_SFX f64_avx512
#include "gemm_tile.h"
#include "gemm_isa.h"
#undef FI_T
#undef FI_T_IS_DOUBLE
#undef FI_SFX
#undef FI_MR
#undef FI_NVEC
#undef FI_ISA
#endif

/* ---- run-time path ---- */
static int fi_gemm_forced = 0;

static int fi_gemm_best(void) {
#if FI_X86
    if (!fi_use_avx2) return FI_ISA_BASE;
    return fi_use_avx512 ? FI_ISA_AVX512 : FI_ISA_AVX2;
#else
    return FI_ISA_BASE;
#endif
}

static int fi_gemm_isa(void) {
    const int best = fi_gemm_best();
    return fi_gemm_forced && fi_gemm_forced < best ? fi_gemm_forced : best;
}

int fi_gemm_set_path(int path) {
    fi_gemm_forced = path >= FI_ISA_BASE && path <= FI_ISA_AVX512 ? path : 0;
    return fi_gemm_isa();
}

const char *fi_gemm_path(void) {
    switch (fi_gemm_isa()) {
    case FI_ISA_AVX512: return "avx512";
    case FI_ISA_AVX2: return "avx2+fma";
    default: return "portable";
    }
}

int fi_gemm_f32(float *c, const float *a, const float *b, const float *bias, int64_t m, int64_t n,
                int64_t k, int ta, int tb, int beta) {
    /* c is (m, n); a is (m, k), or (k, m) when ta; b is (k, n), or (n, k) when tb; bias (n,) */
#if FI_X86
    switch (fi_gemm_isa()) {
    case FI_ISA_AVX512: return fi_gemm_f32_avx512(c, a, ta, b, tb, bias, m, n, k, beta);
    case FI_ISA_AVX2: return fi_gemm_f32_avx2(c, a, ta, b, tb, bias, m, n, k, beta);
    default: break;
    }
#endif
    return fi_gemm_f32_base(c, a, ta, b, tb, bias, m, n, k, beta);
}

int fi_gemm_f64(double *c, const double *a, const double *b, const double *bias, int64_t m, int64_t n,
                int64_t k, int ta, int tb, int beta) {
    /* c is (m, n); a is (m, k), or (k, m) when ta; b is (k, n), or (n, k) when tb; bias (n,) */
#if FI_X86
    switch (fi_gemm_isa()) {
    case FI_ISA_AVX512: return fi_gemm_f64_avx512(c, a, ta, b, tb, bias, m, n, k, beta);
    case FI_ISA_AVX2: return fi_gemm_f64_avx2(c, a, ta, b, tb, bias, m, n, k, beta);
    default: break;
    }
#endif
    return fi_gemm_f64_base(c, a, ta, b, tb, bias, m, n, k, beta);
}

/* ---- the linear layer's backward: two products and the bias gradient ---- */
#define FI_LINEAR_BACKWARD(NAME, T, GEMM, SUMS)                                               \
    int NAME(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, int64_t n, int64_t fin, \
             int64_t fout, int tdy, int tx, int tw) {                                           \
        /* dy (n, fout), x (n, fin), w (fout, fin), each stored transposed when its flag is   \
         * set; dx (n, fin) = dy @ w, dw (fout, fin) = dy^T @ x, db (fout,) = column sums of  \
         * dy; a NULL output is not computed (db NULL also when there is no bias) */           \
        if (dx && GEMM(dx, dy, w, NULL, n, fin, fout, tdy, tw, 0)) return -1;                    \
        if (dw && GEMM(dw, dy, x, NULL, fout, fin, n, !tdy, tx, 0)) return -1;                   \
        return db ? SUMS(db, dy, n, fout, tdy) : 0;                                              \
    }

/* ---- bias gradient of the linear layer: out[j] = sum_i X[i, j] (float64 sums, row order) ---- */
#if FI_X86
#define FI_COLUMN_ACC(T, X, acc, x, rows, cols)                                                 \
    switch (fi_gemm_isa()) {                                                                    \
    case FI_ISA_AVX512: fi_column_acc_##X##_avx512(acc, x, rows, cols); break;                  \
    case FI_ISA_AVX2: fi_column_acc_##X##_avx2(acc, x, rows, cols); break;                      \
    default: fi_column_acc_##X##_base(acc, x, rows, cols);                                      \
    }
#else
#define FI_COLUMN_ACC(T, X, acc, x, rows, cols) fi_column_acc_##X##_base(acc, x, rows, cols)
#endif
#define FI_COLUMN_SUMS(NAME, T, X)                                                            \
    int NAME(T *out, const T *x, int64_t rows, int64_t cols, int trans) {                      \
        /* X is (rows, cols): x itself, or x^T when trans (x is (cols, rows)) */               \
        if (trans) {                                                                            \
            for (int64_t j = 0; j < cols; j++) {                                                \
                double s = 0.0;                                                                 \
                for (int64_t i = 0; i < rows; i++) s += x[j * rows + i];                        \
                out[j] = (T)s;                                                                  \
            }                                                                                   \
            return 0;                                                                           \
        }                                                                                       \
        double stack[1024];                                                                     \
        double *acc = cols <= 1024 ? stack : malloc((size_t)cols * sizeof(double));             \
        if (!acc) return -1;                                                                    \
        memset(acc, 0, (size_t)(cols > 0 ? cols : 0) * sizeof(double));                        \
        FI_COLUMN_ACC(T, X, acc, x, rows, cols)                                                 \
        for (int64_t j = 0; j < cols; j++) out[j] = (T)acc[j];                                  \
        if (acc != stack) free(acc);                                                            \
        return 0;                                                                               \
    }
FI_COLUMN_SUMS(fi_column_sums_f32, float, f32)
FI_COLUMN_SUMS(fi_column_sums_f64, double, f64)
FI_LINEAR_BACKWARD(fi_linear_backward_f32, float, fi_gemm_f32, fi_column_sums_f32)
FI_LINEAR_BACKWARD(fi_linear_backward_f64, double, fi_gemm_f64, fi_column_sums_f64)
