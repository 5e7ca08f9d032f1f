"""Weight initializers: gains, fans, and one variance-scaling core with the classic names on it.

Every initializer exists twice: functional (``xavier_normal(shape, ...)`` returns a new array)
and in place (``xavier_normal_(w, ...)`` fills ``w`` and returns it). Random ones take
``seed=`` (an int) or ``rng=`` (a :class:`fastinit.rng.Stream`): there is no global generator,
so the same seed gives the same weights on every backend and thread count (see
:mod:`fastinit.rng` for the exact mapping). :func:`describe` tells what an initializer does
with a shape - fans, gain, std or bound, distribution - without drawing anything; the ``.info``
of a :class:`InitInfo` is also what ``str()`` prints for teaching.

The variance rule (Glorot & Bengio 2010; He et al. 2015; LeCun et al. 1998): to keep the
variance of activations (forward) or gradients (backward) constant from layer to layer, draw
weights with ``Var[W] = scale / fan``, where fan is fan_in, fan_out or their average:

=====================  ======================  ==========  =================================
name                   scale                   mode        distribution
=====================  ======================  ==========  =================================
xavier_uniform/normal  gain**2                 fan_avg     uniform / normal
kaiming_uniform/normal gain(nonlinearity, a)**2 fan_in/out uniform / normal
he_uniform/normal      2                       fan_in      uniform / normal (= kaiming, relu)
lecun_uniform/normal   1                       fan_in      uniform / normal
torch_default          1/3 (kaiming a=sqrt 5)  fan_in      uniform, bound 1/sqrt(fan_in)
=====================  ======================  ==========  =================================

A normal has ``std = sqrt(scale / fan)``; a uniform U(-bound, bound) has
``bound = sqrt(3 * scale / fan)``; a truncated normal (Keras' default for variance_scaling) is
cut at +-2 std and its std is divided by 0.8796 (the std of a standard normal cut at +-2) so the
variance stays ``scale / fan``. Note: Keras' ``he_normal``/``lecun_normal`` use that truncated
normal; here they are plain normals as in the papers and in PyTorch - ask for Keras' with
``variance_scaling(shape, 2.0, "fan_in", "truncated_normal")``.
"""
import dataclasses
import functools
import math
import numbers
import warnings

import numpy as np

from . import _validate
from .rng import as_stream

# ---- gains ----------------------------------------------------------------------------------

_LINEAR_LIKE = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (the factor on the std of the weights).

    ==================  ===========================
    nonlinearity        gain
    ==================  ===========================
    linear, conv*, id   1
    sigmoid             1
    tanh                5/3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + a**2)), a = ``param`` (default 0.01)
    selu                3/4
    ==================  ===========================

    Same table as PyTorch's ``torch.nn.init.calculate_gain``.
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a string, got {type(nonlinearity).__name__}")
    name = nonlinearity.lower()
    if name != "leaky_relu" and param is not None:
        raise ValueError(f"param is only used with nonlinearity='leaky_relu', got param={param!r} "
                         f"for {nonlinearity!r}")
    if name in _LINEAR_LIKE:
        return 1.0
    if name == "tanh":
        return 5.0 / 3.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        a = 0.01 if param is None else param
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a):
            raise ValueError(f"param (the leaky_relu negative slope) must be a finite number, got "
                             f"{param!r}")
        return math.sqrt(2.0 / (1.0 + float(a) ** 2))
    if name == "selu":
        return 3.0 / 4.0
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}; choose one of "
                     f"{sorted(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


# ---- fans -----------------------------------------------------------------------------------

LAYOUTS = ("oihw", "dense", "in_out", "hwio", "iohw", "hwoi")


