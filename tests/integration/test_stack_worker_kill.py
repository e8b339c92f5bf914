"""A worker killed with SIGKILL in the middle of a request loses nothing.

The job stays pending in the consumer group (it is acknowledged only after its result is
published); once the dead worker's heartbeat expires a fresh worker claims it, runs it, and
the caller, still waiting within its deadline, gets a correct answer.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from latentedit import keys
from latentedit.client import Client
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"
STREAM = keys.job_stream(MODEL)


def poll(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def consumers(r: redis.Redis) -> dict[str, int]:
    """Consumer name -> pending count in the worker group of the model's stream."""
    out = {}
    for c in r.xinfo_consumers(STREAM, keys.WORKER_GROUP):
        name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
        out[name] = int(c["pending"])
    return out


def test_sigkill_mid_inversion_is_recovered(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(workers=1)
    r = redis.Redis.from_url(stack.redis_url)
    with Client(stack.target, timeout=120) as c:
        face = c.generate(MODEL, seeds=[4711]).images
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = c.invert(MODEL, face, steps=300)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        poll(lambda: sum(consumers(r).values()) == 1, 60, "the worker to take the inversion")
        (victim_name,) = [n for n, p in consumers(r).items() if p == 1]

        victim = stack.workers[0]
        assert victim.poll() is None
        assert thread.is_alive(), "the inversion finished before the worker could be killed"
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
        assert thread.is_alive()
        assert r.xlen(STREAM) == 1  # the job is still there, unacknowledged

        stack.add_worker()
        thread.join(120)  # within the call's own 120 s deadline
        assert not thread.is_alive(), "the request never completed"
        assert "error" not in box, box.get("error")
        inverted = box["result"]
        assert inverted.latents.shape == (1, 100)
        assert inverted.steps == 300
        assert float(inverted.psnr[0]) >= 20, inverted.psnr

        # Nothing left behind: the job acknowledged and deleted, the dead consumer gone.
        poll(lambda: r.xlen(STREAM) == 0, 30, "the stream to be empty")
        poll(lambda: victim_name not in consumers(r), 30, "the dead consumer to be removed")
        assert sum(consumers(r).values()) == 0

        # The stack serves as before.
        again = c.generate(MODEL, seeds=[4711])
        np.testing.assert_array_equal(np.asarray(again.images[0]), np.asarray(face[0]))
    r.close()
