"""Pivotal tuning that keeps edits working: per-image generator deltas with a locality term.

The pivot code (z, residual) stays fixed; each image gets its own delta of the
generator's weights (:mod:`.deltas`, rendered by :mod:`.tuner`), fitted by Adam on pixel
MSE plus PTI's locality regulariser in the form that keeps edits of the photo consistent
with the generator's own edits: on *differences*,

    |(G'(z_r) - G'(z)) - (G(z_r) - G(z))|^2,   z_r = z + distance * u, u a random unit vector,

so the photo's details become a layer G' - G that stays the same near the pivot: an edit
changes the photo exactly as it changes the generator's own face (the published form
|G'(z_r) - G(z_r)|^2 leaves edits inconsistent here). Where an edit moves the face, that
layer stays put, and the further the pivot is from the photo (``code_psnr``), the more it
shows as a doubled face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from latentedit.workers.methods.encoder import feature_distance
from latentedit.workers.methods.inversion.deltas import tunable_parameters
from latentedit.workers.methods.inversion.optim import Run, Steps, blocking, optimise
from latentedit.workers.methods.inversion.protocol import (
    Renderer,
    as_rows,
    generate,
    locality_codes,
)
from latentedit.workers.methods.inversion.results import StageResult
from latentedit.workers.methods.inversion.stages import target_features
from latentedit.workers.methods.inversion.tuner import Tuner, init_factors, scaled


@dataclass(frozen=True)
class TuneConfig:
    """steps: tuning budget; lr: Adam on deltas in units of each weight's RMS;
    rank: low-rank factors per weight (0 = a full delta of every tuned tensor);
    layers: parameter-name prefixes to tune (() = all); skip_first: leading weight layers
    left alone (the coarse layers; the stored delta shrinks accordingly);
    locality_weight / locality_distance: the difference-locality term (0 = off)."""

    steps: int = 200
    lr: float = 1e-2
    rank: int = 0
    layers: tuple[str, ...] = ()
    skip_first: int = 2
    feature_weight: float = 0.0
    locality_weight: float = 2.0
    locality_distance: float = 2.0


def tuned_layers(generator: nn.Module, cfg: TuneConfig) -> tuple[str, ...]:
    """Names of the parameters ``cfg`` tunes: ``layers`` less everything before the weight
    of conv/linear layer ``skip_first`` (the coarse layers with their BatchNorm vectors).

    Leaving those vectors alone too keeps the backward pass out of the coarse layers: on
    dcgan-faces (8 photos, ``auto``) 16-21 % less time, fewer steps, edit error 0.151 -> 0.136.
    """
    params = tunable_parameters(generator, cfg.layers)
    names = list(params)
    weighted = [i for i, n in enumerate(names) if params[n][0] == "lowrank"]
    start = weighted[cfg.skip_first] if cfg.skip_first < len(weighted) else len(names)
    return tuple(names[start:]) or tuple(names)


def tune_steps(
    generator: Renderer,
    targets: Tensor,
    z: Tensor,
    cfg: TuneConfig = TuneConfig(),
    run: Run | None = None,
    *,
    residual: Tensor | None = None,
    steps: Tensor | int | None = None,
) -> Steps[StageResult]:
    """Tune per-image deltas around the pivot z (B, d) [+ residual (B, C, h, w)].

    targets (B, 3, H, W) in [-1, 1]; steps: (B,) or scalar budget. Returns the pivot and
    per-image fp16 deltas (``StageResult.deltas``): see :func:`.tuner.render`.
    """
    if not isinstance(generator, nn.Module):
        raise TypeError("tune needs an nn.Module generator")
    run = run or Run()
    b = targets.shape[0]
    device = targets.device
    n_steps = as_rows(cfg.steps if steps is None else steps, b, device).long()
    features = run.features
    feats_t = target_features(features, targets)
    tuner = Tuner(generator, tuned_layers(generator, cfg))
    factors, scales = init_factors(tuner, b, cfg.rank, device)
    z = z.float()
    rng = torch.Generator().manual_seed(0)
    # where the locality term looks: the generator's own notion of nearby codes, if it has one
    near = getattr(generator, "locality_codes", locality_codes)
    g_z: Tensor | None = None  # G(z) of the pivots: the locality term's fixed base
    if cfg.locality_weight > 0:
        with torch.no_grad():
            g_z = generate(generator, z)

    def loss_fn(p: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        res = residual[idx] if residual is not None else None
        f = scaled(p, scales)
        zi = z[idx]
        if cfg.locality_weight > 0 and torch.is_grad_enabled():
            zr = near(zi, cfg.locality_distance, rng)
            both = tuner(  # two blocks of rows, one delta each: see tuner.Tuner
                torch.cat([zi, zr]), None if res is None else torch.cat([res, res]), f
            )
            x, moved = both[: len(zi)], both[len(zi) :]
            assert g_z is not None
            with torch.no_grad():
                gd = generate(generator, zr) - g_z[idx]
            loc = ((moved - x) - gd).square().flatten(1).mean(1)
        else:
            x = tuner(zi, res, f)
            loc = None
        loss = (x - targets[idx]).square().flatten(1).mean(1)
        if loc is not None:
            loss = loss + cfg.locality_weight * loc
        if feats_t is not None and features is not None and cfg.feature_weight > 0:
            loss = loss + cfg.feature_weight * feature_distance(
                features(x), [f[idx] for f in feats_t]
            )
        return loss, x

    out = yield from optimise(
        factors, dict.fromkeys(factors, cfg.lr), loss_fn, targets, n_steps, run
    )
    final = scaled(out.best, scales)
    deltas = [
        {k: v[i].detach().to("cpu", torch.float16).contiguous() for k, v in final.items()}
        for i in range(b)
    ]
    return StageResult(
        z, residual, out.psnr, out.steps, out.cancelled, out.global_steps, deltas, out.stopped
    )


tune = blocking(tune_steps)