def compute_fans(shape, layout="oihw", groups=1):
    """(fan_in, fan_out) of a weight: the inputs one output sums over, the outputs one input feeds.

    Layouts (``rf`` = product of the kernel's spatial sizes, 1 for dense):

    ``"oihw"`` (default; also ``"dense"`` for 2-D)
        PyTorch Linear ``(out, in)`` and Conv ``(out, in/groups, *k)``:
        fan_in = (in/groups) * rf = shape[1] * rf, fan_out = (out/groups) * rf.
    ``"in_out"``
        Keras Dense ``(in, out)``: fan_in = shape[0], fan_out = shape[1].
    ``"hwio"``
        Keras/TF Conv ``(*k, in/groups, out)``: fan_in = shape[-2] * rf,
        fan_out = shape[-1] / groups * rf.
    ``"iohw"``
        PyTorch ConvTranspose ``(in, out/groups, *k)``: the transposed conv's output sums over
        in/groups channels, so fan_in = shape[0] / groups * rf, fan_out = shape[1] * rf
        (exact for stride 1; a stride s divides both by about s**2).
    ``"hwoi"``
        Keras Conv2DTranspose ``(*k, out, in)``: fan_in = shape[-1] * rf, fan_out = shape[-2] * rf.

    Where the frameworks differ from these exact counts:

    * PyTorch and Keras compute fan_out = out * rf for grouped and depthwise convolutions, which
      is ``groups`` times too large (a depthwise 3x3 on 64 channels: PyTorch says fan_out 576,
      each input feeds 9 outputs). Pass ``groups`` here to get the exact value; ``groups=1``
      reproduces PyTorch's number.
    * For transposed convolutions PyTorch (``iohw``) and Keras (``hwoi``) read the weight as if
      it were a forward conv, so their fan_in and fan_out are swapped (and off by ``groups``).
    """
    dims = _validate.shape(shape, "shape")
    if len(dims) < 2:
        raise ValueError(f"fans need a weight of at least 2 dimensions, got shape {dims}; "
                         "a bias or 1-D tensor has no fan_in/fan_out")
    if not isinstance(layout, str) or layout.lower() not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    layout = layout.lower()
    if layout == "dense" and len(dims) != 2:
        raise ValueError(f"layout 'dense' is for 2-D (out, in) weights, got shape {dims}; "
                         "use 'oihw' for convolutions")
    if layout in ("oihw", "dense", "iohw"):
        rf = math.prod(dims[2:])
        o, i = dims[0], dims[1]
    else:
        rf = math.prod(dims[:-2])
        if layout == "in_out":
            if len(dims) != 2:
                raise ValueError(f"layout 'in_out' is for 2-D (in, out) weights, got {dims}")
        o, i = dims[-1], dims[-2]
    if layout in ("oihw", "dense", "hwio"):
        _divisible(o, groups, "out channels")
        return i * rf, o // groups * rf
    if layout == "in_out":
        return i, o
    if layout == "iohw":  # (in, out/groups, *k)
        _divisible(dims[0], groups, "in channels")
        return dims[0] // groups * rf, dims[1] * rf
    return dims[-1] * rf, dims[-2] * rf  # hwoi: (*k, out, in)


def _divisible(n, groups, what):
    if n % groups:
        raise ValueError(f"groups={groups} must divide the {what} ({n})")


# ---- what an initializer does ----------------------------------------------------------------

#: What ``str(InitInfo)`` shows after the name, in order: each (field, format) whose field is set.
_SHOWN = (("fan_in", "fan_in={0.fan_in} fan_out={0.fan_out}"), ("mode", "mode={0.mode}"),
          ("gain", "gain={0.gain:.6g}"), ("std", "std={0.std:.6g}"),
          ("low", "bounds=[{0.low:.6g}, {0.high:.6g}]"), ("value", "value={0.value:.6g}"),
          ("groups", "groups={0.groups}"), ("seed", "seed={0.seed}"))


