"""DirectionStore on a real Redis: versions, listing, and a cache that is never stale."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

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
    assert versions == [1, 2, 3]


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
