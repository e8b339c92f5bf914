"""Training-job state in Redis, shared by gateways (torch-free) and workers.

A job is one hash ``le:tjob:{id}``:

- ``state``: queued | running | succeeded | failed | cancelled
- ``rev``: a counter bumped by every status write (optimistic concurrency)
- ``owner``: the worker running it ("" while queued)
- ``cancel``: "1" once someone asked to cancel it
- ``status``: the serialized :class:`JobStatus` (what GetJob answers)
- ``job``: the serialized :class:`Job` (the DiscoverDirections request)

Every status write goes through one Lua script that checks the revision (and the
owner, for workers), writes the hash and appends the new status to the job's
event stream in one step, so WatchJob (which reads the status and the last event
id together) never misses an update nor sees one twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from latentedit import keys
from latentedit.errors import InvalidArgument, NotFound
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb

STATES: dict[int, str] = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}
TERMINAL = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})
EVENTS_MAXLEN = 200  # status updates kept per job (WatchJob only needs the newest)
RETENTION_S = 7 * 24 * 3600  # finished jobs (hash + events) are kept this long

# KEYS: hash, events. ARGV: expected rev ("" = any), expected owner ("" = any),
# state, status bytes, new owner ("-" = keep), expire-after-s ("0" = never).
# -> {1, rev} written; {0, rev} revision or owner mismatch; {-1} no such job.
_PUT = """
local cur = redis.call('HMGET', KEYS[1], 'rev', 'owner')
if not cur[1] then return {-1} end
if ARGV[1] ~= '' and cur[1] ~= ARGV[1] then return {0, tonumber(cur[1])} end
if ARGV[2] ~= '' and cur[2] ~= ARGV[2] then return {0, tonumber(cur[1])} end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'status', ARGV[4])
if ARGV[5] ~= '-' then redis.call('HSET', KEYS[1], 'owner', ARGV[5]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'status', ARGV[4])
if tonumber(ARGV[6]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return {1, rev}
"""

# KEYS: hash, checkpoint. ARGV: owner, bytes. Only the owner may write a checkpoint.
_CHECKPOINT = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


def check_job_id(job_id: str) -> str:
    """A job id is 32 lowercase hex digits (what DiscoverDirections returned)."""
    if not job_id:
        raise InvalidArgument("job_id is required (DiscoverDirections returned it)")
    if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
        raise InvalidArgument(
            f"job_id {job_id[:64]!r} is malformed: a job id is 32 lowercase hex digits"
        )
    return job_id


def state_name(state: int) -> str:
    return STATES.get(state, "unspecified")


@dataclass
class Snapshot:
    """One consistent read of a job: its status, revision, owner and cancel flag."""

    status: pb.JobStatus
    rev: int
    owner: str
    cancel: bool
    job: jobs_pb2.Job | None  # only when asked for


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


class JobStore:
    """Training jobs in Redis: create, read, conditional writes, listing, checkpoints."""

    def __init__(self, redis: Redis, retention_s: int = RETENTION_S) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self._put = redis.register_script(_PUT)
        self._checkpoint = redis.register_script(_CHECKPOINT)

    async def create(
        self,
        model: str,
        request: pb.DiscoverDirectionsRequest,
        caller: str = "",
        caller_admin: bool = False,
    ) -> pb.JobStatus:
        """Record a queued job for ``request`` and put it on the model's training stream.

        ``caller``: the API key name that asks ("" on an open gateway): the job's owner, and
        the owner of the directions it stores.
        """
        now = int(time.time() * 1000)
        job = jobs_pb2.Job(
            id=uuid.uuid4().hex, enqueued_unix_ms=now, caller=caller, caller_admin=caller_admin
        )
        job.discover.CopyFrom(request)
        status = pb.JobStatus(
            job_id=job.id,
            model=model,
            method=request.method,
            state=pb.JOB_STATE_QUEUED,
            created_unix_ms=now,
            updated_unix_ms=now,
            name_prefix=request.name_prefix or request.method,
            params=dict(request.params),
            seed=request.seed,
            message="waiting for a worker",
            owner=caller,
        )
        blob = status.SerializeToString()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.training_job(job.id),
                mapping={
                    "state": "queued",
                    "rev": 1,
                    "owner": "",
                    "status": blob,
                    "job": job.SerializeToString(),
                },
            )
            pipe.xadd(keys.training_events(job.id), {"status": blob}, maxlen=EVENTS_MAXLEN)
            pipe.zadd(keys.training_index(model), {job.id: now})
            pipe.xadd(keys.training_stream(model), {keys.JOB_FIELD: job.SerializeToString()})
            await pipe.execute()
        return status

    async def read(self, job_id: str, with_job: bool = False) -> Snapshot:
        """The job now; NotFound if no such job (or it expired)."""
        fields = ["status", "rev", "owner", "cancel", "job"]
        raw = await self.redis.hmget(keys.training_job(job_id), fields)
        status, rev, owner, cancel, job = cast(list[Any], raw)
        if status is None:
            raise NotFound(f"no job {job_id!r} (unknown, or finished more than a week ago)")
        msg = pb.JobStatus.FromString(status)
        msg.cancel_requested = msg.cancel_requested or cancel == b"1"
        return Snapshot(
            msg,
            int(rev),
            _text(owner),
            cancel == b"1",
            jobs_pb2.Job.FromString(job) if with_job and job else None,
        )

    async def read_with_cursor(self, job_id: str) -> tuple[pb.JobStatus, str]:
        """(status now, id of the last event) read atomically: tail the events after it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.training_job(job_id), ["status", "cancel"])
            pipe.xrevrange(keys.training_events(job_id), "+", "-", count=1)
            (status, cancel), last = await pipe.execute()
        if status is None:
            raise NotFound(f"no job {job_id!r} (unknown, or finished more than a week ago)")
        msg = pb.JobStatus.FromString(status)
        msg.cancel_requested = msg.cancel_requested or cancel == b"1"
        return msg, _text(last[0][0]) if last else "0-0"

    async def events(
        self, job_id: str, after: str, block_ms: int
    ) -> tuple[list[pb.JobStatus], str]:
        """Status updates after event id ``after`` (waits up to ``block_ms``); new cursor."""
        reply: Any = await self.redis.xread(
            {keys.training_events(job_id): after}, block=block_ms, count=100
        )
        out = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                after = _text(entry_id)
                out.append(pb.JobStatus.FromString(fields[b"status"]))
        return out, after

    async def put(
        self,
        status: pb.JobStatus,
        rev: int | None,
        owner: str | None = None,
        new_owner: str | None = None,
    ) -> tuple[bool, int]:
        """Write ``status`` if the job is still at ``rev`` (None: any) and owned by ``owner``
        (None: anyone). Returns (written, revision now). NotFound if the job is gone.
        """
        status.updated_unix_ms = int(time.time() * 1000)
        expire = self.retention_s if status.state in TERMINAL else 0
        res: Any = await self._put(
            keys=[keys.training_job(status.job_id), keys.training_events(status.job_id)],
            args=[
                "" if rev is None else str(rev),
                "" if owner is None else owner,
                state_name(status.state),
                status.SerializeToString(),
                "-" if new_owner is None else new_owner,
                expire,
                EVENTS_MAXLEN,
            ],
        )
        if res[0] == -1:
            raise NotFound(f"no job {status.job_id!r}")
        return res[0] == 1, int(res[1])

    async def request_cancel(self, job_id: str) -> None:
        await self.redis.hset(keys.training_job(job_id), "cancel", "1")

    async def cancel_requested(self, job_id: str) -> bool:
        return await self.redis.hget(keys.training_job(job_id), "cancel") == b"1"

    async def save_checkpoint(self, job_id: str, owner: str, blob: bytes) -> bool:
        """Store a checkpoint if ``owner`` still owns the job."""
        return bool(
            await self._checkpoint(
                keys=[keys.training_job(job_id), keys.training_checkpoint(job_id)],
                args=[owner, blob],
            )
        )

    async def load_checkpoint(self, job_id: str) -> bytes | None:
        return cast(bytes | None, await self.redis.get(keys.training_checkpoint(job_id)))

    async def drop_checkpoint(self, job_id: str) -> None:
        await self.redis.delete(keys.training_checkpoint(job_id))

    async def list(
        self, model: str, states: set[int] | None = None, limit: int = 100, owner: str | None = None
    ) -> list[pb.JobStatus]:
        """A model's jobs (of ``owner``, if given), newest first; ids whose job expired are
        dropped from the index."""
        index = keys.training_index(model)
        out: list[pb.JobStatus] = []
        start, page = 0, max(limit, 50)
        while len(out) < limit:
            ids: list[Any] = await self.redis.zrevrange(index, start, start + page - 1)
            if not ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(keys.training_job(_text(job_id)), ["status", "cancel"])
                rows = await pipe.execute()
            gone = []
            for job_id, (status, cancel) in zip(ids, rows, strict=True):
                if status is None:
                    gone.append(job_id)
                    continue
                msg = pb.JobStatus.FromString(status)
                msg.cancel_requested = msg.cancel_requested or cancel == b"1"
                if (not states or msg.state in states) and owner in (None, msg.owner):
                    out.append(msg)
            if gone:
                await self.redis.zrem(index, *gone)
            start += page - len(gone)
        return out[:limit]
