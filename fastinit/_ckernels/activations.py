"""C kernels of the activations (csrc/activations.c): thin wrappers, same names as the reference.

One C entry point per dtype takes the op code (``FI_ACT_*`` in csrc/fastinit.h); arrays are
flat C-contiguous float32/float64.
"""
from .. import _c


def _run(op, out, x, dy=None, param=0.0):
    lib, fb = _c.lib, _c.ffi.from_buffer
    # by the dtype's kind, not identity: an unpickled float32 array has an equal dtype object
    # that is not np.dtype(np.float32) (the float64 kernel would run over twice its bytes)
    if x.dtype.char == "f":
        fn, ct = lib.fi_activation_f32, "float[]"
    else:
        fn, ct = lib.fi_activation_f64, "double[]"
    code = _CODES.get(op)
    if code is None:
        code = _CODES[op] = getattr(lib, op)
    _c.check(fn(code, fb(ct, out), fb(ct, x), _c.ffi.NULL if dy is None else fb(ct, dy), x.size,
                param), op)


_CODES = {}


def relu(y, x):
    _run("FI_ACT_RELU", y, x)


def relu_backward(dx, dy, x):
    _run("FI_ACT_RELU_BACKWARD", dx, x, dy)


def leaky_relu(y, x, negative_slope):
    _run("FI_ACT_LEAKY_RELU", y, x, None, negative_slope)


def leaky_relu_backward(dx, dy, x, negative_slope):
    _run("FI_ACT_LEAKY_RELU_BACKWARD", dx, x, dy, negative_slope)


def elu(y, x, alpha):
    _run("FI_ACT_ELU", y, x, None, alpha)


def elu_backward(dx, dy, x, alpha):
    _run("FI_ACT_ELU_BACKWARD", dx, x, dy, alpha)


def tanh(y, x):
    _run("FI_ACT_TANH", y, x)


def tanh_backward(dx, dy, x):
    _run("FI_ACT_TANH_BACKWARD", dx, x, dy)


def sigmoid(y, x):
    _run("FI_ACT_SIGMOID", y, x)


def sigmoid_backward(dx, dy, x):
    _run("FI_ACT_SIGMOID_BACKWARD", dx, x, dy)


def gelu(y, x, approximate):
    _run("FI_ACT_GELU_TANH" if approximate else "FI_ACT_GELU", y, x)


def gelu_backward(dx, dy, x, approximate):
    _run("FI_ACT_GELU_TANH_BACKWARD" if approximate else "FI_ACT_GELU_BACKWARD", dx, x, dy)


def identity(y, x):
    _run("FI_ACT_IDENTITY", y, x)


def identity_backward(dx, dy, x):
    _run("FI_ACT_IDENTITY_BACKWARD", dx, x, dy)
