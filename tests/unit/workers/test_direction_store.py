"""DirectionStore on a real Redis: versions, listing, and a cache that is never stale."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from latentedit import keys
from latentedit.codec import from_tensor
from latentedit.errors import InvalidArgument, NotFound
from latentedit.workers.direction_store import DirectionStore


async def test_put_get_list_delete(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    msg = await store.put("m", "a", np.array([3.0, 4.0]), "import", "v1", {"k": "x"}, {"acc": 0.9})
    assert msg.id == "m/a" and msg.version == 1 and msg.params["k"] == "x"
    np.testing.assert_allclose(from_tensor(msg.vector), [0.6, 0.8], atol=1e-7)  # unit norm
    assert (await store.get("m", "a")).metrics["acc"] == pytest.approx(0.9)
    await store.put("m", "b", np.array([1.0, 0.0]), "import", "v1")
    listed = await store.list("m", include_vectors=False)
    assert [d.name for d in listed] == ["a", "b"] and not listed[0].HasField("vector")
    assert (await store.list("m", include_vectors=True))[0].HasField("vector")
    assert await store.list("other", include_vectors=False) == []
    assert await store.delete("m", "a") is True
    assert await store.delete("m", "a") is False
    with pytest.raises(NotFound, match="m/a"):
        await store.get("m", "a")


async def test_versions_grow_across_overwrite_and_recreate(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    versions = [(await store.put("m", "a", np.ones(2), "x", "v")).version for _ in range(2)]
    await store.delete("m", "a")
    versions.append((await store.put("m", "a", np.ones(2), "x", "v")).version)
    assert versions[0] < versions[1] < versions[2]  # delete bumps it too (caches see it)


async def test_cached_lookup_reads_only_versions(redis_client: Redis) -> None:
    """A cache hit costs one HMGET of the versions; the direction bytes are not fetched."""
    store = DirectionStore(redis_client)
    await store.put("m", "a", np.ones(4), "x", "v")
    await store.put("m", "b", np.ones(4), "x", "v")

    async def hmgets() -> int:
        stats = await redis_client.info("commandstats")
        return int(stats.get("cmdstat_hmget", {}).get("calls", 0))

    await store.get_many("m", ["a", "b"])  # fills the cache: versions + bytes
    before = await hmgets()
    await store.get_many("m", ["a", "b", "a"])
    assert await hmgets() == before + 1
    await store.put("m", "b", np.ones(4), "x", "v")  # only b is stale now
    (_, b) = await store.get_many("m", ["a", "b"])
    assert await hmgets() == before + 3 and b.meta.version == 2


async def test_cache_never_serves_stale(redis_client: Redis) -> None:
    a, b = DirectionStore(redis_client), DirectionStore(redis_client)
    await b.put("m", "d", np.array([1.0, 0.0]), "x", "v")
    (first,) = await a.get_many("m", ["d"])
    np.testing.assert_allclose(first.vector, [1, 0])
    (again,) = await a.get_many("m", ["d"])
    assert again is first  # served from the cache while unchanged
    await b.put("m", "d", np.array([0.0, 2.0]), "x", "v")
    (changed,) = await a.get_many("m", ["d"])
    np.testing.assert_allclose(changed.vector, [0, 1])
    await b.delete("m", "d")
    with pytest.raises(NotFound, match="m/d"):
        await a.get_many("m", ["d"])
    await b.put(
        "m", "d", np.array([1.0, 1.0]), "x", "v"
    )  # re-created: a new version, not the cache
    (recreated,) = await a.get_many("m", ["d"])
    np.testing.assert_allclose(recreated.vector, np.ones(2) / np.sqrt(2))


async def test_missing_names_are_all_named(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    await store.put("m", "a", np.ones(2), "x", "v")
    with pytest.raises(NotFound, match="m/b, m/c"):
        await store.get_many("m", ["a", "b", "c"])


async def test_bad_input_is_refused(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    with pytest.raises(InvalidArgument, match="must be 1-128"):
        await store.put("m", "bad name", np.ones(2), "x", "v")
    with pytest.raises(InvalidArgument, match="non-zero"):
        await store.put("m", "z", np.zeros(2), "x", "v")


async def test_metadata_round_trips_and_models_are_separate(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    await store.put("m", "a", np.array([0.0, -2.0, 0.0]), "sefa", "v9", {"k": "1"}, {"e": 2.5})
    await store.put("n", "a", np.array([1.0, 0.0]), "import", "v1")
    got = await store.get("m", "a")
    assert (got.id, got.model, got.name, got.method, got.model_version) == (
        "m/a",
        "m",
        "a",
        "sefa",
        "v9",
    )
    assert dict(got.params) == {"k": "1"} and dict(got.metrics) == {"e": 2.5}
    assert got.created_unix_ms > 0
    np.testing.assert_array_equal(from_tensor(got.vector), [0, -1, 0])
    assert (await store.get("n", "a")).version == 1  # versions count per model
    assert await store.delete("n", "a") is True
    (still,) = await store.get_many("m", ["a"])
    np.testing.assert_array_equal(still.vector, [0, -1, 0])
    assert still.vector.dtype == np.float64 and not still.meta.HasField("vector")
    assert await store.get_many("m", []) == []


async def test_listing_is_sorted_with_unit_vectors(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    rng = np.random.default_rng(0)
    for name in ["c", "a", "B", "b"]:
        await store.put("m", name, rng.standard_normal(5) * 10, "x", "v")
    listed = await store.list("m", include_vectors=True)
    assert [d.name for d in listed] == ["B", "a", "b", "c"]
    for d in listed:
        assert abs(np.linalg.norm(from_tensor(d.vector)) - 1) < 1e-6


async def test_an_evicted_entry_is_fetched_again(redis_client: Redis) -> None:
    store = DirectionStore(redis_client, cache_size=2)
    for name, v in [("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("c", [1.0, 1.0])]:
        await store.put("m", name, np.array(v), "x", "v")
    a1, b1 = await store.get_many("m", ["a", "b"])
    (c1,) = await store.get_many("m", ["c"])  # evicts a, the least recently used
    assert (await store.get_many("m", ["b"]))[0] is b1  # still cached, now most recent
    assert (await store.get_many("m", ["c"]))[0] is c1
    (a2,) = await store.get_many("m", ["a"])  # a miss, which evicts b
    assert a2 is not a1
    assert (await store.get_many("m", ["c"]))[0] is c1
    assert (await store.get_many("m", ["b"]))[0] is not b1
    np.testing.assert_array_equal(a2.vector, a1.vector)


async def test_bad_vectors_and_names_are_refused(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    for name in ["", "a/b", "a" * 129, "-a"]:
        with pytest.raises(InvalidArgument, match="must be 1-128"):
            await store.put("m", name, np.ones(2), "x", "v")
    with pytest.raises(InvalidArgument, match="finite, non-zero"):
        await store.put("m", "z", np.array([np.nan, 1.0]), "x", "v")
    assert await store.list("m", include_vectors=False) == []
    assert await redis_client.hgetall(keys.direction_versions("m")) == {}  # nothing counted


class _DelayedWrites:
    """A real Redis client whose ``hset`` waits for a gate: one put stalls mid-way."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.counted = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def hincrby(self, *args: Any) -> int:
        out = int(await self._redis.hincrby(*args))
        self.counted.set()
        return out

    async def hset(self, *args: Any, **kwargs: Any) -> int:
        await self.gate.wait()
        return int(await self._redis.hset(*args, **kwargs))


async def test_concurrent_puts_leave_one_consistent_answer(redis_client: Redis) -> None:
    slow = _DelayedWrites(redis_client)
    first = asyncio.create_task(
        DirectionStore(slow).put("m", "d", np.array([1.0, 0.0]), "x", "v")  # type: ignore[arg-type]
    )
    # the first put holds version 1 but has not written yet (bounded: a fixed put may not stall)
    counted = asyncio.create_task(slow.counted.wait())
    await asyncio.wait({first, counted}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    counted.cancel()
    await DirectionStore(redis_client).put("m", "d", np.array([0.0, 1.0]), "x", "v")
    warm = DirectionStore(redis_client)
    await warm.get_many("m", ["d"])
    slow.gate.set()
    await first
    (cold,) = await DirectionStore(redis_client).get_many("m", ["d"])
    (cached,) = await warm.get_many("m", ["d"])
    np.testing.assert_array_equal(cached.vector, cold.vector)
    assert cold.meta.version == 2  # the counter and the stored message agree
