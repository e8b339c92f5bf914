"""The training-job handle of :class:`AsyncClient`: what ``discover()`` returns for a learned
method. ``status()``, ``async for s in job`` (its progress), ``wait(timeout)`` (the final status;
raises if the job failed or was cancelled) and ``cancel()``. Watching survives gateway
restarts: the stream is re-opened (any gateway can answer; the job lives in Redis).
"""

from __future__ import annotations

import time
from asyncio import sleep
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from latentedit.errors import Cancelled, DeadlineExceeded, Unavailable
from latentedit.v1 import latentedit_pb2 as pb

from .jobs import JobStatus, _backoff_s, _error, final, job_status

if TYPE_CHECKING:
    from .async_client import AsyncClient


class AsyncTrainingJob:
    """One training job, followed through the client that started or named it."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    async def status(self, *, timeout: float | None = None) -> JobStatus:
        """The job's status now."""
        return await self.client.job_status(self.id, timeout=timeout)

    async def cancel(self, *, wait_seconds: float = 5.0, timeout: float | None = None) -> JobStatus:
        """Stop the job; returns its status once stopped (or after ``wait_seconds``)."""
        return await self.client.cancel_job(self.id, wait_seconds=wait_seconds, timeout=timeout)

    async def watch(self, *, timeout: float | None = None) -> AsyncIterator[JobStatus]:
        """The status now, then each update until the job ends (re-connects if needed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"job {self.id} did not finish within {timeout}s")
            call = self.client._stub.WatchJob(
                pb.WatchJobRequest(job_id=self.id),
                timeout=remaining,
                metadata=self.client.metadata,
            )
            try:
                async for msg in call:
                    attempt = 0
                    status = job_status(msg)
                    yield status
                    if status.done:
                        return
            except grpc.RpcError as exc:
                err = _error(exc)
                if not isinstance(err, Unavailable | Cancelled):  # gateway went away: re-open
                    raise err from None
            finally:
                call.cancel()
            await sleep(_backoff_s(attempt))
            attempt += 1

    def __aiter__(self) -> AsyncIterator[JobStatus]:
        return self.watch()

    async def wait(self, timeout: float | None = None) -> JobStatus:
        """Until the job ends: its final status, or its error (Cancelled if cancelled)."""
        last = None
        async for last in self.watch(timeout=timeout):  # noqa: B007
            pass
        assert last is not None
        return final(last)
