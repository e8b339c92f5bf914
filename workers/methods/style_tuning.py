"""Pivotal tuning in W and W+ (PTI, Roich et al. 2022) for style generators.

The pivot is a W / W+ projection (:mod:`.style_projection`, a quarter of the step budget);
then per-image deltas of the synthesis network's modulated convolutions are tuned so the
pivot renders the photo, with the inversion package's tuner and its difference-locality
term: codes at a fixed distance from the pivot must move as the untuned generator moves
them, so edits of the tuned photo act as edits of generated faces do.

The tuner works on flat codes u (N, k * w_dim) whitened by the spread of mapped w
(:class:`CodeRenderer`): w = w_avg + (spread / sqrt(w_dim)) u, so one locality distance and
one learning rate fit z and w alike. Deltas are keyed by the generator's own parameter
names (``convs.0.conv.weight.u`` ...), so a tuned generator renders codes of any space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from latentedit.workers.methods.inversion.metrics import edit_error as metric_edit_error
from latentedit.workers.methods.inversion.optim import Run, Steps
from latentedit.workers.methods.inversion.tuner import render
from latentedit.workers.methods.inversion.tuning import TuneConfig, tune_steps
from latentedit.workers.methods.style_projection import Progress, project_steps, w_statistics
from latentedit.workers.models.contract import GeneratorInfo
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.spaces import spaces_of

#: what PTI tunes here: every modulated convolution (low rank 8: ~2 MB fp16 per image at
#: 256 px config F, instead of a 60 MB copy of the synthesis network)
STYLE_TUNE = TuneConfig(steps=200, lr=3e-2, rank=8, skip_first=0, locality_weight=2.0)
PIVOT_SHARE = 0.25  # of the step budget, spent on the W / W+ pivot
_PREFIX = "g."


class CodeRenderer(nn.Module):
    """A style generator as a renderer of flat codes of one space.

    forward(u (N, k * w_dim)) -> images (N, C, R, R) in [-1, 1], with k = 1 for w and
    num_ws for w+; the code is ``mean + scale * u`` (mean (w_dim,), scale a float).
    """

    mean: Tensor

    def __init__(self, generator: nn.Module, space: str, mean: Tensor, scale: float) -> None:
        super().__init__()
        if space not in ("w", "w+"):
            raise ValueError(f"space must be 'w' or 'w+', not {space!r}")
        self.g = generator
        self.space = space
        self.register_buffer("mean", mean.detach().float().reshape(-1), persistent=False)
        self.scale = scale
        info: GeneratorInfo = getattr(generator, "info")  # noqa: B009 (nn.Module typing)
        self.num_ws, self.w_dim = info.num_ws, info.w_dim

    def codes(self, u: Tensor) -> Tensor:
        """Flat u (N, k * w_dim) -> w (N, w_dim) or w+ (N, num_ws, w_dim)."""
        w = u.float().reshape(len(u), -1, self.w_dim) * self.scale + self.mean.to(u.device)
        return w[:, 0] if self.space == "w" else w

    def whiten(self, codes: Tensor) -> Tensor:
        """w (N, w_dim) or w+ (N, num_ws, w_dim) -> flat u (N, k * w_dim)."""
        return ((codes.float() - self.mean.to(codes.device)) / self.scale).reshape(len(codes), -1)

    def locality_codes(
        self, u: Tensor, distance: float, generator: torch.Generator | None = None
    ) -> Tensor:
        """Codes at ``distance`` from each pivot along a random w direction, the same in
        every layer (as w+ edits move a code): u (N, k * w_dim) -> (N, k * w_dim)."""
        n = torch.randn(len(u), self.w_dim, generator=generator).to(u.device, u.dtype)
        n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return u + distance * n.repeat(1, u.shape[1] // self.w_dim)

    def forward(self, u: Tensor) -> Tensor:
        w = self.codes(u)
        ws = w[:, None].expand(-1, self.num_ws, -1) if self.space == "w" else w
        dtype = next(self.g.parameters()).dtype
        return self.g.synthesis(ws.to(dtype)).float()  # type: ignore[operator]


def to_generator_names(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    """A :class:`CodeRenderer`'s delta keyed by the generator's own parameter names."""
    return {k.removeprefix(_PREFIX): v for k, v in delta.items()}


def _prefixed(deltas: list[dict[str, Tensor] | None]) -> list[dict[str, Tensor] | None]:
    """Deltas keyed by generator names -> keyed as a :class:`CodeRenderer`'s parameters."""
    return [None if d is None else {_PREFIX + k: v for k, v in d.items()} for d in deltas]


