"""The gateway's training-job RPCs: WatchJob, GetJob, CancelJob, ListJobs, and the job
path of DiscoverDirections (learned methods answer at once with a job id).

Torch-free: jobs are created, read and cancelled straight in Redis through
:class:`latentedit.jobstate.JobStore`; workers pick them up from the training stream.
Any gateway answers for any job.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from redis.exceptions import RedisError

from latentedit import validate
from latentedit.errors import (
    InvalidArgument,
    LatentEditError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from latentedit.jobstate import TERMINAL, JobStore, check_job_id
from latentedit.server.auth import CALLER
from latentedit.v1 import latentedit_pb2 as pb

PARAM_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_PARAMS = 32
MAX_PARAM_CHARS = 128
DEFAULT_CANCEL_WAIT_S = 5.0
MAX_LIST = 1000
WATCH_POLL_MS = 1000  # WatchJob re-reads the job this often when no event comes


def check_access(status: pb.JobStatus) -> pb.JobStatus:
    """With API keys on, a job is its owner's (and admins'): others get PERMISSION_DENIED."""
    caller = CALLER.get()
    if caller is not None and not caller.admin and status.owner != caller.name:
        raise PermissionDenied(
            f"job {status.job_id} was started by another API key; "
            "only that key or an admin key may see or cancel it"
        )
    return status


def check_training_request(req: pb.DiscoverDirectionsRequest, limits: validate.Limits) -> None:
    """What the gateway can check without the trainer: fields, names, parameter syntax.

    The trainer checks parameter values when the job starts (a bad one fails the job
    with INVALID_ARGUMENT and a message naming it).
    """
    if req.HasField("latents") or req.HasField("scores") or req.scorer or req.samples:
        raise InvalidArgument(
            f"method {req.method!r} trains on the model's own samples: "
            "latents, scores, scorer and samples are not used; leave them empty"
        )
    if not 0 <= req.top_k <= limits.max_top_k:
        raise InvalidArgument(f"top_k: {req.top_k}; allowed 0 (default) ..{limits.max_top_k}")
    validate.name(req.name_prefix or req.method, "name_prefix")
    if len(req.params) > MAX_PARAMS:
        raise InvalidArgument(f"params: {len(req.params)} given; at most {MAX_PARAMS}")
    for key, value in req.params.items():
        if not PARAM_KEY.match(key):
            raise InvalidArgument(f"params: key {key[:40]!r} must be 1-32 of a-z, 0-9, '_'")
        if len(value) > MAX_PARAM_CHARS:
            raise InvalidArgument(f"params.{key}: longer than {MAX_PARAM_CHARS} characters")


class JobsServicer:
    """Mixed into the LatentEditor servicer (needs ``self.queue``, ``self.limits`` and
    ``self.draining``, set when the gateway drains: open watches then end with UNAVAILABLE,
    and the SDK re-opens them on another gateway)."""

    queue: Any
    limits: validate.Limits
    draining: asyncio.Event
    _jobstore: JobStore | None = None

    @property
    def jobstore(self) -> JobStore:
        if self._jobstore is None:
            self._jobstore = JobStore(self.queue.redis)
        return self._jobstore

    async def training_job(
        self, request: pb.DiscoverDirectionsRequest, info: pb.ModelInfo
    ) -> pb.DiscoverDirectionsResponse | None:
        """Queue a training job if ``request.method`` is one; None for the other methods."""
        if request.method not in info.training_methods:
            return None
        if request.space not in ("", "z"):
            # (W support means a w sampler, renderer and w+ layer edits in workers/learned/)
            raise InvalidArgument(
                f"method {request.method!r} learns directions in z only, not in "
                f"{request.space!r}; ask with space='z' (its directions edit z codes)"
            )
        check_training_request(request, self.limits)
        try:
            caller = CALLER.get()
            status = await self.jobstore.create(
                info.name,
                request,
                caller.name if caller else "",
                bool(caller and caller.admin),
            )
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the job queue (Redis) is unreachable: {exc}") from None
        return pb.DiscoverDirectionsResponse(model_version=info.version, job_id=status.job_id)

    async def _read(self, job_id: str) -> pb.JobStatus:
        try:
            return check_access((await self.jobstore.read(check_job_id(job_id))).status)
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the job store (Redis) is unreachable: {exc}") from None

    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.JobStatus:
        try:
            return await self._read(request.job_id)
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobStatus]:
        """The status now, then every update, until a terminal state (then the stream ends)."""
        try:
            job_id = check_job_id(request.job_id)
            try:
                status, cursor = await self.jobstore.read_with_cursor(job_id)
                check_access(status)
            except (RedisError, OSError) as exc:
                raise Unavailable(f"the job store (Redis) is unreachable: {exc}") from None
            yield status
            while status.state not in TERMINAL:
                if self.draining.is_set():
                    raise Unavailable("this gateway is shutting down; watch the job again")
                try:
                    updates, cursor = await self.jobstore.events(job_id, cursor, WATCH_POLL_MS)
                    if not updates:  # quiet: re-read (events may have expired or been trimmed)
                        status, cursor = await self.jobstore.read_with_cursor(job_id)
                        updates = [status] if status.state in TERMINAL else []
                except (RedisError, OSError):
                    await asyncio.sleep(0.5)
                    continue
                for status in updates:
                    yield status
                    if status.state in TERMINAL:
                        break
        except LatentEditError as err:
            await context.abort(err.code, err.message)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        """Queued: cancelled at once. Running: flagged; waits up to ``wait_seconds`` for it."""
        try:
            job_id = check_job_id(request.job_id)
            if not 0 <= request.wait_seconds <= 60:
                raise InvalidArgument(f"wait_seconds: {request.wait_seconds}; allowed 0..60")
            wait = request.wait_seconds or DEFAULT_CANCEL_WAIT_S
            store = self.jobstore
            try:
                while True:
                    snap = await store.read(job_id)
                    status = check_access(snap.status)
                    if status.state in TERMINAL:
                        break
                    if status.state == pb.JOB_STATE_QUEUED:
                        status.state = pb.JOB_STATE_CANCELLED
                        status.finished_unix_ms = int(time.time() * 1000)
                        status.cancel_requested = True
                        status.message = "cancelled before it ran to the end"
                        written, _ = await store.put(status, snap.rev)
                        if written:
                            await store.request_cancel(job_id)  # a worker holding it stops too
                            await store.drop_checkpoint(job_id)
                            break
                        continue  # a worker took it meanwhile: read again
                    await store.request_cancel(job_id)
                    deadline = time.monotonic() + wait
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                        status = (await store.read(job_id)).status
                        if status.state in TERMINAL:
                            break
                    break
            except (RedisError, OSError) as exc:
                raise Unavailable(f"the job store (Redis) is unreachable: {exc}") from None
            return pb.CancelJobResponse(
                status=status, cancelled=status.state == pb.JOB_STATE_CANCELLED
            )
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        try:
            if not request.model:
                raise InvalidArgument("model is required (see ListModels)")
            catalogue, _ = await self.queue.models()
            if request.model not in catalogue:
                raise NotFound(
                    f"unknown model {request.model[:128]!r}; models: {sorted(catalogue)}"
                )
            if not 0 <= request.limit <= MAX_LIST:
                raise InvalidArgument(f"limit: {request.limit}; allowed 0 (100) ..{MAX_LIST}")
            bad = [s for s in request.states if s not in pb.JobState.values() or s == 0]
            if bad:
                raise InvalidArgument(f"states: unknown value(s) {bad}")
            caller = CALLER.get()
            owner = caller.name if caller is not None and not caller.admin else None
            try:
                jobs = await self.jobstore.list(
                    request.model, set(request.states), request.limit or 100, owner
                )
            except (RedisError, OSError) as exc:
                raise Unavailable(f"the job store (Redis) is unreachable: {exc}") from None
            return pb.ListJobsResponse(jobs=jobs)
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")
