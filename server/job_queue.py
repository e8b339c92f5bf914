"""The gateway's side of Redis: bounded enqueue, replies, the model catalogue, recovery.

- Enqueue is one Lua script: XLEN check + XADD (+ the reply stream's TTL), so a full
  stream answers RESOURCE_EXHAUSTED at once and nothing is ever trimmed away. The
  bytes of the jobs a gateway has waiting are bounded too (``max_inflight_bytes``).
- Each gateway reads its own reply stream with one blocking XREAD loop and
  hands each result to the call waiting for its job: no polling per request.
  Progress events of a job arrive the same way, before its final result. A call
  takes the first final result of its job id; any later one is dropped.
- A call that gives up (cancelled, deadline) flags its job in ``le:cancel:{id}``.
- The catalogue (model name -> ModelInfo) is what live workers published.
- A monitor (twice a second) tracks whether Redis answers and which models a
  live worker serves (for health), and refreshes this gateway's marker key. A
  marker found missing means Redis lost its data (restarted without
  persistence): every job still waiting is queued again under the same job id,
  or failed at once with UNAVAILABLE, never left to its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from latentedit import keys
from latentedit.aiotasks import stop_tasks
from latentedit.errors import (
    DeadlineExceeded,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb

log = logging.getLogger(__name__)

_ENQUEUE = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return id
"""
REPLY_TTL_S = 3600
MONITOR_EVERY_S = 0.5
MARKER_TTL_S = 60
REPLY_RETRY_S = (0.02, 0.5)  # first and longest pause between failed reply-stream reads


@dataclass
class _Waiter:
    """A call waiting for its job's results, and what it takes to queue the job again."""

    model: str
    payload: bytes  # the serialized Job
    inbox: asyncio.Queue[jobs_pb2.JobResult] = field(default_factory=asyncio.Queue)


