"""Named directions in Redis, with an in-memory LRU cache that is never stale.

Each direction lives in ``le:dirs:{model}`` (name -> Direction message with its
unit vector) and its version in ``le:dirvers:{model}`` (a counter that only grows, also
across delete and re-create). A lookup reads the
versions of all asked names in one round trip and fetches only what changed,
so a direction overwritten or deleted by another worker is never served from
the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import cast

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import WatchError

from latentedit import keys, validate
from latentedit.codec import from_tensor, to_tensor
from latentedit.errors import NotFound
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.latent_math import unit


@dataclass(frozen=True)
class CachedDirection:
    meta: pb.Direction  # without the vector
    vector: np.ndarray  # (d,) float64, unit norm


class DirectionStore:
    def __init__(self, redis: Redis, cache_size: int = 1024) -> None:
        self.redis = redis
        self._cache: OrderedDict[tuple[str, str], CachedDirection] = OrderedDict()
        self._cache_size = cache_size

    async def put(
        self,
        model: str,
        name: str,
        vector: np.ndarray,
        method: str,
        model_version: str,
        params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> pb.Direction:
        """Store (or overwrite, bumping the version) a direction; returns it with its vector."""
        validate.name(name)
        v = unit(vector)
        msg = pb.Direction(
            id=f"{model}/{name}",
            model=model,
            name=name,
            method=method,
            params=params or {},
            created_unix_ms=int(time.time() * 1000),
            model_version=model_version,
            vector=to_tensor(v.astype(np.float32)),
            metrics=metrics or {},
        )
        versions = keys.direction_versions(model)
        # Version and message change together (WATCH/MULTI), so concurrent puts never leave a
        # message stored under another put's version.
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(versions)
                    msg.version = int(await pipe.hget(versions, name) or 0) + 1
                    pipe.multi()
                    pipe.hset(versions, name, msg.version)
                    pipe.hset(keys.directions(model), name, msg.SerializeToString())
                    await pipe.execute()
                    return msg
                except WatchError:
                    continue

    async def get_many(self, model: str, names: list[str]) -> list[CachedDirection]:
        """Current directions for ``names`` (cached unless changed); NotFound names the missing."""
        if not names:
            return []
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.direction_versions(model), names)
            pipe.hmget(keys.directions(model), names)
            versions, stored = await pipe.execute()
        missing = [n for n, raw in zip(names, stored, strict=True) if raw is None]
        if missing:
            raise NotFound(f"unknown direction(s) {', '.join(f'{model}/{n}' for n in missing)}")
        out = []
        for name, ver, raw in zip(names, versions, stored, strict=True):
            key = (model, name)
            hit = self._cache.get(key)
            if hit is not None and ver is not None and hit.meta.version == int(ver):
                self._cache.move_to_end(key)
                out.append(hit)
                continue
            out.append(self._remember(key, raw))
        return out

    def _remember(self, key: tuple[str, str], raw: bytes) -> CachedDirection:
        msg = pb.Direction.FromString(cast(bytes, raw))
        vector = from_tensor(msg.vector, "direction").astype(np.float64)
        msg.ClearField("vector")
        entry = CachedDirection(msg, vector)
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def get(self, model: str, name: str) -> pb.Direction:
        raw = await self.redis.hget(keys.directions(model), name)
        if raw is None:
            raise NotFound(f"unknown direction {model}/{name}")
        return pb.Direction.FromString(cast(bytes, raw))

    async def list(self, model: str, include_vectors: bool) -> list[pb.Direction]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            keys.directions(model)
        )
        out = []
        for _, value in sorted(raw.items()):
            msg = pb.Direction.FromString(value)
            if not include_vectors:
                msg.ClearField("vector")
            out.append(msg)
        return out

    async def delete(self, model: str, name: str) -> bool:
        # The version counter stays, so a later direction of the same name gets a new version.
        deleted = await self.redis.hdel(keys.directions(model), name)
        self._cache.pop((model, name), None)
        return bool(deleted)
