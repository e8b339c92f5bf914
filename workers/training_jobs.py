"""The worker's training lane: long-running DiscoverDirections jobs (learned directions).

Jobs wait on their own stream per model (``le:trainjobs:{model}``, consumer group
``trainers``), apart from the interactive streams, and each worker runs at most
``slots`` of them at once (default 1), so Generate / Edit are never queued behind
training. A trainer (:class:`latentedit.workers.learned.protocol.Trainer`) runs in a
dedicated thread with few torch threads, in chunks of ``chunk_s`` seconds; between
chunks the lane publishes progress (JobStatus: step, loss terms, accuracy, ETA),
checks for a cancel request, and every ``checkpoint_every_s`` stores the trainer's
``state_dict`` (``torch.save`` bytes, loaded back with ``weights_only=True``).

A job's stream entry is acknowledged only when it ends. If its worker dies, the
heartbeat key expires and another worker's lane claims the entry (``XCLAIM``) and
resumes from the last checkpoint. A worker that is stopped (SIGTERM) checkpoints
its jobs, marks them queued again, and leaves them to the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from latentedit import keys
from latentedit.aiotasks import stop_tasks
from latentedit.errors import Internal, InvalidArgument, LatentEditError
from latentedit.jobstate import TERMINAL, JobStore
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.direction_store import ACTING, DirectionStore
from latentedit.workers.learned.protocol import Trainer
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.torch_threads import own_threads
from latentedit.workers.trainers import (
    TRAINERS,
    ckpt_bytes,
    ckpt_load,
    load_plugin,
    run_chunk,
    store_result,
)

log = logging.getLogger(__name__)

MAX_DELIVERIES = 5  # a job whose worker died this many times fails instead


@dataclass
class TrainingSettings:
    slots: int = 1  # training jobs one worker runs at once
    threads: int = 1  # torch intra-op threads of the training thread(s)
    checkpoint_every_s: float = 180.0
    chunk_s: float = 0.5  # training time between progress reports and cancel checks
    pause_s: float = 0.0  # sleep after each step, to leave the CPU to interactive traffic
    nice: int = 10  # niceness of the training thread(s) (0: as the worker); Linux: per thread
    plugins: list[str] = field(default_factory=list)  # modules / .py files registering trainers


class Lost(Exception):
    """This worker no longer owns the job (another worker claimed it)."""


class TrainingLane:
    """Claims, runs, checkpoints and finishes training jobs for one worker."""

    def __init__(
        self,
        redis: Redis,
        models: dict[str, LoadedModel],
        store: DirectionStore,
        worker_id: str,
        settings: TrainingSettings,
    ) -> None:
        self.redis = redis
        self.models = models
        self.store = store
        self.id = worker_id
        self.settings = settings
        self.jobs = JobStore(redis)
        for plugin in settings.plugins:
            load_plugin(plugin)
        self.streams = {keys.training_stream(name): name for name in models}
        self._slots = asyncio.Semaphore(settings.slots)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(
            settings.slots, thread_name_prefix="trainer", initializer=self._init_thread
        )

    def _init_thread(self) -> None:
        own_threads(self.settings.threads)  # per thread (OpenMP): render keeps its own
        if self.settings.nice:
            # Linux niceness is per thread (and inherited by its OpenMP workers): the scheduler
            # prefers the render threads whenever both want a core.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.settings.nice)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ---- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Start taking jobs (a task on the running loop); :meth:`close` stops."""
        self._loop_task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop taking jobs; checkpoint and requeue running ones (they resume elsewhere)."""
        self._stopping.set()
        await stop_tasks([self._loop_task])
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _create_groups(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                await self.redis.xgroup_create(stream, keys.TRAINER_GROUP, id="0", mkstream=True)

    async def _run(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._create_groups()
        last_claim = 0.0
        while not self._stopping.is_set():
            await self._slots.acquire()
            try:
                entry = None
                if time.monotonic() - last_claim > 1.0:
                    last_claim = time.monotonic()
                    entry = await self._claim_from_dead()
                if entry is None:
                    entry = await self._read_new()
            except (RedisError, OSError) as exc:
                log.warning("training lane: redis unavailable (%s); retrying", exc)
                entry = None
                await asyncio.sleep(1)
                if "NOGROUP" in str(exc):  # Redis came back empty: the groups are gone
                    with contextlib.suppress(RedisError, OSError):
                        await self._create_groups()
            except BaseException:
                self._slots.release()
                raise
            if entry is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._guarded(*entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read_new(self) -> tuple[str, bytes, bytes] | None:
        reply: Any = await self.redis.xreadgroup(
            keys.TRAINER_GROUP, self.id, dict.fromkeys(self.streams, ">"), count=1, block=500
        )
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                return stream.decode(), entry_id, fields.get(keys.JOB_FIELD.encode(), b"")
        return None

    async def _claim_from_dead(self) -> tuple[str, bytes, bytes] | None:
        """One pending job of a worker whose heartbeat expired, now this worker's."""
        for stream in self.streams:
            try:
                consumers = await self.redis.xinfo_consumers(stream, keys.TRAINER_GROUP)
            except ResponseError:
                continue
            for c in consumers:
                name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                if name == self.id or await self.redis.exists(keys.worker_heartbeat(name)):
                    continue
                if not c["pending"]:
                    await self.redis.xgroup_delconsumer(stream, keys.TRAINER_GROUP, name)
                    continue
                pending: Any = await self.redis.xpending_range(
                    stream, keys.TRAINER_GROUP, min="-", max="+", count=1, consumername=name
                )
                if not pending:
                    continue
                claimed: Any = await self.redis.xclaim(
                    stream, keys.TRAINER_GROUP, self.id, min_idle_time=500,
                    message_ids=[pending[0]["message_id"]],
                )  # fmt: skip
                if claimed and claimed[0][1]:
                    entry_id, fields = claimed[0]
                    log.warning("claimed training job %s of dead worker %s", entry_id, name)
                    if pending[0]["times_delivered"] + 1 > MAX_DELIVERIES:
                        return stream, entry_id, b""  # fails as poison in _guarded
                    return stream, entry_id, fields.get(keys.JOB_FIELD.encode(), b"")
                if claimed:  # the entry was deleted: acknowledge it
                    await self._ack(stream, claimed[0][0])
        return None

    async def _ack(self, stream: str, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, keys.TRAINER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def _guarded(self, stream: str, entry_id: bytes, raw: bytes) -> None:
        """Run one job; ack its entry when it ended (not when it was requeued or lost)."""
        ack = True
        try:
            if not raw:
                await self._fail_poison(stream, entry_id)
            else:
                ack = await self._run_job(self.streams[stream], jobs_pb2.Job.FromString(raw))
        except Exception:
            log.exception("training job entry %s failed outside its job", entry_id)
        finally:
            self._slots.release()
        if ack:
            with contextlib.suppress(RedisError, OSError):
                await self._ack(stream, entry_id)

    async def _fail_poison(self, stream: str, entry_id: bytes) -> None:
        entries: Any = await self.redis.xrange(stream, entry_id, entry_id)
        if not entries:
            return
        job = jobs_pb2.Job.FromString(entries[0][1][keys.JOB_FIELD.encode()])
        snap = await self.jobs.read(job.id)
        if snap.status.state not in TERMINAL:
            err = Internal(f"the job's worker died {MAX_DELIVERIES} times; giving up")
            await self._end(snap.status, None, pb.JOB_STATE_FAILED, err)

    # ---- one job -------------------------------------------------------------------------

    async def _run_job(self, model_name: str, job: jobs_pb2.Job) -> bool:
        """Run (or resume) ``job``; True when it ended (ack), False when requeued or lost."""
        ACTING.set((job.caller, job.caller_admin))  # its directions are its caller's (door)
        try:
            snap = await self.jobs.read(job.id)
        except LatentEditError:
            return True  # expired or deleted
        status, rev = snap.status, snap.rev
        if status.state in TERMINAL:
            return True
        if snap.cancel:
            await self._end(status, None, pb.JOB_STATE_CANCELLED, None)
            return True
        now = int(time.time() * 1000)
        status.state = pb.JOB_STATE_RUNNING
        status.worker = self.id
        if status.attempts:  # it ran before: it goes on from its checkpoint (if any)
            status.step = status.resumed_from_step = status.checkpoint_step
            status.eta_seconds = 0.0
        status.attempts += 1
        status.started_unix_ms = status.started_unix_ms or now
        status.message = (
            f"resuming from the checkpoint at step {status.step}"
            if status.step
            else "building the trainer"
        )
        ok, rev = await self.jobs.put(status, rev, new_owner=self.id)
        if not ok:
            return False  # someone else took it meanwhile
        model = self.models[model_name]
        req = job.discover
        params = dict(req.params)
        if req.top_k and "num_directions" not in params:
            params["num_directions"] = str(req.top_k)
        factory = TRAINERS.get(req.method)
        try:
            if factory is None:
                raise InvalidArgument(f"{req.method!r} is not a training method of this worker")
            trainer = await self._in_thread(factory, model, req.method, params, req.seed)
            blob = await self.jobs.load_checkpoint(job.id)
            if blob is not None:
                await self._in_thread(ckpt_load, trainer, blob)
                status.step = status.resumed_from_step = trainer.step
                log.info("job %s resumes from step %d", job.id, trainer.step)
            return await self._train(model, status, rev, trainer)
        except Lost:
            log.warning("job %s was taken over by another worker; dropping it here", job.id)
            return False
        except LatentEditError as err:
            await self._end(status, None, pb.JOB_STATE_FAILED, err)
        except Exception as exc:
            log.exception("training job %s failed", job.id)
            await self._end(
                status, None, pb.JOB_STATE_FAILED, Internal(f"training failed: {exc!r}")
            )
        return True

    async def _train(
        self, model: LoadedModel, status: pb.JobStatus, rev: int, trainer: Trainer
    ) -> bool:
        s = self.settings
        status.total_steps = trainer.total_steps
        status.step = trainer.step
        status.message = "training"
        last_ckpt = time.monotonic()
        rate = 0.0  # steps per second, smoothed
        while trainer.step < trainer.total_steps:
            rev = await self._publish(status, rev)
            if await self.jobs.cancel_requested(status.job_id):
                await self._end(status, rev, pb.JOB_STATE_CANCELLED, None)
                return True
            if self._stopping.is_set():
                await self._checkpoint(status, trainer)
                status.state = pb.JOB_STATE_QUEUED
                status.message = f"worker stopped; resumes from step {status.checkpoint_step}"
                await self.jobs.put(status, rev, owner=self.id, new_owner="")
                return False
            if time.monotonic() - last_ckpt >= s.checkpoint_every_s:
                await self._checkpoint(status, trainer)
                last_ckpt = time.monotonic()
            steps, metrics, seconds = await self._in_thread(
                run_chunk, trainer, s.chunk_s, s.pause_s
            )
            now_rate = steps / max(seconds, 1e-9)
            rate = now_rate if rate == 0 else 0.7 * rate + 0.3 * now_rate
            status.step = trainer.step
            status.message = "preparing its start" if "preparing" in metrics else "training"
            status.metrics.clear()
            status.metrics.update(metrics)
            status.accuracy = metrics.get("accuracy", status.accuracy)
            status.steps_per_second = rate
            status.eta_seconds = (trainer.total_steps - trainer.step) / rate if rate else 0.0
        status.message = "storing the directions"
        rev = await self._publish(status, rev)
        result = await self._in_thread(trainer.result)
        ids = await store_result(self.store, model, status, result)
        status.direction_ids[:] = ids
        await self._end(status, rev, pb.JOB_STATE_SUCCEEDED, None)
        return True

    async def _publish(self, status: pb.JobStatus, rev: int) -> int:
        ok, rev = await self.jobs.put(status, rev, owner=self.id)
        if not ok:
            raise Lost(status.job_id)
        return rev

    async def _checkpoint(self, status: pb.JobStatus, trainer: Trainer) -> None:
        blob = await self._in_thread(ckpt_bytes, trainer)
        if not await self.jobs.save_checkpoint(status.job_id, self.id, blob):
            raise Lost(status.job_id)
        status.checkpoint_unix_ms = int(time.time() * 1000)
        status.checkpoint_step = trainer.step
        log.info("job %s: checkpoint at step %d (%d bytes)", status.job_id, trainer.step, len(blob))

    async def _end(
        self, status: pb.JobStatus, rev: int | None, state: int, err: LatentEditError | None
    ) -> None:
        """Write a terminal state (any revision: ending wins) and drop the checkpoint."""
        status.state = state  # type: ignore[assignment]
        status.finished_unix_ms = int(time.time() * 1000)
        status.eta_seconds = 0.0
        messages: dict[int, str] = {
            pb.JOB_STATE_SUCCEEDED: f"done: {len(status.direction_ids)} direction(s) stored",
            pb.JOB_STATE_CANCELLED: f"cancelled at step {status.step}",
        }
        status.message = messages.get(state, "failed")
        if err is not None:
            status.error_code = err.code.value[0]
            status.error_message = err.message
        await self.jobs.put(status, None)
        await self.jobs.drop_checkpoint(status.job_id)
        log.info("job %s %s at step %d %s", status.job_id, status.message, status.step, err or "")
