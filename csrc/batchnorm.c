/* Batch norm forward and backward (same contract as fastinit/reference/batchnorm.py).
 *
 * x is C-contiguous (N, C, S): (N, C) input has S = 1, NCHW input S = H*W. Statistics are
 * float64 (mean, var, invstd: (C,)); data, gamma, beta and outputs are float or double.
 *
 * Three layouts of the work (batchnorm_isa.h; the measurements behind them are in
 * benchmarks/records/):
 *   segment path (S >= BN_SEGMENT_S_MIN, output below BN_STREAM_MIN_BYTES): x in memory order,
 *     one (n, c) segment of S after the other, per-channel vector accumulators. Channel by
 *     channel instead, the N rows of a channel lie C*S elements apart (4 KB at 64x16x8x8:
 *     every row in one L1 set, no stream the prefetchers follow).
 *   channel path (other S >= BN_SPATIAL_MIN: large tensors): each thread its own contiguous
 *     share of the channels, one channel at a time, no barrier: the sums pass reads the channel
 *     from memory, the output pass re-reads it from cache, streams y or dx out and prefetches
 *     the thread's next channel, so reads overlap the streamed writes.
 *   row path (other small S, e.g. (N, C)): fixed blocks of rows, each summing into its own
 *     (C*S,) float64 partial rows, combined in block order.
 * Sums are float64, taken around a per-channel shift k = x[0, c, 0] (sum of x - k and of
 * (x - k)^2): float32 sums of squares give a wrong variance at mean 1000, std 1, and the shift
 * removes the cancellation of E[x^2] - E[x]^2. Blocks have fixed sizes and a channel is summed
 * by one thread, so results do not depend on the thread count.
 *
 * The output pass is y = (x - mh) * a + b in the data type, mh = mean rounded to it,
 * a = gamma * invstd, b = beta - (mean - mh) * a: x - mh is exact near the mean (Sterbenz), so
 * a large mean costs no accuracy. Outputs of BN_STREAM_MIN_BYTES or more are written with
 * non-temporal stores (they would only evict the input the second pass re-reads, and a
 * streaming store skips the read-for-ownership of each output line).
 * Backward: dx = k * dy + (x - mh) * p + q with k = gamma * invstd and, in training,
 * p = -k * invstd * dgamma / M, q = -k * dbeta / M + (mean - mh) * k * invstd * dgamma / M.
 */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif

#define BN_SPATIAL_MIN 64                   /* channel path from this spatial size */
#define BN_STREAM_MIN_BYTES (16L << 20)     /* non-temporal stores from this output size */
#define BN_PARALLEL_MIN 32768               /* _config.PARALLEL_MIN_ELEMENTS */
#define BN_BLOCK_ELEMENTS 16384             /* elements per block of the row path */
#define BN_SEGMENT_S_MIN 8
#define BN_SEGMENT_STACK_C 64               /* channels whose accumulators live on the stack */
#define BN_SEGMENT_BLOCK (1L << 16)         /* elements per block of rows (at least 4 rows) */
#define BN_SEGMENT_PARALLEL_MIN (1L << 17)  /* below: one thread (a fork/join costs more) */
/* Software prefetch distance: the rows of a channel lie C*S elements apart, which the hardware
 * prefetchers here do not follow; the sums of the channel path prefetch this far ahead, on into
 * the next row. */
#define BN_PREFETCH_BYTES 8192

enum { BN_TRAIN = 0, BN_EVAL = 1, BN_BACKWARD = 2 };

/* One call: kind BN_TRAIN (out = y; writes mean, var, invstd), BN_EVAL (out = y; given mean,
 * var; writes invstd) or BN_BACKWARD (out = dx; writes dgamma, dbeta; training or not). */
typedef struct {
    int kind, training;
    void *out, *dgamma, *dbeta;
    double *mean, *var, *invstd;
    const void *x, *dy, *gamma, *beta;
    double eps;
    int64_t n, c, s;
} bn_args;

/* Prefetch element i + BN_PREFETCH_BYTES of a row of n elements of `elem` bytes, running on
 * into `next` (the row read after this one; NULL: none). */
FI_INLINE void bn_prefetch(const void *row, const void *next, int64_t i, int64_t n, size_t elem) {
    const int64_t ahead = i + BN_PREFETCH_BYTES / (int64_t)elem;
    if (ahead < n) __builtin_prefetch((const char *)row + ahead * (int64_t)elem);
    else if (next) __builtin_prefetch((const char *)next + (ahead - n) * (int64_t)elem);
}

/* Non-temporal stores are weakly ordered: the thread that streamed fences before its part
 * counts as written. */
FI_INLINE void bn_fence(void) {
#if FI_X86
    _mm_sfence();
#endif
}

/* Rows per block of the row path, and of the segment path (a multiple of 4: its sums take 4
 * rows at a time); fixed by the shape. */
static int64_t bn_rows_per_block(int64_t row_length) {
    const int64_t r = BN_BLOCK_ELEMENTS / (row_length > 0 ? row_length : 1);
    return r > 0 ? r : 1;
}

static int64_t bn_seg_rows_per_block(int64_t row_length) {
    const int64_t r = BN_SEGMENT_BLOCK / (row_length > 0 ? row_length : 1) / 4 * 4;
    return r > 4 ? r : 4;
}

#define FI_BODY "batchnorm_isa.h"
#include "instances.h"

/* ---- entry points: the build fi_isa() names (batchnorm_entry.h) ------------------------------ */

#define FI_T float
#define FI_TS f32
#include "batchnorm_entry.h"
#define FI_T double
#define FI_TS f64
#include "batchnorm_entry.h"