@dataclasses.dataclass(frozen=True)
class InitInfo:
    """What an initializer does with a shape (see :func:`describe`)."""

    name: str
    shape: tuple
    distribution: str                 # normal, uniform, truncated_normal, constant, orthogonal, ...
    fan_in: int = None
    fan_out: int = None
    mode: str = None                  # fan_in, fan_out, fan_avg
    gain: float = None
    scale: float = None               # Var[W] = scale / fan
    mean: float = 0.0
    std: float = None                 # of the (underlying) normal
    low: float = None                 # uniform bounds, or absolute truncation bounds
    high: float = None
    value: float = None               # constant fills
    groups: int = None                # dirac: groups of output channels
    seed: object = None
    formula: str = ""

    def __str__(self):
        parts = [f"{self.name} {self.shape}: {self.distribution}"]
        parts += [fmt.format(self) for field, fmt in _SHOWN if getattr(self, field) is not None]
        text = ", ".join(parts)
        return text + (f"\n  {self.formula}" if self.formula else "")


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
#: std of the standard normal truncated to [-2, 2] (Keras' variance_scaling correction).
TRUNC2_STD = 0.87962566103423978


def _fan(shape, mode, layout, groups):
    fan_in, fan_out = compute_fans(shape, layout, groups)
    if mode == "fan_in":
        fan = fan_in
    elif mode == "fan_out":
        fan = fan_out
    elif mode == "fan_avg":
        fan = (fan_in + fan_out) / 2.0
    else:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if fan == 0:
        fan = 1  # zero-size weight: nothing is drawn; avoid dividing by zero in the record
    return fan_in, fan_out, fan


def _scaled(name, shape, scale, mode, distribution, layout, groups, gain=None, formula=""):
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")
    scale = _validate.non_negative(scale, "scale")
    fan_in, fan_out, fan = _fan(shape, mode, layout, groups)
    var = scale / fan
    common = dict(name=name, shape=shape, fan_in=fan_in, fan_out=fan_out, mode=mode, gain=gain,
                  scale=scale, formula=formula)
    if distribution == "uniform":
        bound = math.sqrt(3.0 * var)
        return InitInfo(distribution="uniform", low=-bound, high=bound, **common)
    if distribution == "normal":
        return InitInfo(distribution="normal", std=math.sqrt(var), **common)
    std = math.sqrt(var) / TRUNC2_STD
    return InitInfo(distribution="truncated_normal", std=std, low=-2.0 * std, high=2.0 * std,
                    **common)


def _info_variance_scaling(shape, scale=1.0, mode="fan_in", distribution="truncated_normal",
                           layout="oihw", groups=1):
    return _scaled("variance_scaling", shape, scale, mode, distribution, layout, groups,
                   formula=f"Var[W] = scale / {mode}")


def _info_xavier(name, shape, gain, layout, groups, distribution):
    gain = _validate.non_negative(gain, "gain")
    f = ("bound = gain * sqrt(6 / (fan_in + fan_out))" if distribution == "uniform"
         else "std = gain * sqrt(2 / (fan_in + fan_out))")
    return _scaled(name, shape, gain * gain, "fan_avg", distribution, layout, groups, gain, f)


def _info_kaiming(name, shape, a, mode, nonlinearity, layout, groups, distribution):
    gain = calculate_gain(nonlinearity, a if nonlinearity == "leaky_relu" else None)
    f = (f"bound = gain * sqrt(3 / {mode})" if distribution == "uniform"
         else f"std = gain / sqrt({mode})")
    return _scaled(name, shape, gain * gain, mode, distribution, layout, groups, gain, f)


# ---- drawing -------------------------------------------------------------------------------

def _target(shape, dtype, out):
    """Validated (shape, dtype) from either a shape and dtype, or an array to fill."""
    if out is not None:
        _validate.writable_array(out, "tensor")
        return out.shape, out.dtype
    return _validate.shape(shape), _validate.float_dtype(dtype)


def _in_range(value, argname, dtype):
    """``value``, or a ValueError when it is beyond the largest finite number of ``dtype``."""
    big = float(np.finfo(dtype).max)
    if abs(value) > big:
        raise ValueError(f"{argname} = {value!r} is beyond the largest {np.dtype(dtype)} "
                         f"({big:.6g}): the weights would be inf")
    return value


