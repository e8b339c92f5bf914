"""The worker's heavy lane: inversion, discovery and analysis jobs, batched per model from
whatever queued up, each batch a task of its own.

Inversions join their (model, method) session at the next step boundary (continuous
batching in the inverter), so the lane never waits for a long one. A batch task that fails
makes the lane fail (the worker supervises it: logged and restarted); its jobs stay pending
and are re-run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from redis.exceptions import RedisError

from latentedit.v1 import jobs_pb2

log = logging.getLogger(__name__)

#: runs one model's jobs: (model, jobs) -> None; results go out through the worker
RunBatch = Callable[[str, list[jobs_pb2.Job]], Awaitable[None]]


class HeavyLane:
    """A queue of (model, job) with at most ``max_queued`` jobs held at once.

    ``run_batch`` runs one model's jobs; ``done(jobs)`` is called when a batch ends, however
    it ended (the worker forgets the jobs without a final result: they stay pending);
    ``busy(+1 / -1)`` brackets every batch (the worker's busy-time metric).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        done: Callable[[list[jobs_pb2.Job]], None],
        busy: Callable[[int], None],
        max_queued: int,
    ) -> None:
        self._run_batch = run_batch
        self._done = done
        self._busy = busy
        self._queue: asyncio.Queue[tuple[str, jobs_pb2.Job]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max_queued)
        self._tasks: set[asyncio.Task[None]] = set()  # batches running
        self._error: BaseException | None = None  # of a failed batch
        self._failed = asyncio.Event()  # set with _error: the lane fails

    async def submit(self, items: list[tuple[str, jobs_pb2.Job]]) -> None:
        """Queue (model, job) pairs, waiting while ``max_queued`` jobs are held."""
        for item in items:
            await self._slots.acquire()
            self._queue.put_nowait(item)

    async def join(self) -> None:
        """Return once every queued job's batch has ended (drain before exit)."""
        await self._queue.join()

    async def run(self) -> None:
        """Hand jobs on as they come, one task per model batch; raises when a batch failed."""
        while True:
            if self._error is not None:
                error, self._error = self._error, None
                self._failed.clear()
                raise RuntimeError("a heavy batch failed") from error
            getter = asyncio.ensure_future(self._queue.get())
            failed = asyncio.ensure_future(self._failed.wait())
            try:
                await asyncio.wait({getter, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                failed.cancel()
                if not getter.done():
                    getter.cancel()  # asyncio.Queue loses nothing to a cancelled get
            if not getter.done() or getter.cancelled():
                continue  # a batch failed: raised at the top of the loop
            items = [getter.result()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            by_model: dict[str, list[jobs_pb2.Job]] = {}
            for model, job in items:
                by_model.setdefault(model, []).append(job)
            for model, jobs in by_model.items():
                self._busy(+1)
                task = asyncio.create_task(self._batch(model, jobs))
                self._tasks.add(task)
                task.add_done_callback(partial(self._batch_done, jobs))

    async def _batch(self, model: str, jobs: list[jobs_pb2.Job]) -> None:
        try:
            await self._run_batch(model, jobs)
        except (RedisError, OSError) as exc:
            log.warning("heavy batch of %d job(s) failed (%s); re-run later", len(jobs), exc)

    def _batch_done(self, jobs: list[jobs_pb2.Job], task: asyncio.Task[None]) -> None:
        """Book-keeping of a finished batch, whatever happened to it."""
        self._tasks.discard(task)
        self._done(jobs)
        self._busy(-1)
        for _ in jobs:
            self._queue.task_done()
            self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            self._error = task.exception()
            self._failed.set()
