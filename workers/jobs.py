"""Turning a batch of Job messages for one model into JobResults.

Render jobs (Generate, Edit, ConditionalEdit) are planned one by one
(:mod:`.render_plans`), then fused into one generator pass for the whole batch and
split back (one pass per latent space). Invert jobs join the inverter's continuous
batches (z) or are optimised together per space and step budget (w, w+). A job that
fails gets its own error; the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

import numpy as np

from latentedit import validate, validate_spaces
from latentedit.errors import DeadlineExceeded, Internal, InvalidArgument, LatentEditError
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.direction_store import ACTING, DirectionStore
from latentedit.workers.discovery import DISCOVER_METHODS, Discovery, ModelTools
from latentedit.workers.inverter import INVERT_METHODS, Inverter
from latentedit.workers.learned.editing import LearnedSets
from latentedit.workers.learned.service import evaluate_request
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.render_plans import Planner, RenderPlan
from latentedit.workers.scorers import Scorer, scorers_for
from latentedit.workers.spaces import render_codes, spaces_of
from latentedit.workers.style_inverter import check as check_style_invert
from latentedit.workers.style_inverter import run_style_inversions
from latentedit.workers.torch_threads import with_threads

__all__ = ["DISCOVER_METHODS", "HEAVY_KINDS", "INVERT_METHODS", "JobRunner", "error_result"]

log = logging.getLogger(__name__)
T = TypeVar("T")

RENDER_KINDS = ("generate", "edit", "conditional_edit")
# Jobs that take seconds or more run in the worker's heavy lane, beside the render lane.
HEAVY_KINDS = ("invert", "discover", "analyze", "evaluate")


Publish = Callable[[jobs_pb2.Job, jobs_pb2.JobResult], Awaitable[None]]


def error_result(job_id: str, err: LatentEditError) -> jobs_pb2.JobResult:
    return jobs_pb2.JobResult(
        job_id=job_id, error=jobs_pb2.JobError(code=err.code.value[0], message=err.message)
    )


def _finish_all(
    plans: list[tuple[jobs_pb2.Job, RenderPlan]], chunks: list[np.ndarray | None]
) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult]]:
    """Each plan's result from its pixels (encoding happens here); a failure fails its job only."""
    out = []
    for (job, plan), chunk in zip(plans, chunks, strict=True):
        try:
            if chunk is None:
                raise Internal("rendering failed")
            out.append((job, plan.finish(chunk)))
        except LatentEditError as err:
            out.append((job, error_result(job.id, err)))
        except Exception:
            log.exception("finishing job %s failed", job.id)
            out.append((job, error_result(job.id, Internal("encoding failed (see worker log)"))))
    return out


def _render_and_finish(
    model: LoadedModel,
    plans: list[tuple[jobs_pb2.Job, RenderPlan]],
    rendered: Callable[[], object] | None,
) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult]] | None:
    """(In a worker thread.) Fused render of plans in one space, ``rendered()`` (thread-safe),
    encode; None if the render failed."""
    try:
        counts = [len(p.latents) for _, p in plans]
        codes = np.concatenate([p.latents for _, p in plans])
        pixels = render_codes(model, codes, plans[0][1].space)
        chunks: list[np.ndarray | None] = list(np.split(pixels, np.cumsum(counts)[:-1]))
    except Exception:
        log.exception("fused render of %d jobs failed; rendering them one by one", len(plans))
        return None
    finally:
        if rendered is not None:
            rendered()
    return _finish_all(plans, chunks)


