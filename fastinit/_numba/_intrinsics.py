"""Tiny LLVM intrinsics for Numba kernels: what plain Numba cannot say.

``f32_as_u32`` / ``u32_as_f32`` reinterpret the bits of a float32 as a uint32 and back (an LLVM
``bitcast``, no conversion): the float32 logarithm of the random stream reads the exponent from
the bits (fastinit.reference.rng.ln_f32). A bitcast vectorises; a round trip through a 1-element
array view would not.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def f32_as_u32(typingctx, x):
    """The bits of float32 ``x`` as a uint32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def u32_as_f32(typingctx, x):
    """The float32 whose bits are uint32 ``x``."""
    if x != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen
