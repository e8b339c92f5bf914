"""GAN inversion beyond plain latent optimisation: encoder, hybrid, extended, tune, auto.

All functions invert a batch of B images together (images from different
requests can be fused) and take per-image settings as (B,) tensors. Every
optimiser loop runs a row-wise Adam: each image has its own step count,
learning-rate schedule and optional target PSNR (an image that reaches its
target stops costing compute), and the best iterate per image (by PSNR) is
what is returned. ``progress(step, loss, psnr)`` is called every few steps
with the per-image best PSNR (B,); returning False cancels the batch, a (B,)
bool array stops the images marked False (one client of a fused batch
cancelling), and the function returns what it has.

Methods (see /work/shared/METHODS.md, "GAN inversion"):

- ``encode``: one encoder pass, z = E(x); ``encode_feedback`` adds gradient-free feedback
  passes z <- z + eta (E(x) - E(G(z))) (ReStyle's iterative refinement, with the encoder
  itself as the residual predictor), keeping each image's best iterate.
- ``optimize``: Adam on z from random restarts (invert.py's algorithm, with progress).
- ``hybrid``: z = E(x), then Adam on pixel MSE + lambda_dom * |z - E(G(z))|^2 / d + prior
  (In-Domain GAN inversion's domain regulariser keeps the code editable).
- ``extended``: z plus a residual r on the generator's first feature map,
  G.tail(G.head(z) + r); r is L2-regularised, edits move z and keep r.
- ``tune``: pivotal tuning; the pivot (z, r) is fixed and a per-image low-rank
  delta of the generator's weights is fitted (a few KB to a few hundred KB).
- ``auto``: encoder -> hybrid -> extended -> tune until a target PSNR or a step budget.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentedit.workers.methods.encoder import Encoder, feature_distance
from latentedit.workers.methods.preprocess import psnr_uint8

# (step, loss, per-image best PSNR in dB (B,)) -> False to cancel all, a (B,) bool array to
# stop the images marked False (the others go on), True/None to go on.
Progress = Callable[[int, float, np.ndarray], bool | np.ndarray | None]
# images (N, 3, H, W) in [-1, 1] -> feature maps, for a feature (perceptual) loss
Features = Callable[[Tensor], list[Tensor]]

METHODS = ("encoder", "optimize", "hybrid", "extended", "tune")


class SplitGenerator(Protocol):
    """A generator split at its first feature map (DCGANGenerator has this)."""

    def __call__(self, z: Tensor) -> Tensor: ...

    def head(self, z: Tensor) -> Tensor: ...

    def tail(self, h: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


# ---------------------------------------------------------------------------- metrics


def _gaussian_window(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM (Wang et al. 2004) of images in [0, 1], (N, C, H, W) -> (N,).

    Gaussian window (``window`` taps, ``sigma``), 'valid' filtering, each channel
    separately, averaged over channels and positions; C1 = 0.01^2, C2 = 0.03^2.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"need two (N, C, H, W) of one shape, got {a.shape} and {b.shape}")
    a, b = a.float(), b.float()
    c = a.shape[1]
    g = _gaussian_window(window, sigma).to(a.device)
    w = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.flatten(1).mean(1)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB of images in [-1, 1], (N, C, H, W), measured on [0, 1]: -> (N,)."""
    mse = ((a.detach().float() - b.detach().float()) / 2).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


def load_perceptual(path: str, device: torch.device | str = "cpu") -> Features:
    """An operator-supplied feature network (perceptual loss) as a :data:`Features` callable.

    A ``.pt2`` file is read with ``torch.export.load`` (export it with a dynamic batch
    dimension), anything else with ``torch.jit.load`` (TorchScript; deprecated in torch
    2.13). The module maps images (N, 3, H, W) in [-1, 1] to one feature tensor or a
    list/tuple of them (VGG activations, say). Nothing is downloaded; the file is code as
    well as weights, so load only files the operator trusts.
    """
    module: Callable[[Tensor], Any]
    if str(path).endswith(".pt2"):
        module = torch.export.load(str(path)).module().to(device)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
            )
            module = torch.jit.load(str(path), map_location=device).eval()

    def features(images: Tensor) -> list[Tensor]:
        out = module(images)
        if isinstance(out, Tensor):
            return [out]
        if isinstance(out, list | tuple) and all(isinstance(t, Tensor) for t in out):
            return list(out)
        raise TypeError(f"{path}: feature network returned {type(out).__name__}")

    return features


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return (images.float().clamp(-1, 1) + 1) / 2


# --------------------------------------------------------------------- results


@dataclass
class InversionResult:
    """The inversion of B images.

    latents: (B, d) float32 codes; edits act on these.
    residuals: (B, C, h, w) float32 first-feature-map residuals (zeros where unused), or None.
    deltas: per image, a tuning delta (see :func:`tune`) or None; None when no image was tuned.
    reconstructions: uint8 (B, H, W, 3).
    psnr: (B,) dB of the uint8 reconstruction against the uint8 target.
    ssim: (B,) on [0, 1] images.
    steps: (B,) optimiser steps spent on each image (all stages).
    seconds: wall time of the whole call.
    methods: per image, the method whose result is returned.
    trail: per image, (method, PSNR dB, steps) of every stage tried, in order.
    cancelled: progress returned False.
    """

    latents: np.ndarray
    residuals: np.ndarray | None
    deltas: list[dict[str, Tensor] | None] | None
    reconstructions: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    steps: np.ndarray
    seconds: float
    methods: list[str]
    trail: list[list[tuple[str, float, int]]] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class StageResult:
    """What one method returns for its B images (tensors on the targets' device).

    z: (B, d) codes; residual: (B, C, h, w) first-feature-map residuals or None;
    psnr: (B,) float dB of the returned iterate (on [0, 1] floats, not uint8);
    steps: (B,) iterations spent; cancelled: progress returned False;
    global_steps: loop iterations run (what progress counted);
    deltas: per image, the fp16 tuning delta (``tune`` only);
    stopped: (B,) bool, images that a progress mask stopped.
    """

    z: Tensor
    residual: Tensor | None
    psnr: Tensor
    steps: Tensor
    cancelled: bool
    global_steps: int
    deltas: list[dict[str, Tensor]] | None = None
    stopped: Tensor | None = None  # (B,) bool: images that progress stopped


