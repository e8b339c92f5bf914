"""Encoder and hybrid inversion in W and W+ for style generators (e4e's idea, small).

A model's W encoder (:class:`.encoder.Encoder` with ``latent_dim = w_dim``) maps an image
(N, 3, R, R) in [-1, 1] to a whitened w code u (N, w_dim), w = w_avg + (spread / sqrt(w_dim)) u
(:class:`.style_tuning.CodeRenderer`). It is trained by :func:`.encoder.train_encoder` on
pairs the generator makes itself: u = whiten(mapping(z)), x = synthesis(w). Its predictions
are single w codes, in W where the generator's codes live and edits behave (e4e's point); a
w+ request gets the prediction in every layer. ``hybrid`` starts the W / W+ projection from
the prediction with a gentler schedule (the code is already close: a fifth of the learning
rate, no code noise).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentedit.workers.methods.encoder import Encoder, Sample, TrainReport, psnr, train_encoder
from latentedit.workers.methods.inversion.optim import Steps
from latentedit.workers.methods.style_projection import (
    LR,
    Progress,
    StyleInversion,
    project_steps,
)
from latentedit.workers.methods.style_tuning import CodeRenderer, renderer
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.spaces import spaces_of

HYBRID_LR = LR / 5  # the encoder's code is close: small steps refine it
HYBRID_NOISE = 0.0


def w_sampler(model: LoadedModel, r: CodeRenderer) -> Sample:
    """Training codes of a W encoder: (n, generator) -> whitened mapped w (n, w_dim), CPU."""

    @torch.no_grad()
    def sample(n: int, gen: torch.Generator) -> Tensor:
        z = torch.randn(n, model.latent_dim, generator=gen)
        w = model.generator.mapping(z.to(model.device, model.dtype)).float()
        return r.whiten(w).cpu()

    return sample


def train_w_encoder(model: LoadedModel, **kwargs: Any) -> tuple[Encoder, TrainReport]:
    """Train ``model``'s W encoder; ``kwargs`` go to :func:`.encoder.train_encoder`."""
    r = renderer(model, "w", whitened=True)
    return train_encoder(
        r, spaces_of(model).w_dim, model.spec.resolution, sample=w_sampler(model, r), **kwargs
    )


@torch.no_grad()
def encode(model: LoadedModel, encoder: Encoder, targets: Tensor, space: str) -> Tensor:
    """targets (N, 3, R, R) in [-1, 1] -> the encoder's codes of ``space``: w (N, w_dim), or
    the same w in every layer for w+ (N, num_ws, w_dim)."""
    r = renderer(model, "w", whitened=True)
    w = r.codes(encoder(targets.to(model.device).float()))
    return w if space == "w" else w[:, None].repeat(1, spaces_of(model).num_ws, 1)


def encode_steps(
    model: LoadedModel,
    targets: Tensor,
    space: str,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    encoder: Encoder,
) -> Steps[StyleInversion]:
    """The encoder's codes in one pass (no optimisation steps; arguments as
    :func:`.style_projection.project_steps`, ``steps`` / ``seed`` unused)."""
    codes = encode(model, encoder, targets, space)
    with torch.no_grad():
        image = model.synthesize(codes, space)
        p = psnr(image, targets.to(image.device)).cpu().numpy()
    if progress is not None:
        progress(0, 0, 0.0, p)
    return StyleInversion(codes.cpu().numpy().astype(np.float32), p, 0)
    yield  # a generator (the session runs it like the others), with no steps


def hybrid_steps(
    model: LoadedModel, targets: Tensor, space: str, *args: Any, encoder: Encoder
) -> Steps[StyleInversion]:
    """The W / W+ projection started from the encoder's codes; ``args`` (steps, seed,
    progress, stop) as :func:`.style_projection.project_steps` takes them."""
    start = encode(model, encoder, targets, space)
    return project_steps(
        model, targets, space, *args, start=start, lr=HYBRID_LR, noise=HYBRID_NOISE
    )


#: the step generators of the W / W+ methods that need an encoder, by method
ENCODER_METHODS: dict[str, Callable[..., Steps[StyleInversion]]] = {
    "encoder": encode_steps,
    "hybrid": hybrid_steps,
}


def with_encoder(method: str, encoder: Encoder) -> Callable[..., Steps[StyleInversion]]:
    """The step generator of an encoder method, bound to ``encoder``."""
    return partial(ENCODER_METHODS[method], encoder=encoder)
