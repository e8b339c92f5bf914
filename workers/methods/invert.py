"""GAN inversion by batched latent optimisation (Adam on z, random restarts, latent prior).

Every image of a batch (from any number of requests) is optimised together:
``restarts`` random starts per image run a short warm-up, the best start per
image is kept, and the rest of the step budget refines it with a cosine
learning-rate decay. Loss per image: pixel MSE + prior_weight * (|z|^2/d - 1)^2,
which keeps z near the shell where a standard normal's mass lies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor

Forward = Callable[[Tensor], Tensor]  # z (N, d) -> images (N, 3, H, W) in [-1, 1]


@dataclass(frozen=True)
class OptimizeConfig:
    steps: int = 400
    restarts: int = 8
    lr: float = 0.1
    prior_weight: float = 1e-3
    warmup_fraction: float = 0.125  # share of steps spent on all restarts before selection


@dataclass
class Crop:
    left: int
    top: int
    size: int


def preprocess(pixels: np.ndarray, resolution: int) -> tuple[np.ndarray, Crop]:
    """Centre-crop to a square and resize: uint8 (H, W, 3) -> uint8 (r, r, 3) and the crop used."""
    h, w = pixels.shape[:2]
    size = min(h, w)
    crop = Crop(left=(w - size) // 2, top=(h - size) // 2, size=size)
    img = PILImage.fromarray(pixels).crop((crop.left, crop.top, crop.left + size, crop.top + size))
    if size != resolution:
        img = img.resize((resolution, resolution), PILImage.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8), crop


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 image batches (N, H, W, 3) -> (N,); inf for identical images."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        return np.asarray(10 * np.log10(255.0**2 / mse))


def _adam(
    forward: Forward, z0: Tensor, target: Tensor, prior_weight: Tensor, steps: int, lr: float
) -> tuple[Tensor, Tensor]:
    """Optimise each row of z0 (M, d) towards target (M, 3, H, W); returns z and per-row MSE."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    d = z.shape[1]
    for _ in range(steps):
        mse = (forward(z) - target).square().flatten(1).mean(1)
        prior = (z.square().sum(1) / d - 1).square()
        loss = (mse + prior_weight * prior).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        mse = (forward(z) - target).square().flatten(1).mean(1)
    return z.detach(), mse


def optimize(
    forward: Forward, targets: Tensor, z0: Tensor, prior_weight: Tensor, cfg: OptimizeConfig
) -> Tensor:
    """Invert a batch of images.

    Args:
        forward: the generator, z (M, d) -> (M, 3, H, W) in [-1, 1].
        targets: (B, 3, H, W) in [-1, 1].
        z0: (B, R, d) starting codes, R restarts per image.
        prior_weight: (B,) weight of the latent prior per image.
        cfg: step budget and learning rate (``cfg.restarts`` is ignored; R comes from z0).
    Returns:
        latents (B, d) float32.
    Cost: about R * warmup + (steps - warmup) generator forward/backward passes per image.
    """
    b, r, d = z0.shape
    warm = max(1, int(cfg.steps * cfg.warmup_fraction)) if r > 1 else 0
    z = z0.reshape(b * r, d)
    if warm:
        rep = prior_weight.repeat_interleave(r)
        z, mse = _adam(forward, z, targets.repeat_interleave(r, 0), rep, warm, cfg.lr)
        best = mse.view(b, r).argmin(1)
        z = z.view(b, r, d)[torch.arange(b), best]
    z, _ = _adam(forward, z, targets, prior_weight, cfg.steps - warm, cfg.lr)
    return z.float()