def _initializer(recipe):
    """An initializer from its ``recipe``: a function with the initializer's signature and
    docstring that checks the arguments and returns the :class:`InitInfo` of what to draw. The
    recipe gets ``shape`` and ``dtype`` validated (read from ``out`` when one is given) and may
    ignore ``seed``, ``rng`` and ``backend`` (keyword-only, like ``dtype`` and ``out``, in every
    initializer): the initializer draws what the info says with them. ``initializer.plan``
    returns ``(info, seed, rng, dtype, out, backend)`` and draws nothing (:func:`describe`)."""
    def plan(shape, *args, dtype=np.float32, out=None, **kwargs):
        shape, dtype = _target(shape, dtype, out)
        info = recipe(shape, *args, dtype=dtype, out=out, **kwargs)
        return info, kwargs.get("seed"), kwargs.get("rng"), dtype, out, kwargs.get("backend")

    plan.__name__ = plan.__qualname__ = recipe.__name__   # a call's TypeError names the initializer
    @functools.wraps(recipe)
    def initializer(*args, **kwargs):
        return _draw(*plan(*args, **kwargs))

    initializer.plan = plan
    return initializer


def _draw(info, seed, rng, dtype, out, backend):
    """Sample what ``info`` describes into a new array (or ``out``)."""
    shape = info.shape
    random = info.distribution in _DISTRIBUTIONS or info.distribution == "orthogonal"
    stream = as_stream(seed, rng) if random else None
    if math.prod(shape) == 0:
        warnings.warn(f"{info.name}: initializing a zero-element tensor {shape} is a no-op",
                      UserWarning, stacklevel=3)
        return np.empty(shape, dtype) if out is None else out
    kw = dict(dtype=dtype, out=out, backend=backend)
    d = info.distribution
    if d == "uniform":
        return stream.uniform(shape, info.low, info.high, **kw)
    if d == "normal":
        return stream.normal(shape, info.mean, info.std, **kw)
    if d == "truncated_normal":
        if info.std == 0:
            return stream.normal(shape, info.mean, 0.0, **kw)
        a = (info.low - info.mean) / info.std
        b = (info.high - info.mean) / info.std
        return stream.trunc_normal(shape, info.mean, info.std, a, b, **kw)
    if d == "orthogonal":
        return _orthogonal(info, stream, dtype, out, backend)
    arr = np.empty(shape, dtype) if out is None else out
    if d == "constant":
        arr[...] = info.value
    elif d == "eye":
        arr[...] = 0
        np.fill_diagonal(arr, 1)
    elif d == "dirac":
        arr[...] = 0
        groups = info.groups
        out_per = shape[0] // groups
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(groups):
            for d_ in range(min(out_per, shape[1])):
                arr[(g * out_per + d_, d_) + centre] = 1
    return arr


def _orthogonal(info, stream, dtype, out, backend):
    rows = info.shape[0]
    cols = math.prod(info.shape[1:])
    flat = stream.normal((rows, cols), dtype=np.float64, backend=backend)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))  # sign fix: makes q Haar-distributed (Mezzadri 2007)
    if rows < cols:
        q = q.T
    result = (info.gain * q).reshape(info.shape)
    if out is None:
        return result.astype(dtype)
    out[...] = result
    return out


# ---- the initializers (functional; in-place versions are generated below) -------------------

@_initializer
def variance_scaling(shape, scale=1.0, mode="fan_in", distribution="truncated_normal", *,
                     layout="oihw", groups=1, seed=None, rng=None, dtype=np.float32, out=None,
                     backend=None):
    """Var[W] = scale / fan (Keras' VarianceScaling): the core every named scheme uses.

    ``mode``: "fan_in", "fan_out" or "fan_avg"; ``distribution``: "truncated_normal" (cut at
    +-2 std, std corrected by 1/0.8796 so the variance is exact), "normal" or "uniform"
    (bound sqrt(3 scale / fan)).
    """
    return _info_variance_scaling(shape, scale, mode, distribution, layout, groups)


