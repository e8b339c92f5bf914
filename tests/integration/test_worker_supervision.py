"""Supervised lanes: a worker (in this process) beside a real stack's redis-server and gateway.

A lane that fails is logged and restarted, and the jobs it held are run again; a lane that
keeps failing stops the worker, whose heartbeat then goes away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from latentedit import keys
from latentedit.client import Client
from latentedit.deploy.stack import Stack
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model
from latentedit.workers.worker import Worker, WorkerSettings

MODEL = "dcgan-faces"


@pytest.fixture(scope="module")
def dcgan() -> LoadedModel:
    return load_model(get_spec(MODEL))


def restarts(lane: str) -> float:
    value = REGISTRY.get_sample_value("latentedit_worker_lane_restarts_total", {"lane": lane})
    return value or 0.0


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        loop.close()


def failing_once(fn: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    async def wrapper(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected lane failure")
        return await fn(*args)

    return wrapper


def test_failed_lanes_restart_and_their_jobs_run(
    make_stack: Callable[..., Stack], dcgan: LoadedModel
) -> None:
    stack = make_stack(workers=0)
    worker = Worker(WorkerSettings(redis_url=stack.redis_url, models=[MODEL]), {MODEL: dcgan})
    worker._next_batch = failing_once(worker._next_batch)  # type: ignore[method-assign]
    worker.heavy._batch = failing_once(worker.heavy._batch)  # type: ignore[method-assign]
    intake0, heavy0 = restarts("intake"), restarts("heavy")
    with running(worker), Client(stack.target, timeout=60, retries=5) as c:
        out = c.generate(MODEL, seeds=[3])
        np.testing.assert_array_equal(out.latents, c.generate(MODEL, seeds=[3]).latents)
        # The heavy lane fails holding this job; restarted, the job is re-run (janitor).
        inv = c.invert(MODEL, out.images, steps=5)
        assert len(inv.latents) == 1 and inv.steps == 5
        assert restarts("intake") == intake0 + 1
        assert restarts("heavy") == heavy0 + 1


def test_a_lane_that_keeps_failing_stops_the_worker(
    make_stack: Callable[..., Stack], dcgan: LoadedModel
) -> None:
    stack = make_stack(workers=0)
    worker = Worker(WorkerSettings(redis_url=stack.redis_url, models=[MODEL]), {MODEL: dcgan})

    async def broken() -> list[Any]:
        raise RuntimeError("injected lane failure")

    worker._next_batch = broken  # type: ignore[method-assign]
    r = redis.Redis.from_url(stack.redis_url)
    with running(worker) as thread:
        thread.join(30)
        assert not thread.is_alive(), "the worker should have stopped"
    assert worker.failed
    assert not r.exists(keys.worker_heartbeat(worker.id))
