"""``shapes``: a procedural, differentiable generator with known ground-truth factors.

A testbed for direction discovery: z in R^16 (standard normal) goes through a
fixed linear map ``mixing`` (6 x 16) and ``tanh`` into six factors, which a
soft rasteriser draws as one rounded, elongated box on a grey background:

====  ==========  =================  ==============================================
row   factor      range              meaning
====  ==========  =================  ==============================================
0     x           [-0.45, 0.45]      centre, image coordinates (-1 left, +1 right)
1     y           [-0.45, 0.45]      centre, image coordinates (-1 top, +1 bottom)
2     scale       [0.18, 0.48]       half-length of the long side, image half-widths
3     rotation    [-1.0, 1.0]        radians, counter-clockwise on screen
4     hue         [0.0, 300.0]       degrees (HSV hue; red 0, green 120, blue 240)
5     background  [0.1, 0.9]         grey level of the background, 0 black, 1 white
====  ==========  =================  ==============================================

factor_i = low_i + (high_i - low_i) * (tanh(u_i) + 1) / 2 with u = mixing.weight @ z.

The known structure (what a direction-discovery method should recover):

- The true direction of factor i is row i of ``mixing.weight`` (unit-normalised).
- ``scale`` and ``hue`` are entangled: their directions have cosine
  :data:`CORRELATION` (0.6, like age and eyeglasses); every other pair is orthogonal.
- Four latent dims (:attr:`ShapesGenerator.nuisance_dims`) only move a faint stripe
  texture inside the shape (through the separate linear map ``nuisance``); their
  columns of ``mixing.weight`` are exactly zero.
- The 12 non-zero columns of ``mixing.weight`` have equal norm, so SeFa's column
  normalisation keeps the factor subspace exact: the top-6 eigenvectors of
  A^T A span exactly the six true directions.

The weights are built from fixed +-1 patterns plus a seeded column permutation and
column sign flips drawn with a self-contained SplitMix64 generator (no numpy RNG),
so the state dict, hence the model version, is the same on every machine and
numpy/torch release.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from latentedit.workers.models.contract import (
    DISCOVER_REQUIRES,
    GeneratorInfo,
    invert_methods,
    supported_methods,
)

LATENT_DIM = 16
FACTOR_NAMES: tuple[str, ...] = ("x", "y", "scale", "rotation", "hue", "background")
FACTOR_UNITS: tuple[str, ...] = (
    "image coordinates",
    "image coordinates",
    "image half-widths",
    "radians",
    "degrees",
    "grey level",
)
#: (min, max) of each factor, in its natural unit (tanh keeps every factor within).
FACTOR_RANGES: tuple[tuple[float, float], ...] = (
    (-0.45, 0.45),
    (-0.45, 0.45),
    (0.18, 0.48),
    (-1.0, 1.0),
    (0.0, 300.0),
    (0.1, 0.9),
)
#: The entangled pair (rows of mixing.weight) and their cosine.
CORRELATED: tuple[str, str] = ("scale", "hue")
CORRELATION = 0.6
#: Norm of each row of mixing.weight: the std of the pre-activation u_i under z ~ N(0, I).
GAIN = 0.75

ASPECT = 0.55  # short side / long side of the box
_SHARPNESS = 4.0  # exponent of the superellipse |x/a|^4 + |y/b|^4 <= 1 (rounded box)
_EDGE = 0.25  # softness of the edge, in units of the superellipse function
_TEXTURE_AMPLITUDE = 0.08  # relative brightness modulation of the stripes
_TEXTURE_CYCLES = 3.0  # stripes across the long half-side
_SATURATION = 0.8
_VALUE = 0.9

# Four mutually orthogonal +-1 rows of length 12, each balanced on both halves, so that
# they are orthogonal to the indicator rows of columns 0-5 and 6-11 (found by search).
_SIGNS = (
    (1, 1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1),
    (1, 1, -1, 1, -1, -1, 1, -1, -1, 1, 1, -1),
    (1, 1, -1, -1, 1, -1, -1, -1, 1, -1, 1, 1),
    (1, 1, -1, -1, -1, 1, -1, 1, -1, 1, -1, 1),
)
_NUISANCE_WEIGHTS = ((0.9, -0.5, 0.7, 0.4), (0.3, 0.8, -0.4, 0.9))  # (2, 4)

SHAPES_SPEC_KWARGS: dict[str, Any] = {
    "name": "shapes",
    "architecture": "shapes",
    "resolution": 64,
    "latent_dim": LATENT_DIM,
    "description": (
        "procedural testbed, 64x64: one soft box whose x, y, scale, rotation, hue and "
        "background are known functions of z (scale and hue entangled, 4 nuisance dims)"
    ),
    "weights": None,
    "first_projection": "mixing.weight",
    "arch_kwargs": {"latent_dim": LATENT_DIM, "resolution": 64, "seed": 0},
}
"""The ModelSpec fields to register ``shapes`` with (``ModelSpec(**SHAPES_SPEC_KWARGS)``,
plus ``ARCHITECTURES["shapes"] = ShapesGenerator``)."""


class _SplitMix64:
    """Tiny deterministic integer generator (Steele et al. 2014), stable forever."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self._MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def permutation(self, n: int) -> list[int]:
        out = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out


