"""Results leave a worker in one pipeline per batch: XADD each reply, then XACK + XDEL.

A result is published before its entry is acknowledged (one pipeline keeps that order), so a
worker that dies in between loses nothing: the entry stays pending and is run again; the
gateway takes the first result of a job id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from latentedit import keys

log = logging.getLogger(__name__)

REPLY_MAXLEN = 10000
Where = tuple[str, bytes]  # (job stream, entry id)


class Outbox:
    """Queue results; a task flushes whatever queued since, in one round trip."""

    def __init__(self, redis: Redis, settled: Callable[[Iterable[bytes]], None]) -> None:
        self.redis = redis
        self.settled = settled  # called with the entry ids of each flush, done or failed
        self._items: list[tuple[str, bytes, Where | None]] = []
        self._task: asyncio.Task[None] | None = None

    def put(self, reply_to: str, data: bytes, where: Where | None) -> None:
        """Queue a reply (``reply_to`` empty: none) and, with ``where``, its acknowledgement."""
        self._items.append((reply_to, data, where))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await self._task

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the batch queue the rest of its results
        while self._items:
            items, self._items = self._items, []
            acks: dict[str, list[bytes]] = {}
            for _, _, where in items:
                if where is not None:
                    acks.setdefault(where[0], []).append(where[1])
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for reply_to, data, _ in items:
                        if reply_to:
                            pipe.xadd(
                                reply_to,
                                {keys.RESULT_FIELD: data},
                                maxlen=REPLY_MAXLEN,
                                approximate=True,
                            )
                    for stream, ids in acks.items():
                        pipe.xack(stream, keys.WORKER_GROUP, *ids)
                        pipe.xdel(stream, *ids)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("publishing %d result(s) failed (%s); re-run later", len(items), exc)
            finally:
                for ids in acks.values():
                    self.settled(ids)
