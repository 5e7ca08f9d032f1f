/* The SGD update over a list of arrays, in place (contract of fastinit/ops/optim.py).
 *
 * Array i has sizes[i] elements at p[i], g[i] and (with momentum) v[i], all of one type
 * (bits = 32: float, 64: double). Per element, in that type, one rounding per operation
 * (-ffp-contract=off keeps the compiler from fusing):
 *     d = g + wd * p   (wd != 0);   v = m * v + d   (m != 0; d = v);   p = p - lr * d
 * One pass over memory. Below OPT_PARALLEL_MIN elements in all it runs on one thread; above,
 * every thread takes its own slice of every array (no chunk table, no barrier between arrays).
 * The loop is compiled for each ISA (instances.h: 16 floats a vector on AVX-512 instead of
 * SSE2's 4; the update reads its arrays from L2/L3 and was bound by the instructions, not the
 * bytes).
 */
#include <stdint.h>
#include "fastinit.h"
#include "dispatch.h"
#if FI_X86
#include <immintrin.h>
#endif

#define OPT_PARALLEL_MIN 65536
#define OPT_ALIGN 16   /* slice boundaries in elements: whole cache lines per thread */

#define FI_BODY "optim_isa.h"
#include "instances.h"

void fi_sgd_step(void **p, void **g, void **v, const int64_t *sizes, int64_t count, int bits,
                 double lr, double momentum, double weight_decay) {
    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) total += sizes[i];
    const int isa = fi_isa();
#pragma omp parallel num_threads(fi_threads()) if (total >= OPT_PARALLEL_MIN)
    {
        const int part = fi_thread_num(), parts = fi_team_size();
        if (bits == 32)
            FI_ISA_CALL(isa, sgd_slices_, f32,
                        (p, g, v, sizes, count, part, parts, lr, momentum, weight_decay));
        else
            FI_ISA_CALL(isa, sgd_slices_, f64,
                        (p, g, v, sizes, count, part, parts, lr, momentum, weight_decay));
    }
}
