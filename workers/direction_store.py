"""Named directions in Redis, with an in-memory LRU cache that is never stale.

Each direction lives in ``le:dirs:{model}`` (name -> Direction message with its
unit vector) and its version in ``le:dirvers:{model}`` (a counter that only grows, bumped
by put and by delete). A lookup reads the versions of all asked names in one round trip
and fetches the bytes only of what changed,
so a direction overwritten or deleted by another worker is never served from
the cache.
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import cast

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import WatchError

from latentedit import keys, validate
from latentedit.codec import from_tensor, to_tensor
from latentedit.errors import NotFound, PermissionDenied
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.latent_math import unit

# Who the current job acts for: (API key name, admin). Set per job by the JobRunner from
# Job.caller; ("", False) on an open gateway, where nobody owns anything.
ACTING: contextvars.ContextVar[tuple[str, bool]] = contextvars.ContextVar(
    "acting", default=("", False)
)


def _check_owner(model: str, name: str, raw: bytes | str | None) -> None:
    """PermissionDenied unless the current caller may overwrite / delete this stored direction."""
    caller, admin = ACTING.get()
    if raw is None or not caller or admin:
        return
    owner = pb.Direction.FromString(raw if isinstance(raw, bytes) else raw.encode()).owner
    if owner and owner != caller:
        raise PermissionDenied(
            f"direction {model}/{name} belongs to key {owner!r}; only that key or an admin key "
            "may overwrite or delete it (pick another name)"
        )


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
        space: str = "z",
    ) -> pb.Direction:
        """Store (or overwrite, bumping the version) a direction of ``space`` ("z" or "w")."""
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
            owner=ACTING.get()[0],
            space=space,
        )
        versions = keys.direction_versions(model)
        # Version and message change together (WATCH/MULTI), so concurrent puts never leave a
        # message stored under another put's version.
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(versions)
                    _check_owner(model, name, await pipe.hget(keys.directions(model), name))
                    msg.version = int(await pipe.hget(versions, name) or 0) + 1
                    pipe.multi()
                    pipe.hset(versions, name, msg.version)
                    pipe.hset(keys.directions(model), name, msg.SerializeToString())
                    await pipe.execute()
                    return msg
                except WatchError:
                    continue

    async def get_many(self, model: str, names: list[str]) -> list[CachedDirection]:
        """Current directions for ``names``; NotFound names the missing.

        One round trip for the versions; a second one, for the bytes of the names whose
        cached version is stale, only when there are such names.
        """
        if not names:
            return []
        versions = await self.redis.hmget(keys.direction_versions(model), names)
        found: dict[str, CachedDirection] = {}
        for n, ver in zip(names, versions, strict=True):
            hit = self._cache.get((model, n))
            if ver is not None and hit is not None and hit.meta.version == int(ver):
                found[n] = hit
                self._cache.move_to_end((model, n))
        stale = sorted(set(names) - set(found))
        if stale:
            stored = await self.redis.hmget(keys.directions(model), stale)
            missing = [n for n, raw in zip(stale, stored, strict=True) if raw is None]
            if missing:
                raise NotFound(f"unknown direction(s) {', '.join(f'{model}/{n}' for n in missing)}")
            for n, raw in zip(stale, stored, strict=True):
                found[n] = self._remember((model, n), cast(bytes, raw))
        return [found[n] for n in names]

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

    async def list(self, model: str, include_vectors: bool, space: str = "") -> list[pb.Direction]:
        """All directions of ``model`` (only those of ``space`` if given), sorted by name."""
        raw: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            keys.directions(model)
        )
        out = []
        for _, value in sorted(raw.items()):
            msg = pb.Direction.FromString(value)
            if space and (msg.space or "z") != space:
                continue
            if not include_vectors:
                msg.ClearField("vector")
            out.append(msg)
        return out

    async def delete(self, model: str, name: str) -> bool:
        # The version counter grows (never resets), so caches elsewhere see the delete and a later
        # direction of the same name gets a new version.
        if ACTING.get()[0]:
            _check_owner(model, name, await self.redis.hget(keys.directions(model), name))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.directions(model), name)
            pipe.hincrby(keys.direction_versions(model), name, 1)
            deleted, _ = await pipe.execute()
        self._cache.pop((model, name), None)
        return bool(deleted)

    # ---- learned direction sets (workers/learned): one blob per set, beside the records ----

    async def put_set_blob(self, model: str, name: str, blob: bytes) -> None:
        """Store a learned set's parameters (safetensors bytes) under ``name``."""
        validate.name(name)
        await self.redis.hset(keys.learned_sets(model), name, blob)

    async def get_set_blob(self, model: str, name: str) -> bytes:
        """A learned set's blob; NotFound if the set is gone."""
        raw = await self.redis.hget(keys.learned_sets(model), name)
        if raw is None:
            raise NotFound(f"unknown learned direction set {model}/{name}")
        return cast(bytes, raw)
