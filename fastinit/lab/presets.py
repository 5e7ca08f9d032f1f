"""Named initializations the experiments compare, as specs for ``fastinit.nn`` layers.

Each entry: name -> (what it is, spec). A spec is what ``nn.Linear(init=...)`` takes.
"""
import math

from .. import init as _init


def _scaled_he(factor):
    def spec(shape, rng, dtype):
        fan_in = _init.compute_fans(shape)[0]
        return _init.normal(shape, 0.0, factor * math.sqrt(2.0 / fan_in), rng=rng, dtype=dtype)
    return spec


INITS = {
    "zeros": ("all zeros: every hidden unit stays identical (no symmetry breaking)", "zeros"),
    "too_small": ("N(0, 0.01^2), cs231n's 'small random numbers': the signal vanishes",
                  ("normal", {"std": 0.01})),
    "standard": ("U(-1/sqrt(n), 1/sqrt(n)), n = fan_in: Glorot & Bengio's 'standard' init",
                 "torch_default"),
    "xavier_uniform": ("U(-b, b), b = sqrt(6/(fan_in + fan_out)) (Glorot & Bengio 2010)",
                       "xavier_uniform"),
    "xavier_normal": ("N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)", "xavier_normal"),
    "he_normal": ("N(0, 2/fan_in) (He et al. 2015)", ("kaiming_normal", {"nonlinearity": "relu"})),
    "he_uniform": ("U(-b, b), b = sqrt(6/fan_in) (He et al. 2015)",
                   ("kaiming_uniform", {"nonlinearity": "relu"})),
    "lecun_normal": ("N(0, 1/fan_in) (LeCun et al. 1998)", "lecun_normal"),
    "too_large": ("10x He's std: activations and gradients explode", _scaled_he(10.0)),
    "normal": ("N(0, 1): far too large for any wide layer", ("normal", {"std": 1.0})),
    "torch_default": ("PyTorch's default: kaiming_uniform(a=sqrt 5), U(+-1/sqrt(fan_in))",
                      "torch_default"),
}


def spec(name):
    if name not in INITS:
        raise ValueError(f"unknown initialization {name!r}; choose from {', '.join(INITS)}")
    return INITS[name][1]


def weight_variance(name, fan_in, fan_out):
    """Var[W] of preset ``name`` for a (fan_out, fan_in) weight (for the variance recursion)."""
    if name == "zeros":
        return 0.0
    if name == "too_small":
        return 1e-4
    if name in ("standard", "torch_default"):
        return 1.0 / (3.0 * fan_in)
    if name in ("xavier_uniform", "xavier_normal"):
        return 2.0 / (fan_in + fan_out)
    if name in ("he_normal", "he_uniform"):
        return 2.0 / fan_in
    if name == "lecun_normal":
        return 1.0 / fan_in
    if name == "too_large":
        return 100.0 * 2.0 / fan_in
    if name == "normal":
        return 1.0
    raise ValueError(f"unknown initialization {name!r}")  # pragma: no cover



def bias_variance(name, fan_in):
    """Var[b] of the bias the layers draw with preset ``name`` (torch_default/standard draw
    U(+-1/sqrt(fan_in)) biases, as PyTorch; every other preset starts biases at zero)."""
    return 1.0 / (3.0 * fan_in) if name in ("standard", "torch_default") else 0.0
