"""Inversion in W and W+ by optimisation (Image2StyleGAN; rosinality's ``projector.py``).

Adam on a w (N, w_dim) or w+ (N, num_ws, w_dim) code starting at the model's w_avg,
with rosinality's learning-rate schedule (linear warm-up over the first 5 %, cosine
ramp-down over the last 25 %); its Gaussian noise on the code (decaying to zero over the
first 75 % of the steps, scaled by the spread of mapped w) is off by default. The loss is the pixel
MSE (no perceptual network ships with the service); rendering uses the model's stored
noise buffers, so there are no noise maps to optimise or regularise. The best rendered
code per image (lowest MSE, noisy iterates included) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from latentedit.workers.methods.inversion.optim import Steps, blocking
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.spaces import spaces_of, synthesize

# Budgets shorter than rosinality's 1000 steps leave the code noise too little time to decay:
# on 3 seeded StyleGAN2s (64-128 px, 4-8 mapping layers), 8 generated images each in W+,
# min PSNR 29.4-29.7 dB at 300 steps with noise 0.05; 30.0-31.1 at 300 without noise,
# 30.0-31.9 at 500 with it, 31.5-33.3 at 500 without (8 real photos: +0.2-0.9 dB mean
# without noise at 300 and 500 steps).
DEFAULT_STEPS = {"w": 500, "w+": 500}
LR = 0.1
NOISE = 0.0  # initial code noise, in units of the spread of w (rosinality: 0.05)
NOISE_RAMP = 0.75
RAMP_UP = 0.05
RAMP_DOWN = 0.25

Progress = Callable[[int, int, float, np.ndarray], bool]  # step, total, loss, psnr -> stop?


@dataclass
class StyleInversion:
    codes: np.ndarray  # (N, w_dim) or (N, num_ws, w_dim) float32
    psnr: np.ndarray  # (N,) dB of the best iterate, images in [-1, 1] (peak-to-peak 2)
    steps: int


def learning_rate(t: float, initial: float = LR) -> float:
    """rosinality's schedule at progress t in [0, 1]."""
    ramp = min(1.0, (1.0 - t) / RAMP_DOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, t / RAMP_UP)


@torch.no_grad()
def w_statistics(model: LoadedModel, samples: int = 4096, seed: int = 0) -> tuple[Tensor, float]:
    """Mean w (w_dim,) and rosinality's scalar spread sqrt(mean ||w - mean||^2) of
    ``samples`` mapped z (seeded; computed once per loaded model)."""
    key = ("w_statistics", samples, seed)
    if key in model.memo:
        cached: tuple[Tensor, float] = model.memo[key]
        return cached
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, model.latent_dim, generator=g)
    w = model.generator.mapping(z.to(model.device, model.dtype)).float()
    mean = model.generator.w_avg.float().to(w.device)
    out = mean, float(((w - mean) ** 2).sum(1).mean().sqrt())
    model.memo[key] = out
    return out


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in [-1, 1] from their per-image MSE."""
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def project_steps(
    model: LoadedModel,
    targets: torch.Tensor,
    space: str,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    start: Tensor | None = None,
    lr: float = LR,
    noise: float = NOISE,
) -> Steps[StyleInversion]:
    """Optimise w or w+ codes so the model renders ``targets`` (N, 3, H, W) in [-1, 1];
    a step generator (yields after every Adam step; :func:`project` runs it through).

    Args:
        space: "w" or "w+".
        steps: Adam steps (>= 1).
        seed: seeds the code noise.
        progress: called every 10 steps and at the end; returning True stops early.
        stop: checked before every step; True stops at once (the callers gave up).
        start: initial codes of ``space`` (N, w_dim) or (N, num_ws, w_dim) (None: w_avg);
            hybrid inversion starts from an encoder's prediction.
        lr / noise: peak learning rate (raw w units) and initial code noise (units of
            the spread of w).
    """
    num_ws = spaces_of(model).num_ws
    mean, spread = w_statistics(model)
    target = targets.to(model.device).float()
    n = len(target)
    if start is None:
        start = mean.to(target.device)[None].repeat(n, 1)
        if space == "w+":
            start = start[:, None].repeat(1, num_ws, 1)
    code = start.detach().to(target.device).float().clone().requires_grad_(True)
    opt = torch.optim.Adam([code], lr=lr)
    gen = torch.Generator(device=target.device).manual_seed(seed)
    best = code.detach().clone()
    best_mse = torch.full((n,), float("inf"), device=target.device)
    done = 0
    for step in range(steps):
        if stop is not None and stop():
            break
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, lr)
        strength = spread * noise * max(0.0, 1 - t / NOISE_RAMP) ** 2
        noisy = code + torch.randn(code.shape, generator=gen, device=code.device) * strength
        image = synthesize(model, noisy, space)
        mse = ((image - target) ** 2).flatten(1).mean(1)
        opt.zero_grad(set_to_none=True)
        mse.sum().backward()
        opt.step()
        done = step + 1
        # every rendered code is a candidate (noisy ones too: their MSE is known), so the
        # progress PSNR and target_psnr mean something from the first step
        better = mse.detach() < best_mse
        best_mse = torch.where(better, mse.detach(), best_mse)
        best = torch.where(better.view(-1, *([1] * (code.ndim - 1))), noisy.detach(), best)
        if (
            progress is not None
            and (step % 10 == 9 or done == steps)
            and progress(done, steps, float(mse.detach().mean()), psnr(best_mse).cpu().numpy())
        ):
            break
        yield
    with torch.no_grad():  # the last code (after the last step) is a candidate too
        final = ((synthesize(model, code.detach(), space) - target) ** 2).flatten(1).mean(1)
        better = final < best_mse
        best = torch.where(better.view(-1, *([1] * (code.ndim - 1))), code.detach(), best)
        best_mse = torch.where(better, final, best_mse)
    return StyleInversion(best.cpu().numpy().astype(np.float32), psnr(best_mse).cpu().numpy(), done)


project = blocking(project_steps)