def mixing_matrix(seed: int = 0) -> tuple[Tensor, Tensor, list[int]]:
    """The fixed weights: mixing (6, 16), nuisance (2, 16) float64, and the nuisance dims.

    Rows 0-5 of ``mixing`` follow :data:`FACTOR_NAMES`; rows have norm :data:`GAIN`;
    the scale and hue rows have cosine :data:`CORRELATION`, all other pairs cosine 0;
    the 12 factor columns have equal norm ``GAIN / sqrt(2)``; the 4 nuisance columns are 0.
    """
    rho = CORRELATION
    # Symmetric square root of [[1, rho], [rho, 1]]: rows alpha*e_a + beta*e_b have cosine rho.
    alpha = (math.sqrt(1 + rho) + math.sqrt(1 - rho)) / 2
    beta = (math.sqrt(1 + rho) - math.sqrt(1 - rho)) / 2
    base = torch.zeros(6, 12, dtype=torch.float64)
    half = 1 / math.sqrt(6)
    ia, ib = FACTOR_NAMES.index(CORRELATED[0]), FACTOR_NAMES.index(CORRELATED[1])
    base[ia, :6], base[ia, 6:] = alpha * half, beta * half
    base[ib, :6], base[ib, 6:] = beta * half, alpha * half
    others = [i for i in range(6) if i not in (ia, ib)]
    for row, signs in zip(others, _SIGNS, strict=True):
        base[row] = torch.tensor(signs, dtype=torch.float64) / math.sqrt(12)
    rng = _SplitMix64(0x5EFA + seed)
    flips = torch.tensor([1.0 if rng.below(2) else -1.0 for _ in range(12)], dtype=torch.float64)
    order = rng.permutation(LATENT_DIM)
    factor_dims, nuisance_dims = sorted(order[:12]), sorted(order[12:])
    mixing = torch.zeros(6, LATENT_DIM, dtype=torch.float64)
    mixing[:, factor_dims] = GAIN * base * flips
    nuisance = torch.zeros(2, LATENT_DIM, dtype=torch.float64)
    nuisance[:, nuisance_dims] = torch.tensor(_NUISANCE_WEIGHTS, dtype=torch.float64)
    return mixing, nuisance, nuisance_dims


