"""Pending entries that nobody is working on, and dead letters.

Every entry a worker reads stays in the consumer group's pending list (PEL)
until the worker acknowledges it after publishing the result. An entry can be
left pending with nobody working on it when its worker died (its heartbeat
expired), or when this worker lost it (Redis restarted with AOF while the job
ran, a publish failed). :class:`Recovery` finds both kinds with ``XPENDING``
and takes them over with ``XCLAIM`` (without ``JUSTID``, so Redis counts each
claim as a delivery). An entry already delivered ``max_deliveries`` times is
not run again: it moves to the dead-letter stream ``le:dead`` with the reason,
and its caller gets an error saying so (``latentedit dead-letters`` lists them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from latentedit import keys
from latentedit.errors import Internal
from latentedit.v1 import jobs_pb2

log = logging.getLogger(__name__)

Entry = tuple[str, bytes, jobs_pb2.Job | None]  # (stream, entry id, job; None: unreadable)

DEAD_MAXLEN = 10000
REPLY_MAXLEN = 10000


def parse_entries(stream: str, entries: Any) -> list[Entry]:
    """Stream entries ``[(id, {field: value})]`` -> entries with their decoded jobs."""
    out: list[Entry] = []
    for entry_id, fields in entries or []:
        job = None
        if fields:  # empty: deleted while pending
            try:
                job = jobs_pb2.Job.FromString(fields[keys.JOB_FIELD.encode()])
            except Exception:
                log.exception("undecodable entry %s on %s", entry_id, stream)
        out.append((stream, entry_id, job))
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Recovery:
    """Claims forgotten pending entries for ``worker_id``; dead-letters exhausted ones."""

    def __init__(self, redis: Redis, worker_id: str, streams: list[str], max_deliveries: int):
        self.redis = redis
        self.id = worker_id
        self.streams = streams
        self.max_deliveries = max_deliveries

    async def own_pending(self, inflight: set[bytes], min_idle_ms: int) -> list[Entry]:
        """This worker's pending entries that it is not working on (idle >= ``min_idle_ms``)."""
        out: list[Entry] = []
        for stream in self.streams:
            pending = await self._pending(stream, self.id, min_idle_ms)
            mine = [p for p in pending if p["message_id"] not in inflight]
            out += await self._take(stream, mine, min_idle_ms)
        return out

    async def from_dead(self, min_idle_ms: int = 1000) -> list[Entry]:
        """Pending entries of consumers whose heartbeat expired, now this worker's."""
        out: list[Entry] = []
        for stream in self.streams:
            try:
                consumers: Any = await self.redis.xinfo_consumers(stream, keys.WORKER_GROUP)
            except ResponseError:
                continue  # no group (yet): nothing pending
            for c in consumers:
                name = _text(c["name"])
                if name == self.id or await self.redis.exists(keys.worker_heartbeat(name)):
                    continue
                if c["pending"]:
                    pending = await self._pending(stream, name, min_idle_ms)
                    taken = await self._take(stream, pending, min_idle_ms)
                    if taken:
                        log.warning("claimed %d job(s) of dead worker %s", len(taken), name)
                    out += taken
                    continue  # delete the consumer once nothing is left pending
                await self.redis.xgroup_delconsumer(stream, keys.WORKER_GROUP, name)
        return out

    async def _pending(self, stream: str, consumer: str, min_idle_ms: int) -> list[dict[str, Any]]:
        try:
            pending: Any = await self.redis.xpending_range(
                stream,
                keys.WORKER_GROUP,
                min="-",
                max="+",
                count=1000,
                consumername=consumer,
                idle=min_idle_ms,
            )
        except ResponseError:
            return []  # NOGROUP: the worker's intake re-creates the group
        return list(pending)

    async def _take(
        self, stream: str, pending: list[dict[str, Any]], min_idle_ms: int
    ) -> list[Entry]:
        """Dead-letter exhausted entries, claim the rest (a claim counts as a delivery)."""
        claim = []
        for p in pending:
            if p["times_delivered"] >= self.max_deliveries:
                await self.dead_letter(
                    stream,
                    p["message_id"],
                    int(p["times_delivered"]),
                    f"delivered {p['times_delivered']} times and never finished "
                    "(its workers died or lost it each time)",
                )
            else:
                claim.append(p["message_id"])
        if not claim:
            return []
        # Without JUSTID: Redis bumps each entry's delivery count and returns its fields. The
        # idle bound makes a second worker racing for the same entries claim none of them.
        claimed: Any = await self.redis.xclaim(
            stream, keys.WORKER_GROUP, self.id, min_idle_time=min_idle_ms, message_ids=claim
        )
        return parse_entries(stream, claimed)

    async def dead_letter(self, stream: str, entry_id: bytes, deliveries: int, reason: str) -> None:
        """Move an entry to ``le:dead`` with ``reason``; tell its caller; acknowledge it."""
        entries: Any = await self.redis.xrange(stream, entry_id, entry_id)
        fields = entries[0][1] if entries else {}
        raw = fields.get(keys.JOB_FIELD.encode(), b"") if fields else b""
        job = None
        if raw:
            try:
                job = jobs_pb2.Job.FromString(raw)
            except Exception:
                job = None
        dead_id: Any = await self.redis.xadd(
            keys.DEAD_LETTERS,
            {
                "job": raw,
                "job_id": job.id if job else "",
                "kind": (job.WhichOneof("request") or "") if job else "",
                "stream": stream,
                "entry": entry_id,
                "deliveries": deliveries,
                "error": reason,
                "worker": self.id,
                "at_ms": int(time.time() * 1000),
            },
            maxlen=DEAD_MAXLEN,
            approximate=True,
        )
        if job is not None and job.reply_to:
            err = Internal(
                f"job {job.id} was {reason}; it was set aside as dead letter "
                f"{_text(dead_id)} (see `latentedit dead-letters`)"
            )
            result = jobs_pb2.JobResult(
                job_id=job.id,
                worker=self.id,
                error=jobs_pb2.JobError(code=err.code.value[0], message=err.message),
            )
            await self.redis.xadd(
                job.reply_to,
                {keys.RESULT_FIELD: result.SerializeToString()},
                maxlen=REPLY_MAXLEN,
                approximate=True,
            )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, keys.WORKER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()
        log.error("dead letter %s: entry %s on %s %s", _text(dead_id), entry_id, stream, reason)


async def list_dead_letters(redis: Redis, count: int) -> list[dict[str, str]]:
    """The newest ``count`` dead letters, newest first (fields as text, without the job bytes)."""
    entries: Any = await redis.xrevrange(keys.DEAD_LETTERS, count=count)
    out = []
    for entry_id, fields in entries:
        row = {"id": _text(entry_id)}
        row.update({_text(k): _text(v) for k, v in fields.items() if _text(k) != "job"})
        out.append(row)
    return out
