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
 * by instances.h (which gives the tile shapes) and chosen at run time by fi_isa().
 */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#include "scratch.h"

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

/* Whether the tile may read B's rows where they lie (no packing) at this row stride: a tile
 * re-reads a KC x NR strip of B for every row panel of A, and rows whose stride is a multiple
 * of a large power of two fall into few cache sets and thrash; otherwise reading B in place
 * saves the copy. */
static int fi_gemm_b_rows_direct(int64_t row_bytes) {
    return (row_bytes & -row_bytes) <= 256;
}

/* ---- per-(type, ISA) bodies: the tile, the transposes (gemm_tile.h) and the GEMM ---- */
#define FI_BODY "gemm_isa.h"
#include "instances.h"

/* ---- entry points: the build fi_isa() names ---- */
fi_status fi_gemm_f32(float *c, const float *a, const float *b, const float *bias, int64_t m,
                      int64_t n, int64_t k, int ta, int tb, int beta) {
    FI_ISA_CALL(fi_isa(), return fi_gemm_, f32, (c, a, ta, b, tb, bias, m, n, k, beta));
}

fi_status fi_gemm_f64(double *c, const double *a, const double *b, const double *bias,
                      int64_t m, int64_t n, int64_t k, int ta, int tb, int beta) {
    FI_ISA_CALL(fi_isa(), return fi_gemm_, f64, (c, a, ta, b, tb, bias, m, n, k, beta));
}

fi_status fi_linear_backward_f32(float *dx, float *dw, float *db, const float *dy,
                                 const float *x, const float *w, int64_t n, int64_t fin,
                                 int64_t fout, int tdy, int tx, int tw) {
    FI_ISA_CALL(fi_isa(), return fi_linear_backward_, f32,
                (dx, dw, db, dy, x, w, n, fin, fout, tdy, tx, tw));
}

fi_status fi_linear_backward_f64(double *dx, double *dw, double *db, const double *dy,
                                 const double *x, const double *w, int64_t n, int64_t fin,
                                 int64_t fout, int tdy, int tx, int tw) {
    FI_ISA_CALL(fi_isa(), return fi_linear_backward_, f64,
                (dx, dw, db, dy, x, w, n, fin, fout, tdy, tx, tw));
}

fi_status fi_column_sums_f32(float *out, const float *x, int64_t rows, int64_t cols, int trans) {
    FI_ISA_CALL(fi_isa(), return fi_column_sums_, f32, (out, x, rows, cols, trans));
}

fi_status fi_column_sums_f64(double *out, const double *x, int64_t rows, int64_t cols,
                             int trans) {
    FI_ISA_CALL(fi_isa(), return fi_column_sums_, f64, (out, x, rows, cols, trans));
}
