"""A per-model encoder: image -> latent code in one forward pass (LIA / pSp style, small).

The encoder is trained on pairs the generator makes itself (z ~ N(0, I),
x = G(z)), with loss ``latent_weight * |E(x) - z|^2 + pixel_weight * |G(E(x)) - x|^2``
(+ an optional feature loss on the encoder's own features). It has no batch
statistics (GroupNorm), so an image's code never depends on its batch mates.
Saved as a plain dict (state dict + config) loadable with ``weights_only=True``,
under ``$LATENTEDIT_HOME/models/<model>/<version>/encoder.pt``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

Forward = Callable[[Tensor], Tensor]  # z (N, d) -> images (N, 3, H, W) in [-1, 1]
# (step, loss, per-image PSNR in dB) -> False to stop
Progress = Callable[[int, float, np.ndarray], bool]

ENCODER_FILE = "encoder.pt"


def models_home() -> Path:
    """``$LATENTEDIT_HOME`` (default ``~/.cache/latentedit``): per-model artefacts live here."""
    return Path(os.environ.get("LATENTEDIT_HOME") or Path.home() / ".cache" / "latentedit")


def encoder_path(model_name: str, model_version: str) -> Path:
    """The encoder file of one model version: ``<home>/models/<name>/<version>/encoder.pt``."""
    for part in (model_name, model_version):
        if not part or "/" in part or "\\" in part or part in {".", ".."}:
            raise ValueError(f"bad path component {part!r}")
    return models_home() / "models" / model_name / model_version / ENCODER_FILE


@dataclass(frozen=True)
class EncoderConfig:
    latent_dim: int = 100
    resolution: int = 64
    channels: int = 3
    width: int = 32  # channels of the first stage; doubled at each downsampling


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class Encoder(nn.Module):
    """Image (N, channels, r, r) in [-1, 1] -> z (N, latent_dim).

    Stages of [4x4 stride-2 conv, GroupNorm, LeakyReLU, 3x3 conv, GroupNorm, LeakyReLU]
    halve the resolution down to 4x4; a linear layer maps the flattened 4x4 map to z.
    """

    def __init__(self, cfg: EncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or EncoderConfig()
        if cfg.resolution < 8 or cfg.resolution & (cfg.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {cfg.resolution}")
        stages: list[nn.Module] = []
        c_in, c, r = cfg.channels, cfg.width, cfg.resolution
        while r > 4:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 4, 2, 1),
                    nn.GroupNorm(_groups(c), c),
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(c, c, 3, 1, 1),
                    nn.GroupNorm(_groups(c), c),
                    nn.LeakyReLU(0.2),
                )
            )
            c_in, c, r = c, min(c * 2, 512), r // 2
        self.stages = nn.ModuleList(stages)
        self.out = nn.Linear(c_in * 16, cfg.latent_dim)

    def features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x (N, C, r, r) in [-1, 1] -> (z (N, d), feature maps of every stage)."""
        c, r = self.cfg.channels, self.cfg.resolution
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, r, r):
            raise ValueError(f"x must be (N, {c}, {r}, {r}), got {tuple(x.shape)}")
        feats = []
        h = x
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        z: Tensor = self.out(h.flatten(1))
        return z, feats

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[0]


