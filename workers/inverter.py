"""Invert jobs on the worker: every method behind one RPC, batched across clients.

Jobs of one model with the same (method, restarts, prior weight) are inverted as
one batch (per-image step budgets and targets may differ). Progress is fanned
out per job while the batch runs; a job whose caller gave up is marked in
Redis (``le:cancel:{id}``) and the batch stops once every job in it is
cancelled. Tuning deltas ("tune") are stored in Redis under an id that later
Generate / Edit / ConditionalEdit calls pass back; the per-model encoder is
loaded from ``$LATENTEDIT_HOME`` and reloaded when ``train-encoder`` writes a
new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from redis.asyncio import Redis

from latentedit import keys, validate
from latentedit.codec import decode_image, encode_image, to_tensor
from latentedit.errors import Cancelled, NotFound, Unavailable
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.encoder import Encoder, encoder_path, load_encoder
from latentedit.workers.methods.preprocess import Crop, preprocess
from latentedit.workers.methods.tuning_store import delta_from_bytes, delta_to_bytes
from latentedit.workers.models.runtime import LoadedModel, from_uint8

log = logging.getLogger(__name__)

INVERT_METHODS = ("optimize", "encoder", "hybrid", "extended", "tune", "auto")
NEEDS_ENCODER = ("encoder", "hybrid")
DEFAULT_TARGET_PSNR = 30.0
TUNING_TTL_S = 7 * 24 * 3600
DEFAULT_STEPS = {
    "optimize": 400,
    "encoder": 0,
    "hybrid": 200,
    "extended": 300,
    "tune": 300,
    "auto": 600,
}


@dataclass
class _Member:
    job: jobs_pb2.Job
    targets: np.ndarray  # uint8 (n, r, r, 3)
    crops: list[Crop]
    steps: int
    cancelled: threading.Event = field(default_factory=threading.Event)


class Inverter:
    def __init__(self, redis: Redis, limits: Limits) -> None:
        self.redis = redis
        self.limits = limits
        self._encoders: dict[str, tuple[float, Encoder]] = {}  # model -> (mtime, encoder)
        self._deltas: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()

    # ---- encoder ---------------------------------------------------------------------------

    def encoder(self, model: LoadedModel) -> Encoder | None:
        """The model's trained encoder, reloaded when its file changes; None if not trained."""
        path: Path = encoder_path(model.name, model.version)
        if not path.is_file():
            return None
        mtime = path.stat().st_mtime
        cached = self._encoders.get(model.name)
        if cached is None or cached[0] != mtime:
            self._encoders[model.name] = (mtime, load_encoder(path, model.device))
            log.info("loaded encoder %s", path)
        return self._encoders[model.name][1]

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

    # ---- batches -----------------------------------------------------------------------------

    def _member(self, model: LoadedModel, job: jobs_pb2.Job) -> _Member:
        req = job.invert
        validate.invert(req, list(INVERT_METHODS), self.limits)
        method = req.method or "optimize"
        if method in NEEDS_ENCODER and self.encoder(model) is None:
            raise Unavailable(
                f"method {method!r} needs an encoder for {model.name}; "
                f"train one with `latentedit train-encoder {model.name}`"
            )
        targets, crops = [], []
        for i, image in enumerate(req.images):
            target, crop = preprocess(
                decode_image(image, self.limits.max_pixels, f"images[{i}]"), model.spec.resolution
            )
            targets.append(target)
            crops.append(crop)
        steps = req.steps or DEFAULT_STEPS[method]
        return _Member(job, np.stack(targets), crops, steps)

    async def run(
        self, model: LoadedModel, jobs: list[jobs_pb2.Job], publish: Any
    ) -> list[tuple[jobs_pb2.Job, jobs_pb2.JobResult | Exception]]:
        """Invert ``jobs``; returns (job, result or error) pairs. ``publish`` sends progress."""
        out: list[tuple[jobs_pb2.Job, jobs_pb2.JobResult | Exception]] = []
        groups: dict[tuple[str, int, float], list[_Member]] = {}
        for job in jobs:
            try:
                m = self._member(model, job)
            except Exception as exc:
                out.append((job, exc))
                continue
            req = job.invert
            key = (req.method or "optimize", req.restarts, req.prior_weight)
            groups.setdefault(key, []).append(m)
        loop = asyncio.get_running_loop()
        for (method, restarts, prior), members in groups.items():
            watcher = asyncio.create_task(self._watch_cancel(members))
            try:
                result = await asyncio.to_thread(
                    self._invert_group, model, method, restarts, prior, members, loop, publish
                )
                for m, res in zip(
                    members, await self._results(model, method, members, result), strict=True
                ):
                    out.append((m.job, res))
            except Exception as exc:
                log.exception("inversion batch failed")
                out.extend((m.job, exc) for m in members)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        return out

    async def _watch_cancel(self, members: list[_Member]) -> None:
        """Poll the cancel flags of the batch's jobs twice a second."""
        names = [keys.cancelled(m.job.id) for m in members]
        while True:
            flags = await self.redis.mget(names)
            for m, flag in zip(members, flags, strict=True):
                if flag is not None:
                    m.cancelled.set()
            await asyncio.sleep(0.5)

    def _invert_group(
        self,
        model: LoadedModel,
        method: str,
        restarts: int,
        prior: float,
        members: list[_Member],
        loop: asyncio.AbstractEventLoop,
        publish: Any,
    ) -> inv.InversionResult:
        targets = from_uint8(np.concatenate([m.targets for m in members]), model.device)
        sizes = [len(m.targets) for m in members]
        r = restarts or inv.OptimizeConfig().restarts
        z0 = torch.cat(
            [
                torch.randn(
                    n,
                    r,
                    model.latent_dim,
                    generator=torch.Generator().manual_seed(m.job.invert.seed),
                )
                for m, n in zip(members, sizes, strict=True)
            ]
        ).to(model.device)
        steps = torch.tensor(
            [m.steps for m, n in zip(members, sizes, strict=True) for _ in range(n)]
        )
        target = torch.tensor(
            [
                (m.job.invert.target_psnr or (DEFAULT_TARGET_PSNR if method == "auto" else np.inf))
                for m, n in zip(members, sizes, strict=True)
                for _ in range(n)
            ],
            dtype=torch.float64,
        )
        cfg = inv.InvertConfig(steps=int(steps.max()))
        if prior:
            cfg = replace(
                cfg,
                optimize=replace(cfg.optimize, prior_weight=prior, restarts=r),
                hybrid=replace(cfg.hybrid, prior_weight=prior),
                extended=replace(cfg.extended, prior_weight=prior),
            )
        else:
            cfg = replace(cfg, optimize=replace(cfg.optimize, restarts=r))
        offsets = np.cumsum([0, *sizes])

        def progress(step: int, loss: float, psnr: np.ndarray) -> np.ndarray:
            for i, m in enumerate(members):
                if m.job.stream_progress and not m.cancelled.is_set():
                    event = jobs_pb2.JobResult(
                        job_id=m.job.id,
                        progress=pb.InvertProgress(
                            step=step,
                            total_steps=m.steps,
                            loss=loss,
                            psnr=psnr[offsets[i] : offsets[i + 1]].tolist(),
                            method=method,
                        ),
                    )
                    asyncio.run_coroutine_threadsafe(publish(m.job, event), loop)
            # Per image: keep going unless its caller gave up (other clients' images go on).
            return np.repeat([not m.cancelled.is_set() for m in members], sizes)

        generator: Any = model.generator
        return inv.invert(
            method,
            generator,
            targets,
            cfg,
            encoder=self.encoder(model),
            z0=z0,
            target_psnr=target,
            steps=steps,
            progress=progress,
        )

    async def _results(
        self, model: LoadedModel, method: str, members: list[_Member], res: inv.InversionResult
    ) -> list[jobs_pb2.JobResult | Exception]:
        out: list[jobs_pb2.JobResult | Exception] = []
        start = 0
        for m in members:
            sl = slice(start, start + len(m.targets))
            start += len(m.targets)
            if m.cancelled.is_set():
                out.append(Cancelled("cancelled by the caller"))
                continue
            extras = pb.CodeExtras()
            if res.residuals is not None:
                extras.residual.CopyFrom(to_tensor(res.residuals[sl].astype(np.float32)))
            sizes: list[int] = []
            if res.deltas is not None and any(d is not None for d in res.deltas[sl]):
                for delta in res.deltas[sl]:
                    if delta is None:
                        extras.tuning_ids.append("")
                        sizes.append(0)
                        continue
                    tid = uuid.uuid4().hex
                    blob = delta_to_bytes(delta)
                    await self.redis.set(keys.tuning(model.name, tid), blob, ex=TUNING_TTL_S)
                    extras.tuning_ids.append(tid)
                    sizes.append(len(blob))
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
                    ),
                )
            )
        return out


def render_extras(
    model: LoadedModel,
    z: np.ndarray,
    residual: np.ndarray | None,
    deltas: list[dict[str, torch.Tensor] | None],
) -> np.ndarray:
    """Render codes with their extras: z (N, d), residual (N, C, h, w) or None, N deltas."""
    from latentedit.workers.models.runtime import to_uint8

    generator: Any = model.generator
    r = None if residual is None else torch.from_numpy(residual).to(model.device)
    d = deltas if any(x is not None for x in deltas) else None
    images = inv.render(generator, torch.from_numpy(z).to(model.device), r, d)
    return to_uint8(images)
