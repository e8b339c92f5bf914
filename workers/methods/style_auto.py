"""``auto`` in W and W+: reach ``target_psnr`` with codes that still edit, as ``auto`` does in z.

Per image, in one batch: the latent stage (the W / W+ projection, started from the model's
W encoder when it has one, as ``hybrid``; at most ``LATENT_SHARE`` of the step budget, and
it stops once every image reaches the target), then pivotal tuning (:mod:`.style_tuning`)
for the images still short of it, for the rest of their budget. A tuned result must keep
its relative edit error (:func:`.style_tuning.edit_error`) under ``max_edit_error``; one
that breaks it tunes again from the same pivot with ``RETUNE_LOCALITY`` times the locality
weight, within what is left of its budget. Each image gets the best PSNR among its
admissible candidates; the pivot alone (edit error 0) always is one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import Tensor

from latentedit.workers.methods.encoder import Encoder
from latentedit.workers.methods.inversion.optim import Run, Steps
from latentedit.workers.methods.inversion.tuning import TuneConfig, tune_steps
from latentedit.workers.methods.style_encoding import hybrid_steps
from latentedit.workers.methods.style_projection import Progress, project_steps
from latentedit.workers.methods.style_tuning import (
    STYLE_TUNE,
    edit_error,
    renderer,
    to_generator_names,
)
from latentedit.workers.models.runtime import LoadedModel

LATENT_SHARE = 0.5  # of the step budget, at most, for the latent stage
RETUNE_LOCALITY = 3.0  # x the locality weight, for tuned images that broke the bound


@dataclass
class StyleAuto:
    codes: np.ndarray  # (N, w_dim) or (N, num_ws, w_dim) float32
    deltas: list[dict[str, Tensor] | None]  # per image (generator names, fp16) or None
    psnr: np.ndarray  # (N,) dB of the chosen candidate (float render, peak-to-peak 2)
    steps: int  # loop steps run, all stages
    methods: list[str]  # per image: "optimize" / "hybrid" (the pivot alone) or "tune"
    edit_error: np.ndarray  # (N,) relative edit error of the chosen candidate


def auto_style_steps(
    model: LoadedModel,
    targets: Tensor,
    space: str,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    target_psnr: float,
    max_edit_error: float,
    directions: Tensor,
    encoder: Encoder | None = None,
    cfg: TuneConfig = STYLE_TUNE,
) -> Steps[StyleAuto]:
    """``auto`` over targets (N, 3, R, R) in [-1, 1]; arguments as
    :func:`.style_projection.project_steps`, plus the target (dB), the edit-error bound and
    the measure's unit w ``directions`` (K, w_dim); ``encoder``: the model's W encoder."""
    n = len(targets)
    latent = "optimize" if encoder is None else "hybrid"
    latent_steps = project_steps if encoder is None else partial(hybrid_steps, encoder=encoder)

    def latent_progress(step: int, total: int, loss: float, psnr: np.ndarray) -> bool:
        return progress is not None and progress(step, steps, loss, psnr)

    pivot = yield from latent_steps(
        model, targets, space, max(1, round(steps * LATENT_SHARE)), seed, latent_progress, stop
    )
    out = StyleAuto(pivot.codes, [None] * n, pivot.psnr.copy(), pivot.steps, [latent] * n,
                    np.zeros(n))  # fmt: skip
    r = renderer(model, space, whitened=True)
    t = targets.to(model.device).float()
    budget = np.full(n, max(steps - pivot.steps, 0))
    # first the images short of the target; then, once, those whose tuning broke the bound
    want = out.psnr < target_psnr
    for weight in (cfg.locality_weight, cfg.locality_weight * RETUNE_LOCALITY)[
        : 2 if cfg.locality_weight > 0 else 1
    ]:
        rows = np.flatnonzero(want & (budget > 0))
        if rows.size == 0 or (stop is not None and stop()):
            break

        def report(sub: Tensor, rows: np.ndarray = rows) -> np.ndarray:
            full = out.psnr.copy()
            full[rows] = np.maximum(full[rows], sub.cpu().numpy())
            return full

        def tune_progress(step: int, loss: float, shown: np.ndarray) -> bool:
            if stop is not None and stop():
                return False
            return not (progress is not None and progress(step, steps, loss, shown))

        run = Run(target_psnr, tune_progress, step_offset=out.steps, report=report)
        u = r.whiten(torch.from_numpy(pivot.codes[rows]).to(model.device))
        res = yield from tune_steps(
            r, t[rows], u, replace(cfg, locality_weight=weight), run,
            steps=torch.from_numpy(budget[rows]),
        )  # fmt: skip
        out.steps += res.global_steps
        budget[rows] -= res.steps.cpu().numpy()
        deltas = [to_generator_names(d) for d in res.deltas or []]
        errors = edit_error(model, pivot.codes[rows], space, deltas, directions)
        gained = res.psnr.cpu().numpy()
        want = np.zeros(n, dtype=bool)
        for k, i in enumerate(rows):
            if errors[k] > max_edit_error:
                want[i] = out.methods[i] != "tune"  # no admissible tuning of it yet
            elif gained[k] > out.psnr[i]:
                out.psnr[i], out.deltas[i], out.methods[i] = gained[k], deltas[k], "tune"
                out.edit_error[i] = errors[k]
    return out
