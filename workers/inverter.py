"""Invert jobs on the worker: every method behind one RPC, continuously batched.

Each job joins the running session of its (model, method)
(:class:`~latentedit.workers.methods.inversion.session.Session`) at the next step
boundary and its result is published as soon as its own steps are done, so a short
job never waits for a long one. Progress is fanned out per job; a job whose caller
gave up is marked in Redis (``le:cancel:{id}``) and stops at its next progress check.
With ``report_edit_error`` (always for ``auto``, which chooses by it) each image's
relative edit error along the model's top SeFa directions is measured.
Tuning deltas ("tune") are stored in Redis under an id that later
Generate / Edit / ConditionalEdit calls pass back; the per-model encoder is
loaded from ``$LATENTEDIT_HOME`` and reloaded when ``train-encoder`` writes a
new one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from redis.asyncio import Redis

from latentedit import keys, validate
from latentedit.aiotasks import stop_tasks
from latentedit.codec import decode_image, encode_image, to_tensor
from latentedit.errors import Cancelled, FailedPrecondition, NotFound
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.encoder import Encoder, effective_encoder_path, load_encoder
from latentedit.workers.methods.inversion.session import Session
from latentedit.workers.methods.preprocess import Crop, preprocess
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.methods.style_tuning import STYLE_TUNE
from latentedit.workers.methods.tuning_store import delta_from_bytes, delta_to_bytes
from latentedit.workers.models.runtime import LoadedModel, from_uint8

log = logging.getLogger(__name__)

INVERT_METHODS = inv.INVERT_METHODS
NEEDS_ENCODER = ("encoder", "hybrid")


def edit_directions(model: LoadedModel, space: str = "z") -> torch.Tensor:
    """The edit-error measure's edits, unit rows (K, d) in ``space`` (cached per model):
    the top SeFa directions of the space SeFa factorises (a DCGAN's z, a style generator's
    W for "w" / "w+"); a style generator's z, where SeFa has nothing to factorise, gets K
    seeded random orthonormal directions."""
    kind = "z" if space == "z" else "w"
    key = ("edit_directions", kind)
    if key not in model.memo:
        if kind == "z" and model.info.w_dim:
            gen = torch.Generator().manual_seed(0)
            q, _ = torch.linalg.qr(
                torch.randn(model.latent_dim, inv.EDIT_DIRECTIONS, generator=gen)
            )
            model.memo[key] = q.T.contiguous()
        else:
            weight = model.first_projection() if kind == "z" else model.sefa_weight()
            vectors, _ = sefa(weight.numpy(), inv.EDIT_DIRECTIONS)
            model.memo[key] = torch.from_numpy(vectors).float()
    directions: torch.Tensor = model.memo[key]
    return directions


def require_encoder(method: str, model: LoadedModel, space: str, encoder: Encoder | None) -> None:
    """FailedPrecondition when ``method`` needs an encoder of ``space`` and there is none."""
    if method in NEEDS_ENCODER and encoder is None:
        how = "" if space == "z" else f" --space {space}"
        raise FailedPrecondition(
            f"method {method!r} needs an encoder for {model.name} in {space!r}; "
            f"train one with `latentedit train-encoder {model.name}{how}`"
        )


DEFAULT_TARGET_PSNR = 30.0
TUNING_TTL_S = 7 * 24 * 3600
DEFAULT_STEPS = {
    "optimize": 400,
    "encoder": inv.FeedbackConfig.polish_steps,  # after the feedback passes
    "hybrid": 200,
    "extended": 300,
    "tune": 300,
    "auto": 600,
}


async def watch_cancel(
    redis: Redis, flags: list[tuple[str, threading.Event]], every_s: float = 0.5
) -> None:
    """Set each job's event once its caller gave up (``le:cancel:{id}``); polls until cancelled."""
    if not flags:
        return
    names = [keys.cancelled(job_id) for job_id, _ in flags]
    while True:
        for (_, event), flag in zip(flags, await redis.mget(names), strict=True):
            if flag is not None:
                event.set()
        await asyncio.sleep(every_s)


