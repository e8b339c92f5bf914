"""The worker: a Redis Streams consumer that batches jobs across clients.

Loop: read up to ``max_batch`` jobs from the model streams (consumer group
``workers``), keep gathering for at most ``max_wait_ms``, run each model's
light jobs (render, direction store) as one batch (:class:`JobRunner`) and
hand heavy ones (inversion, discovery) to a second lane that batches whatever
has queued up, so a long inversion never holds up a Generate. Each result is
published to the reply stream its job names, then ``XACK`` + ``XDEL``. A job is acknowledged only
after its result is published, so a worker killed mid-batch loses nothing: its
heartbeat key expires, and a live worker claims its pending jobs
(``XCLAIM``) and runs them again. Job ids make replies idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from prometheus_client import Counter, Histogram, start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from latentedit import keys
from latentedit.errors import Internal
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.jobs import (
    DISCOVER_METHODS,
    HEAVY_KINDS,
    INVERT_METHODS,
    JobRunner,
    error_result,
)
from latentedit.workers.models.registry import MODELS, get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model
from latentedit.workers.scorers import load_torchscript_scorer

log = logging.getLogger(__name__)

BATCH_JOBS = Histogram(
    "latentedit_worker_batch_jobs", "jobs per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
JOBS = Counter("latentedit_worker_jobs_total", "jobs finished", ["model", "kind", "outcome"])
BATCH_SECONDS = Histogram("latentedit_worker_batch_seconds", "batch processing time")

HEARTBEAT_MS = 6000  # a worker silent this long is dead; its pending jobs are claimed
HEARTBEAT_EVERY_S = 1.5
REPLY_MAXLEN = 10000
MAX_DELIVERIES = 3  # a job that took down this many workers fails instead


@dataclass
class WorkerSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    models: list[str] = field(default_factory=lambda: sorted(MODELS))
    device: str = "cpu"
    dtype: str = "float32"
    max_batch: int = 32  # jobs gathered into one batch
    max_wait_ms: float = 5.0  # how long to wait for more jobs once one has arrived
    max_render_batch: int = 64  # images per generator forward pass
    worker_id: str = ""
    metrics_port: int = 0  # 0: no /metrics endpoint
    torch_threads: int = 0  # generator intra-op threads; 0: torch's default (one per core)
    scorer_files: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> name -> .pt
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        for name in self.models:
            get_spec(name)  # NotFound lists the registered models
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.max_render_batch < 1:
            raise ValueError("max_batch and max_render_batch must be >= 1, max_wait_ms >= 0")


def model_info(model: LoadedModel, settings: WorkerSettings, scorers: list[str]) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=model.name,
        version=model.version,
        resolution=model.spec.resolution,
        latent_dim=model.latent_dim,
        description=model.spec.description,
        invert_methods=list(INVERT_METHODS),
        discover_methods=list(DISCOVER_METHODS),
        scorers=sorted(scorers),
        max_batch=settings.limits.max_latents,
    )


class Worker:
    def __init__(self, settings: WorkerSettings, models: dict[str, LoadedModel] | None = None):
        self.settings = settings
        self.id = settings.worker_id
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.models = models or {
            name: load_model(
                get_spec(name), settings.device, settings.dtype, settings.max_render_batch
            )
            for name in settings.models
        }
        self.redis = Redis.from_url(settings.redis_url)
        extra = {
            model: {name: load_torchscript_scorer(path, name) for name, path in files.items()}
            for model, files in settings.scorer_files.items()
        }
        self.runner = JobRunner(self.models, DirectionStore(self.redis), settings.limits, extra)
        self.streams = {keys.job_stream(name): name for name in self.models}
        self._stop = asyncio.Event()
        self._entries: dict[str, tuple[str, bytes]] = {}  # job id -> (stream, entry id)
        self._inflight: set[bytes] = set()  # entry ids being processed here
        self._claimed = False  # pending entries were claimed from a dead worker
        self._heavy: asyncio.Queue[tuple[str, jobs_pb2.Job]] = asyncio.Queue()
        self._heavy_slots = asyncio.Semaphore(settings.max_batch)

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run` (SIGTERM / SIGINT)."""
        self._stop.set()

    async def setup(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                await self.redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)
        for model in self.models.values():
            info = model_info(model, self.settings, list(self.runner.tools[model.name].scorers))
            await self.redis.hset(keys.MODELS, model.name, info.SerializeToString())
        await self._heartbeat_once()

    async def _heartbeat_once(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker_heartbeat(self.id), ",".join(self.models), px=HEARTBEAT_MS)
            for name in self.models:
                pipe.set(keys.model_alive(name), self.id, px=HEARTBEAT_MS)
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            try:
                await self._heartbeat_once()
                await self._claim_from_dead()
            except Exception:
                log.exception("heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HEARTBEAT_EVERY_S)

    async def _claim_from_dead(self) -> None:
        """Move pending jobs of consumers whose heartbeat expired to this worker."""
        for stream in self.streams:
            try:
                consumers = await self.redis.xinfo_consumers(stream, keys.WORKER_GROUP)
            except ResponseError:
                continue
            for c in consumers:
                name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                if name == self.id or await self.redis.exists(keys.worker_heartbeat(name)):
                    continue
                if c["pending"]:
                    pending: Any = await self.redis.xpending_range(
                        stream, keys.WORKER_GROUP, min="-", max="+", count=1000, consumername=name
                    )
                    poison = [
                        p["message_id"] for p in pending if p["times_delivered"] >= MAX_DELIVERIES
                    ]
                    for entry_id in poison:
                        await self._fail_poison(stream, entry_id)
                    ids: list[Any] = [
                        p["message_id"] for p in pending if p["message_id"] not in poison
                    ]
                    if ids:
                        claimed = await self.redis.xclaim(
                            stream,
                            keys.WORKER_GROUP,
                            self.id,
                            min_idle_time=1000,
                            message_ids=ids,
                            justid=True,
                        )
                        self._claimed = self._claimed or bool(claimed)
                        log.warning("claimed %d job(s) of dead worker %s", len(claimed), name)
                        continue  # delete the consumer once nothing is left pending
                await self.redis.xgroup_delconsumer(stream, keys.WORKER_GROUP, name)

    async def _fail_poison(self, stream: str, entry_id: bytes) -> None:
        """A job whose workers died MAX_DELIVERIES times fails alone instead of killing more."""
        entries: Any = await self.redis.xrange(stream, entry_id, entry_id)
        if entries and entries[0][1]:
            job = jobs_pb2.Job.FromString(entries[0][1][keys.JOB_FIELD.encode()])
            err = Internal(
                f"the job was delivered {MAX_DELIVERIES} times and its worker died each time"
            )
            await self._publish(job, error_result(job.id, err))
        await self._ack(stream, entry_id)
        log.error("dropped poison job %s on %s", entry_id, stream)

    async def _read(
        self, new: bool, count: int, block_ms: int | None
    ) -> list[tuple[str, bytes, jobs_pb2.Job | None]]:
        """(stream, entry id, job) triples; ``new=False`` re-reads this worker's pending entries."""
        streams = {s: ">" if new else "0" for s in self.streams}
        reply: Any = await self.redis.xreadgroup(
            keys.WORKER_GROUP, self.id, cast(Any, streams), count=count, block=block_ms
        )
        out: list[tuple[str, bytes, jobs_pb2.Job | None]] = []
        for stream, entries in reply or []:
            stream_name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                if not fields:  # deleted while pending
                    out.append((stream_name, entry_id, None))
                    continue
                try:
                    job = jobs_pb2.Job.FromString(fields[keys.JOB_FIELD.encode()])
                except Exception:
                    log.exception("undecodable entry %s on %s", entry_id, stream_name)
                    job = None  # acknowledged and dropped by run_once
                out.append((stream_name, entry_id, job))
        return out

    async def _gather(self) -> list[tuple[str, bytes, jobs_pb2.Job | None]]:
        """Claimed pending entries first; else wait for new ones and gather up to max_wait_ms."""
        s = self.settings
        if self._claimed:
            # Reading history bumps delivery counts, so only after a claim (see MAX_DELIVERIES).
            self._claimed = False
            pending = await self._read(new=False, count=1000, block_ms=None)
            batch = [e for e in pending if e[1] not in self._inflight]
            if batch:
                self._claimed = len(batch) > s.max_batch
                return batch[: s.max_batch]
        batch = await self._read(new=True, count=s.max_batch, block_ms=500)
        deadline = time.monotonic() + s.max_wait_ms / 1000
        while batch and len(batch) < s.max_batch:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms < 1:
                break
            more = await self._read(new=True, count=s.max_batch - len(batch), block_ms=remaining_ms)
            if not more:
                break
            batch.extend(more)
        return batch

    async def run_once(self) -> int:
        """Gather one batch; run its light jobs now and hand heavy ones to the heavy lane.

        Returns the number of entries gathered.
        """
        batch = await self._gather()
        light: dict[str, list[jobs_pb2.Job]] = {}
        for stream, entry_id, job in batch:
            if job is None:
                await self._ack(stream, entry_id)
                continue
            self._entries[job.id] = (stream, entry_id)
            self._inflight.add(entry_id)
            if job.WhichOneof("request") in HEAVY_KINDS:
                await self._heavy_slots.acquire()  # back-pressure: leave the rest to other workers
                self._heavy.put_nowait((self.streams[stream], job))
            else:
                light.setdefault(self.streams[stream], []).append(job)
        if batch:
            BATCH_JOBS.observe(len(batch))
        with BATCH_SECONDS.time():
            for model, jobs in light.items():
                await self.runner.run_batch(model, jobs, self._finish)
        return len(batch)

    async def _heavy_lane(self) -> None:
        """Run heavy jobs (inversion, discovery); everything queued together is one batch."""
        while True:
            first = await self._heavy.get()
            items = [first]
            while not self._heavy.empty():
                items.append(self._heavy.get_nowait())
            by_model: dict[str, list[jobs_pb2.Job]] = {}
            for model, job in items:
                by_model.setdefault(model, []).append(job)
            try:
                for model, jobs in by_model.items():
                    await self.runner.run_batch(model, jobs, self._finish)
            finally:
                for _ in items:
                    self._heavy.task_done()
                    self._heavy_slots.release()

    async def _finish(self, job: jobs_pb2.Job, result: jobs_pb2.JobResult) -> None:
        """Publish a result, then acknowledge its entry (never the other way round).

        Progress events are published only: the job is still running.
        """
        result.worker = self.id
        await self._publish(job, result)
        if result.WhichOneof("outcome") == "progress":
            return
        stream, entry_id = self._entries.pop(job.id)
        await self._ack(stream, entry_id)
        self._inflight.discard(entry_id)
        outcome = "error" if result.HasField("error") else "ok"
        JOBS.labels(self.streams[stream], job.WhichOneof("request"), outcome).inc()

    async def _publish(self, job: jobs_pb2.Job, result: jobs_pb2.JobResult) -> None:
        await self.redis.xadd(
            job.reply_to,
            {keys.RESULT_FIELD: result.SerializeToString()},
            maxlen=REPLY_MAXLEN,
            approximate=True,
        )

    async def _ack(self, stream: str, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, keys.WORKER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def run(self) -> None:
        """Serve until :meth:`stop`; the batch in hand is finished first (drain)."""
        await self.setup()
        heartbeat = asyncio.create_task(self._heartbeat())
        heavy = asyncio.create_task(self._heavy_lane())
        log.info("worker %s serving %s", self.id, ", ".join(self.models))
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                except (RedisError, OSError) as exc:
                    log.warning("redis unavailable (%s); retrying", exc)
                    await asyncio.sleep(1)
                except Exception:
                    log.exception("worker loop error; continuing")
                    await asyncio.sleep(0.5)
            await self._heavy.join()  # drain: heavy jobs in hand finish before exit
        finally:
            heavy.cancel()
            heartbeat.cancel()
            with contextlib.suppress(Exception):
                await self.redis.delete(keys.worker_heartbeat(self.id))
            await self.redis.aclose()
            log.info("worker %s stopped", self.id)


async def serve(settings: WorkerSettings) -> None:
    """Run a worker in this process until SIGTERM or SIGINT."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()
