"""Per-key calls in flight, counted across every gateway on one Redis (or in-process).

Each call holds one member of the sorted set ``le:inflight:{key}`` scored by the call's
deadline (ms); an admission first drops members past their deadline, so a gateway that
dies leaves nothing behind for longer than its calls' deadlines. One Lua script per
admission, one ZREM per release.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

from redis.asyncio import Redis

from latentedit import keys

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return -n - 1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return n + 1
"""


class Inflight(Protocol):
    async def acquire(self, name: str, cap: int, ttl_s: float) -> tuple[str | None, int]:
        """-> (token, calls in flight now) when admitted, else (None, calls in flight)."""
        ...

    async def release(self, name: str, token: str) -> None: ...


class LocalInflight:
    """Counts in this process only (unit tests, or a gateway without Redis)."""

    def __init__(self) -> None:
        self._calls: dict[str, set[str]] = {}

    async def acquire(self, name: str, cap: int, ttl_s: float) -> tuple[str | None, int]:
        calls = self._calls.setdefault(name, set())
        if len(calls) >= cap:
            return None, len(calls)
        token = uuid.uuid4().hex
        calls.add(token)
        return token, len(calls)

    async def release(self, name: str, token: str) -> None:
        self._calls.get(name, set()).discard(token)


class RedisInflight:
    """Counts across all gateways that share ``redis``."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_ACQUIRE)

    async def acquire(self, name: str, cap: int, ttl_s: float) -> tuple[str | None, int]:
        token = uuid.uuid4().hex
        now = int(time.time() * 1000)
        expires = now + int(max(ttl_s, 1.0) * 1000) + 1000
        n = int(await self._script(keys=[keys.inflight(name)], args=[now, expires, token, cap]))
        return (token, n) if n > 0 else (None, -n - 1)

    async def release(self, name: str, token: str) -> None:
        await self.redis.zrem(keys.inflight(name), token)