@dataclass
class _Member:
    job: jobs_pb2.Job
    targets: np.ndarray  # uint8 (n, r, r, 3)
    crops: list[Crop]
    steps: int
    cancelled: threading.Event = field(default_factory=threading.Event)


class Inverter:
    def __init__(
        self,
        redis: Redis,
        limits: Limits,
        max_images: int = 64,
        executor: Executor | None = None,
    ) -> None:
        """``executor``: where sessions run their rounds (None: a thread per session)."""
        self.executor = executor
        self.redis = redis
        self.limits = limits
        self._encoders: dict[tuple[str, str], tuple[float, Encoder]] = {}  # (model, z|w) ->
        self._deltas: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._sessions: dict[tuple[str, str], Session] = {}
        self.max_images = max_images

    # ---- encoder ---------------------------------------------------------------------------

    def encoder(self, model: LoadedModel, space: str = "z") -> Encoder | None:
        """The model's encoder of ``space`` ("z", or "w" for w and w+), reloaded when its
        file changes; None if there is none."""
        kind = "z" if space == "z" else "w"
        path = effective_encoder_path(model.name, model.version, kind)  # trained, else shipped
        if path is None:
            return None
        mtime = path.stat().st_mtime
        cached = self._encoders.get((model.name, kind))
        if cached is None or cached[0] != mtime:
            self._encoders[(model.name, kind)] = (mtime, load_encoder(path, model.device))
            log.info("loaded encoder %s", path)
        return self._encoders[(model.name, kind)][1]

    # ---- tuning deltas -----------------------------------------------------------------------

    async def deltas(
        self, model: LoadedModel, ids: list[str]
    ) -> list[dict[str, torch.Tensor] | None]:
        """Deltas for per-row tuning ids ("" = none); NotFound for unknown or expired ids."""
        out: list[dict[str, torch.Tensor] | None] = []
        for tid in ids:
            if not tid:
                out.append(None)
                continue
            if tid not in self._deltas:
                raw = await self.redis.get(keys.tuning(model.name, tid))
                if raw is None:
                    raise NotFound(f"unknown or expired tuning id {tid!r} for {model.name}")
                self._deltas[tid] = delta_from_bytes(raw)
                while len(self._deltas) > 256:
                    self._deltas.popitem(last=False)
            self._deltas.move_to_end(tid)
            out.append(self._deltas[tid])
        return out

    # ---- sessions (continuous batching) -------------------------------------------------------

    def _member(self, model: LoadedModel, job: jobs_pb2.Job) -> _Member:
        req = job.invert
        validate.invert(req, list(inv.supported_methods(model.generator)), self.limits)
        method = req.method or "optimize"
        require_encoder(method, model, "z", self.encoder(model))
        targets, crops = [], []
        for i, image in enumerate(req.images):
            target, crop = preprocess(
                decode_image(image, self.limits.max_pixels, f"images[{i}]"),
                model.spec.resolution,
                model.info.channels,
            )
            targets.append(target)
            crops.append(crop)
        steps = req.steps or DEFAULT_STEPS[method]
        return _Member(job, np.stack(targets), crops, steps)

    def session(self, model: LoadedModel, method: str) -> Session:
        """The running session of (model, method) that new jobs join."""
        key = (model.name, method)
        if key not in self._sessions:
            self._sessions[key] = Session(
                f"{model.name}/{method}", self.max_images, executor=self.executor
            )
        return self._sessions[key]

    async def stream(
        self, model: LoadedModel, jobs: list[jobs_pb2.Job], publish: Any
    ) -> AsyncIterator[tuple[jobs_pb2.Job, jobs_pb2.JobResult | Exception]]:
        """Invert ``jobs``, each joining its (model, method) session; yields (job, result or
        error) as each finishes (a short job never waits for a long one)."""
        loop = asyncio.get_running_loop()
        members: list[_Member] = []
        waits: list[asyncio.Task[tuple[_Member, Any, BaseException | None]]] = []
        for job in jobs:
            try:  # decoding images takes CPU time: never on the event loop
                m = await asyncio.to_thread(self._member, model, job)
            except Exception as exc:
                yield job, exc
                continue
            fut: asyncio.Future[Any] = loop.create_future()
            method = job.invert.method or "optimize"
            start = partial(self._start, model, method, m, loop, publish)
            self.session(model, method).submit(len(m.targets), start, settler(loop, fut))
            members.append(m)
            waits.append(asyncio.create_task(_outcome(m, fut)))
        watcher = asyncio.create_task(self._watch_cancel(members))
        try:
            for next_done in asyncio.as_completed(waits):
                m, res, error = await next_done
                if error is not None:
                    log.error("inversion of job %s failed: %r", m.job.id, error)
                    yield m.job, error if isinstance(error, Exception) else RuntimeError(error)
                    continue
                method = m.job.invert.method or "optimize"
                yield m.job, (await self._results(model, method, [m], res))[0]
        finally:
            await stop_tasks([watcher])

    async def run(
        self, model: LoadedModel, jobs: list[jobs_pb2.Job], publish: Any
    ) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult | Exception]]:
        """All of :meth:`stream` as a list."""
        return [pair async for pair in self.stream(model, jobs, publish)]

    async def _watch_cancel(self, members: list[_Member]) -> None:
        await watch_cancel(self.redis, [(m.job.id, m.cancelled) for m in members])

    def _start(
        self,
        model: LoadedModel,
        method: str,
        m: _Member,
        loop: asyncio.AbstractEventLoop,
        publish: Any,
    ) -> Generator[None, None, inv.InversionResult]:
        """The member's step generator (runs in the session thread)."""
        req = m.job.invert
        n = len(m.targets)
        targets = from_uint8(m.targets, model.device)
        r = req.restarts or inv.OptimizeConfig().restarts
        gen = torch.Generator().manual_seed(req.seed)
        z0 = torch.randn(n, r, model.latent_dim, generator=gen).to(model.device)
        target = req.target_psnr or (DEFAULT_TARGET_PSNR if method == "auto" else math.inf)
        cfg = inv.InvertConfig(steps=m.steps)
        opt = replace(cfg.optimize, restarts=r)
        if req.prior_weight:
            opt = replace(opt, prior_weight=req.prior_weight)
            cfg = replace(
                cfg,
                hybrid=replace(cfg.hybrid, prior_weight=req.prior_weight),
                extended=replace(cfg.extended, prior_weight=req.prior_weight),
            )
        cfg = replace(cfg, optimize=opt)
        if model.info.w_dim:  # style generators: low-rank deltas of every modulated conv
            cfg = replace(cfg, tune=STYLE_TUNE)
        measure = method == "auto" or req.report_edit_error
        bound = (req.max_edit_error or inv.DEFAULT_MAX_EDIT_ERROR) if method == "auto" else math.inf

        def progress(step: int, loss: float, psnr: np.ndarray) -> bool:
            if m.job.stream_progress and not m.cancelled.is_set():
                event = jobs_pb2.JobResult(
                    job_id=m.job.id,
                    progress=pb.InvertProgress(
                        step=step, total_steps=m.steps, loss=loss, psnr=psnr.tolist(), method=method
                    ),
                )
                asyncio.run_coroutine_threadsafe(publish(m.job, event), loop)
            return not m.cancelled.is_set()  # False: the caller gave up, stop

        generator: Any = model.generator
        return inv.invert_steps(
            method,
            generator,
            targets,
            cfg,
            encoder=self.encoder(model),
            z0=z0,
            target_psnr=target,
            progress=progress,
            directions=edit_directions(model) if measure else None,
            max_edit_error=bound,
        )

    async def _results(
        self, model: LoadedModel, method: str, members: list[_Member], res: inv.InversionResult
    ) -> list[jobs_pb2.JobResult | Exception]:
        out: list[jobs_pb2.JobResult | Exception] = []
        start = 0
        for m in members:
            sl = slice(start, start + len(m.targets))
            start += len(m.targets)
            if m.cancelled.is_set() or res.cancelled:
                out.append(Cancelled("cancelled by the caller"))
                continue
            extras = pb.CodeExtras()
            if res.residuals is not None:
                extras.residual.CopyFrom(to_tensor(res.residuals[sl].astype(np.float32)))
            sizes: list[int] = []
            if res.deltas is not None and any(d is not None for d in res.deltas[sl]):
                ids, sizes = await store_deltas(self.redis, model.name, res.deltas[sl])
                extras.tuning_ids.extend(ids)
            fmt = m.job.invert.image_format
            out.append(
                jobs_pb2.JobResult(
                    job_id=m.job.id,
                    invert=pb.InvertResponse(
                        model_version=model.version,
                        latents=to_tensor(res.latents[sl].astype(np.float32)),
                        reconstructions=[encode_image(p, fmt) for p in res.reconstructions[sl]],
                        psnr=res.psnr[sl].tolist(),
                        ssim=res.ssim[sl].tolist(),
                        steps=int(res.steps[sl].max()),
                        seconds=res.seconds,
                        method=method,
                        methods=res.methods[sl],
                        crops=[pb.CropBox(left=c.left, top=c.top, size=c.size) for c in m.crops],
                        extras=extras,
                        tuning_bytes=sizes,
                        edit_error=[] if res.edit_error is None else res.edit_error[sl].tolist(),
                        code_psnr=[] if res.code_psnr is None else res.code_psnr[sl].tolist(),
                    ),
                )
            )
        return out