class JobQueue:
    def __init__(
        self,
        redis_url: str,
        gateway_id: str,
        max_queue: int,
        catalogue_ttl_s: float,
        max_inflight_bytes: int = 512 << 20,
    ):
        self.redis = Redis.from_url(redis_url)
        self.reply_stream = keys.reply_stream(gateway_id)
        self.marker = keys.gateway_marker(gateway_id)
        self.max_queue = max_queue
        self.max_inflight_bytes = max_inflight_bytes
        self.inflight_bytes = 0
        self._enqueue = self.redis.register_script(_ENQUEUE)
        self._waiting: dict[str, _Waiter] = {}
        self._reader: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._closing = False  # the loops' stop flag (a cancel alone can be lost: aiotasks.py)
        self.reachable = False  # Redis answered the last check
        self.served: dict[str, bool] = {}  # model -> some live worker serves it (last check)
        self._marked = False  # this gateway's marker was set at least once
        self._catalogue: dict[str, pb.ModelInfo] = {}
        self._alive: set[str] = set()
        self._catalogue_at = -1e9
        self._catalogue_ttl_s = catalogue_ttl_s

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_replies())
        await self.check()
        self._monitor = asyncio.create_task(self._watch())

    async def close(self) -> None:
        self._closing = True
        await stop_tasks([self._monitor, self._reader])
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.reply_stream, self.marker)
        await self.redis.aclose()

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(MONITOR_EVERY_S)
            try:
                await self.check()
            except Exception:  # the monitor must outlive any surprise
                log.exception("redis monitor failed")

    async def check(self) -> None:
        """Update ``reachable`` and ``served``; re-queue waiting jobs if Redis lost its data."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.marker, 1, ex=MARKER_TTL_S, get=True)
                pipe.hkeys(keys.MODELS)
                previous, names = await pipe.execute()
            names = sorted(n.decode() for n in names)
            alive = await self.redis.mget([keys.model_alive(n) for n in names]) if names else []
        except (RedisError, OSError):
            self.reachable = False
            self.served = dict.fromkeys(self.served, False)
            return
        self.reachable = True
        self.served = dict.fromkeys(self.served, False) | {
            n: a is not None for n, a in zip(names, alive, strict=True)
        }
        if previous is None and self._marked:
            await self._requeue_all()
        self._marked = True

    async def _requeue_all(self) -> None:
        """Redis came back empty: queue every waiting job again (same id) or fail it now."""
        waiting = list(self._waiting.items())
        log.warning("Redis lost its data; re-queueing %d waiting job(s)", len(waiting))
        self._catalogue_at = -1e9
        for job_id, w in waiting:
            try:
                added = await self._enqueue(
                    keys=[keys.job_stream(w.model), self.reply_stream],
                    args=[self.max_queue, keys.JOB_FIELD, w.payload, REPLY_TTL_S],
                )
                message = "" if added else "the queue is full"
            except (RedisError, OSError) as exc:
                message = f"Redis is unreachable ({exc})"
            if message:
                err = Unavailable(f"the job queue lost job {job_id} and {message}; retry")
                w.inbox.put_nowait(
                    jobs_pb2.JobResult(
                        job_id=job_id,
                        error=jobs_pb2.JobError(code=err.code.value[0], message=err.message),
                    )
                )

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def models(self) -> tuple[dict[str, pb.ModelInfo], set[str]]:
        """(catalogue, names of models some live worker serves), cached for a moment."""
        if time.monotonic() - self._catalogue_at > self._catalogue_ttl_s:
            try:
                raw: dict[bytes, bytes] = await self.redis.hgetall(keys.MODELS)  # type: ignore[assignment]
                catalogue = {k.decode(): pb.ModelInfo.FromString(v) for k, v in raw.items()}
                names = sorted(catalogue)
                alive = await self.redis.mget([keys.model_alive(n) for n in names]) if names else []
            except (RedisError, OSError) as exc:
                raise Unavailable(f"the job queue (Redis) is unreachable: {exc}") from None
            self._catalogue = catalogue
            self._alive = {n for n, a in zip(names, alive, strict=True) if a is not None}
            self._catalogue_at = time.monotonic()
        return self._catalogue, self._alive

    async def model(self, name: str) -> pb.ModelInfo:
        """ModelInfo of a served model; NOT_FOUND if unknown, UNAVAILABLE if no worker serves it."""
        catalogue, alive = await self.models()
        info = catalogue.get(name)
        if info is None and not catalogue:
            self._catalogue_at = -1e9
            raise Unavailable("no worker has registered a model yet (is one running?); retry later")
        if info is None:
            raise NotFound(f"unknown model {name!r}; served models: {sorted(catalogue)}")
        if name not in alive:
            self._catalogue_at = -1e9  # re-read next time
            raise Unavailable(f"no worker is serving model {name!r} right now; retry later")
        return info

    async def submit(self, model: str, job: jobs_pb2.Job, timeout_s: float) -> jobs_pb2.JobResult:
        """Queue ``job`` on the model's stream and wait for its result for up to ``timeout_s``."""
        async with contextlib.aclosing(self.submit_stream(model, job, timeout_s)) as events:
            async for result in events:
                if result.WhichOneof("outcome") != "progress":
                    return result
        raise AssertionError("unreachable: submit_stream ends with a final result")

    async def submit_stream(
        self, model: str, job: jobs_pb2.Job, timeout_s: float
    ) -> AsyncGenerator[jobs_pb2.JobResult, None]:
        """Queue ``job``; yield its progress results, then its final one.

        If the caller stops iterating early (cancelled RPC, deadline), the job is
        flagged cancelled so the worker stops it within a few steps.
        """
        job.reply_to = self.reply_stream
        payload = job.SerializeToString()
        if self.inflight_bytes + len(payload) > self.max_inflight_bytes:
            raise ResourceExhausted(
                f"this gateway has {self.inflight_bytes >> 20} MiB of jobs in flight (limit "
                f"{self.max_inflight_bytes >> 20} MiB); retry later"
            )
        waiter = _Waiter(model, payload)
        inbox = waiter.inbox
        self._waiting[job.id] = waiter
        self.inflight_bytes += len(payload)
        finished = False
        try:
            try:
                added = await self._enqueue(
                    keys=[keys.job_stream(model), self.reply_stream],
                    args=[self.max_queue, keys.JOB_FIELD, payload, REPLY_TTL_S],
                )
            except (RedisError, OSError) as exc:
                raise Unavailable(f"the job queue (Redis) is unreachable: {exc}") from None
            if not added:
                finished = True
                raise ResourceExhausted(
                    f"the queue for model {model!r} is full ({self.max_queue} jobs); retry later"
                )
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    result = await asyncio.wait_for(inbox.get(), deadline - time.monotonic())
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"no result within {timeout_s:.1f}s (queue wait + processing)"
                    ) from None
                finished = result.WhichOneof("outcome") != "progress"
                yield result
                if finished:
                    return
        finally:
            if self._waiting.pop(job.id, None) is not None:
                self.inflight_bytes -= len(payload)
            if not finished:
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.set(keys.cancelled(job.id), 1, ex=REPLY_TTL_S)

    async def _read_replies(self) -> None:
        last_id = "0-0"  # the stream is this gateway's alone; read from its start
        backoff = REPLY_RETRY_S[0]  # a restarted Redis is back in ms: retry soon, then less often
        while not self._closing:
            try:
                reply: Any = await self.redis.xread(
                    {self.reply_stream: last_id}, block=1000, count=256
                )
                backoff = REPLY_RETRY_S[0]
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("reply stream read failed (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, REPLY_RETRY_S[1])
                continue
            done = []
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    done.append(entry_id)
                    try:
                        result = jobs_pb2.JobResult.FromString(fields[keys.RESULT_FIELD.encode()])
                    except Exception:
                        log.exception("undecodable reply %s", entry_id)
                        continue
                    waiter = self._waiting.get(result.job_id)
                    if waiter is not None:
                        waiter.inbox.put_nowait(result)
            if done:
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.xdel(self.reply_stream, *done)
