"""Named initializations the experiments compare, as specs for ``fastinit.nn`` layers.

Each entry: name -> (what it is, spec). A spec is what ``nn.Linear(init=...)`` takes.
"""
import math

import numpy as np

from .. import init as _init


def _scaled_he(factor):
    def spec(shape, rng, dtype):
        fan_in = _init.compute_fans(shape)[0]
        return _init.normal(shape, 0.0, factor * math.sqrt(2.0 / fan_in), rng=rng, dtype=dtype)
    return spec


def _scaled_identity(factor):
    """factor x the identity: eye for a dense weight (a non-square one keeps the first units),
    dirac for a convolution's; no randomness, so a deep linear net of them is exactly
    factor^L times its input."""
    def spec(shape, rng, dtype):
        w = _init.eye(shape, dtype=dtype) if len(shape) == 2 else _init.dirac(shape, dtype=dtype)
        return w * np.asarray(factor, dtype)
    return spec


#: presets whose weights are factor x the identity: name -> factor
IDENTITY = {"identity_0.5": 0.5, "identity_1.5": 1.5}

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
    "uniform": ("U(-1, 1): weights of order one, far too large for wide layers",
                ("uniform", {"low": -1.0, "high": 1.0})),
    "constant": ("every weight 0.05, biases 0: like zeros, the units of a layer stay identical",
                 ("constant", {"value": 0.05})),
    "identity_0.5": ("0.5 x the identity: a deep linear net shrinks its input by 0.5 a layer",
                     _scaled_identity(0.5)),
    "identity_1.5": ("1.5 x the identity: a deep linear net grows its input by 1.5 a layer",
                     _scaled_identity(1.5)),
}


def spec(name):
    if name not in INITS:
        raise ValueError(f"unknown initialization {name!r}; choose from {', '.join(INITS)}")
    return INITS[name][1]


def weight_variance(name, fan_in, fan_out):
    """Var[W] of preset ``name`` for a (fan_out, fan_in) weight (for the variance recursion);
    None for the presets the recursion does not describe: a constant (its weights have a mean)
    and the scaled identities (not random: :data:`IDENTITY` gives their exact factor)."""
    if name in ("constant",) or name in IDENTITY:
        return None
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
    if name == "uniform":
        return 1.0 / 3.0
    raise ValueError(f"unknown initialization {name!r}")  # pragma: no cover


def bias_variance(name, fan_in):
    """Var[b] of the bias the layers draw with preset ``name`` (torch_default/standard draw
    U(+-1/sqrt(fan_in)) biases, as PyTorch; every other preset starts biases at zero)."""
    return 1.0 / (3.0 * fan_in) if name in ("standard", "torch_default") else 0.0
