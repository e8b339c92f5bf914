"""On a real redis-server: per-key in-flight slots shared by gateways, direction owners."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

from latentedit.errors import PermissionDenied
from latentedit.server.auth_inflight import RedisInflight
from latentedit.workers.direction_store import ACTING, DirectionStore


async def test_inflight_slots_are_shared_and_lapse(redis_client: Redis) -> None:
    one, two = RedisInflight(redis_client), RedisInflight(redis_client)  # two gateways
    a, n = await one.acquire("k", 2, ttl_s=60)
    assert a is not None and n == 1
    b, n = await two.acquire("k", 2, ttl_s=1)
    assert b is not None and n == 2
    assert await one.acquire("k", 2, ttl_s=60) == (None, 2)
    assert (await two.acquire("other", 2, ttl_s=60))[0] is not None  # per key
    await one.release("k", a)
    c, n = await two.acquire("k", 2, ttl_s=60)
    assert c is not None and n == 2
    # b's gateway "died": its slot lapses after its deadline (1 s + 1 s margin).
    await redis_client.zadd("le:inflight:k", {b: 0})  # as if its deadline had passed
    d, n = await one.acquire("k", 2, ttl_s=60)
    assert d is not None and n == 2


async def test_direction_owners(redis_client: Redis) -> None:
    store = DirectionStore(redis_client)
    v = np.ones(4)
    ACTING.set(("alice", False))
    first = await store.put("m", "d", v, "import", "v1")
    assert first.owner == "alice"
    assert (await store.put("m", "d", -v, "import", "v1")).version == first.version + 1
    ACTING.set(("bob", False))
    with pytest.raises(PermissionDenied, match="belongs to key 'alice'"):
        await store.put("m", "d", v, "import", "v1")
    with pytest.raises(PermissionDenied):
        await store.delete("m", "d")
    assert (await store.get_many("m", ["d"]))[0].meta.owner == "alice"  # reading is fine
    ACTING.set(("root", True))
    assert await store.delete("m", "d")
    ACTING.set(("", False))  # open gateway: nobody owns anything
    await store.put("m", "e", v, "import", "v1")
    ACTING.set(("bob", False))
    await store.put("m", "e", v, "import", "v1")
