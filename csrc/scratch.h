/* Per-thread scratch memory shared by the C kernels (defined in common.c).
 *
 * fi_scratch(slot, bytes) returns a 64-byte-aligned buffer of at least `bytes` that belongs to
 * the calling thread and to `slot`: later calls of the same thread and slot get the same
 * buffer back (grown when more is asked; the contents are not kept when it grows), so a hot
 * loop does not pay a fresh buffer's page faults on every call. Every buffer of a thread is
 * freed when that thread exits (a pthread key destructor), so short-lived threads leave
 * nothing behind. Returns NULL when memory runs out (the kernel then returns -1).
 *
 * A slot is one buffer in use at a time: a kernel that needs two buffers at once takes two
 * slots. Slots are named here, one enum entry per use.
 */
#ifndef FASTINIT_SCRATCH_H
#define FASTINIT_SCRATCH_H
#include <stddef.h>

enum {
    FI_SCRATCH_GEMM = 0,   /* gemm.c: packed panels of A and B */
    FI_SCRATCH_GEMM_T = 1, /* gemm.c: the transposed result of a narrow product */
    FI_SCRATCH_CONV = 2,   /* conv2d.c: packed weights and every thread's blocks */
    FI_SCRATCH_SLOTS = 8   /* slots 3..7 free */
};

void *fi_scratch(int slot, size_t bytes);

#endif