class ShapesGenerator(nn.Module):
    """z (N, 16) -> image (N, 3, R, R) in [-1, 1]; no training, fixed seeded weights.

    Output is a per-sample function of z (no batch statistics). Submodules ``mixing``
    (Linear 16 -> 6, output: the factor pre-activations u) and ``nuisance``
    (Linear 16 -> 2, output: texture phase and orientation) can be hooked by name.

    Args:
        latent_dim: must be 16 (accepted for the ARCHITECTURES factory contract).
        resolution: output side in pixels.
        seed: picks the column permutation and sign flips of the weights.
    """

    factor_names = FACTOR_NAMES
    factor_low: Tensor  # (6,) buffers, in the state dict
    factor_high: Tensor
    grid_x: Tensor  # (R, R) pixel-centre coordinates in [-1, 1], not in the state dict
    grid_y: Tensor

    def __init__(self, latent_dim: int = LATENT_DIM, resolution: int = 64, seed: int = 0) -> None:
        super().__init__()
        if latent_dim != LATENT_DIM:
            raise ValueError(f"shapes has latent_dim {LATENT_DIM}, got {latent_dim}")
        self.latent_dim = latent_dim
        self.resolution = resolution
        mixing, nuisance, nuisance_dims = mixing_matrix(seed)
        self.nuisance_dims: list[int] = nuisance_dims
        self.mixing = nn.Linear(latent_dim, len(FACTOR_NAMES), bias=False)
        self.nuisance = nn.Linear(latent_dim, 2, bias=False)
        with torch.no_grad():
            self.mixing.weight.copy_(mixing)
            self.nuisance.weight.copy_(nuisance)
        ranges = torch.tensor(FACTOR_RANGES, dtype=torch.float32)
        self.register_buffer("factor_low", ranges[:, 0].clone())
        self.register_buffer("factor_high", ranges[:, 1].clone())
        # Pixel centres in [-1, 1]; derived, so not part of the state dict.
        coords = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
        self.register_buffer(
            "grid_x", coords[None, :].expand(resolution, -1).clone(), persistent=False
        )
        self.register_buffer(
            "grid_y", coords[:, None].expand(-1, resolution).clone(), persistent=False
        )
        self.info = GeneratorInfo(
            resolution=resolution,
            channels=3,
            z_dim=latent_dim,
            sefa_layers=("mixing",),
            architecture="shapes",
        )
        self.info = GeneratorInfo(
            **{
                **self.info.__dict__,
                "invert_methods": invert_methods(self),
                "discover_methods": supported_methods(self, DISCOVER_REQUIRES),
            }
        )

    def sefa_weight(self, layers: Sequence[int] | None = None) -> Tensor:
        """``mixing.weight`` (6, 16): the first (and only) linear map of z."""
        if layers is not None and list(layers) not in ([], [0]):
            raise ValueError(f"shapes has one SeFa layer (0), got {list(layers)}")
        return self.mixing.weight.detach()

    @property
    def factor_ranges(self) -> Tensor:
        """(6, 2) float32: (min, max) of each factor."""
        return torch.stack([self.factor_low, self.factor_high], dim=1)

    def true_directions(self) -> Tensor:
        """(6, 16) float64 unit rows: the latent direction that increases each factor."""
        w = self.mixing.weight.detach().to(torch.float64).cpu()
        return w / w.norm(dim=1, keepdim=True)

    def _check(self, z: Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}")

    def factors(self, z: Tensor) -> Tensor:
        """z (N, 16) -> the exact factors (N, 6) float64 on z's device, in natural units.

        Computed in float64 from the weights, independent of the generator's dtype.
        """
        self._check(z)
        w = self.mixing.weight.detach().to(z.device, torch.float64)
        u = z.detach().to(torch.float64) @ w.T
        low = self.factor_low.to(z.device, torch.float64)
        high = self.factor_high.to(z.device, torch.float64)
        return low + (high - low) * (torch.tanh(u) + 1) / 2

    def forward(self, z: Tensor) -> Tensor:
        self._check(z)
        u = self.mixing(z)  # (N, 6) pre-activations
        low, high = self.factor_low.to(u.dtype), self.factor_high.to(u.dtype)
        f = low + (high - low) * (torch.tanh(u) + 1) / 2
        return self.render(f, self.nuisance(z))

    def render(self, factors: Tensor, nuisance: Tensor) -> Tensor:
        """Soft rasterisation: factors (N, 6), nuisance (N, 2) -> (N, 3, R, R) in [-1, 1]."""
        x, y, scale, rotation, hue, background = (factors[:, i, None, None] for i in range(6))
        dx = self.grid_x.to(factors.dtype) - x  # (N, R, R)
        dy = self.grid_y.to(factors.dtype) - y
        # Rotation counter-clockwise on screen (image y points down).
        cos, sin = torch.cos(rotation), torch.sin(rotation)
        along = cos * dx - sin * dy
        across = sin * dx + cos * dy
        a, b = scale, scale * ASPECT
        level = (along / a) ** _SHARPNESS + (across / b) ** _SHARPNESS  # < 1 inside
        mask = torch.sigmoid((1 - level) / _EDGE)
        phase = math.pi * nuisance[:, 0, None, None]
        angle = nuisance[:, 1, None, None]
        wave = (torch.cos(angle) * along + torch.sin(angle) * across) / a
        texture = 1 + _TEXTURE_AMPLITUDE * torch.sin(2 * math.pi * _TEXTURE_CYCLES * wave + phase)
        colour = hsv_to_rgb(hue[:, 0, 0], _SATURATION, _VALUE)  # (N, 3)
        shape = colour[:, :, None, None] * texture[:, None]
        m = mask[:, None]
        image = background[:, None] * (1 - m) + shape * m
        return image * 2 - 1


def hsv_to_rgb(hue_degrees: Tensor, saturation: float, value: float) -> Tensor:
    """(N,) hue in degrees -> (N, 3) RGB in [0, 1] (piecewise linear, differentiable a.e.)."""
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hue_degrees.dtype, device=hue_degrees.device)
    k = torch.remainder(n[None, :] + hue_degrees[:, None] / 60.0, 6.0)
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0.0, 1.0)
    return value - value * saturation * ramp