@_initializer
def xavier_uniform(shape, gain=1.0, *, layout="oihw", groups=1, seed=None, rng=None,
                   dtype=np.float32, out=None, backend=None):
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010, eq. 16)."""
    return _info_xavier("xavier_uniform", shape, gain, layout, groups, "uniform")


@_initializer
def xavier_normal(shape, gain=1.0, *, layout="oihw", groups=1, seed=None, rng=None,
                  dtype=np.float32, out=None, backend=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    return _info_xavier("xavier_normal", shape, gain, layout, groups, "normal")


@_initializer
def kaiming_uniform(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, layout="oihw",
                    groups=1, seed=None, rng=None, dtype=np.float32, out=None, backend=None):
    """U(-b, b), b = gain * sqrt(3 / fan_mode), gain = calculate_gain(nonlinearity, a).

    He et al. 2015, "Delving deep into rectifiers". Defaults as PyTorch (leaky_relu, a=0,
    so gain = sqrt 2).
    """
    return _info_kaiming("kaiming_uniform", shape, a, mode, nonlinearity, layout, groups,
                         "uniform")


@_initializer
def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, layout="oihw",
                   groups=1, seed=None, rng=None, dtype=np.float32, out=None, backend=None):
    """N(0, std^2), std = gain / sqrt(fan_mode), gain = calculate_gain(nonlinearity, a).

    He et al. 2015. Defaults as PyTorch (leaky_relu, a=0, so gain = sqrt 2).
    """
    return _info_kaiming("kaiming_normal", shape, a, mode, nonlinearity, layout, groups,
                         "normal")


@_initializer
def he_uniform(shape, *, layout="oihw", groups=1, seed=None, rng=None, dtype=np.float32,
               out=None, backend=None):
    """kaiming_uniform for ReLU: U(-b, b), b = sqrt(6 / fan_in)."""
    return _info_kaiming("he_uniform", shape, 0.0, "fan_in", "relu", layout, groups, "uniform")


@_initializer
def he_normal(shape, *, layout="oihw", groups=1, seed=None, rng=None, dtype=np.float32,
              out=None, backend=None):
    """kaiming_normal for ReLU: N(0, 2 / fan_in) (a plain normal, as in He et al. 2015)."""
    return _info_kaiming("he_normal", shape, 0.0, "fan_in", "relu", layout, groups, "normal")


@_initializer
def lecun_uniform(shape, *, layout="oihw", groups=1, seed=None, rng=None, dtype=np.float32,
                  out=None, backend=None):
    """U(-b, b), b = sqrt(3 / fan_in) (LeCun et al. 1998, "Efficient BackProp")."""
    return _scaled("lecun_uniform", shape, 1.0, "fan_in", "uniform", layout, groups, 1.0,
                   "bound = sqrt(3 / fan_in)")


@_initializer
def lecun_normal(shape, *, layout="oihw", groups=1, seed=None, rng=None, dtype=np.float32,
                 out=None, backend=None):
    """N(0, 1 / fan_in) (LeCun et al. 1998; the init SELU networks assume)."""
    return _scaled("lecun_normal", shape, 1.0, "fan_in", "normal", layout, groups, 1.0,
                   "std = 1 / sqrt(fan_in)")


@_initializer
def torch_default(shape, *, fan_in=None, layout="oihw", groups=1, seed=None, rng=None,
                  dtype=np.float32, out=None, backend=None):
    """PyTorch's default for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    For a weight this is ``kaiming_uniform(a=sqrt(5))`` (gain sqrt(1/3), bound
    gain*sqrt(3/fan_in) = 1/sqrt(fan_in)). For a 1-D bias, pass the weight's ``fan_in``:
    PyTorch draws the bias from the same U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    if fan_in is None:
        if len(shape) < 2:
            raise ValueError(f"torch_default of a {len(shape)}-D shape {shape} (a bias) needs "
                             "fan_in=, the fan_in of its layer's weight")
        fan_in, fan_out = compute_fans(shape, layout, groups)
    else:
        if isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in < 0:
            raise ValueError(f"fan_in must be a non-negative integer, got {fan_in!r}")
        fan_out = None
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return InitInfo(name="torch_default", shape=shape, distribution="uniform", fan_in=fan_in,
                    fan_out=fan_out, mode="fan_in", gain=math.sqrt(1.0 / 3.0), scale=1.0 / 3.0,
                    low=-bound, high=bound, formula="bound = 1 / sqrt(fan_in)")