def renderer(model: LoadedModel, space: str, whitened: bool = False) -> CodeRenderer:
    """The model's :class:`CodeRenderer` for ``space``: raw codes, or whitened ones (one
    per loaded model, space and kind, so tuned renders reuse one private copy of it)."""
    key = ("code_renderer", space, whitened)
    if key not in model.memo:
        if whitened:
            mean, spread = w_statistics(model)
            scale = spread / math.sqrt(len(mean))
        else:
            mean, scale = torch.zeros(spaces_of(model).w_dim, device=model.device), 1.0
        model.memo[key] = CodeRenderer(model.generator, space, mean, scale)
    r: CodeRenderer = model.memo[key]
    return r


def render_tuned(
    model: LoadedModel, codes: Tensor, space: str, deltas: list[dict[str, Tensor] | None]
) -> Tensor:
    """Codes of ``space`` (N, *shape) with per-row deltas (generator names, None: untuned)
    -> images (N, C, R, R) float32 in [-1, 1]; the shared generator is not modified.

    w codes render as w+ (the code in every layer), so every W / W+ render with deltas
    shares one private copy of the generator (:func:`.inversion.deltas.shared_tuner`)."""
    if space == "z":
        return render(model.generator, codes.to(model.device), None, deltas)
    codes = codes.to(model.device)
    if space == "w":
        codes = codes[:, None].expand(-1, spaces_of(model).num_ws, -1)
    flat = codes.reshape(len(codes), -1)
    return render(renderer(model, "w+"), flat, None, _prefixed(deltas))


def edit_error(
    model: LoadedModel,
    codes: np.ndarray,
    space: str,
    deltas: list[dict[str, Tensor] | None],
    directions: Tensor,
) -> np.ndarray:
    """Relative edit error (:func:`.inversion.metrics.edit_error`) of W / W+ results: edits
    of alpha = +-2 in whitened units along unit w ``directions`` (K, w_dim), in every layer
    for w+ (as w+ edits move a code), rendered with and without each row's delta.

    codes: (N, w_dim) or (N, num_ws, w_dim); -> (N,) float (0 for rows without a delta).
    """
    if all(d is None for d in deltas):
        return np.zeros(len(codes))
    r = renderer(model, space, whitened=True)
    u = r.whiten(torch.from_numpy(codes).to(model.device))
    moves = directions.float().to(u.device).repeat(1, u.shape[1] // directions.shape[1])
    err = metric_edit_error(lambda c: render_tuned(model, r.codes(c), space, deltas), r, u, moves)
    return np.asarray(err.cpu().numpy(), dtype=np.float64)


@dataclass
class StyleTuning:
    codes: np.ndarray  # (N, w_dim) or (N, num_ws, w_dim) float32: the pivots
    deltas: list[dict[str, Tensor]]  # per image, generator parameter names, fp16
    psnr: np.ndarray  # (N,) dB of the tuned render (float, peak-to-peak 2)
    steps: int  # pivot and tuning steps run


def tune_style_steps(
    model: LoadedModel,
    targets: Tensor,
    space: str,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    cfg: TuneConfig = STYLE_TUNE,
) -> Steps[StyleTuning]:
    """PTI: a W / W+ pivot (``PIVOT_SHARE`` of ``steps``), then tuning for the rest.

    targets (N, 3, H, W) in [-1, 1]; ``progress`` / ``stop`` as for
    :func:`.style_projection.project_steps` (step counts run over both stages).
    """
    pivot_steps = max(1, round(steps * PIVOT_SHARE))
    tune_budget = max(1, steps - pivot_steps)

    def pivot_progress(step: int, total: int, loss: float, psnr: np.ndarray) -> bool:
        return progress is not None and progress(step, steps, loss, psnr)

    pivot = yield from project_steps(model, targets, space, pivot_steps, seed, pivot_progress, stop)
    if stop is not None and stop():
        return StyleTuning(pivot.codes, [], pivot.psnr, pivot.steps)
    r = renderer(model, space, whitened=True)
    u = r.whiten(torch.from_numpy(pivot.codes).to(model.device))

    def tune_progress(step: int, loss: float, psnr: np.ndarray) -> bool:
        if stop is not None and stop():
            return False
        return not (progress is not None and progress(step, steps, loss, psnr))

    run = Run(progress=tune_progress, step_offset=pivot.steps)
    res = yield from tune_steps(r, targets.to(model.device).float(), u, cfg, run, steps=tune_budget)
    deltas = [to_generator_names(d) for d in res.deltas or []]
    return StyleTuning(
        pivot.codes, deltas, res.psnr.cpu().numpy(), pivot.steps + int(res.steps.max())
    )
