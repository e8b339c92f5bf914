"""A per-model encoder: image -> latent code in one forward pass (LIA / pSp style, small).

The encoder is trained on pairs the generator makes itself (z ~ N(0, I),
x = G(z)), with loss ``latent_weight * |E(x) - z|^2 + pixel_weight * |G(E(x)) - x|^2
+ shell_weight * (|E(x)| - |z|)^2 / d`` (+ an optional feature loss on the encoder's own
features). The latent and shell terms keep predictions where the generator's codes live
(e4e's point: on-distribution codes edit like generated ones; a regressor left alone
shrinks its codes towards the origin, where the faces are average and edits weaker). It has
no batch statistics (GroupNorm), so an image's code never depends on its batch mates.

Files are safetensors (fp16 weights, config + training meta as JSON metadata; no pickle).
A trained one lives under ``$LATENTEDIT_HOME/models/<model>/<version>/encoder.safetensors``
and overrides the one shipped in this package (``weights/<model>.encoder.safetensors``,
SHA-256 pinned in the model registry): :func:`effective_encoder_path` picks. A style model's
W encoder (:mod:`.style_encoding`, codes whitened w) is ``encoder-w.safetensors`` beside it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from latentedit.errors import Unavailable

log = logging.getLogger(__name__)

Forward = Callable[[Tensor], Tensor]  # z (N, d) -> images (N, 3, H, W) in [-1, 1]
Sample = Callable[[int, torch.Generator], Tensor]  # (n, CPU generator) -> codes (n, d) on CPU
# (step, loss, per-image PSNR in dB) -> False to stop
Progress = Callable[[int, float, np.ndarray], bool]

ENCODER_FILE = "encoder.safetensors"
#: the file of each space's encoder (a style model's W encoder also starts w+ inversions)
ENCODER_FILES = {"z": ENCODER_FILE, "w": "encoder-w.safetensors"}
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"  # package data


def models_home() -> Path:
    """``$LATENTEDIT_HOME`` (default ``~/.cache/latentedit``): per-model artefacts live here."""
    return Path(os.environ.get("LATENTEDIT_HOME") or Path.home() / ".cache" / "latentedit")


def encoder_path(model_name: str, model_version: str, space: str = "z") -> Path:
    """The encoder file of one model version and space ("z" or "w"):
    ``<home>/models/<name>/<version>/encoder.safetensors`` (``encoder-w.safetensors``)."""
    for part in (model_name, model_version):
        if not part or "/" in part or "\\" in part or part in {".", ".."}:
            raise ValueError(f"bad path component {part!r}")
    return models_home() / "models" / model_name / model_version / ENCODER_FILES[space]


def shipped_encoder_path(model_name: str) -> Path:
    """Where this package ships a model's encoder (the file may not exist)."""
    return SHIPPED_DIR / f"{model_name}.encoder.safetensors"