@_initializer
def uniform(shape, low=0.0, high=1.0, *, seed=None, rng=None, dtype=np.float32, out=None,
            backend=None):
    """U(low, high)."""
    low = _validate.finite_number(low, "low")
    high = _validate.finite_number(high, "high")
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    return InitInfo(name="uniform", shape=shape, distribution="uniform", low=low, high=high)


@_initializer
def normal(shape, mean=0.0, std=1.0, *, seed=None, rng=None, dtype=np.float32, out=None,
           backend=None):
    """N(mean, std^2)."""
    return InitInfo(name="normal", shape=shape, distribution="normal",
                    mean=_validate.finite_number(mean, "mean"),
                    std=_validate.non_negative(std, "std"))


@_initializer
def trunc_normal(shape, mean=0.0, std=1.0, *, a=None, b=None, a_std=None, b_std=None,
                 correct_variance=False, seed=None, rng=None, dtype=np.float32, out=None,
                 backend=None):
    """N(mean, std^2) restricted to an interval, sampled exactly (inverse CDF, no rejection).

    Name the bounds explicitly: ``a``/``b`` are absolute values (PyTorch's ``trunc_normal_``
    meaning), ``a_std``/``b_std`` are in units of std around the mean. With none given, the
    bounds are ``a_std=-2, b_std=2`` - unlike PyTorch, whose default ``a=-2, b=2`` is absolute
    and so cuts nothing at all when std is 0.02. ``correct_variance=True`` (std-unit bounds
    only) scales the std so the truncated distribution has variance ``std**2``.
    """
    mean = _validate.finite_number(mean, "mean")
    std = _validate.non_negative(std, "std")
    absolute = a is not None or b is not None
    in_std = a_std is not None or b_std is not None
    if absolute and in_std:
        raise ValueError("give the bounds either absolute (a=, b=) or in std units "
                         "(a_std=, b_std=), not both")
    if absolute:
        if correct_variance:
            raise ValueError("correct_variance needs bounds in std units (a_std=, b_std=)")
        low = -math.inf if a is None else _validate.number(a, "a")
        high = math.inf if b is None else _validate.number(b, "b")
    else:
        lo_s = -2.0 if a_std is None else _validate.number(a_std, "a_std")
        hi_s = 2.0 if b_std is None else _validate.number(b_std, "b_std")
        if not lo_s < hi_s:
            raise ValueError(f"a_std must be < b_std, got a_std={lo_s}, b_std={hi_s}")
        if correct_variance:
            std = std / truncated_std(lo_s, hi_s)
        low, high = mean + lo_s * std, mean + hi_s * std
    if not low < high:
        raise ValueError(f"the lower bound must be < the upper bound, got a={low}, b={high}")
    if std == 0.0 and not low <= mean <= high:
        raise ValueError(f"with std=0 the mean {mean} must lie in [{low}, {high}]")
    return InitInfo(name="trunc_normal", shape=shape, distribution="truncated_normal",
                    mean=mean, std=std, low=low, high=high)


def truncated_std(a, b):
    """Std of the standard normal restricted to [a, b] (a < b, in std units)."""
    phi = lambda x: 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    big = lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))
    z = big(b) - big(a)
    xa = 0.0 if math.isinf(a) else a * phi(a)
    xb = 0.0 if math.isinf(b) else b * phi(b)
    m = (phi(a) - phi(b)) / z
    return math.sqrt(1.0 + (xa - xb) / z - m * m)


