"""Turning a batch of Job messages for one model into JobResults.

Render jobs (Generate, Edit, ConditionalEdit) are planned one by one (latents
worked out, directions looked up), then fused into one generator pass for the
whole batch and split back. Edits are relative (z + t alpha n) or absolute
(signed distance t alpha from the boundary through the origin). Invert jobs
with the same step budget are optimised together. A job that fails gets its
own error; the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from latentedit import validate
from latentedit.codec import encode_image, to_tensor
from latentedit.errors import DeadlineExceeded, Internal, InvalidArgument, LatentEditError
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers import latent_math as lm
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.discovery import DISCOVER_METHODS, Discovery, ModelTools
from latentedit.workers.inverter import INVERT_METHODS, Inverter, render_extras
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.scorers import Scorer, scorers_for

__all__ = ["DISCOVER_METHODS", "HEAVY_KINDS", "INVERT_METHODS", "JobRunner", "error_result"]

log = logging.getLogger(__name__)

RENDER_KINDS = ("generate", "edit", "conditional_edit")
# Jobs that take seconds or more run in the worker's heavy lane, beside the render lane.
HEAVY_KINDS = ("invert", "discover", "analyze")


Publish = Callable[[jobs_pb2.Job, jobs_pb2.JobResult], Awaitable[None]]


@dataclass
class RenderPlan:
    """Latents to render for one job and how to turn the images into its result."""

    latents: np.ndarray  # (M, d) float32
    finish: Callable[[np.ndarray], jobs_pb2.JobResult]  # uint8 (M, H, W, 3) -> result
    render: Callable[[], np.ndarray] | None = None  # codes with extras render on their own


def error_result(job_id: str, err: LatentEditError) -> jobs_pb2.JobResult:
    return jobs_pb2.JobResult(
        job_id=job_id, error=jobs_pb2.JobError(code=err.code.value[0], message=err.message)
    )


def _encode_all(pixels: np.ndarray, fmt: pb.ImageFormat) -> list[pb.Image]:
    return [encode_image(p, fmt) for p in pixels]


class JobRunner:
    """Runs batches of jobs against loaded models and the direction store."""

    def __init__(
        self,
        models: dict[str, LoadedModel],
        store: DirectionStore,
        limits: Limits,
        extra_scorers: dict[str, dict[str, Scorer]] | None = None,
    ):
        self.models = models
        self.store = store
        self.limits = limits
        self.tools = {
            name: ModelTools(
                m, {**scorers_for(name, m.generator), **(extra_scorers or {}).get(name, {})}
            )
            for name, m in models.items()
        }
        self.discovery = Discovery(self.tools, store, limits)
        self.inverter = Inverter(store.redis, limits)

    async def run_batch(self, model_name: str, jobs: list[jobs_pb2.Job], publish: Publish) -> None:
        """Run ``jobs`` of one model and ``publish`` each result as soon as it is ready.

        Never raises for a bad job: it gets an error result and the rest go on.
        """
        model = self.models[model_name]
        now_ms = time.time() * 1000
        render: list[tuple[jobs_pb2.Job, RenderPlan]] = []
        invert: list[jobs_pb2.Job] = []
        for job in jobs:
            kind = job.WhichOneof("request")
            try:
                if job.deadline_unix_ms and job.deadline_unix_ms < now_ms:
                    raise DeadlineExceeded("the deadline passed while the job was queued")
                if kind in RENDER_KINDS:
                    render.append((job, await self._plan(model, job)))
                elif kind == "invert":
                    invert.append(job)
                else:
                    await publish(job, await self._single(model, job))
            except LatentEditError as err:
                await publish(job, error_result(job.id, err))
            except Exception as exc:  # a bug must fail its job, not the worker
                log.exception("job %s (%s) failed", job.id, kind)
                await publish(job, error_result(job.id, Internal(f"{kind} failed: {exc!r}")))
        if render:
            for job, result in await self._render_fused(model, render):
                await publish(job, result)
        if invert:
            await self._invert(model, invert, publish)

    # ---- render jobs -------------------------------------------------------------------

    async def _render_fused(
        self, model: LoadedModel, plans: list[tuple[jobs_pb2.Job, RenderPlan]]
    ) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult]]:
        """One generator pass for all plans; on failure each plan alone (only a bad one fails)."""
        fused = [i for i, (_, p) in enumerate(plans) if p.render is None]
        chunks: list[np.ndarray | None] = [None] * len(plans)
        try:
            if fused:
                counts = [len(plans[i][1].latents) for i in fused]
                pixels = await asyncio.to_thread(
                    model.render, np.concatenate([plans[i][1].latents for i in fused])
                )
                for i, part in zip(fused, np.split(pixels, np.cumsum(counts)[:-1]), strict=True):
                    chunks[i] = part
        except Exception:
            log.exception("fused render of %d jobs failed; rendering them one by one", len(fused))
            fused = []
        for i, (_, plan) in enumerate(plans):
            if i in fused:
                continue
            render = plan.render or partial(model.render, plan.latents)
            try:
                chunks[i] = await asyncio.to_thread(render)
            except Exception:
                log.exception("render failed")
        out = []
        for (job, plan), chunk in zip(plans, chunks, strict=True):
            try:
                if chunk is None:
                    raise Internal("rendering failed")
                out.append((job, await asyncio.to_thread(plan.finish, chunk)))
            except LatentEditError as err:
                out.append((job, error_result(job.id, err)))
            except Exception as exc:
                log.exception("finishing job %s failed", job.id)
                out.append((job, error_result(job.id, Internal(f"encoding failed: {exc!r}"))))
        return out

    async def _plan(self, model: LoadedModel, job: jobs_pb2.Job) -> RenderPlan:
        kind = job.WhichOneof("request")
        if kind == "generate":
            return await self._plan_generate(model, job.id, job.generate)
        if kind == "edit":
            return await self._plan_edit(model, job.id, job.edit)
        return await self._plan_conditional(model, job.id, job.conditional_edit)

    async def _plan_generate(
        self, model: LoadedModel, job_id: str, req: pb.GenerateRequest
    ) -> RenderPlan:
        source = validate.generate(req, model.latent_dim, self.limits)
        z = (
            source
            if isinstance(source, np.ndarray)
            else lm.seeded_latents(source, model.latent_dim)
        )
        render = await self._extras_renderer(model, req.extras, len(z), 1)

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                generate=pb.GenerateResponse(
                    model_version=model.version,
                    latents=to_tensor(z),
                    images=_encode_all(pixels, req.image_format),
                ),
            )

        return RenderPlan(z, finish, render and partial(render, z))

    async def _extras_renderer(
        self, model: LoadedModel, extras: pb.CodeExtras, rows: int, frames: int
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        """A renderer for codes (rows * frames, d) carrying residuals / tuning deltas, or None."""
        residual, ids = validate.extras(extras, rows)
        if residual is None and not any(ids):
            return None
        deltas = await self.inverter.deltas(model, ids)
        rep_residual = None if residual is None else np.repeat(residual, frames, axis=0)
        rep_deltas = [d for d in deltas for _ in range(frames)]
        return partial(render_extras, model, residual=rep_residual, deltas=rep_deltas)

    async def _plan_edit(self, model: LoadedModel, job_id: str, req: pb.EditRequest) -> RenderPlan:
        z, names, strengths, ts = validate.edit(req, model.latent_dim, self.limits)
        dirs = await self.store.get_many(model.name, names)
        render = await self._extras_renderer(model, req.extras, len(z), len(ts))
        vectors = np.stack([d.vector for d in dirs])
        absolute = np.array([e.mode == pb.EDIT_MODE_ABSOLUTE for e in req.edits])
        offset = lm.combine(vectors[~absolute], strengths[~absolute])
        edited = lm.apply_edit(z, offset, ts)
        if absolute.any():
            # Absolute terms hold exactly in the result: distance t * alpha from each boundary.
            targets = ts[None, :, None] * strengths[absolute][None, None, :]
            edited = lm.place_at_distances(
                edited,
                vectors[absolute],
                np.broadcast_to(targets, (*edited.shape[:2], int(absolute.sum()))),
            )

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                edit=pb.EditResponse(
                    model_version=model.version,
                    latents=to_tensor(edited),
                    images=_encode_all(pixels, req.image_format),
                    multipliers=ts.tolist(),
                    directions=[d.meta for d in dirs],
                ),
            )

        flat = edited.reshape(-1, model.latent_dim)
        return RenderPlan(flat, finish, render and partial(render, flat))

    async def _plan_conditional(
        self, model: LoadedModel, job_id: str, req: pb.ConditionalEditRequest
    ) -> RenderPlan:
        z, names, strength, ts = validate.conditional_edit(req, model.latent_dim, self.limits)
        render = await self._extras_renderer(model, req.extras, len(z), len(ts))
        dirs = await self.store.get_many(model.name, names)
        conditions = (
            np.stack([d.vector for d in dirs[1:]])
            if len(dirs) > 1
            else np.zeros((0, model.latent_dim))
        )
        projected = lm.project_out(dirs[0].vector, conditions)
        edited = lm.apply_edit(z, strength * projected, ts)
        cos_conditions = lm.cosines(projected, conditions) if len(conditions) else np.zeros(0)
        cos_primary = float(lm.cosines(projected, dirs[0].vector)[0])

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                conditional_edit=pb.ConditionalEditResponse(
                    model_version=model.version,
                    latents=to_tensor(edited),
                    images=_encode_all(pixels, req.image_format),
                    multipliers=ts.tolist(),
                    projected_direction=to_tensor(projected.astype(np.float32)),
                    condition_cosines=cos_conditions.tolist(),
                    primary_cosine=cos_primary,
                ),
            )

        flat = edited.reshape(-1, model.latent_dim)
        return RenderPlan(flat, finish, render and partial(render, flat))

    # ---- inversion -----------------------------------------------------------------------

    async def _invert(self, model: LoadedModel, jobs: list[jobs_pb2.Job], publish: Publish) -> None:
        for job, outcome in await self.inverter.run(model, jobs, publish):
            if isinstance(outcome, LatentEditError):
                result = error_result(job.id, outcome)
            elif isinstance(outcome, Exception):
                result = error_result(job.id, Internal(f"inversion failed: {outcome!r}"))
            else:
                result = outcome
            await publish(job, result)

    # ---- discovery and the direction store --------------------------------------------

    async def _single(self, model: LoadedModel, job: jobs_pb2.Job) -> jobs_pb2.JobResult:
        kind = job.WhichOneof("request")
        if kind == "discover":
            resp = await self.discovery.discover(model.name, job.discover)
            return jobs_pb2.JobResult(job_id=job.id, discover=resp)
        if kind == "score":
            score = await self.discovery.score(model.name, job.score)
            return jobs_pb2.JobResult(job_id=job.id, score=score)
        if kind == "analyze":
            report = await self.discovery.analyze(model.name, job.analyze)
            return jobs_pb2.JobResult(job_id=job.id, analyze=report)
        if kind == "list_directions":
            dirs = await self.store.list(model.name, job.list_directions.include_vectors)
            return jobs_pb2.JobResult(
                job_id=job.id, list_directions=pb.ListDirectionsResponse(directions=dirs)
            )
        if kind == "get_direction":
            _, name = validate.direction_id(job.get_direction.id)
            return jobs_pb2.JobResult(
                job_id=job.id, direction=await self.store.get(model.name, name)
            )
        if kind == "delete_direction":
            _, name = validate.direction_id(job.delete_direction.id)
            deleted = await self.store.delete(model.name, name)
            return jobs_pb2.JobResult(
                job_id=job.id, delete_direction=pb.DeleteDirectionResponse(deleted=deleted)
            )
        if kind == "put_direction":
            req = job.put_direction
            name, vector = validate.put_direction(req, model.latent_dim)
            msg = await self.store.put(
                model.name, name, vector, req.method or "import", model.version, dict(req.params)
            )
            return jobs_pb2.JobResult(job_id=job.id, direction=msg)
        raise InvalidArgument(f"unknown job kind {kind!r}")