async def store_deltas(
    redis: Redis, model_name: str, deltas: list[dict[str, torch.Tensor] | None]
) -> tuple[list[str], list[int]]:
    """Store tuning deltas (TTL ``TUNING_TTL_S``): -> per row (tuning id, bytes); "" and 0
    for rows without one."""
    ids, sizes = [], []
    for delta in deltas:
        if delta is None:
            ids.append("")
            sizes.append(0)
            continue
        tid = uuid.uuid4().hex
        blob = delta_to_bytes(delta)
        await redis.set(keys.tuning(model_name, tid), blob, ex=TUNING_TTL_S)
        ids.append(tid)
        sizes.append(len(blob))
    return ids, sizes


def settler(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]
) -> Callable[[Any, BaseException | None], None]:
    """A session's ``done`` callback that settles ``fut`` on ``loop`` (thread-safe)."""

    def done(value: Any, error: BaseException | None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)

        loop.call_soon_threadsafe(settle)

    return done


async def _outcome(
    m: _Member, fut: asyncio.Future[Any]
) -> tuple[_Member, Any, BaseException | None]:
    try:
        return m, await fut, None
    except Exception as exc:
        return m, None, exc


def render_extras(
    model: LoadedModel,
    z: np.ndarray,
    residual: np.ndarray | None,
    deltas: list[dict[str, torch.Tensor] | None],
    space: str = "z",
) -> np.ndarray:
    """Render codes with their extras: codes (N, *shape of ``space``), residual
    (N, C, h, w) or None (z only), N deltas (None: untuned row) -> uint8 (N, H, W, 3)."""
    from latentedit.workers.methods.style_tuning import render_tuned
    from latentedit.workers.models.runtime import to_uint8

    codes = torch.from_numpy(z).to(model.device)
    d = deltas if any(x is not None for x in deltas) else None
    if space != "z":
        return to_uint8(render_tuned(model, codes, space, d or [None] * len(codes)))
    generator: Any = model.generator
    r = None if residual is None else torch.from_numpy(residual).to(model.device)
    return to_uint8(inv.render(generator, codes, r, d))
