"""Health that tells the truth, and SIGTERM that drains, on real processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentedit import keys
from latentedit.client import Client
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"
SERVICE = "latentedit.v1.LatentEditor"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def poll(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status(stack: Stack, service: str) -> Any:
    """The health status of ``service``, or the gRPC code if the check itself failed."""
    with grpc.insecure_channel(stack.target) as channel:
        try:
            return (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                .status
            )
        except grpc.RpcError as exc:
            return exc.code()


def test_health_follows_redis_and_each_models_workers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(workers=1, models=[MODEL])
    poll(lambda: status(stack, MODEL) == SERVING, 3, "the model SERVING (updated twice a second)")
    assert status(stack, "") == SERVING
    assert status(stack, SERVICE) == SERVING
    assert status(stack, "no-such-model") == grpc.StatusCode.NOT_FOUND

    # The only worker dies: the model (and the editor service) stop serving; "" still up.
    stack.workers[0].kill()
    stack.workers[0].wait()
    poll(lambda: status(stack, MODEL) == NOT_SERVING, 12, "the model to be NOT_SERVING")
    assert status(stack, SERVICE) == NOT_SERVING
    assert status(stack, "") == SERVING
    stack.add_worker()
    poll(lambda: status(stack, MODEL) == SERVING, 120, "a new worker to serve the model")

    # Redis unreachable: NOT_SERVING; back (empty): SERVING again, with no restart.
    assert stack.redis is not None
    stack.redis.kill()
    stack.redis.wait()
    poll(lambda: status(stack, "") == NOT_SERVING, 5, "NOT_SERVING without Redis")
    stack.restart_redis()
    poll(lambda: status(stack, MODEL) == SERVING, 10, "SERVING once Redis is back")


def test_sigterm_drains_worker_and_gateway(make_stack: Callable[..., Stack]) -> None:
    """Calls in flight finish; the worker acknowledges its batch and exits 0; so does the
    gateway, which reports NOT_SERVING while it drains."""
    stack = make_stack(workers=1, models=[MODEL])
    r = redis.Redis.from_url(stack.redis_url)
    stream = keys.job_stream(MODEL)
    with Client(stack.target, timeout=120, retries=0) as c:
        face = c.generate(MODEL, seeds=[7]).images
        box: dict[str, Any] = {}

        def invert() -> None:
            try:
                box["result"] = c.invert(MODEL, face, steps=150)
            except BaseException as exc:
                box["error"] = exc

        # Worker: SIGTERM while the job is in its hands.
        thread = threading.Thread(target=invert, daemon=True)
        thread.start()
        poll(lambda: r.xpending(stream, keys.WORKER_GROUP)["pending"] == 1, 30, "the job taken")
        os.kill(stack.workers[0].pid, signal.SIGTERM)
        thread.join(120)
        assert "error" not in box, box.get("error")
        assert box["result"].psnr[0] > 15
        assert stack.workers[0].wait(30) == 0
        assert r.xpending(stream, keys.WORKER_GROUP)["pending"] == 0

        # Gateway: SIGTERM while a call waits on it; the call is answered.
        stack.add_worker()
        poll(lambda: status(stack, MODEL) == SERVING, 120, "a new worker")
        box.clear()
        thread = threading.Thread(target=invert, daemon=True)
        thread.start()
        poll(lambda: r.xpending(stream, keys.WORKER_GROUP)["pending"] == 1, 30, "the job taken")
        assert stack.gateway is not None
        os.kill(stack.gateway.pid, signal.SIGTERM)
        seen = set()
        while thread.is_alive():
            seen.add(status(stack, ""))
            time.sleep(0.02)
        assert NOT_SERVING in seen
        assert "error" not in box, box.get("error")
        np.testing.assert_equal(len(box["result"].latents), 1)
        assert stack.gateway.wait(30) == 0


def test_workers_start_with_the_worker_malloc_settings(stack: Stack) -> None:
    """``latentedit worker`` re-executes itself (same pid) with deploy/malloc_env.py's
    settings, which glibc reads only at start."""
    from latentedit.deploy.malloc_env import WORKER_MALLOC

    pid = stack.workers[0].pid
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert {k: env.get(k) for k in WORKER_MALLOC} == WORKER_MALLOC
    assert stack.workers[0].poll() is None  # the Popen handle still runs the worker
