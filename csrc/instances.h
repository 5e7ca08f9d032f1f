/* Instantiates a per-ISA body once per (element type, ISA): include this file with FI_BODY
 * naming the body header (e.g. #define FI_BODY "conv2d_isa.h").
 *
 * For each of float and double on the portable, AVX2+FMA and AVX-512 builds it defines FI_T,
 * FI_T_IS_DOUBLE, FI_ISA, FI_SFX (a name suffix: f32_avx512, ...) and the register tile's
 * shape FI_MR rows x FI_NVEC vectors, includes gemm_tile.h (the tile and the vector macros of
 * that instantiation) and then FI_BODY, and undefines them again. Tiles: 12 x 2 vectors on
 * AVX-512 (24 of 32 registers accumulate; at 14 x 2 the compilers spill), 6 x 2 on AVX2 (12 of
 * 16), 4 x 2 portable.
 *
 * The two loops, over the ISAs and over the element types, are this file including itself:
 * pass 1 (FI_ISA not defined) sets each ISA in turn, pass 2 (FI_T_IS_DOUBLE not defined) each
 * element type, pass 3 instantiates; an inner pass undefines at its end what its caller set.
 */
#if !defined(FI_ISA) /* ---- pass 1: the ISAs, then the run-time choice among them ---------- */
#define FI_ISA FI_ISA_BASE
#include "instances.h"
#if FI_X86
#define FI_ISA FI_ISA_AVX2
#include "instances.h"
#define FI_ISA FI_ISA_AVX512
#include "instances.h"
#endif

/* FI_ISA_CALL: FN##TS##_<isa> ARGS for the ISA `isa` (FI_ISA_*), e.g.
 * FI_ISA_CALL(isa, fi_cv_forward_, f32, (y, x, ...)) */
#undef FI_ISA_CALL
#undef FI_ISA_PICK
#undef FI_ISA_PICK_
#if FI_X86
#define FI_ISA_CALL(isa, FN, TS, ARGS)                                                         \
    do {                                                                                       \
        if ((isa) == FI_ISA_AVX512) FN##TS##_avx512 ARGS;                                     \
        else if ((isa) == FI_ISA_AVX2) FN##TS##_avx2 ARGS;                                    \
        else FN##TS##_base ARGS;                                                               \
    } while (0)
/* FI_ISA_PICK: the function FN##TS##_<isa> itself (TS may be a macro), e.g. for a pointer */
#define FI_ISA_PICK(isa, FN, TS) FI_ISA_PICK_(isa, FN, TS)
#define FI_ISA_PICK_(isa, FN, TS)                                                              \
    ((isa) == FI_ISA_AVX512 ? FN##TS##_avx512                                                  \
     : (isa) == FI_ISA_AVX2 ? FN##TS##_avx2 : FN##TS##_base)
#else
#define FI_ISA_CALL(isa, FN, TS, ARGS) FN##TS##_base ARGS
#define FI_ISA_PICK(isa, FN, TS) FI_ISA_PICK_(isa, FN, TS)
#define FI_ISA_PICK_(isa, FN, TS) FN##TS##_base
#endif
#undef FI_BODY

#elif !defined(FI_T_IS_DOUBLE) /* ---- pass 2: FI_ISA's tile and name, its two types ---------- */
#if FI_ISA == FI_ISA_AVX512
#define FI_MR 12
#define FI_ISA_NAME avx512
#elif FI_ISA == FI_ISA_AVX2
#define FI_MR 6
#define FI_ISA_NAME avx2
#else
#define FI_MR 4
#define FI_ISA_NAME base
#endif
#define FI_NVEC 2
#define FI_T_IS_DOUBLE 0
#include "instances.h"
#define FI_T_IS_DOUBLE 1
#include "instances.h"
#undef FI_MR
#undef FI_ISA_NAME
#undef FI_NVEC
#undef FI_ISA

#else /* ---- pass 3: the instantiation for FI_ISA and FI_T_IS_DOUBLE ------------------------- */
#if FI_T_IS_DOUBLE
#define FI_T double
#define FI_SFX FI_CAT(f64_, FI_ISA_NAME)
#else
#define FI_T float
#define FI_SFX FI_CAT(f32_, FI_ISA_NAME)
#endif
#include "gemm_tile.h"
#include FI_BODY
#undef FI_T
#undef FI_SFX
#undef FI_T_IS_DOUBLE
#endif
