"""The worker: a Redis Streams consumer that batches jobs across clients.

Lanes (asyncio tasks, each supervised: a failing lane is logged and restarted;
one that keeps failing stops the worker, so its heartbeat lapses):

- intake: forms light batches (render, direction store) and starts them. It
  forms the next batch only once the generator is free, from whatever queued
  meanwhile (non-blocking reads), so batches grow with the load by themselves;
  when idle it blocks on Redis and wakes at the first arrival. It waits for
  more jobs only when recent batches show a load (``max_wait_ms`` at most, by
  polling: Redis's own blocking timeouts have a 1/``hz`` = 100 ms resolution).
  Encoding and publishing a batch overlap the next batch's render.
- heavy: inversion, discovery and analysis, batched whatever queued up
  (:mod:`latentedit.workers.heavy_lane`).
- heartbeat: refreshes this worker's and its models' liveness keys and the
  catalogue; finding the catalogue gone (Redis restarted empty) re-creates
  the consumer groups.
- janitor: takes over pending entries nobody works on (this worker's own lost
  ones, and dead workers'), see :mod:`latentedit.workers.recovery`.

Results go out through one pipeline per batch (:mod:`latentedit.workers.outbox`):
a job is acknowledged only after its result is published, so a worker killed
mid-batch loses nothing. Job ids make replies idempotent at the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import torch
from prometheus_client import Counter, Histogram, start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from latentedit import keys
from latentedit.aiotasks import stop_tasks
from latentedit.v1 import jobs_pb2
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.heavy_lane import HeavyLane
from latentedit.workers.jobs import HEAVY_KINDS, JobRunner
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model
from latentedit.workers.outbox import Outbox
from latentedit.workers.recovery import Entry, Recovery, parse_entries
from latentedit.workers.scorers import load_torchscript_scorer
from latentedit.workers.torch_threads import compute_executor, heavy_executor, serial_by_default
from latentedit.workers.training_jobs import TrainingLane
from latentedit.workers.worker_settings import WorkerSettings, model_info

__all__ = ["Worker", "WorkerSettings", "model_info", "serve"]

log = logging.getLogger(__name__)

BATCH_JOBS = Histogram(
    "latentedit_worker_batch_jobs", "jobs per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
JOBS = Counter("latentedit_worker_jobs_total", "jobs finished", ["model", "kind", "outcome"])
BATCH_SECONDS = Histogram("latentedit_worker_batch_seconds", "batch processing time")
BUSY_SECONDS = Counter("latentedit_worker_busy_seconds", "wall time with at least one batch")
LANE_RESTARTS = Counter("latentedit_worker_lane_restarts_total", "lane failures", ["lane"])

HEARTBEAT_MS = 6000  # a worker silent this long is dead; its pending jobs are claimed
HEARTBEAT_EVERY_S = 1.5
JANITOR_EVERY_S = 2.0
LOST_IDLE_MS = 3000  # own pending entries idle this long and not in hand are re-run
IDLE_BLOCK_MS = 1000  # blocking read while idle: wakes at once when a job arrives
POLL_S = 0.001  # gathering poll interval
INTAKE_RETRY_S = (0.02, 0.5)  # first and longest pause between reads that cannot reach Redis
MAX_DELIVERIES = 3  # after this many deliveries a job becomes a dead letter
LANE_FAILURES_PER_MIN = 5  # more and the worker stops


class Worker:
    def __init__(self, settings: WorkerSettings, models: dict[str, LoadedModel] | None = None):
        self.settings = settings
        self.id = settings.worker_id
        # One OpenMP team per process (torch_threads.py): the compute thread's.
        self.compute = compute_executor(settings.torch_threads or torch.get_num_threads())
        self.heavy_pool = heavy_executor()
        self.models = models or {
            name: load_model(
                get_spec(name, settings.registry),
                settings.device,
                settings.dtype,
                settings.max_render_batch,
            )
            for name in settings.models
        }
        self.redis = Redis.from_url(settings.redis_url)
        extra = {
            model: {name: load_torchscript_scorer(path, name) for name, path in files.items()}
            for model, files in settings.scorer_files.items()
        }
        self.runner = JobRunner(
            self.models,
            DirectionStore(self.redis),
            settings.limits,
            extra,
            self.compute,
            settings.render_threads,
        )
        self.streams = {keys.job_stream(name): name for name in self.models}
        self.recovery = Recovery(self.redis, self.id, list(self.streams), MAX_DELIVERIES)
        # Before the catalogue: the lane loads trainer plugins that ModelInfo lists.
        self.training = TrainingLane(
            self.redis, self.models, self.runner.store, self.id, settings.training
        )
        self._catalogue = {
            name: model_info(m, settings, list(self.runner.tools[name].scorers)).SerializeToString()
            for name, m in self.models.items()
        }
        self._stop = asyncio.Event()
        self._beat_now = asyncio.Event()  # the intake lost Redis: heartbeat without waiting
        self.failed = False  # a lane kept failing
        self._entries: dict[int, tuple[str, bytes]] = {}  # id(job) -> (stream, entry id)
        self._inflight: set[bytes] = set()  # entry ids in hand here
        self._recovered: list[Entry] = []  # claimed entries, run before new ones
        self.heavy = HeavyLane(
            partial(self.runner.run_batch, publish=self._finish),
            self._release,
            self._busy,
            settings.max_batch,
        )
        self._generator_free = asyncio.Semaphore(1)  # one light batch planning/rendering
        self._batches: set[asyncio.Task[None]] = set()
        self._outbox = Outbox(self.redis, self._inflight.difference_update)
        self._typical = 1.0  # moving average of jobs per light batch: how long to gather
        self._active = 0  # batches in progress (for the busy-time counter)
        self._busy_since = 0.0

    def stop(self) -> None:
        """Stop reading; finish and acknowledge the batches in hand; return from :meth:`run`."""
        self._stop.set()
        self._beat_now.set()

    # ---- Redis state this worker owns ------------------------------------------------------

    async def setup(self) -> None:
        await self._ensure_groups()
        await self._heartbeat_once()

    async def _ensure_groups(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                await self.redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)

    async def _heartbeat_once(self) -> bool:
        """Refresh liveness and catalogue; True if the catalogue was missing (Redis emptied)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.MODELS, mapping=cast(Any, self._catalogue))
            pipe.set(keys.worker_heartbeat(self.id), ",".join(self.models), px=HEARTBEAT_MS)
            for name in self.models:
                pipe.set(keys.model_alive(name), self.id, px=HEARTBEAT_MS)
            added, *_ = await pipe.execute()
        return bool(added)

    # ---- lanes -----------------------------------------------------------------------------

    async def _supervise(self, name: str, lane: Callable[[], Awaitable[None]]) -> None:
        """Run ``lane`` until stop; restart it on failure; stop the worker if it keeps failing."""
        failures: deque[float] = deque()
        while not self._stop.is_set():
            try:
                await lane()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                LANE_RESTARTS.labels(name).inc()
                now = time.monotonic()
                failures.append(now)
                while failures and failures[0] < now - 60:
                    failures.popleft()
                if len(failures) > LANE_FAILURES_PER_MIN:
                    log.critical("lane %s failed %d times in 60 s; stopping", name, len(failures))
                    self.failed = True
                    self.stop()
                    return
                log.exception("lane %s failed; restarting it", name)
                await asyncio.sleep(min(0.05 * 2 ** len(failures), 2.0))

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            try:
                if await self._heartbeat_once():
                    log.warning("the model catalogue was gone (Redis restarted?); re-created")
                    await self._ensure_groups()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), HEARTBEAT_EVERY_S)
            self._beat_now.clear()

    async def _janitor(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), JANITOR_EVERY_S)
            if self._stop.is_set():
                return
            try:
                taken = await self.recovery.own_pending(self._inflight, LOST_IDLE_MS)
                taken += await self.recovery.from_dead()
            except (RedisError, OSError) as exc:
                log.warning("pending-entry check failed: %s", exc)
                continue
            if taken:
                log.warning("re-running %d pending job(s)", len(taken))
            for _, entry_id, _ in taken:
                self._inflight.add(entry_id)
            self._recovered += taken

    async def _intake(self) -> None:
        reachable = True  # the last read reached Redis (a lost Redis wakes the heartbeat once)
        pause = INTAKE_RETRY_S[0]
        while not self._stop.is_set():
            await self._generator_free.acquire()
            released = False
            try:
                batch = await self._next_batch()
                reachable = True
                if batch:
                    released = True  # the batch releases it once rendered
                    self._dispatch(batch)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group gone (Redis restarted?); re-creating it")
                await self._ensure_groups()
                self._beat_now.set()  # the catalogue went with it: gateways answer UNAVAILABLE
            except (RedisError, OSError) as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                if reachable:  # if Redis restarted empty, re-register at once
                    self._beat_now.set()
                    pause = INTAKE_RETRY_S[0]  # a restarted Redis is back within ms
                reachable = False
                await asyncio.sleep(pause)
                pause = min(2 * pause, INTAKE_RETRY_S[1])
            finally:
                if not released:
                    self._generator_free.release()

    async def _read(self, count: int, block_ms: int | None) -> list[Entry]:
        streams = dict.fromkeys(self.streams, ">")
        reply: Any = await self.redis.xreadgroup(
            keys.WORKER_GROUP, self.id, cast(Any, streams), count=count, block=block_ms
        )
        out: list[Entry] = []
        for stream, entries in reply or []:
            out += parse_entries(stream.decode() if isinstance(stream, bytes) else stream, entries)
        self._inflight.update(e[1] for e in out)
        return out

    async def _next_batch(self) -> list[Entry]:
        """Recovered entries, then what is queued; block only when idle; gather under load."""
        cap = self.settings.max_batch
        recovered, self._recovered = self._recovered[:cap], self._recovered[cap:]
        batch = list(recovered)
        try:
            if len(batch) < cap:
                batch += await self._read(cap - len(batch), None)
            if not batch:
                batch = await self._read(cap, IDLE_BLOCK_MS)
            if not batch:
                return []
            # wait for more only when batches have held at least that many (floor, not round:
            # with 1-2 callers, batches of 1 and 2 alternate and a rounded 1.5 made every other
            # batch wait max_wait_ms for a job that was not coming)
            target = min(cap, int(self._typical))
            deadline = time.monotonic() + self.settings.max_wait_ms / 1000
            while len(batch) < target and time.monotonic() < deadline and not self._stop.is_set():
                await asyncio.sleep(POLL_S)
                batch += await self._read(cap - len(batch), None)
        except BaseException:  # entries in hand go back: recovered ones now, new ones via janitor
            self._recovered = recovered + self._recovered
            self._inflight.difference_update(e[1] for e in batch[len(recovered) :])
            raise
        if len(batch) < target:  # waited max_wait_ms in vain: the load dropped; wait less next time
            self._typical = max(float(len(batch)), 0.5 * self._typical)
        else:
            self._typical = 0.8 * self._typical + 0.2 * len(batch)
        BATCH_JOBS.observe(len(batch))
        return batch

    def _dispatch(self, batch: list[Entry]) -> None:
        """Light jobs: one batch task; heavy jobs: the heavy lane; unreadable: acknowledged."""
        light: dict[str, list[jobs_pb2.Job]] = {}
        heavy: list[tuple[str, jobs_pb2.Job]] = []
        for stream, entry_id, job in batch:
            if job is None:
                self._outbox.put("", b"", (stream, entry_id))
                continue
            self._entries[id(job)] = (stream, entry_id)
            if job.WhichOneof("request") in HEAVY_KINDS:
                heavy.append((self.streams[stream], job))
            else:
                light.setdefault(self.streams[stream], []).append(job)
        task = asyncio.create_task(self._light_batch(light, heavy))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _light_batch(
        self, light: dict[str, list[jobs_pb2.Job]], heavy: list[tuple[str, jobs_pb2.Job]]
    ) -> None:
        released = False

        def rendered() -> None:
            nonlocal released
            if not released:
                released = True
                self._generator_free.release()

        jobs = [j for js in light.values() for j in js]
        self._busy(+1)
        try:
            if heavy:
                task = asyncio.create_task(self.heavy.submit(heavy))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
            with BATCH_SECONDS.time():
                models = list(light.items())
                for i, (model, model_jobs) in enumerate(models):
                    last = i == len(models) - 1
                    await self.runner.run_batch(
                        model, model_jobs, self._finish, rendered=rendered if last else None
                    )
        except Exception:
            log.exception("batch of %d job(s) failed; they will be re-run", len(jobs))
        finally:
            rendered()
            self._release(jobs)
            self._busy(-1)

    def _busy(self, delta: int) -> None:
        now = time.monotonic()
        if self._active == 0 and delta > 0:
            self._busy_since = now
        self._active += delta
        if self._active == 0:
            BUSY_SECONDS.inc(now - self._busy_since)

    def _release(self, jobs: list[jobs_pb2.Job]) -> None:
        """Forget jobs that got no final result: their entries stay pending, to be re-run."""
        for job in jobs:
            where = self._entries.pop(id(job), None)
            if where is not None:
                self._inflight.discard(where[1])

    # ---- results -----------------------------------------------------------------------------

    async def _finish(self, job: jobs_pb2.Job, result: jobs_pb2.JobResult) -> None:
        """Queue a result for the next flush; a final one also acknowledges its entry.

        Returns at once: results of one batch leave together, in one pipeline.
        """
        result.worker = self.id
        final = result.WhichOneof("outcome") != "progress"
        where = self._entries.pop(id(job), None) if final else None
        self._outbox.put(job.reply_to, result.SerializeToString(), where)
        if final and where is not None:
            outcome = "error" if result.HasField("error") else "ok"
            JOBS.labels(self.streams[where[0]], job.WhichOneof("request"), outcome).inc()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop`; the batches in hand are finished and acknowledged first."""
        asyncio.get_running_loop().set_default_executor(self.heavy_pool)  # to_thread: serial
        while not self._stop.is_set():
            try:
                await self.setup()
                break
            except (RedisError, OSError) as exc:
                log.warning("redis unavailable at start (%s); retrying", exc)
                await asyncio.sleep(1)
        lanes = {
            "heartbeat": self._heartbeat,
            "janitor": self._janitor,
            "intake": self._intake,
            "heavy": self.heavy.run,
        }
        tasks = {n: asyncio.create_task(self._supervise(n, f)) for n, f in lanes.items()}
        self.training.start()  # training jobs: their own stream and thread (training_jobs.py)
        log.info("worker %s serving %s", self.id, ", ".join(self.models))
        try:
            await self._stop.wait()
            await tasks["intake"]  # stops reading after its current read
            while self._batches:
                await asyncio.wait(set(self._batches))
            await self.heavy.join()  # drain: heavy jobs in hand finish before exit
            await self._outbox.drain()
        finally:
            await self.training.close()  # checkpoint + requeue before the heartbeat goes
            await stop_tasks(tasks.values())
            with contextlib.suppress(Exception):
                await self.redis.delete(keys.worker_heartbeat(self.id))
            await self.redis.aclose()
            self.compute.shutdown(wait=False)
            self.heavy_pool.shutdown(wait=False)
            log.info("worker %s stopped", self.id)


async def serve(settings: WorkerSettings) -> None:
    """Run a worker in this process until SIGTERM or SIGINT; exit 1 if a lane kept failing."""
    import signal

    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    # Only the compute thread runs torch in parallel (torch_threads.py).
    settings = dataclasses.replace(
        settings, torch_threads=settings.torch_threads or torch.get_num_threads()
    )
    serial_by_default()
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()
    if worker.failed:
        raise SystemExit(1)