class JobRunner:
    """Runs batches of jobs against loaded models and the direction store."""

    def __init__(
        self,
        models: dict[str, LoadedModel],
        store: DirectionStore,
        limits: Limits,
        extra_scorers: dict[str, dict[str, Scorer]] | None = None,
        render_pool: Executor | None = None,
        render_threads: int = 0,
    ):
        """``render_pool``: where the hot path renders and encodes and inversion sessions
        run their rounds (None: asyncio's default executor and session threads); a worker
        gives it its one compute thread (:mod:`.torch_threads`). ``render_threads``: the
        intra-op threads of the hot path's renders there (0: the thread's own count, which
        inversion rounds keep)."""
        self.render_pool = render_pool
        self.render_threads = render_threads
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
        self.inverter = Inverter(store.redis, limits, executor=render_pool)
        self.learned = LearnedSets(store)  # directions of learned (nonlinear) sets
        self.planner = Planner(limits, store, self.learned, self.inverter, self._hop)

    async def run_batch(
        self,
        model_name: str,
        jobs: list[jobs_pb2.Job],
        publish: Publish,
        rendered: Callable[[], None] | None = None,
    ) -> None:
        """Run ``jobs`` of one model and ``publish`` each result as soon as it is ready.

        ``rendered()`` is called once the generator passes are done (before encoding), so the
        caller can start the next batch's render while this one encodes. Never raises for a bad
        job: it gets an error result and the rest go on.
        """
        model = self.models[model_name]
        now_ms = time.time() * 1000
        render: list[tuple[jobs_pb2.Job, RenderPlan]] = []
        invert: list[jobs_pb2.Job] = []
        style_invert: list[jobs_pb2.Job] = []  # to w / w+ codes
        for job in jobs:
            kind = job.WhichOneof("request")
            try:
                if job.deadline_unix_ms and job.deadline_unix_ms < now_ms:
                    raise DeadlineExceeded("the deadline passed while the job was queued")
                if kind in RENDER_KINDS:
                    render.append((job, await self.planner.plan(model, job)))
                elif (
                    kind == "invert"
                    and validate_spaces.space(job.invert.space, spaces_of(model)) != "z"
                ):
                    w_encoder = self.inverter.encoder(model, "w")
                    check_style_invert(job.invert, model, self.limits, w_encoder)
                    style_invert.append(job)
                elif kind == "invert":
                    invert.append(job)
                else:
                    ACTING.set((job.caller, job.caller_admin))  # direction owners (door)
                    await publish(job, await self._single(model, job))
            except LatentEditError as err:
                await publish(job, error_result(job.id, err))
            except Exception:  # a bug must fail its job, not the worker
                log.exception("job %s (%s) failed", job.id, kind)
                await publish(
                    job, error_result(job.id, Internal(f"{kind} failed (see worker log)"))
                )
        if render:
            for job, result in await self._render_fused(model, render, rendered):
                await publish(job, result)
        elif rendered is not None:
            rendered()
        if invert:
            await self._invert(model, invert, publish)
        if style_invert:
            try:
                outcomes = await run_style_inversions(
                    model,
                    style_invert,
                    self.limits,
                    publish,
                    self.store.redis,
                    partial(self.inverter.session, model),
                    self.inverter.encoder(model, "w"),
                )
                for job, outcome in zip(style_invert, outcomes, strict=True):
                    failed = isinstance(outcome, LatentEditError)
                    await publish(job, error_result(job.id, outcome) if failed else outcome)
            except LatentEditError as err:
                for job in style_invert:
                    await publish(job, error_result(job.id, err))
            except Exception:
                log.exception("w / w+ inversion failed")
                for job in style_invert:
                    await publish(
                        job, error_result(job.id, Internal("inversion failed (see worker log)"))
                    )

    # ---- render jobs -------------------------------------------------------------------

    async def _render_fused(
        self,
        model: LoadedModel,
        plans: list[tuple[jobs_pb2.Job, RenderPlan]],
        rendered: Callable[[], None] | None = None,
    ) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult]]:
        """One generator pass for all plans; on failure each plan alone (only a bad one fails)."""
        if all(p.render is None for _, p in plans) and len({p.space for _, p in plans}) == 1:
            # The common case in one thread hop: render, signal ``rendered``, encode.
            loop = asyncio.get_running_loop()
            signal = rendered and partial(loop.call_soon_threadsafe, rendered)
            done = await self._hop(_render_and_finish, model, plans, signal)
            if done is not None:
                return done
            rendered = None  # already signalled
        fused = [i for i, (_, p) in enumerate(plans) if p.render is None]
        chunks: list[np.ndarray | None] = [None] * len(plans)
        try:
            for space in sorted({plans[i][1].space for i in fused}):
                group = [i for i in fused if plans[i][1].space == space]
                counts = [len(plans[i][1].latents) for i in group]
                pixels = await self._hop(
                    render_codes,
                    model,
                    np.concatenate([plans[i][1].latents for i in group]),
                    space,
                )
                for i, part in zip(group, np.split(pixels, np.cumsum(counts)[:-1]), strict=True):
                    chunks[i] = part
        except Exception:
            log.exception("fused render of %d jobs failed; rendering them one by one", len(fused))
            fused = [i for i in fused if chunks[i] is not None]
        for i, (_, plan) in enumerate(plans):
            if i in fused:
                continue
            render = plan.render or partial(render_codes, model, plan.latents, plan.space)
            try:
                chunks[i] = await self._hop(render)
            except Exception:
                log.exception("render failed")
        if rendered is not None:
            rendered()
        # All jobs' encodings in one thread hop: per-hop overhead is per batch, not per job.
        return await self._hop(_finish_all, plans, chunks)

    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the render thread, with the hot path's intra-op threads."""
        return await asyncio.get_running_loop().run_in_executor(
            self.render_pool, with_threads, self.render_threads, fn, *args
        )

    # ---- inversion -----------------------------------------------------------------------

    async def _invert(self, model: LoadedModel, jobs: list[jobs_pb2.Job], publish: Publish) -> None:
        async for job, outcome in self.inverter.stream(model, jobs, publish):
            if isinstance(outcome, LatentEditError):
                result = error_result(job.id, outcome)
            elif isinstance(outcome, Exception):
                log.error("inversion of job %s failed: %r", job.id, outcome)
                result = error_result(job.id, Internal("inversion failed (see worker log)"))
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
        if kind == "evaluate":  # learned: the curvilinear paper's measures
            evaluation = await evaluate_request(
                self.tools[model.name], self.store, self.learned, job.evaluate, self.limits
            )
            return jobs_pb2.JobResult(job_id=job.id, evaluate=evaluation)
        if kind == "list_directions":
            req_list = job.list_directions
            space = validate_spaces.direction_space_filter(req_list.space)
            dirs = await self.store.list(model.name, req_list.include_vectors, space)
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
            sp = spaces_of(model)
            space = validate_spaces.direction_space(validate_spaces.space(req.space, sp))
            name, vector = validate.put_direction(req, sp.direction_dim(space))
            msg = await self.store.put(
                model.name,
                name,
                vector,
                req.method or "import",
                model.version,
                dict(req.params),
                space=space,
            )
            return jobs_pb2.JobResult(job_id=job.id, direction=msg)
        raise InvalidArgument(f"unknown job kind {kind!r}")