def feature_distance(feats_a: list[Tensor], feats_b: list[Tensor]) -> Tensor:
    """Mean squared distance of matching feature maps, per image: -> (N,)."""
    total = feats_a[0].new_zeros(feats_a[0].shape[0])
    for a, b in zip(feats_a, feats_b, strict=True):
        total = total + (a - b).square().flatten(1).mean(1)
    return total / len(feats_a)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB of images in [-1, 1] (N, C, H, W), computed on [0, 1]: -> (N,)."""
    mse = ((a.detach().float() - b.detach().float()) / 2).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


@dataclass
class TrainReport:
    steps: int
    seconds: float
    samples: int  # pairs trained on, repeats from the pool included
    generated: int  # pairs the generator made
    val_psnr: float  # mean PSNR of G(E(G(z))) vs G(z) on held-out z, dB
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, s, psnr)


def train_encoder(
    generator_forward: Forward,
    latent_dim: int,
    resolution: int,
    steps: int = 2000,
    batch_size: int = 16,
    lr: float = 4e-4,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    max_seconds: float | None = None,
    latent_weight: float = 1.0,
    late_latent_weight: float = 1.0,
    pixel_weight: float = 10.0,
    feature_weight: float = 0.0,
    pixel_start: float = 0.2,
    width: int = 32,
    val_size: int = 64,
    progress_every: int = 25,
    reuse: int = 2,
    pool_size: int = 2048,
    encoder: Encoder | None = None,
) -> tuple[Encoder, TrainReport]:
    """Train an encoder on (z, G(z)) pairs the generator makes itself.

    Args:
        generator_forward: frozen G, z (N, d) -> (N, 3, r, r) in [-1, 1].
        steps: optimiser steps at most; ``max_seconds`` (wall clock) may end training sooner.
        batch_size: pairs per step (see ``reuse``).
        lr: peak Adam learning rate; cosine decay over the run (by step or time, whichever
            is further along).
        progress: called every ``progress_every`` steps with (step, loss, per-image PSNR of a
            held-out validation batch); returning False stops training.
        pixel_weight: weight of |G(E(x)) - x|^2, switched on after ``pixel_start`` of the run
            (the early, cheap phase regresses z only, with ``latent_weight``; after it the
            latent term weighs ``late_latent_weight``).
        feature_weight: weight of the distance of the encoder's features of G(E(x)) and x.
        reuse: each step draws ``batch_size // reuse`` fresh pairs and the rest from a pool
            of ``pool_size`` earlier ones (saves generator passes; 1 = all fresh).
        encoder: continue training this one instead of a fresh one.
    Returns:
        the encoder (eval mode, on CPU float32 unless the generator's device) and a report.
    """
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    if encoder is None:
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left alone
            torch.manual_seed(seed)
            encoder = Encoder(
                EncoderConfig(latent_dim=latent_dim, resolution=resolution, width=width)
            )
    # channels-last convolutions are ~20 % faster on CPU (oneDNN); the saved weights are the same
    # (Module.to's stubs lack memory_format, which it takes at run time)
    enc: Encoder = encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    probe = generator_forward(torch.zeros(1, latent_dim))
    device = probe.device
    enc.to(device).train()
    opt = torch.optim.Adam(enc.parameters(), lr=lr, betas=(0.9, 0.99))
    with torch.no_grad():
        z_val = torch.randn(val_size, latent_dim, generator=gen).to(device)
        x_val = generator_forward(z_val)
    report = TrainReport(steps=0, seconds=0.0, samples=0, generated=0, val_psnr=float("nan"))

    def validate() -> np.ndarray:
        was_training = enc.training
        enc.eval()
        with torch.no_grad():
            p = psnr(generator_forward(enc(x_val)), x_val).cpu().numpy()
        enc.train(was_training)
        return np.asarray(p)

    pool = _Pool(pool_size)
    step = 0
    loss_value = float("nan")
    while step < steps:
        elapsed = time.perf_counter() - start
        frac = step / steps
        if max_seconds is not None:
            if elapsed >= max_seconds:
                break
            frac = max(frac, elapsed / max_seconds)
        for group in opt.param_groups:
            group["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        fresh = max(1, batch_size // max(reuse, 1)) if step else batch_size
        z = torch.randn(fresh, latent_dim, generator=gen).to(device)
        with torch.no_grad():
            x = generator_forward(z)
        if reuse > 1:
            z, x = pool.exchange(z, x, batch_size, gen)
        z_hat, feats = enc.features(x.contiguous(memory_format=torch.channels_last))
        late = frac >= pixel_start and (pixel_weight > 0 or feature_weight > 0)
        loss = (late_latent_weight if late else latent_weight) * (z_hat - z).square().mean()
        if late:
            x_hat = generator_forward(z_hat)
            loss = loss + pixel_weight * (x_hat - x).square().mean()
            if feature_weight > 0:
                _, feats_hat = enc.features(x_hat)
                feats_det = [f.detach() for f in feats]
                loss = loss + feature_weight * feature_distance(feats_hat, feats_det).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_value = float(loss.detach())
        report.samples += len(z)
        report.generated += fresh
        if step % progress_every == 0 or step == steps:
            p = validate()
            report.history.append((step, time.perf_counter() - start, float(p.mean())))
            log.info(
                "encoder step %d loss %.4f val PSNR %.2f dB (%.0fs)",
                step,
                loss_value,
                p.mean(),
                time.perf_counter() - start,
            )
            if progress is not None and progress(step, loss_value, p) is False:
                break
    enc.eval()
    final = validate()
    report.steps = step
    report.seconds = time.perf_counter() - start
    report.val_psnr = float(final.mean())
    return enc, report


class _Pool:
    """A ring buffer of (z, x) training pairs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.z: Tensor | None = None
        self.x: Tensor | None = None
        self.n = 0
        self.head = 0

    def exchange(
        self, z: Tensor, x: Tensor, batch: int, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Add fresh pairs; return them plus pool samples, ``batch`` in all."""
        if self.z is None or self.x is None:
            self.z = z.new_empty(self.size, *z.shape[1:])
            self.x = x.new_empty(self.size, *x.shape[1:])
        extra = min(batch - len(z), self.n)
        if extra > 0:
            pick = torch.randint(self.n, (extra,), generator=gen).to(z.device)
            z_out, x_out = torch.cat([z, self.z[pick]]), torch.cat([x, self.x[pick]])
        else:
            z_out, x_out = z, x
        for i in range(len(z)):
            self.z[self.head], self.x[self.head] = z[i], x[i]
            self.head = (self.head + 1) % self.size
            self.n = min(self.n + 1, self.size)
        return z_out, x_out


def save_encoder(
    encoder: Encoder, path: Path, meta: dict[str, float | int | str] | None = None
) -> None:
    """Write ``{"config": ..., "state_dict": ..., "meta": ...}`` atomically (torch.save)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": asdict(encoder.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "meta": dict(meta or {}),
    }
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_encoder(path: Path, device: torch.device | str = "cpu") -> Encoder:
    """Load an encoder written by :func:`save_encoder` (``weights_only=True``), eval mode."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    enc = Encoder(EncoderConfig(**payload["config"]))
    enc.load_state_dict(payload["state_dict"])
    return enc.to(device).eval().requires_grad_(False)


def encoder_meta(path: Path) -> dict[str, float | int | str]:
    """The ``meta`` dict saved with an encoder (training steps, seconds, validation PSNR)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return dict(payload.get("meta", {}))
