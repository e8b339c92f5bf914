"""Redis restarts, lost pending entries and dead letters, on real redis-server processes.

A worker is paused (SIGSTOP) while the test puts jobs in a known state, so nothing depends
on timing: calls waiting in the queue when Redis restarts empty; an entry delivered to the
worker and then lost (as when Redis restarts with AOF while the job runs); an entry already
delivered three times.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import redis

from latentedit import keys
from latentedit.client import Client, Internal
from latentedit.deploy.cli import main as cli_main
from latentedit.deploy.stack import Stack
from latentedit.errors import LatentEditError, Unavailable

MODEL = "dcgan-faces"
STREAM = keys.job_stream(MODEL)


def poll(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def paused(proc: Any) -> Iterator[None]:
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


class Call(threading.Thread):
    """``client.generate`` in a thread; ``result``/``error`` and the seconds it took."""

    def __init__(self, client: Client, seeds: list[int], timeout: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.client, self.seeds, self.timeout = client, seeds, timeout
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.start()

    def run(self) -> None:
        start = time.monotonic()
        try:
            self.result = self.client.generate(MODEL, seeds=self.seeds, timeout=self.timeout)
        except BaseException as exc:
            self.error = exc
        self.seconds = time.monotonic() - start


def worker_id(r: redis.Redis) -> str:
    (key,) = r.keys(keys.worker_heartbeat("*"))
    return key.decode().rsplit(":", 1)[1]


def unblock(r: redis.Redis) -> None:
    """End the (paused) worker's blocking read, so that no new job is delivered to it."""
    for client in r.client_list():
        if client.get("cmd") == "xreadgroup":
            r.client_kill_filter(_id=client["id"])


def queued(r: redis.Redis, n: int) -> Callable[[], bool]:
    return lambda: bool(r.exists(STREAM)) and r.xlen(STREAM) >= n


def test_redis_restart_without_persistence(make_stack: Callable[..., Stack]) -> None:
    """Waiting calls are re-queued (or fail fast); new calls work within 5 s; no restarts."""
    stack = make_stack(workers=1, models=[MODEL])
    worker, gateway = stack.workers[0], stack.gateway
    assert gateway is not None
    with Client(stack.target, timeout=30, retries=0) as c:
        expected = {s: c.generate(MODEL, seeds=[s]).latents for s in (11, 12, 13)}
        r = redis.Redis.from_url(stack.redis_url)
        with paused(worker):
            calls = [Call(c, [s]) for s in expected]
            poll(queued(r, len(calls)), 10, "the calls to be queued")
            r.set("test:sentinel", 1)
            stack.restart_redis()
            restarted = time.monotonic()
            # Really empty (the gateway may already be writing again: not dbsize() == 0).
            assert redis.Redis.from_url(stack.redis_url).get("test:sentinel") is None
            time.sleep(1.5)  # the gateway notices the loss while the worker is still paused

        # New calls succeed within 5 s of the restart, with no process restarted.
        with Client(stack.target, timeout=5, retries=20) as fresh:
            out = fresh.generate(MODEL, seeds=[11])
        assert time.monotonic() - restarted < 5.0
        np.testing.assert_array_equal(out.latents, expected[11])
        for call in calls:
            call.join(20)
            assert not call.is_alive()
            assert call.seconds < 15, "a waiting call was left to its deadline"
            if call.error is None:  # re-queued under the same job id and answered once
                np.testing.assert_array_equal(call.result.latents, expected[call.seeds[0]])
            else:
                assert isinstance(call.error, Unavailable), call.error
        assert worker.poll() is None and gateway.poll() is None


def test_redis_restart_with_aof_reruns_lost_pending_entries(
    make_stack: Callable[..., Stack],
) -> None:
    """An entry delivered to a live worker and then lost by it is re-run by that worker."""
    stack = make_stack(workers=1, models=[MODEL], redis_appendonly=True)
    with Client(stack.target, timeout=30, retries=0) as c:
        expected = c.generate(MODEL, seeds=[21]).latents
        r = redis.Redis.from_url(stack.redis_url)
        me = worker_id(r)
        with paused(stack.workers[0]):
            unblock(r)
            call = Call(c, [21])
            poll(queued(r, 1), 10, "the call to be queued")
            # Delivered to the worker (in its pending list) but never in its hands.
            assert r.xreadgroup(keys.WORKER_GROUP, me, {STREAM: ">"}, count=10)
            stack.restart_redis(kill=False)  # SIGTERM: the AOF keeps the pending list
            r = redis.Redis.from_url(stack.redis_url)
            assert r.xpending(STREAM, keys.WORKER_GROUP)["pending"] == 1
        call.join(20)
        assert call.error is None, call.error
        np.testing.assert_array_equal(call.result.latents, expected)
        poll(lambda: r.xpending(STREAM, keys.WORKER_GROUP)["pending"] == 0, 5, "the ack")


def test_dead_letter_after_three_deliveries(make_stack: Callable[..., Stack], capsys: Any) -> None:
    """A job delivered three times is set aside, its caller told, and the CLI lists it."""
    stack = make_stack(workers=1, models=[MODEL])
    with Client(stack.target, timeout=30, retries=0) as c:
        c.generate(MODEL, seeds=[1])
        r = redis.Redis.from_url(stack.redis_url)
        with paused(stack.workers[0]):
            unblock(r)
            call = Call(c, [31])
            poll(queued(r, 1), 10, "the call to be queued")
            # Three deliveries to consumers that died (no heartbeat): one read, two claims.
            ((_, [(entry_id, _)]),) = r.xreadgroup(keys.WORKER_GROUP, "ghost-1", {STREAM: ">"})
            for ghost in ("ghost-2", "ghost-3"):
                r.xclaim(STREAM, keys.WORKER_GROUP, ghost, 0, [entry_id])
            (info,) = r.xpending_range(STREAM, keys.WORKER_GROUP, "-", "+", 10)
            assert info["times_delivered"] == 3
        call.join(20)
        assert isinstance(call.error, LatentEditError), call.error
        assert isinstance(call.error, Internal)
        assert "dead letter" in call.error.message and "delivered 3 times" in call.error.message
        assert call.seconds < 15
        (dead,) = r.xrange(keys.DEAD_LETTERS)
        assert dead[1][b"entry"] == entry_id and dead[1][b"deliveries"] == b"3"
        assert r.xpending(STREAM, keys.WORKER_GROUP)["pending"] == 0
        cli_main(["dead-letters", "--redis-url", stack.redis_url])
        printed = capsys.readouterr().out
        assert dead[0].decode() in printed and "generate" in printed
        c.generate(MODEL, seeds=[2])  # the service goes on