@_initializer
def orthogonal(shape, gain=1.0, *, seed=None, rng=None, dtype=np.float32, out=None,
               backend=None):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014).

    The weight is viewed as (shape[0], prod(shape[1:])); a float64 normal matrix from the
    stream is QR-factorised (NumPy's LAPACK) and its Q sign-corrected by diag(R) so it is
    uniformly (Haar) distributed. The normal draw is reproducible everywhere; the QR is
    LAPACK's, so results agree across machines to rounding, not bit for bit.
    """
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs at least 2 dimensions, got shape {shape}")
    gain = _in_range(_validate.finite_number(gain, "gain"), "gain", dtype)  # entries of Q <= 1
    return InitInfo(name="orthogonal", shape=shape, distribution="orthogonal", gain=gain,
                    formula="W = gain * Q, Q from the QR of a normal matrix")


@_initializer
def constant(shape, value, *, dtype=np.float32, out=None):
    """Every element equal to ``value``."""
    value = _validate.number(value, "value")
    if not math.isinf(value):  # inf given is inf wanted; a finite value must stay finite
        _in_range(value, "value", dtype)
    return InitInfo(name="constant", shape=shape, distribution="constant", value=value)


@_initializer
def zeros(shape, *, dtype=np.float32, out=None):
    """All zeros (note: a layer of equal weights never breaks symmetry when trained)."""
    return constant.plan(shape, 0.0, dtype=dtype, out=out)[0]


@_initializer
def ones(shape, *, dtype=np.float32, out=None):
    """All ones."""
    return constant.plan(shape, 1.0, dtype=dtype, out=out)[0]


@_initializer
def eye(shape, *, dtype=np.float32, out=None):
    """The 2-D identity (ones on the main diagonal of a possibly non-square matrix)."""
    if len(shape) != 2:
        raise ValueError(f"eye needs a 2-D shape, got {shape}")
    return InitInfo(name="eye", shape=shape, distribution="eye")


@_initializer
def dirac(shape, groups=1, *, dtype=np.float32, out=None):
    """Dirac delta kernels: a conv with this weight copies its input channels (3-D to 5-D)."""
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"dirac needs a 3-, 4- or 5-D conv weight shape, got {shape}")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    _divisible(shape[0], groups, "out channels")
    return InitInfo(name="dirac", shape=shape, distribution="dirac", groups=int(groups))


# ---- describe and the in-place family --------------------------------------------------------

def describe(name, shape, **kwargs):
    """What initializer ``name`` does with ``shape``: an :class:`InitInfo`, nothing drawn.

    >>> print(describe("kaiming_normal", (64, 32, 3, 3), nonlinearity="relu"))
    kaiming_normal (64, 32, 3, 3): normal, fan_in=288 fan_out=576, mode=fan_in, gain=1.41421, std=0.0833333
      std = gain / sqrt(fan_in)
    """
    if name not in _FUNCTIONAL:
        raise ValueError(f"unknown initializer {name!r}; choose one of {sorted(_FUNCTIONAL)}")
    seed = kwargs.pop("seed", None)
    kwargs.pop("rng", None)
    kwargs.pop("backend", None)
    info = _FUNCTIONAL[name].plan(shape, **kwargs)[0]
    return dataclasses.replace(info, seed=seed)


_FUNCTIONAL = {f.__name__: f for f in (
    variance_scaling, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal,
    he_uniform, he_normal, lecun_uniform, lecun_normal, torch_default, uniform, normal,
    trunc_normal, orthogonal, constant, zeros, ones, eye, dirac)}


def _make_inplace(functional):
    def inplace(tensor, *args, **kwargs):
        if "out" in kwargs or "dtype" in kwargs:
            raise TypeError(f"{functional.__name__}_ fills `tensor`: it takes no out= or dtype=")
        if not isinstance(tensor, np.ndarray):
            raise TypeError(f"tensor must be a numpy.ndarray to fill in place, got "
                            f"{type(tensor).__name__}")
        return functional(tensor.shape, *args, out=tensor, **kwargs)

    inplace.__name__ = inplace.__qualname__ = functional.__name__ + "_"
    inplace.__doc__ = (f"In-place {functional.__name__}: fills ``tensor`` (float32/float64, "
                       f"writable) and returns it.\n\n{functional.__doc__}")
    return inplace


for _name, _fn in _FUNCTIONAL.items():
    globals()[_name + "_"] = _make_inplace(_fn)
del _name, _fn
