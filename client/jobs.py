"""Training-job handles of the SDK: what ``discover()`` returns for a learned method.

What the handles share: job statuses, the watch's error mapping and backoff. The handles
themselves: ``AsyncTrainingJob`` (:mod:`.async_jobs`) and ``TrainingJob`` (:mod:`.sync_jobs`,
generated from it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import grpc

from latentedit.errors import Cancelled, LatentEditError, error_for
from latentedit.v1 import latentedit_pb2 as pb

STATES: dict[int, str] = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}
STATE_VALUES = {name: value for value, name in STATES.items()}
TERMINAL = ("succeeded", "failed", "cancelled")


def _error(exc: grpc.RpcError) -> LatentEditError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    return error_for(code, (exc.details() if hasattr(exc, "details") else "") or str(code))


def _backoff_s(attempt: int) -> float:
    """Re-opening a watch: exponential backoff with full jitter (0.1 s .. 2 s)."""
    return random.uniform(0, min(2.0, 0.1 * 2**attempt))


@dataclass(frozen=True)
class JobStatus:
    """One snapshot of a training job. Times are unix ms (0: not yet)."""

    id: str
    model: str
    method: str
    state: str  # queued | running | succeeded | failed | cancelled
    step: int
    total_steps: int
    metrics: dict[str, float]  # each loss term and metric, mean over the last report
    accuracy: float  # the reconstructor's direction accuracy in [0, 1]
    eta_seconds: float  # 0: unknown
    steps_per_second: float
    worker: str
    attempts: int  # 1 + resumes on another worker
    resumed_from_step: int
    checkpoint_step: int
    checkpoint_unix_ms: int
    created_unix_ms: int
    started_unix_ms: int
    updated_unix_ms: int
    finished_unix_ms: int
    direction_ids: list[str]  # stored on success: pass them to edit()
    message: str
    error_code: int = 0  # grpc status value when failed
    error_message: str = ""
    cancel_requested: bool = False
    name_prefix: str = ""
    params: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    owner: str = ""  # the API key that started it ("" on an open gateway)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def progress(self) -> float:
        """step / total_steps in [0, 1] (0 before the trainer is built)."""
        return self.step / self.total_steps if self.total_steps else 0.0


def job_status(m: pb.JobStatus) -> JobStatus:
    return JobStatus(
        id=m.job_id,
        model=m.model,
        method=m.method,
        state=STATES.get(m.state, "unspecified"),
        step=m.step,
        total_steps=m.total_steps,
        metrics=dict(m.metrics),
        accuracy=m.accuracy,
        eta_seconds=m.eta_seconds,
        steps_per_second=m.steps_per_second,
        worker=m.worker,
        attempts=m.attempts,
        resumed_from_step=m.resumed_from_step,
        checkpoint_step=m.checkpoint_step,
        checkpoint_unix_ms=m.checkpoint_unix_ms,
        created_unix_ms=m.created_unix_ms,
        started_unix_ms=m.started_unix_ms,
        updated_unix_ms=m.updated_unix_ms,
        finished_unix_ms=m.finished_unix_ms,
        direction_ids=list(m.direction_ids),
        message=m.message,
        error_code=m.error_code,
        error_message=m.error_message,
        cancel_requested=m.cancel_requested,
        name_prefix=m.name_prefix,
        params=dict(m.params),
        seed=m.seed,
        owner=m.owner,
    )


def final(status: JobStatus) -> JobStatus:
    """The status of a finished job; raises the job's error if it failed or was cancelled."""
    if status.state == "failed":
        raise error_for(status.error_code, f"job {status.id} failed: {status.error_message}")
    if status.state == "cancelled":
        raise Cancelled(f"job {status.id} was cancelled at step {status.step}")
    return status


def list_request(model: str, states: Any, limit: int) -> pb.ListJobsRequest:
    unknown = [s for s in states if s not in STATE_VALUES]
    if unknown:
        raise ValueError(f"unknown job state(s) {unknown}; choose from {sorted(STATE_VALUES)}")
    return pb.ListJobsRequest(
        model=model,
        states=[STATE_VALUES[s] for s in states],  # type: ignore[misc]
        limit=limit,
    )
