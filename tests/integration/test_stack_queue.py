"""Back-pressure: a full model queue answers RESOURCE_EXHAUSTED at once, a job whose deadline
passes while queued answers DEADLINE_EXCEEDED, and the stack recovers afterwards.

A private stack with max_queue=2: a long inversion (A) keeps the worker's heavy lane busy,
a second inversion (B) waits behind it with a short deadline, and while both entries sit in
the model's stream every further request is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import redis

from latentedit import keys
from latentedit.client import Client, DeadlineExceeded, LatentEditError, ResourceExhausted
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


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; its result or exception lands in the returned dict."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_queue_full_then_deadline_then_recovery(make_stack: Callable[..., Stack]) -> None:
    # max_batch=1: one heavy job in hand at a time, so B waits in the stream behind A
    # (otherwise an inversion joins the running inversion session at once).
    stack = make_stack(workers=1, max_queue=2, max_batch=1)
    r = redis.Redis.from_url(stack.redis_url)
    with Client(stack.target, timeout=120) as c, Client(stack.target, timeout=300) as long_c:
        face = c.generate(MODEL, seeds=[31]).images
        reference = c.generate(MODEL, seeds=[32]).latents

        # A: a long inversion that the worker takes at once.
        thread_a, box_a = in_thread(lambda: long_c.invert(MODEL, face, steps=2000, restarts=1))
        poll(
            lambda: r.xpending(STREAM, keys.WORKER_GROUP)["pending"] == 1,
            60,
            "the worker to take the long inversion",
        )

        # B: queued behind A; its 2 s deadline passes while it waits.
        with pytest.raises(DeadlineExceeded) as info:
            c.invert(MODEL, face, steps=50, restarts=1, timeout=2)
        # The gateway's "no result within ..." or gRPC's own "Deadline Exceeded", whichever
        # reaches the caller first: both end at the same deadline.
        message = info.value.message.lower()
        assert "no result within" in message or "deadline exceeded" in message, message
        assert thread_a.is_alive(), "A finished early; the test needs it still running"

        # A and B both still occupy the stream: it is full.
        assert r.xlen(STREAM) == 2
        rejected = [
            in_thread(lambda i=i: c.generate(MODEL, seeds=[i], timeout=60)) for i in range(4)
        ]
        rejected.append(in_thread(lambda: c.directions(MODEL, timeout=60)))
        for thread, _ in rejected:
            thread.join(60)
        for thread, box in rejected:
            assert not thread.is_alive()
            err = box.get("error")
            assert isinstance(err, ResourceExhausted), box
            assert "full" in err.message and MODEL in err.message
        # Refused at once, not after waiting for A.
        assert thread_a.is_alive(), "the refusals should come back while A still runs"

        thread_a.join(300)
        assert not thread_a.is_alive()
        assert "error" not in box_a, box_a.get("error")
        inverted = box_a["result"]
        assert inverted.steps == 2000
        assert inverted.latents.shape == (1, 100)
        assert float(inverted.psnr[0]) > 20

    # B is dropped by the worker (its deadline passed); the queue drains.
    poll(lambda: r.xlen(STREAM) == 0, 60, "the stream to drain")
    poll(lambda: r.xpending(STREAM, keys.WORKER_GROUP)["pending"] == 0, 60, "no pending jobs")
    with Client(stack.target, timeout=60) as c:
        try:
            again = c.generate(MODEL, seeds=[32])
        except LatentEditError as exc:  # pragma: no cover - shown on failure
            raise AssertionError(f"the stack did not recover: {exc}") from None
        np.testing.assert_array_equal(again.latents, reference)
        assert c.directions(MODEL) == []
    r.close()