@functools.lru_cache(maxsize=16)
def _shipped_digest(path: Path, mtime_ns: int) -> str:
    """SHA-256 of a file, hashed once per (path, modification time)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def effective_encoder_path(model_name: str, model_version: str, space: str = "z") -> Path | None:
    """The encoder file a model version uses in ``space`` ("z" or "w"), or None if none.

    A trained file (:func:`encoder_path`, written by ``latentedit train-encoder``) wins;
    else (z only) the shipped one, if the registry pins its SHA-256 and it was trained against this
    generator version (a shipped file with the wrong digest raises Unavailable, as corrupt
    generator weights do).
    """
    trained = encoder_path(model_name, model_version, space)
    if trained.is_file() or space != "z":
        return trained if trained.is_file() else None
    from latentedit.workers.models.registry import MODELS

    spec = MODELS.get(model_name)
    shipped = shipped_encoder_path(model_name)
    if spec is None or not spec.encoder_sha256 or not shipped.is_file():
        return None
    digest = _shipped_digest(shipped, shipped.stat().st_mtime_ns)
    if digest != spec.encoder_sha256:
        raise Unavailable(
            f"{shipped}: SHA-256 {digest} does not match the registry's {spec.encoder_sha256}; "
            f"reinstall latentedit or train one with `latentedit train-encoder {model_name}`"
        )
    trained_for = str(encoder_meta(shipped).get("model_version", ""))  # header only
    if trained_for != model_version:
        log.warning(
            "shipped encoder %s was trained for %s version %s, not %s: not used",
            shipped, model_name, trained_for, model_version,
        )  # fmt: skip
        return None
    return shipped


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
    shell_weight: float = 3.0,
    pixel_start: float = 0.2,
    width: int = 32,
    val_size: int = 64,
    progress_every: int = 25,
    reuse: int = 2,
    pixel_batch: int | None = None,
    pool_size: int = 2048,
    encoder: Encoder | None = None,
    sample: Sample | None = None,
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
        shell_weight: weight of (|E(x)| - |z|)^2 / d, which keeps predicted codes on the
            prior's shell (|z| ~ sqrt(d)) instead of shrunk towards the origin (editability);
            on with the pixel term (from the start it traps an untrained encoder in a
            constant code of the right norm).
        pixel_batch: the pixel and feature terms see only this many images of each batch
            (None: all); G's forward + backward costs ~5x the encoder's, the latent term
            sees the whole batch.
        reuse: each step draws ``batch_size // reuse`` fresh pairs and the rest from a pool
            of ``pool_size`` earlier ones (saves generator passes; 1 = all fresh).
        encoder: continue training this one instead of a fresh one.
        sample: draws the training codes (default z ~ N(0, I)); a W encoder's are mapped,
            whitened w (:mod:`.style_encoding`).
    Returns:
        the encoder (eval mode, on CPU float32 unless the generator's device) and a report.
    """
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    if sample is None:

        def sample(n: int, g: torch.Generator) -> Tensor:
            return torch.randn(n, latent_dim, generator=g)

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
        z_val = sample(val_size, gen).to(device)
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
        z = sample(fresh, gen).to(device)
        with torch.no_grad():
            x = generator_forward(z)
        if reuse > 1:
            z, x = pool.exchange(z, x, batch_size, gen)
        z_hat, feats = enc.features(x.contiguous(memory_format=torch.channels_last))
        late = frac >= pixel_start and (pixel_weight > 0 or feature_weight > 0)
        loss = (late_latent_weight if late else latent_weight) * (z_hat - z).square().mean()
        if late and shell_weight > 0:
            shell = (z_hat.norm(dim=1) - z.norm(dim=1)).square().mean() / latent_dim
            loss = loss + shell_weight * shell
        if late:
            k = min(pixel_batch or len(z), len(z))  # G's backward costs ~5x E's: a subset
            x_hat = generator_forward(z_hat[:k])
            loss = loss + pixel_weight * (x_hat - x[:k]).square().mean()
            if feature_weight > 0:
                _, feats_hat = enc.features(x_hat)
                feats_det = [f[:k].detach() for f in feats]
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
    encoder: Encoder,
    path: Path,
    meta: dict[str, float | int | str] | None = None,
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write a safetensors file atomically: weights in ``dtype`` (fp16: half the size, no
    measurable PSNR change), config and ``meta`` as JSON in the header metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().to(dtype).contiguous() for k, v in encoder.state_dict().items()}
    metadata = {"config": json.dumps(asdict(encoder.cfg)), "meta": json.dumps(dict(meta or {}))}
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_encoder(path: Path, device: torch.device | str = "cpu") -> Encoder:
    """Load an encoder written by :func:`save_encoder` (float32 for compute), eval mode."""
    cfg = EncoderConfig(**json.loads(_metadata(path)["config"]))
    enc = Encoder(cfg)
    state = load_file(str(path))
    enc.load_state_dict({k: v.float() for k, v in state.items()})
    return enc.to(device).eval().requires_grad_(False)


def encoder_meta(path: Path) -> dict[str, float | int | str]:
    """The ``meta`` dict saved with an encoder (training steps, seconds, validation PSNR)."""
    meta: dict[str, float | int | str] = json.loads(_metadata(path).get("meta", "{}"))
    return meta
