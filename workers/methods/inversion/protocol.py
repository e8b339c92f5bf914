"""What inversion needs of a generator, and helpers that render through it.

Every generator is a callable ``z (N, d) -> images (N, C, H, W)`` in [-1, 1]
(:class:`Renderer`). The extended method also needs the split at the first feature
map (:class:`SplitGenerator`); tuning needs an ``nn.Module`` with tunable layers.
:func:`supported_methods` derives from these what a model can serve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

# (step, loss, per-image best PSNR in dB (B,)) -> False to cancel all, a (B,) bool array to
# stop the images marked False (the others go on), True/None to go on.
Progress = Callable[[int, float, np.ndarray], bool | np.ndarray | None]
# images (N, 3, H, W) in [-1, 1] -> feature maps, for a feature (perceptual) loss
Features = Callable[[Tensor], list[Tensor]]

METHODS = ("encoder", "optimize", "hybrid", "extended", "tune")
INVERT_METHODS = ("optimize", "encoder", "hybrid", "extended", "tune", "auto")


@runtime_checkable
class Renderer(Protocol):
    """Any generator: z (N, d) -> (N, C, H, W) in [-1, 1]."""

    def __call__(self, z: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class SplitGenerator(Renderer, Protocol):
    """A generator split at its first feature map (DCGANGenerator has this).

    head: z (N, d) -> h (N, C, h, w); tail: h -> image (N, 3, H, W); tail(head(z)) = G(z).
    """

    def head(self, z: Tensor) -> Tensor: ...

    def tail(self, h: Tensor) -> Tensor: ...


@runtime_checkable
class DeltaTunable(Protocol):
    """A layer whose ``weight`` pivotal tuning may change per image though it is not a plain
    conv / linear layer (StyleGAN2's modulated convolution): it says how its output moves.

    delta_output(*inputs, output, delta) -> the change of the output; delta is per row,
    (M, *weight.shape), or low-rank factors (u (M, a, r), v (M, r, rest)) over the weight
    as (a, rest) (a leading singleton dimension dropped): delta[m] = u[m] @ v[m].
    """

    weight: nn.Parameter

    def delta_output(self, *args: Tensor) -> Tensor: ...


def is_split(generator: object) -> bool:
    """Whether ``generator`` has a head/tail split (the extended residual lives between)."""
    return callable(getattr(generator, "head", None)) and callable(getattr(generator, "tail", None))


def supported_methods(generator: object) -> tuple[str, ...]:
    """The invert methods ``generator`` supports, in :data:`INVERT_METHODS` order.

    optimize / encoder / hybrid / auto: any differentiable generator (encoder and hybrid
    answer UNAVAILABLE until an encoder is trained); extended: a head/tail split; tune: an
    ``nn.Module`` with at least one tunable conv / linear / BatchNorm layer.
    """
    from latentedit.workers.methods.inversion.tuning import tunable_parameters

    out = []
    for method in INVERT_METHODS:
        if method == "extended" and not is_split(generator):
            continue
        if method == "tune" and not (
            isinstance(generator, nn.Module) and tunable_parameters(generator)
        ):
            continue
        out.append(method)
    return tuple(out)


def _dtype(generator: Renderer) -> torch.dtype:
    return next(iter(generator.parameters())).dtype


def generate(generator: Renderer, z: Tensor, residual: Tensor | None = None) -> Tensor:
    """z (N, d) [+ residual (N, C, h, w)] -> (N, 3, H, W) float32 in [-1, 1]; differentiable."""
    dt = _dtype(generator)
    if residual is None:
        return generator(z.to(dt)).float()
    if not isinstance(generator, SplitGenerator):
        raise TypeError("a residual needs a generator with head/tail")
    return generator.tail(generator.head(z.to(dt)) + residual.to(dt)).float()


def feature_scale(generator: SplitGenerator, latent_dim: int, samples: int = 256) -> Tensor:
    """Per-channel std (1, C, 1, 1) of the first feature map over z ~ N(0, I) (fixed seed).

    The extended residual is parametrised in these units, so one learning rate
    and one regulariser weight fit any generator.
    """
    z = torch.randn(samples, latent_dim, generator=torch.Generator().manual_seed(0))
    p = next(iter(generator.parameters()))
    with torch.no_grad():
        h = generator.head(z.to(p.device, p.dtype)).float()
    return h.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)


def as_rows(value: float | Tensor, b: int, device: torch.device) -> Tensor:
    """A scalar or (B,) setting -> (B,) float32 on ``device``."""
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    return t.expand(b).clone() if t.ndim == 0 else t.to(device).float().clone()


def prior_loss(z: Tensor) -> Tensor:
    """(|z|^2 / d - 1)^2 per row: keeps z on the shell where N(0, I) has its mass. -> (N,)."""
    return (z.square().sum(1) / z.shape[1] - 1).square()


def locality_codes(z: Tensor, distance: float, generator: torch.Generator | None = None) -> Tensor:
    """Codes at ``distance`` from each pivot in a random direction: (N, d) -> (N, d)."""
    n = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
    return z + distance * n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
