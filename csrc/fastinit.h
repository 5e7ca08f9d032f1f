/* fastinit C kernels: the declarations Python sees (cffi reads the block between the markers).
 *
 * Conventions (shared DESIGN.md): plain C11, one file per op, forward beside backward;
 * arguments are outputs first, then inputs, then sizes. Kernels never validate: the Python
 * wrappers in fastinit/_ckernels/ check every shape before calling. Arrays are C-contiguous.
 * Each op keeps its declarations in its own section below, so ops can be added independently.
 */
#ifndef FASTINIT_H
#define FASTINIT_H
#include <stdint.h>
#include <stddef.h>

/* FI_CDEF_BEGIN */

/* ---- common.c: threads and CPU dispatch ---- */
void fi_init(void);
void fi_set_num_threads(int n);
int fi_get_num_threads(void);
const char *fi_cpu_path(void);

/* ---- rng.c: Philox4x32-10 stream (see fastinit/rng.py for the exact mapping) ---- */

/* ---- gemm.c ---- */

/* ---- conv2d.c ---- */

/* ---- batchnorm.c ---- */

/* ---- clip.c ---- */

/* ---- activations.c ---- */

/* FI_CDEF_END */

#endif
