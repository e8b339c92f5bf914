"""Render jobs (Generate, Edit, ConditionalEdit) planned one by one: the codes to render and
how to turn their images into the job's result.

Codes are worked out here (seeds mapped, directions looked up and applied); the runner
(:mod:`.jobs`) then fuses the plans of a batch into one generator pass per latent space.
Edits are relative (z + t alpha n) or absolute (signed distance t alpha from the boundary
through the origin); in w+ each term moves only its layer range. Codes that carry extras
(an inversion's residual or tuning delta) render on their own (``RenderPlan.render``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from latentedit import validate, validate_spaces
from latentedit.codec import encode_image, to_tensor
from latentedit.errors import InvalidArgument
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers import latent_math as lm
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.inverter import Inverter, render_extras
from latentedit.workers.learned.editing import LearnedSets, is_learned
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.spaces import seeded_codes, spaces_of

Hop = Callable[..., Awaitable[Any]]  # fn, *args -> fn(*args) in the render thread


@dataclass
class RenderPlan:
    """Latents to render for one job and how to turn the images into its result."""

    latents: np.ndarray  # (M, *code shape) float32 codes of `space`
    finish: Callable[[np.ndarray], jobs_pb2.JobResult]  # uint8 (M, H, W, 3) -> result
    render: Callable[[], np.ndarray] | None = None  # codes with extras render on their own
    space: str = "z"


def encode_all(pixels: np.ndarray, fmt: pb.ImageFormat) -> list[pb.Image]:
    return [encode_image(p, fmt) for p in pixels]


class Planner:
    """Plans render jobs of any served model; ``hop`` runs a function in the render thread."""

    def __init__(
        self,
        limits: Limits,
        store: DirectionStore,
        learned: LearnedSets,
        inverter: Inverter,
        hop: Hop,
    ) -> None:
        self.limits = limits
        self.store = store
        self.learned = learned
        self.inverter = inverter
        self._hop = hop

    async def plan(self, model: LoadedModel, job: jobs_pb2.Job) -> RenderPlan:
        """The render plan of a Generate, Edit or ConditionalEdit job (errors: its own)."""
        kind = job.WhichOneof("request")
        if kind == "generate":
            return await self._plan_generate(model, job.id, job.generate)
        if kind == "edit":
            return await self._plan_edit(model, job.id, job.edit)
        return await self._plan_conditional(model, job.id, job.conditional_edit)

    async def _plan_generate(
        self, model: LoadedModel, job_id: str, req: pb.GenerateRequest
    ) -> RenderPlan:
        space, shape = validate_spaces.space_request(req, spaces_of(model))
        source = validate.generate(req, shape, self.limits)
        if isinstance(source, np.ndarray):
            z = source
        else:
            psi = req.truncation_psi if req.HasField("truncation_psi") else None
            seeded = lm.seeded_latents(source, model.latent_dim)
            z = (
                seeded  # z: nothing to map, no thread hop
                if space == "z"
                else await self._hop(seeded_codes, model, seeded, space, psi)
            )
        render = await self._extras_renderer(model, req.extras, len(z), 1, space)

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                generate=pb.GenerateResponse(
                    model_version=model.version,
                    latents=to_tensor(z),
                    images=encode_all(pixels, req.image_format),
                ),
            )

        return RenderPlan(z, finish, render and partial(render, z), space)

    async def _extras_renderer(
        self, model: LoadedModel, extras: pb.CodeExtras, rows: int, frames: int, space: str
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        """A renderer for codes (rows * frames, *shape of ``space``) carrying residuals (z) /
        tuning deltas (any space), or None."""
        residual, ids = validate.extras(extras, rows)
        if residual is None and not any(ids):
            return None
        deltas = await self.inverter.deltas(model, ids)
        rep_residual = None if residual is None else np.repeat(residual, frames, axis=0)
        rep_deltas = [d for d in deltas for _ in range(frames)]
        return partial(render_extras, model, residual=rep_residual, deltas=rep_deltas, space=space)

    async def _plan_edit(self, model: LoadedModel, job_id: str, req: pb.EditRequest) -> RenderPlan:
        sp = spaces_of(model)
        space, shape = validate_spaces.space_request(req, sp)
        z, names, strengths, ts = validate.edit(req, shape, self.limits)
        dirs = await self.store.get_many(model.name, names)
        for d in dirs:
            validate_spaces.check_direction_space(d.meta.id, d.meta.space, space)
        render = await self._extras_renderer(model, req.extras, len(z), len(ts), space)
        vectors = np.stack([d.vector for d in dirs])
        absolute = np.array([e.mode == pb.EDIT_MODE_ABSOLUTE for e in req.edits])
        # Absolute terms hold exactly in the result: distance t * alpha from each boundary.
        targets = ts[None, :, None] * strengths[absolute][None, None, :]
        targets = np.broadcast_to(targets, (len(z), len(ts), int(absolute.sum())))
        if any(is_learned(d.meta) for d in dirs):
            if space == "w+":
                raise InvalidArgument("learned direction sets edit z or w codes, not w+")
            edited = await self.learned.edit(model.name, z, dirs, strengths, ts, absolute)
            if absolute.any():
                edited = lm.place_at_distances(edited, vectors[absolute], targets)
        elif space == "w+":
            masks = np.stack(
                [
                    validate_spaces.layer_mask(
                        e.layers or req.layers or d.meta.params.get("layers", ""),
                        sp.num_ws,
                        f"layers of {d.meta.id}",
                    )
                    for e, d in zip(req.edits, dirs, strict=True)
                ]
            )
            offset = lm.combine_layers(vectors[~absolute], strengths[~absolute], masks[~absolute])
            edited = lm.apply_edit(z, offset, ts)
            if absolute.any():
                edited = lm.place_at_distances_layers(
                    edited, vectors[absolute], targets, masks[absolute]
                )
        else:
            edited = lm.apply_edit(z, lm.combine(vectors[~absolute], strengths[~absolute]), ts)
            if absolute.any():
                edited = lm.place_at_distances(edited, vectors[absolute], targets)

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                edit=pb.EditResponse(
                    model_version=model.version,
                    latents=to_tensor(edited),
                    images=encode_all(pixels, req.image_format),
                    multipliers=ts.tolist(),
                    directions=[d.meta for d in dirs],
                ),
            )

        flat = edited.reshape(-1, *shape)
        return RenderPlan(flat, finish, render and partial(render, flat), space)

    async def _plan_conditional(
        self, model: LoadedModel, job_id: str, req: pb.ConditionalEditRequest
    ) -> RenderPlan:
        sp = spaces_of(model)
        space, shape = validate_spaces.space_request(req, sp)
        z, names, strength, ts = validate.conditional_edit(req, shape, self.limits)
        render = await self._extras_renderer(model, req.extras, len(z), len(ts), space)
        dirs = await self.store.get_many(model.name, names)
        for d in dirs:
            validate_spaces.check_direction_space(d.meta.id, d.meta.space, space)
        conditions = (
            np.stack([d.vector for d in dirs[1:]]) if len(dirs) > 1 else np.zeros((0, shape[-1]))
        )
        if any(is_learned(d.meta) for d in dirs):  # curved: projected local tangents
            if space == "w+":
                raise InvalidArgument("learned direction sets edit z or w codes, not w+")
            edited, projected, cos_conditions, cos_primary = await self.learned.conditional(
                model.name, z, dirs, strength, ts
            )
        else:
            projected = lm.project_out(dirs[0].vector, conditions)
            offset = strength * projected
            if space == "w+":
                offset = (
                    validate_spaces.layer_mask(req.layers, sp.num_ws)[:, None] * offset[None, :]
                )
            edited = lm.apply_edit(z, offset, ts)
            cos_conditions = lm.cosines(projected, conditions) if len(conditions) else np.zeros(0)
            cos_primary = float(lm.cosines(projected, dirs[0].vector)[0])

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                conditional_edit=pb.ConditionalEditResponse(
                    model_version=model.version,
                    latents=to_tensor(edited),
                    images=encode_all(pixels, req.image_format),
                    multipliers=ts.tolist(),
                    projected_direction=to_tensor(projected.astype(np.float32)),
                    condition_cosines=cos_conditions.tolist(),
                    primary_cosine=cos_primary,
                ),
            )

        flat = edited.reshape(-1, *shape)
        return RenderPlan(flat, finish, render and partial(render, flat), space)
