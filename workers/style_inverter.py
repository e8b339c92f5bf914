"""Invert jobs that ask for w or w+ codes (style generators): optimisation from w_avg
("optimize"), the model's W encoder in one pass ("encoder") or as the projection's start
("hybrid", :mod:`.methods.style_encoding`), pivotal tuning around a projected pivot
("tune", :mod:`.methods.style_tuning`), or the projection then tuning where the target
PSNR needs it, within an edit-error bound ("auto", :mod:`.methods.style_auto`).

Jobs of one space, method, step budget, target and bound run as one batch (per-image losses are
independent, so batching changes nothing but speed); each job gets its own result, PSNR and
SSIM measured on the uint8 reconstruction against the preprocessed target, as for z (and,
with ``report_edit_error``, the relative edit error along the model's top SeFa directions in
W; ``target_psnr`` stops a batch once all its images reach it). Tuned
results carry per-image tuning ids (extras) that Generate / Edit / ConditionalEdit take in
any space.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import numpy as np
import torch
from redis.asyncio import Redis

from latentedit import validate, validate_spaces
from latentedit.aiotasks import stop_tasks
from latentedit.codec import decode_image, encode_image, to_tensor
from latentedit.errors import Cancelled, InvalidArgument, LatentEditError
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.inverter import (
    DEFAULT_TARGET_PSNR,
    edit_directions,
    render_extras,
    require_encoder,
    settler,
    store_deltas,
    watch_cancel,
)
from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.encoder import Encoder
from latentedit.workers.methods.inversion.metrics import psnr_uint8
from latentedit.workers.methods.inversion.optim import blocking
from latentedit.workers.methods.inversion.session import Session
from latentedit.workers.methods.preprocess import Crop, preprocess
from latentedit.workers.methods.style_auto import auto_style_steps
from latentedit.workers.methods.style_encoding import ENCODER_METHODS, with_encoder
from latentedit.workers.methods.style_projection import DEFAULT_STEPS, project_steps
from latentedit.workers.methods.style_tuning import edit_error, tune_style_steps
from latentedit.workers.models.runtime import LoadedModel, from_uint8
from latentedit.workers.spaces import spaces_of


def check(
    req: pb.InvertRequest, model: LoadedModel, limits: Limits, encoder: Encoder | None = None
) -> str:
    """Validate a w / w+ invert request (``encoder``: the model's W encoder, if it has
    one); -> the space."""
    space, _ = validate_spaces.space_request(req, spaces_of(model))
    methods = list(model.info.w_invert_methods)
    validate.invert(req, [*methods, *([req.method] if req.method else [])], limits)
    if (req.method or "optimize") not in methods:
        raise InvalidArgument(
            f"method {req.method!r} inverts to z codes; in {space!r} use one of {methods}"
        )
    if req.restarts > 1 or req.prior_weight:
        raise InvalidArgument(
            f"restarts and prior_weight apply to z inversion; {space!r} starts from w_avg"
        )
    require_encoder(req.method, model, space, encoder)
    return space


def _targets(
    req: pb.InvertRequest, model: LoadedModel, limits: Limits
) -> tuple[np.ndarray, list[Crop]]:
    pixels, crops = [], []
    for i, image in enumerate(req.images):
        p, crop = preprocess(
            decode_image(image, limits.max_pixels, f"images[{i}]"),
            model.spec.resolution,
            model.info.channels,
        )
        pixels.append(p)
        crops.append(crop)
    return np.stack(pixels), crops


def _steps_function(
    method: str,
    encoder: Encoder | None,
    model: LoadedModel,
    space: str,
    target: float,
    bound: float,
) -> Callable[..., Any]:
    """The step generator of a W / W+ method (encoder methods bound to ``encoder``; ``auto``
    to the target PSNR (dB), the edit-error bound and the measure's directions)."""
    if method == "auto":
        return partial(
            auto_style_steps,
            target_psnr=target,
            max_edit_error=bound,
            directions=edit_directions(model, space),
            encoder=encoder,
        )
    if method in ENCODER_METHODS:
        if encoder is None:
            raise RuntimeError(f"{method!r} without an encoder (check() refuses it)")
        return with_encoder(method, encoder)
    return tune_style_steps if method == "tune" else project_steps


Publish = Callable[[jobs_pb2.Job, jobs_pb2.JobResult], Coroutine[Any, Any, None]]


def _progress(
    members: list[jobs_pb2.Job],
    counts: list[int],
    publish: Publish | None,
    loop: asyncio.AbstractEventLoop,
    method: str = "optimize",
    target_psnr: float = math.inf,
) -> Callable[[int, int, float, np.ndarray], bool]:
    """A projector callback sending InvertProgress to the jobs that asked for it; it stops
    the batch once every image has reached ``target_psnr`` (dB)."""
    offsets = np.cumsum([0, *counts])

    def report(step: int, total: int, loss: float, psnr: np.ndarray) -> bool:
        for i, job in enumerate(members):
            if job.stream_progress and publish is not None:
                event = pb.InvertProgress(
                    step=step,
                    total_steps=total,
                    loss=loss,
                    psnr=psnr[offsets[i] : offsets[i + 1]].tolist(),
                    method=method,
                )
                result = jobs_pb2.JobResult(job_id=job.id, progress=event)
                asyncio.run_coroutine_threadsafe(publish(job, result), loop)
        return bool(len(psnr)) and bool(np.min(psnr) >= target_psnr)

    return report


async def run_style_inversions(
    model: LoadedModel,
    jobs: list[jobs_pb2.Job],
    limits: Limits,
    publish: Publish | None = None,
    redis: Redis | None = None,
    session: Callable[[str], Session] | None = None,
    encoder: Encoder | None = None,
) -> list[jobs_pb2.JobResult | LatentEditError]:
    """Invert every job (all w or w+, already checked) as one batch per space, method, step
    budget and target PSNR.

    Jobs that asked for progress (InvertStream) get InvertProgress events through ``publish``
    every 10 steps. With ``redis``, the cancel flags of the jobs are watched: a job whose
    caller gave up (cancelled, deadline passed) ends with Cancelled, and its batch stops at
    the next step once every job in it has. A job whose image does not decode ends with
    its own error; the others go on. ``session(key)``: the inversion session to run the
    optimisation in, by key "<space> <method>" (the worker's compute thread, in slices
    between light batches, as z inversions run); None: a thread of its own. ``encoder``:
    the model's W encoder (methods "encoder" and "hybrid"; checked by :func:`check`).
    """
    loop = asyncio.get_running_loop()
    gave_up = {job.id: threading.Event() for job in jobs}
    results: dict[str, jobs_pb2.JobResult | LatentEditError] = {}
    groups: dict[tuple[str, str, int, float, float], list[jobs_pb2.Job]] = {}
    for job in jobs:
        space = validate_spaces.space(job.invert.space, spaces_of(model))
        method = job.invert.method or "optimize"
        steps = job.invert.steps or DEFAULT_STEPS[space]
        target, bound = job.invert.target_psnr, math.inf
        if method == "auto":
            target = target or DEFAULT_TARGET_PSNR
            bound = job.invert.max_edit_error or inv.DEFAULT_MAX_EDIT_ERROR
        groups.setdefault((space, method, steps, target, bound), []).append(job)
    watcher = (
        None if redis is None else asyncio.create_task(watch_cancel(redis, [*gave_up.items()]))
    )
    try:
        for (space, method, steps, target, bound), group in groups.items():
            members, prepared = [], []
            for j in group:  # an image that does not decode fails its own job only
                try:
                    prepared.append(await asyncio.to_thread(_targets, j.invert, model, limits))
                    members.append(j)
                except LatentEditError as err:
                    results[j.id] = err
            if not members:
                continue
            pixels = np.concatenate([p for p, _ in prepared])
            start = time.perf_counter()
            seed = members[0].invert.seed
            counts = [len(p) for p, _ in prepared]
            progress = _progress(members, counts, publish, loop, method, target or math.inf)

            def stop(members: list[jobs_pb2.Job] = members) -> bool:
                return all(gave_up[j.id].is_set() for j in members)

            targets = from_uint8(pixels, model.device)
            args = (model, targets, space, steps, seed, progress, stop)
            steps_fn = _steps_function(method, encoder, model, space, target, bound)
            if session is None:
                out = await asyncio.to_thread(blocking(steps_fn), *args)
            else:
                fut: asyncio.Future[Any] = loop.create_future()
                session(f"{space} {method}").submit(
                    len(pixels), partial(steps_fn, *args), settler(loop, fut)
                )
                out = await fut
            if stop():
                continue
            deltas = getattr(out, "deltas", None) or [None] * len(pixels)
            recon = await asyncio.to_thread(render_extras, model, out.codes, None, deltas, space)
            ids, sizes = [], []
            if any(d is not None for d in deltas):
                if redis is None:
                    raise RuntimeError("tuned inversions need Redis to keep their deltas")
                ids, sizes = await store_deltas(redis, model.name, deltas)
            errors = getattr(out, "edit_error", np.zeros(len(pixels)))
            methods = getattr(out, "methods", [method] * len(pixels))
            if method != "auto" and any(j.invert.report_edit_error for j in members):
                directions = edit_directions(model, space)
                errors = await asyncio.to_thread(
                    edit_error, model, out.codes, space, deltas, directions
                )
            seconds = time.perf_counter() - start
            with torch.no_grad():
                ssim = inv.ssim(
                    from_uint8(recon) * 0.5 + 0.5, from_uint8(pixels) * 0.5 + 0.5
                ).numpy()
            psnr = psnr_uint8(recon, pixels)
            code_psnr = psnr
            if any(d is not None for d in deltas):  # the plain generator at the codes
                plain = await asyncio.to_thread(
                    render_extras, model, out.codes, None, [None] * len(pixels), space
                )
                code_psnr = psnr_uint8(plain, pixels)
            offset = 0
            for job, (p, crops) in zip(members, prepared, strict=True):
                sl = slice(offset, offset + len(p))
                offset += len(p)
                fmt = job.invert.image_format
                results[job.id] = jobs_pb2.JobResult(
                    job_id=job.id,
                    invert=pb.InvertResponse(
                        model_version=model.version,
                        latents=to_tensor(out.codes[sl]),
                        reconstructions=[encode_image(x, fmt) for x in recon[sl]],
                        psnr=psnr[sl].tolist(),
                        ssim=ssim[sl].tolist(),
                        steps=out.steps,
                        seconds=seconds,
                        method=method,
                        methods=methods[sl],
                        crops=[pb.CropBox(left=c.left, top=c.top, size=c.size) for c in crops],
                        extras=pb.CodeExtras(tuning_ids=ids[sl]),
                        tuning_bytes=sizes[sl],
                        edit_error=(
                            errors[sl].tolist()
                            if job.invert.report_edit_error or method == "auto"
                            else []
                        ),
                        code_psnr=code_psnr[sl].tolist(),
                    ),
                )
    finally:
        if watcher is not None:
            await stop_tasks([watcher])
    return [
        Cancelled("cancelled by the caller") if gave_up[j.id].is_set() else results[j.id]
        for j in jobs
    ]