# ------------------------------------------------------------- generator helpers


def _dtype(generator: SplitGenerator) -> torch.dtype:
    return next(iter(generator.parameters())).dtype


def generate(generator: SplitGenerator, z: Tensor, residual: Tensor | None = None) -> Tensor:
    """z (N, d) [+ residual (N, C, h, w)] -> (N, 3, H, W) float32 in [-1, 1]; differentiable."""
    dt = _dtype(generator)
    if residual is None:
        return generator(z.to(dt)).float()
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


def _as_rows(value: float | Tensor, b: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    return t.expand(b).clone() if t.ndim == 0 else t.to(device).float().clone()


def prior_loss(z: Tensor) -> Tensor:
    """(|z|^2 / d - 1)^2 per row: keeps z on the shell where N(0, I) has its mass. -> (N,)."""
    return (z.square().sum(1) / z.shape[1] - 1).square()


# ----------------------------------------------------------- row-wise optimiser


@dataclass
class _Outcome:
    best: dict[str, Tensor]  # best iterate per row, each (B, ...)
    psnr: Tensor  # (B,) float PSNR of the best iterate
    steps: Tensor  # (B,) int64 steps taken
    cancelled: bool
    global_steps: int
    stopped: Tensor  # (B,) bool: progress stopped these rows


LossFn = Callable[[dict[str, Tensor], Tensor], tuple[Tensor, Tensor]]


def _optimise(
    params: dict[str, Tensor],
    lrs: dict[str, float],
    loss_fn: LossFn,
    targets: Tensor,
    steps: Tensor,
    target_psnr: Tensor,
    progress: Progress | None,
    progress_every: int,
    step_offset: int = 0,
    report: Callable[[Tensor], np.ndarray] | None = None,
    rows: Tensor | None = None,
) -> _Outcome:
    """Row-wise Adam with a per-row cosine schedule and best-iterate tracking.

    params: each (B, ...) float32; row i belongs to image i.
    loss_fn(active params, row indices (M,)) -> (loss per row (M,), reconstruction (M, 3, H, W)).
    steps: (B,) steps allowed per row; target_psnr: (B,) rows stop once their best reaches it.
    report: maps the (B,) best PSNR to what ``progress`` gets (to embed a stage in a larger batch).
    rows: (B,) index of each row in that larger batch, to read a per-image stop mask.
    """
    b = targets.shape[0]
    device = targets.device
    best = {k: v.detach().clone() for k, v in params.items()}
    cur = {k: v.detach().clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    best_psnr = torch.full((b,), -math.inf, device=device)
    done = torch.zeros(b, dtype=torch.long, device=device)
    steps = steps.to(device)
    target_psnr = target_psnr.to(device)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    cancelled = False
    stopped = torch.zeros(b, dtype=torch.bool, device=device)
    k = 0
    evaluated = torch.zeros(b, dtype=torch.bool, device=device)  # current iterate scored?

    def score(idx: Tensor, p: dict[str, Tensor], recon: Tensor) -> None:
        cur_psnr = psnr(recon, targets[idx])
        better = cur_psnr > best_psnr[idx]
        if better.any():
            rows = idx[better]
            best_psnr[rows] = cur_psnr[better]
            for name, value in p.items():
                best[name][rows] = value.detach()[better]
        evaluated[idx] = True

    while True:
        active = (done < steps) & (best_psnr < target_psnr)
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        p = {name: value[idx].requires_grad_(True) for name, value in cur.items()}
        loss_rows, recon = loss_fn(p, idx)
        score(idx, p, recon)
        # A row that just reached its target keeps this iterate: no update for it.
        still = best_psnr[idx] < target_psnr[idx]
        grads = torch.autograd.grad(loss_rows.sum(), list(p.values()), allow_unused=True)
        t = (done[idx] + 1).float()
        frac = (done[idx].float() / steps[idx].clamp_min(1).float()).clamp(0, 1)
        sched = 0.5 * (1 + torch.cos(math.pi * frac))
        bc1 = 1 - beta1**t
        bc2 = 1 - beta2**t
        upd_rows = idx[still]
        for (name, value), grad in zip(p.items(), grads, strict=True):
            if grad is None:
                continue
            shape = (-1,) + (1,) * (value.ndim - 1)
            mi = m[name][idx].mul_(beta1).add_(grad, alpha=1 - beta1)
            vi = v2[name][idx].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = (lrs[name] * sched / bc1).view(shape)
            denom = (vi / bc2.view(shape)).sqrt_().add_(eps)
            new = value.detach() - step_size * mi / denom
            m[name][idx] = mi
            v2[name][idx] = vi
            cur[name][upd_rows] = new[still]
        done[upd_rows] += 1
        evaluated[upd_rows] = False
        k += 1
        if progress is not None and k % progress_every == 0:
            shown = report(best_psnr) if report else best_psnr.cpu().numpy()
            verdict = progress(step_offset + k, float(loss_rows.detach().mean()), shown)
            if verdict is False:
                cancelled = True
                break
            if verdict is not None and not isinstance(verdict, bool):
                keep = torch.as_tensor(np.asarray(verdict, dtype=bool), device=device)
                keep = keep[rows.to(device)] if rows is not None else keep
                if keep.shape != (b,):
                    raise ValueError(f"progress returned a mask of {tuple(keep.shape)} rows")
                stopped |= ~keep
                steps = torch.where(stopped, torch.minimum(steps, done), steps)
    # Score the last iterate of rows that moved since they were last scored.
    idx = (~evaluated).nonzero().squeeze(1)
    if idx.numel():
        p = {name: value[idx] for name, value in cur.items()}
        with torch.no_grad():
            _, recon = loss_fn(p, idx)
        score(idx, p, recon)
    return _Outcome(best, best_psnr, done, cancelled, k, stopped)


# ------------------------------------------------------------------ methods


@dataclass(frozen=True)
class OptimizeConfig:
    """Latent optimisation from random restarts (invert.py's algorithm, with progress)."""

    steps: int = 400
    restarts: int = 8
    lr: float = 0.1
    prior_weight: float = 1e-3
    warmup_fraction: float = 0.125


@dataclass(frozen=True)
class HybridConfig:
    steps: int = 200
    lr: float = 0.1
    domain_weight: float = 1e-4  # lambda_dom on |z - E(G(z))|^2 / d
    prior_weight: float = 1e-2  # on (|z|^2/d - 1)^2: keeps codes where edits act as on samples
    feature_weight: float = 0.0  # on the encoder's (or ``features``') maps of G(z) vs x


@dataclass(frozen=True)
class ExtendedConfig:
    steps: int = 200
    lr_z: float = 0.01
    lr_residual: float = 0.05
    residual_weight: float = 1e-2  # on mean(r^2), r in units of the feature map's std
    prior_weight: float = 3e-2
    feature_weight: float = 0.0


@dataclass(frozen=True)
class TuneConfig:
    steps: int = 100
    lr: float = 1e-2  # Adam, on factors in units of each weight's RMS
    rank: int = 8  # low-rank factors per weight; 0 = a full delta of every chosen tensor
    layers: tuple[str, ...] = ()  # parameter-name prefixes to tune; () = all
    feature_weight: float = 0.0


@dataclass
class _State:
    """Per-image working state shared by the stages of a batch."""

    z: Tensor  # (B, d)
    residual: Tensor | None  # (B, C, h, w) in generator units, or None
    deltas: list[dict[str, Tensor] | None] | None
    psnr: Tensor  # (B,) float dB
    steps: Tensor  # (B,) long
    methods: list[str]
    trail: list[list[tuple[str, float, int]]]


def _targets_features(features: Features | None, targets: Tensor) -> list[Tensor] | None:
    if features is None:
        return None
    with torch.no_grad():
        return [f.detach() for f in features(targets)]


def encode(encoder: Encoder, targets: Tensor, chunk: int = 256) -> Tensor:
    """targets (B, 3, H, W) in [-1, 1] -> z (B, d) float32, in chunks; no grad."""
    p = next(encoder.parameters())
    out = []
    with torch.no_grad():
        for s in range(0, len(targets), chunk):
            out.append(encoder(targets[s : s + chunk].to(p.device, p.dtype)).float())
    return torch.cat(out) if out else targets.new_zeros(0, encoder.cfg.latent_dim)


@dataclass(frozen=True)
class FeedbackConfig:
    """Feedback passes after the encoder's first guess (no gradients, no loss).

    z_0 = E(x); z_{k+1} = z_k + damping * (E(x) - E(G(z_k))). Where E(G(z)) = z + b(z)
    with a slowly varying bias b, the update cancels the bias at the target. Each pass
    costs one generator and one encoder forward; the best iterate per image (PSNR) is kept,
    so it never does worse than one pass (held-out dcgan-faces samples: +2.4 dB at 4 passes).
    """

    passes: int = 4
    damping: float = 0.5


def encode_feedback(
    generator: SplitGenerator,
    encoder: Encoder,
    targets: Tensor,
    cfg: FeedbackConfig = FeedbackConfig(),
) -> tuple[Tensor, Tensor]:
    """targets (B, 3, H, W) in [-1, 1] -> (z (B, d) float32, PSNR of G(z) (B,) dB); no grad."""
    e_x = encode(encoder, targets)
    z, best_z = e_x, e_x.clone()  # z is rebound, never written in place
    best = torch.full((len(targets),), -math.inf, device=targets.device)
    with torch.no_grad():
        for k in range(cfg.passes + 1):
            x_k = generate(generator, z)
            p = psnr(x_k, targets)
            better = p > best
            best = torch.where(better, p, best)
            best_z[better] = z[better]
            if k < cfg.passes:
                z = z + cfg.damping * (e_x - encode(encoder, x_k))
    return best_z, best


def optimize(
    generator: SplitGenerator,
    targets: Tensor,
    z0: Tensor,
    cfg: OptimizeConfig = OptimizeConfig(),
    *,
    prior_weight: Tensor | float | None = None,
    target_psnr: Tensor | float = math.inf,
    progress: Progress | None = None,
    progress_every: int = 10,
    features: Features | None = None,
    feature_weight: float = 0.0,
) -> StageResult:
    """Adam on z from R random starts per image (z0 (B, R, d)); best start kept after warm-up.

    Same loss as the original latent optimisation, plus an optional
    feature loss, per-image early stop at ``target_psnr`` and progress/cancel.
    """
    b, r, d = z0.shape
    device = targets.device
    prior = _as_rows(cfg.prior_weight if prior_weight is None else prior_weight, b, device)
    tpsnr = _as_rows(target_psnr, b, device)
    feats_t = _targets_features(features, targets)
    warm = max(1, int(cfg.steps * cfg.warmup_fraction)) if r > 1 else 0

    def make_loss(tgt: Tensor, pw: Tensor, ft: list[Tensor] | None) -> LossFn:
        def loss_fn(p: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
            z = p["z"]
            x = generate(generator, z)
            loss = (x - tgt[idx]).square().flatten(1).mean(1) + pw[idx] * prior_loss(z)
            if ft is not None and features is not None and feature_weight > 0:
                loss = loss + feature_weight * feature_distance(features(x), [f[idx] for f in ft])
            return loss, x

        return loss_fn

    offset = 0
    cancelled = False
    z = z0.reshape(b * r, d).float()
    if warm:
        rep_t = targets.repeat_interleave(r, 0)
        rep_f = [f.repeat_interleave(r, 0) for f in feats_t] if feats_t is not None else None
        out = _optimise(
            {"z": z},
            {"z": cfg.lr},
            make_loss(rep_t, prior.repeat_interleave(r), rep_f),
            rep_t,
            torch.full((b * r,), warm),
            tpsnr.repeat_interleave(r),
            progress,
            progress_every,
            report=lambda p: p.view(b, r).amax(1).cpu().numpy(),
            rows=torch.arange(b).repeat_interleave(r),
        )
        best = out.psnr.view(b, r).argmax(1)
        z = out.best["z"].view(b, r, d)[torch.arange(b), best]
        offset, cancelled = out.global_steps, out.cancelled
        warm_steps = out.steps.view(b, r).amax(1)
        stopped = out.stopped.view(b, r).all(1)
    else:
        warm_steps = torch.zeros(b, dtype=torch.long)
        stopped = torch.zeros(b, dtype=torch.bool)
    remaining = torch.full((b,), cfg.steps - warm)
    remaining[stopped.cpu()] = 0
    if cancelled:
        remaining.zero_()
    out = _optimise(
        {"z": z},
        {"z": cfg.lr},
        make_loss(targets, prior, feats_t),
        targets,
        remaining,
        tpsnr,
        progress,
        progress_every,
        step_offset=offset,
    )
    return StageResult(
        z=out.best["z"],
        residual=None,
        psnr=out.psnr,
        steps=out.steps + warm_steps.to(out.steps.device),
        cancelled=cancelled or out.cancelled,
        stopped=out.stopped | stopped.to(out.stopped.device),
        global_steps=offset + out.global_steps,
    )


def hybrid(
    generator: SplitGenerator,
    encoder: Encoder,
    targets: Tensor,
    cfg: HybridConfig = HybridConfig(),
    *,
    z0: Tensor | None = None,
    domain_weight: Tensor | float | None = None,
    prior_weight: Tensor | float | None = None,
    steps: Tensor | int | None = None,
    target_psnr: Tensor | float = math.inf,
    features: Features | None = None,
    progress: Progress | None = None,
    progress_every: int = 10,
    step_offset: int = 0,
    report: Callable[[Tensor], np.ndarray] | None = None,
    rows: Tensor | None = None,
) -> StageResult:
    """In-domain inversion: z = E(x) (or ``z0``), then Adam on
    |G(z) - x|^2 + lambda_dom |z - E(G(z))|^2 / d + prior + feature loss.

    The feature loss uses ``features`` if given, else the encoder's own stage maps
    (computed in the same pass as E(G(z))).
    """
    b = targets.shape[0]
    device = targets.device
    dom = _as_rows(cfg.domain_weight if domain_weight is None else domain_weight, b, device)
    prior = _as_rows(cfg.prior_weight if prior_weight is None else prior_weight, b, device)
    n_steps = _as_rows(cfg.steps if steps is None else steps, b, device).long()
    tpsnr = _as_rows(target_psnr, b, device)
    z = encode(encoder, targets) if z0 is None else z0.float()
    if features is not None:
        feats_t = _targets_features(features, targets)
    elif cfg.feature_weight > 0:
        with torch.no_grad():
            feats_t = [f.detach() for f in encoder.features(targets)[1]]
    else:
        feats_t = None

    def loss_fn(p: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        zz = p["z"]
        x = generate(generator, zz)
        loss = (x - targets[idx]).square().flatten(1).mean(1) + prior[idx] * prior_loss(zz)
        need_enc = bool((dom[idx] > 0).any()) or (feats_t is not None and features is None)
        if need_enc:
            z_hat, feats = encoder.features(x)
            loss = loss + dom[idx] * (zz - z_hat.float()).square().mean(1)
        if feats_t is not None and cfg.feature_weight > 0:
            fx = features(x) if features is not None else feats
            loss = loss + cfg.feature_weight * feature_distance(fx, [f[idx] for f in feats_t])
        return loss, x

    out = _optimise(
        {"z": z},
        {"z": cfg.lr},
        loss_fn,
        targets,
        n_steps,
        tpsnr,
        progress,
        progress_every,
        step_offset,
        report,
        rows,
    )
    return StageResult(
        out.best["z"], None, out.psnr, out.steps, out.cancelled, out.global_steps, None, out.stopped
    )


def extended(
    generator: SplitGenerator,
    targets: Tensor,
    z0: Tensor,
    cfg: ExtendedConfig = ExtendedConfig(),
    *,
    residual0: Tensor | None = None,
    residual_weight: Tensor | float | None = None,
    prior_weight: Tensor | float | None = None,
    steps: Tensor | int | None = None,
    target_psnr: Tensor | float = math.inf,
    features: Features | None = None,
    progress: Progress | None = None,
    progress_every: int = 10,
    step_offset: int = 0,
    report: Callable[[Tensor], np.ndarray] | None = None,
    scale: Tensor | None = None,
    rows: Tensor | None = None,
) -> StageResult:
    """Optimise an extended code (z, r): image = G.tail(G.head(z) + r).

    r (B, C, h, w) lives on the first feature map (the W+ analogue for a DCGAN) and is
    penalised by ``residual_weight * mean((r / s)^2)``, s = :func:`feature_scale`.
    Edits later move z and keep r. Returns r in generator units.
    """
    b = targets.shape[0]
    device = targets.device
    d = z0.shape[1]
    s = (feature_scale(generator, d) if scale is None else scale).to(device)
    rw = _as_rows(cfg.residual_weight if residual_weight is None else residual_weight, b, device)
    prior = _as_rows(cfg.prior_weight if prior_weight is None else prior_weight, b, device)
    n_steps = _as_rows(cfg.steps if steps is None else steps, b, device).long()
    tpsnr = _as_rows(target_psnr, b, device)
    feats_t = _targets_features(features, targets)
    with torch.no_grad():
        h_shape = generator.head(z0[:1].to(_dtype(generator))).shape[1:]
    r0 = torch.zeros(b, *h_shape, device=device) if residual0 is None else residual0 / s

    def loss_fn(p: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        zz, rr = p["z"], p["r"]
        x = generate(generator, zz, rr * s)
        loss = (x - targets[idx]).square().flatten(1).mean(1)
        loss = loss + prior[idx] * prior_loss(zz) + rw[idx] * rr.square().flatten(1).mean(1)
        if feats_t is not None and features is not None and cfg.feature_weight > 0:
            loss = loss + cfg.feature_weight * feature_distance(
                features(x), [f[idx] for f in feats_t]
            )
        return loss, x

    out = _optimise(
        {"z": z0.float(), "r": r0.float()},
        {"z": cfg.lr_z, "r": cfg.lr_residual},
        loss_fn,
        targets,
        n_steps,
        tpsnr,
        progress,
        progress_every,
        step_offset,
        report,
        rows,
    )
    return StageResult(
        out.best["z"],
        out.best["r"] * s,
        out.psnr,
        out.steps,
        out.cancelled,
        out.global_steps,
        None,
        out.stopped,
    )


# ---------------------------------------------------------------- tuning


_TUNABLE = (nn.ConvTranspose2d, nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def tunable_parameters(
    generator: nn.Module, layers: tuple[str, ...] = ()
) -> dict[str, tuple[str, nn.Module]]:
    """Parameter name -> (kind, owning module) for the tensors tuning may change.

    kind is "lowrank" for 2-D+ weights of conv/linear layers, "full" for vectors
    (biases, BatchNorm affine). ``layers``: parameter-name prefixes to keep (() = all).
    """
    out: dict[str, tuple[str, nn.Module]] = {}
    for mod_name, module in generator.named_modules():
        if not isinstance(module, _TUNABLE):
            continue
        if isinstance(module, nn.ConvTranspose2d | nn.Conv2d) and module.groups != 1:
            continue
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if layers and not any(name.startswith(prefix) for prefix in layers):
                continue
            out[name] = ("lowrank" if p.ndim >= 2 else "full", module)
    return out


class _Tuner:
    """A private copy of the generator whose conv/linear/BatchNorm layers add per-image deltas.

    ``factors`` holds, per tuned parameter, the per-row tensors of the rows being run:
    "<name>.u" (M, a, r) and "<name>.v" (M, r, rest) for a low-rank weight delta
    u @ v (reshaped like the weight), or "<name>.d" (M, *shape) for a full delta.
    The shared generator is never modified (thread-safe with concurrent renders).
    """

    def __init__(self, generator: nn.Module, layers: tuple[str, ...] = ()) -> None:
        import copy

        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.params = tunable_parameters(self.module, layers)
        self.factors: dict[str, Tensor] = {}
        by_module: dict[int, list[str]] = {}
        for name, (_, module) in self.params.items():
            by_module.setdefault(id(module), []).append(name)
        for _, module in self.module.named_modules():
            names = by_module.get(id(module))
            if names:
                module.register_forward_hook(self._hook(module, names))

    def _hook(self, module: nn.Module, names: list[str]) -> Callable[..., Tensor]:
        weight_name = next((n for n in names if n.endswith("weight")), None)
        bias_name = next((n for n in names if n.endswith("bias")), None)

        def hook(mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            if not self.factors:
                return output
            x = inputs[0]
            extra = _module_delta(mod, x, self.factors, weight_name, bias_name)
            return output if extra is None else output + extra.to(output.dtype)

        return hook

    def __call__(self, z: Tensor, residual: Tensor | None, factors: dict[str, Tensor]) -> Tensor:
        self.factors = factors
        try:
            return generate(self.module, z, residual)  # type: ignore[arg-type]
        finally:
            self.factors = {}


def _lowrank_weight(factors: dict[str, Tensor], name: str) -> tuple[Tensor, Tensor] | None:
    u = factors.get(f"{name}.u")
    v = factors.get(f"{name}.v")
    return None if u is None or v is None else (u, v)


def _module_delta(
    mod: nn.Module,
    x: Tensor,
    factors: dict[str, Tensor],
    weight_name: str | None,
    bias_name: str | None,
) -> Tensor | None:
    """The per-row change of ``mod``'s output caused by the deltas in ``factors``."""
    m = x.shape[0]
    x = x.float()
    extra: Tensor | None = None
    if isinstance(mod, nn.BatchNorm2d):
        mean = cast(Tensor, mod.running_mean).float()
        var = cast(Tensor, mod.running_var).float()
        x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + mod.eps)
        dw = factors.get(f"{weight_name}.d") if weight_name else None
        db = factors.get(f"{bias_name}.d") if bias_name else None
        if dw is not None:
            extra = x_hat * dw[:, :, None, None]
        if db is not None:
            e = db[:, :, None, None].expand_as(x_hat)
            extra = e if extra is None else extra + e
        return extra
    assert isinstance(mod, nn.ConvTranspose2d | nn.Conv2d | nn.Linear)
    weight = mod.weight
    if weight_name is not None:
        lr_w = _lowrank_weight(factors, weight_name)
        full = factors.get(f"{weight_name}.d")
        if isinstance(mod, nn.Linear):
            if lr_w is not None:
                u, v = lr_w  # (M, out, r), (M, r, in)
                extra = torch.einsum("mor,mr...->mo...", u, torch.einsum("mri,mi->mr", v, x))
            elif full is not None:
                extra = torch.einsum("moi,mi->mo", full, x)
        else:
            extra = _conv_delta(mod, x, lr_w, full, weight.shape)
    if bias_name is not None and f"{bias_name}.d" in factors:
        db = factors[f"{bias_name}.d"]
        b = db.view(m, -1, *([1] * (x.ndim - 2)))
        extra = b if extra is None else extra + b
    return extra


def _conv_delta(
    mod: nn.ConvTranspose2d | nn.Conv2d,
    x: Tensor,
    lowrank: tuple[Tensor, Tensor] | None,
    full: Tensor | None,
    shape: torch.Size,
) -> Tensor | None:
    """Per-row conv(x_m, delta_m) as one grouped convolution over the M rows."""
    m = x.shape[0]
    if lowrank is None and full is None:
        return None
    transposed = isinstance(mod, nn.ConvTranspose2d)
    if lowrank is not None:
        u, v = lowrank
        r = u.shape[2]
        if transposed:
            # W (Cin, Cout, k, k) ~ u (Cin, r) @ v (r, Cout*k*k): convT(u^T x, v)
            y = torch.einsum("mchw,mcr->mrhw", x, u)
            w = v.reshape(m * r, *shape[1:])
            out = F.conv_transpose2d(
                y.reshape(1, m * r, *y.shape[2:]),
                w,
                stride=mod.stride,
                padding=mod.padding,  # type: ignore[arg-type]
                output_padding=mod.output_padding,
                groups=m,
                dilation=mod.dilation,
            )
            return out.view(m, shape[1], *out.shape[2:])
        # W (Cout, Cin, k, k) ~ u (Cout, r) @ v (r, Cin*k*k): u conv(x, v)
        w = v.reshape(m * r, *shape[1:])
        y = F.conv2d(
            x.reshape(1, -1, *x.shape[2:]),
            w,
            stride=mod.stride,
            padding=mod.padding,
            dilation=mod.dilation,
            groups=m,
        )
        y = y.view(m, r, *y.shape[2:])
        return torch.einsum("mrhw,mor->mohw", y, u)
    assert full is not None
    w = full.reshape(m * shape[0], *shape[1:])
    if transposed:
        out = F.conv_transpose2d(
            x.reshape(1, -1, *x.shape[2:]),
            w,
            stride=mod.stride,
            padding=mod.padding,  # type: ignore[arg-type]
            output_padding=mod.output_padding,
            groups=m,
            dilation=mod.dilation,
        )
        return out.view(m, shape[1], *out.shape[2:])
    out = F.conv2d(
        x.reshape(1, -1, *x.shape[2:]),
        w,
        stride=mod.stride,
        padding=mod.padding,
        dilation=mod.dilation,
        groups=m,
    )
    return out.view(m, shape[0], *out.shape[2:])


def _init_factors(
    tuner: _Tuner, rows: int, rank: int, device: torch.device
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Trainable per-row factors (in relative units) and their scales to generator units.

    Low-rank: u = 0, v ~ N(0, 1) (one fixed draw shared by all rows, so an image's
    result does not depend on its batch mates); full deltas start at 0.
    """
    gen = torch.Generator().manual_seed(0)
    factors: dict[str, Tensor] = {}
    scales: dict[str, Tensor] = {}
    named = dict(tuner.module.named_parameters())
    for name, (kind, _) in tuner.params.items():
        p = named[name].detach().float()
        rms = p.square().mean().sqrt().clamp_min(1e-3)
        if kind == "lowrank" and rank > 0:
            a, rest = p.shape[0], p[0].numel()
            v = torch.randn(rank, rest, generator=gen).to(device)
            factors[f"{name}.u"] = torch.zeros(rows, a, rank, device=device)
            factors[f"{name}.v"] = v.expand(rows, rank, rest).clone()
            scales[f"{name}.u"] = rms / math.sqrt(rank)
            scales[f"{name}.v"] = torch.ones((), device=device)
        else:
            factors[f"{name}.d"] = torch.zeros(rows, *p.shape, device=device)
            scales[f"{name}.d"] = rms
    return factors, scales


def _scaled(factors: dict[str, Tensor], scales: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v * scales[k] for k, v in factors.items()}


def tune(
    generator: SplitGenerator,
    targets: Tensor,
    z: Tensor,
    cfg: TuneConfig = TuneConfig(),
    *,
    residual: Tensor | None = None,
    steps: Tensor | int | None = None,
    target_psnr: Tensor | float = math.inf,
    features: Features | None = None,
    progress: Progress | None = None,
    progress_every: int = 10,
    step_offset: int = 0,
    report: Callable[[Tensor], np.ndarray] | None = None,
    rows: Tensor | None = None,
) -> StageResult:
    """Pivotal tuning: the pivot (z, residual) stays fixed; a per-image delta of the
    generator's weights is fitted by Adam on pixel MSE (+ feature loss).

    Each image gets its own delta (low-rank factors of rank ``cfg.rank`` for weights,
    full deltas for BatchNorm affine/bias vectors), returned as fp16 dicts in
    ``deltas``: see :func:`delta_nbytes`, :func:`apply_delta`, :func:`render`.
    """
    if not isinstance(generator, nn.Module):
        raise TypeError("tune needs an nn.Module generator")
    b = targets.shape[0]
    device = targets.device
    n_steps = _as_rows(cfg.steps if steps is None else steps, b, device).long()
    tpsnr = _as_rows(target_psnr, b, device)
    feats_t = _targets_features(features, targets)
    tuner = _Tuner(generator, cfg.layers)
    factors, scales = _init_factors(tuner, b, cfg.rank, device)
    z = z.float()

    def loss_fn(p: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        res = residual[idx] if residual is not None else None
        x = tuner(z[idx], res, _scaled(p, scales))
        loss = (x - targets[idx]).square().flatten(1).mean(1)
        if feats_t is not None and features is not None and cfg.feature_weight > 0:
            loss = loss + cfg.feature_weight * feature_distance(
                features(x), [f[idx] for f in feats_t]
            )
        return loss, x

    out = _optimise(
        factors,
        dict.fromkeys(factors, cfg.lr),
        loss_fn,
        targets,
        n_steps,
        tpsnr,
        progress,
        progress_every,
        step_offset,
        report,
        rows,
    )
    final = _scaled(out.best, scales)
    deltas = [
        {k: v[i].detach().to("cpu", torch.float16).contiguous() for k, v in final.items()}
        for i in range(b)
    ]
    return StageResult(
        z, residual, out.psnr, out.steps, out.cancelled, out.global_steps, deltas, out.stopped
    )


def delta_nbytes(delta: dict[str, Tensor]) -> int:
    """Bytes of a delta's tensors as stored (fp16)."""
    return sum(t.numel() * t.element_size() for t in delta.values())


def _delta_tensor(delta: dict[str, Tensor], name: str, shape: torch.Size) -> Tensor | None:
    if f"{name}.d" in delta:
        return delta[f"{name}.d"].float().reshape(shape)
    if f"{name}.u" in delta:
        u, v = delta[f"{name}.u"].float(), delta[f"{name}.v"].float()
        return (u @ v).reshape(shape)
    return None


@contextmanager
def apply_delta(generator: nn.Module, delta: dict[str, Tensor]) -> Iterator[nn.Module]:
    """Add a tuning delta to ``generator``'s weights in place, restoring them exactly on exit.

    Mutates the shared module: hold it exclusively meanwhile (no concurrent renders);
    :func:`render` gives the same images without mutation.
    """
    named = dict(generator.named_parameters())
    saved: dict[str, Tensor] = {}
    try:
        with torch.no_grad():
            for name, p in named.items():
                d = _delta_tensor(delta, name, p.shape)
                if d is None:
                    continue
                saved[name] = p.detach().clone()
                p.copy_((p.float() + d.to(p.device)).to(p.dtype))
        unknown = {k.rsplit(".", 1)[0] for k in delta} - set(named)
        if unknown:
            raise KeyError(f"delta names unknown parameters: {sorted(unknown)}")
        yield generator
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                named[name].copy_(value)


def render(
    generator: SplitGenerator,
    z: Tensor,
    residual: Tensor | None = None,
    deltas: list[dict[str, Tensor] | None] | None = None,
) -> Tensor:
    """Images of codes: z (N, d), optional residuals (N, C, h, w) and per-row tuning deltas.

    -> (N, 3, H, W) float32 in [-1, 1]; no grad. Rows with a None delta use the plain
    generator. The shared generator is not modified.
    """
    with torch.no_grad():
        if not deltas or all(d is None for d in deltas):
            return generate(generator, z, residual)
        if not isinstance(generator, nn.Module):
            raise TypeError("tuning deltas need an nn.Module generator")
        if len(deltas) != len(z):
            raise ValueError(f"{len(deltas)} deltas for {len(z)} codes")
        keys = sorted({k for d in deltas if d is not None for k in d})
        names = {k.rsplit(".", 1)[0] for k in keys}
        tuner = _Tuner(generator, tuple(names))
        missing = names - set(tuner.params)
        if missing:
            raise KeyError(f"delta names untunable parameters: {sorted(missing)}")
        template = next(d for d in deltas if d is not None)
        factors = {}
        for k in keys:
            ref = template[k] if k in template else next(d[k] for d in deltas if d and k in d)
            rows = [
                (d[k] if d is not None and k in d else torch.zeros_like(ref)).float()
                for d in deltas
            ]
            factors[k] = torch.stack(rows).to(z.device)
        return tuner(z, residual, factors)


# ------------------------------------------------------------ dispatch and auto


@dataclass(frozen=True)
class InvertConfig:
    """Settings of every method; ``steps`` is the per-image step budget of a call.

    shares: fractions of the budget for (hybrid, extended, tune) in ``auto``, and for
    (pivot, tuning) in ``tune`` (first two entries normalised); unspent steps of an
    image that stopped early at its target are not carried over.
    """

    steps: int = 300
    optimize: OptimizeConfig = OptimizeConfig()
    hybrid: HybridConfig = HybridConfig()
    extended: ExtendedConfig = ExtendedConfig()
    tune: TuneConfig = TuneConfig()
    shares: tuple[float, float, float] = (0.15, 0.25, 0.6)
    progress_every: int = 10
    # feedback passes of the ``encoder`` method; the optimising methods start from one pass,
    # E(x), as In-Domain inversion does (feedback codes start no faster there, and on real
    # photos they edit a little less like generated samples)
    feedback: FeedbackConfig = FeedbackConfig()


class _Tracker:
    """Best-so-far per image of a batch across stages."""

    def __init__(self, b: int, device: torch.device) -> None:
        self.psnr = torch.full((b,), -math.inf, device=device)
        self.steps = torch.zeros(b, dtype=torch.long, device=device)
        self.stopped = torch.zeros(b, dtype=torch.bool, device=device)
        self.global_steps = 0
        self.cancelled = False

    def report_for(self, rows: Tensor) -> Callable[[Tensor], np.ndarray]:
        def report(sub: Tensor) -> np.ndarray:
            full = self.psnr.clone()
            full[rows] = torch.maximum(full[rows], sub.to(full.device))
            return full.cpu().numpy()

        return report


def invert(
    method: str,
    generator: SplitGenerator,
    targets: Tensor,
    cfg: InvertConfig = InvertConfig(),
    *,
    encoder: Encoder | None = None,
    z0: Tensor | None = None,
    target_psnr: Tensor | float = math.inf,
    steps: Tensor | int | None = None,
    features: Features | None = None,
    progress: Progress | None = None,
) -> InversionResult:
    """Invert a batch with one method, or ``auto``.

    Args:
        method: one of :data:`METHODS` or "auto".
        generator: split generator (head/tail), in eval mode.
        targets: (B, 3, H, W) float32 in [-1, 1] on the generator's device.
        encoder: needed by encoder, hybrid, auto (and by extended/tune for their start).
        z0: (B, R, d) random starts for optimize (and the start of extended/tune when
            there is no encoder).
        target_psnr: (B,) or scalar dB; an image stops once it reaches it.
        steps: (B,) or scalar per-image step budget (default ``cfg.steps``).
        features: optional feature network for a feature loss (weights in the configs).
        progress: (step, loss, per-image best PSNR (B,)) every ``cfg.progress_every``
            steps; False cancels, a (B,) bool array stops the images marked False
            (no later stage runs for them); what was reached so far is returned.
    Returns:
        an :class:`InversionResult` (PSNR measured on the uint8 reconstruction).
    """
    start = time.perf_counter()
    b = targets.shape[0]
    device = targets.device
    budget = _as_rows(cfg.steps if steps is None else steps, b, device).long()
    tpsnr = _as_rows(target_psnr, b, device)
    every = cfg.progress_every
    track = _Tracker(b, device)
    d = _latent_dim(generator, encoder, z0)
    state = _State(
        z=torch.zeros(b, d, device=device),
        residual=None,
        deltas=None,
        psnr=track.psnr,
        steps=track.steps,
        methods=[""] * b,
        trail=[[] for _ in range(b)],
    )

    def record(name: str, rows: Tensor, res: StageResult) -> None:
        track.global_steps += res.global_steps
        track.cancelled = track.cancelled or res.cancelled
        track.steps[rows] += res.steps.to(device)
        if res.stopped is not None:
            track.stopped[rows] |= res.stopped.to(device)
        better = res.psnr.to(device) >= track.psnr[rows]
        for j, i in enumerate(rows.tolist()):
            state.trail[i].append((name, float(res.psnr[j]), int(res.steps[j])))
        upd = rows[better]
        if upd.numel() == 0:
            return
        track.psnr[upd] = res.psnr.to(device)[better]
        state.z[upd] = res.z[better].to(device)
        if res.residual is not None:
            if state.residual is None:
                state.residual = torch.zeros(b, *res.residual.shape[1:], device=device)
            state.residual[upd] = res.residual[better].to(device)
        elif state.residual is not None:
            state.residual[upd] = 0
        if res.deltas is not None:
            if state.deltas is None:
                state.deltas = [None] * b
            for j in better.nonzero().squeeze(1).tolist():
                state.deltas[int(rows[j])] = res.deltas[j]
        elif state.deltas is not None:
            for i in upd.tolist():
                state.deltas[i] = None
        for i in upd.tolist():
            state.methods[i] = name

    def open_rows() -> Tensor:
        short = (track.psnr < tpsnr) & (track.steps < budget) & ~track.stopped
        return short.nonzero().squeeze(1)

    def run_encoder() -> None:
        if encoder is None:
            raise ValueError(f"method {method!r} needs an encoder")
        rows = torch.arange(b, device=device)
        fb = cfg.feedback if method == "encoder" else FeedbackConfig(passes=0)
        z, p = encode_feedback(generator, encoder, targets, fb)
        record("encoder", rows, StageResult(z, None, p, torch.zeros(b, dtype=torch.long), False, 0))

    def start_z() -> Tensor:
        if z0 is None:
            raise ValueError(f"method {method!r} needs an encoder or z0")
        return z0[:, 0].to(device).float()

    def stage_steps(rows: Tensor, upto: float) -> Tensor:
        return ((budget[rows].float() * upto).round().long() - track.steps[rows]).clamp_min(0)

    def run_hybrid(rows: Tensor, upto: float) -> None:
        assert encoder is not None
        res = hybrid(
            generator, encoder, targets[rows], cfg.hybrid,
            z0=state.z[rows], steps=stage_steps(rows, upto), target_psnr=tpsnr[rows],
            features=features, progress=progress, progress_every=every,
            step_offset=track.global_steps, report=track.report_for(rows), rows=rows,
        )  # fmt: skip
        record("hybrid", rows, res)

    def run_extended(rows: Tensor, upto: float) -> None:
        res = extended(
            generator, targets[rows], state.z[rows], cfg.extended,
            residual0=None if state.residual is None else state.residual[rows],
            steps=stage_steps(rows, upto), target_psnr=tpsnr[rows], features=features,
            progress=progress, progress_every=every, step_offset=track.global_steps,
            report=track.report_for(rows), rows=rows,
        )  # fmt: skip
        record("extended", rows, res)

    def run_tune(rows: Tensor) -> None:
        res = tune(
            generator, targets[rows], state.z[rows], cfg.tune,
            residual=None if state.residual is None else state.residual[rows],
            steps=stage_steps(rows, 1.0), target_psnr=tpsnr[rows], features=features,
            progress=progress, progress_every=every, step_offset=track.global_steps,
            report=track.report_for(rows), rows=rows,
        )  # fmt: skip
        record("tune", rows, res)

    s_h, s_e, s_t = cfg.shares
    if method == "encoder":
        run_encoder()
    elif method == "optimize":
        if z0 is None:
            raise ValueError("optimize needs z0 (B, R, d) random starts")
        res = optimize(
            generator, targets, z0.to(device), replace_steps(cfg.optimize, budget),
            target_psnr=tpsnr, progress=progress, progress_every=every, features=features,
        )  # fmt: skip
        record("optimize", torch.arange(b, device=device), res)
    elif method == "hybrid":
        run_encoder()
        run_hybrid(open_rows(), 1.0)
    elif method == "extended":
        if encoder is not None:
            run_encoder()
        else:
            state.z[:] = start_z()
        run_extended(open_rows(), 1.0)
    elif method in ("tune", "auto"):
        if encoder is not None:
            run_encoder()
        else:
            state.z[:] = start_z()
        # tune: a pivot (hybrid, or extended without an encoder) then tuning;
        # auto: hybrid, extended, then tuning, each only for images still short of target.
        plan = (
            [(1 - s_t, run_hybrid if encoder is not None else run_extended)]
            if method == "tune"
            else [(s_h, run_hybrid), (s_h + s_e, run_extended)]
        )
        for upto, run in plan:
            rows = open_rows()
            if rows.numel() == 0 or track.cancelled:
                break
            if run is run_hybrid and encoder is None:
                continue
            run(rows, upto)
        rows = open_rows()
        if rows.numel() and not track.cancelled:
            run_tune(rows)
    else:
        raise ValueError(f"unknown method {method!r}; known: {[*METHODS, 'auto']}")
    return _finish(generator, targets, state, track, start)


def replace_steps(cfg: OptimizeConfig, budget: Tensor) -> OptimizeConfig:
    """``cfg`` with ``steps`` set to the largest per-image budget."""
    from dataclasses import replace

    return replace(cfg, steps=int(budget.max()) if budget.numel() else cfg.steps)


def _latent_dim(generator: SplitGenerator, encoder: Encoder | None, z0: Tensor | None) -> int:
    if encoder is not None:
        return encoder.cfg.latent_dim
    if z0 is not None:
        return int(z0.shape[-1])
    dim = getattr(generator, "latent_dim", None)
    if dim is None:
        raise ValueError("cannot tell the latent size: pass an encoder or z0")
    return int(dim)


def _finish(
    generator: SplitGenerator,
    targets: Tensor,
    state: _State,
    track: _Tracker,
    start: float,
) -> InversionResult:
    from latentedit.workers.models.runtime import to_uint8

    x = render(generator, state.z, state.residual, state.deltas)
    recon = to_uint8(x)
    target_u8 = to_uint8(targets)
    with torch.no_grad():
        s = ssim(
            torch.from_numpy(recon).permute(0, 3, 1, 2).float() / 255,
            torch.from_numpy(target_u8).permute(0, 3, 1, 2).float() / 255,
        )
    return InversionResult(
        latents=state.z.detach().cpu().float().numpy(),
        residuals=None if state.residual is None else state.residual.cpu().float().numpy(),
        deltas=state.deltas,
        reconstructions=recon,
        psnr=psnr_uint8(recon, target_u8),
        ssim=s.numpy(),
        steps=track.steps.cpu().numpy(),
        seconds=time.perf_counter() - start,
        methods=state.methods,
        trail=state.trail,
        cancelled=track.cancelled,
    )
