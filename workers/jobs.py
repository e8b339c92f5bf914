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

import numpy as np
import torch

from latentedit import validate
from latentedit.codec import decode_image, encode_image, to_tensor
from latentedit.errors import DeadlineExceeded, Internal, InvalidArgument, LatentEditError
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers import latent_math as lm
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.discovery import DISCOVER_METHODS, Discovery, ModelTools
from latentedit.workers.methods import invert as inv
from latentedit.workers.models.runtime import LoadedModel, from_uint8, to_uint8
from latentedit.workers.scorers import Scorer, scorers_for

__all__ = ["DISCOVER_METHODS", "HEAVY_KINDS", "INVERT_METHODS", "JobRunner", "error_result"]

log = logging.getLogger(__name__)

RENDER_KINDS = ("generate", "edit", "conditional_edit")
# Jobs that take seconds or more run in the worker's heavy lane, beside the render lane.
HEAVY_KINDS = ("invert", "discover", "analyze")
INVERT_METHODS = ("optimize",)


Publish = Callable[[jobs_pb2.Job, jobs_pb2.JobResult], Awaitable[None]]


@dataclass
class RenderPlan:
    """Latents to render for one job and how to turn the images into its result."""

    latents: np.ndarray  # (M, d) float32
    finish: Callable[[np.ndarray], jobs_pb2.JobResult]  # uint8 (M, H, W, 3) -> result


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
            by_id = {job.id: job for job in invert}
            for job_id, result in (await self._invert(model, invert)).items():
                await publish(by_id[job_id], result)

    # ---- render jobs -------------------------------------------------------------------

    async def _render_fused(
        self, model: LoadedModel, plans: list[tuple[jobs_pb2.Job, RenderPlan]]
    ) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult]]:
        """One generator pass for all plans; on failure each plan alone (only a bad one fails)."""
        counts = [len(p.latents) for _, p in plans]
        chunks: list[np.ndarray | None]
        try:
            pixels = await asyncio.to_thread(
                model.render, np.concatenate([p.latents for _, p in plans])
            )
            chunks = list(np.split(pixels, np.cumsum(counts)[:-1]))
        except Exception:
            log.exception("fused render of %d jobs failed; rendering them one by one", len(plans))
            chunks = []
            for _, plan in plans:
                try:
                    chunks.append(await asyncio.to_thread(model.render, plan.latents))
                except Exception:
                    chunks.append(None)
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
            return self._plan_generate(model, job.id, job.generate)
        if kind == "edit":
            return await self._plan_edit(model, job.id, job.edit)
        return await self._plan_conditional(model, job.id, job.conditional_edit)

    def _plan_generate(
        self, model: LoadedModel, job_id: str, req: pb.GenerateRequest
    ) -> RenderPlan:
        source = validate.generate(req, model.latent_dim, self.limits)
        z = (
            source
            if isinstance(source, np.ndarray)
            else lm.seeded_latents(source, model.latent_dim)
        )

        def finish(pixels: np.ndarray) -> jobs_pb2.JobResult:
            return jobs_pb2.JobResult(
                job_id=job_id,
                generate=pb.GenerateResponse(
                    model_version=model.version,
                    latents=to_tensor(z),
                    images=_encode_all(pixels, req.image_format),
                ),
            )

        return RenderPlan(z, finish)

    async def _plan_edit(self, model: LoadedModel, job_id: str, req: pb.EditRequest) -> RenderPlan:
        z, names, strengths, ts = validate.edit(req, model.latent_dim, self.limits)
        dirs = await self.store.get_many(model.name, names)
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

        return RenderPlan(edited.reshape(-1, model.latent_dim), finish)

    async def _plan_conditional(
        self, model: LoadedModel, job_id: str, req: pb.ConditionalEditRequest
    ) -> RenderPlan:
        z, names, strength, ts = validate.conditional_edit(req, model.latent_dim, self.limits)
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

        return RenderPlan(edited.reshape(-1, model.latent_dim), finish)

    # ---- inversion -----------------------------------------------------------------------

    async def _invert(
        self, model: LoadedModel, jobs: list[jobs_pb2.Job]
    ) -> dict[str, jobs_pb2.JobResult]:
        """Jobs with the same (steps, restarts) are optimised in one batch."""
        out: dict[str, jobs_pb2.JobResult] = {}
        groups: dict[tuple[int, int], list[tuple[jobs_pb2.Job, np.ndarray, list[inv.Crop]]]] = {}
        for job in jobs:
            try:
                cfg = self._invert_config(job.invert)
                targets, crops = self._invert_targets(model, job.invert)
                groups.setdefault((cfg.steps, cfg.restarts), []).append((job, targets, crops))
            except LatentEditError as err:
                out[job.id] = error_result(job.id, err)
        for (steps, restarts), members in groups.items():
            try:
                out.update(
                    await asyncio.to_thread(self._invert_group, model, steps, restarts, members)
                )
            except Exception as exc:
                log.exception("inversion batch failed")
                for job, _, _ in members:
                    out[job.id] = error_result(job.id, Internal(f"inversion failed: {exc!r}"))
        return out

    def _invert_config(self, req: pb.InvertRequest) -> inv.OptimizeConfig:
        validate.invert(req, list(INVERT_METHODS), self.limits)
        default = inv.OptimizeConfig()
        return inv.OptimizeConfig(
            steps=req.steps or default.steps,
            restarts=req.restarts or default.restarts,
            prior_weight=req.prior_weight or default.prior_weight,
        )

    def _invert_targets(
        self, model: LoadedModel, req: pb.InvertRequest
    ) -> tuple[np.ndarray, list[inv.Crop]]:
        targets, crops = [], []
        for i, image in enumerate(req.images):
            pixels = decode_image(image, self.limits.max_pixels, f"images[{i}]")
            target, crop = inv.preprocess(pixels, model.spec.resolution)
            targets.append(target)
            crops.append(crop)
        return np.stack(targets), crops

    def _invert_group(
        self,
        model: LoadedModel,
        steps: int,
        restarts: int,
        members: list[tuple[jobs_pb2.Job, np.ndarray, list[inv.Crop]]],
    ) -> dict[str, jobs_pb2.JobResult]:
        start = time.perf_counter()
        jobs = [m[0] for m in members]
        targets = np.concatenate([m[1] for m in members])
        # Per-job seeds and priors, so batching never changes a job's answer.
        z0 = torch.cat(
            [
                torch.randn(
                    len(t),
                    max(restarts, 1),
                    model.latent_dim,
                    generator=torch.Generator().manual_seed(job.invert.seed),
                )
                for job, t, _ in members
            ]
        )
        prior = torch.cat(
            [
                torch.full((len(t),), self._invert_config(job.invert).prior_weight)
                for job, t, _ in members
            ]
        )
        cfg = inv.OptimizeConfig(steps=steps, restarts=restarts)
        z = inv.optimize(
            model.forward,
            from_uint8(targets, model.device),
            z0.to(model.device),
            prior.to(model.device),
            cfg,
        )
        with torch.no_grad():
            recon = to_uint8(model.forward(z))
        psnr = inv.psnr_uint8(recon, targets)
        seconds = time.perf_counter() - start
        out = {}
        offset = 0
        for job, t, crops in members:
            sl = slice(offset, offset + len(t))
            offset += len(t)
            out[job.id] = jobs_pb2.JobResult(
                job_id=job.id,
                invert=pb.InvertResponse(
                    model_version=model.version,
                    latents=to_tensor(z[sl].cpu().numpy()),
                    reconstructions=_encode_all(recon[sl], job.invert.image_format),
                    psnr=psnr[sl].tolist(),
                    steps=steps,
                    seconds=seconds,
                    method="optimize",
                    crops=[pb.CropBox(left=c.left, top=c.top, size=c.size) for c in crops],
                ),
            )
        log.info("inverted %d images of %d jobs in %.1fs", len(targets), len(jobs), seconds)
        return out

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
