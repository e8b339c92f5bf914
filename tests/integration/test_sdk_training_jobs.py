"""Training jobs end to end: real redis-server, gateway and worker processes, through the SDK.

The worker loads ``toy_trainer.py`` (a small real trainer with a known answer) as a
plugin, registered the way the learned methods are. Checkpoints every second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from conftest import start_stack
from door_helpers import start_gateway
from toy_trainer import truth

from latentedit import keys
from latentedit.client import (
    AsyncClient,
    AsyncTrainingJob,
    Cancelled,
    Client,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TrainingJob,
)
from latentedit.deploy.stack import Stack, StackConfig, free_port
from latentedit.server.auth_keys import KeyRing

MODEL = "shapes"
DIM = 16
PLUGIN = str(Path(__file__).with_name("toy_trainer.py"))
WORKER_ARGS = ["--trainer-plugin", PLUGIN, "--checkpoint-every-s", "1"]


def stack_config(log_dir: Path, workers: int = 1) -> StackConfig:
    return StackConfig(
        port=0,
        workers=workers,
        models=[MODEL],
        log_dir=str(log_dir),
        extra_worker_args=WORKER_ARGS,
    )


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(stack_config(tmp_path_factory.mktemp("jobs-stack")))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def c(jobs_stack: Stack) -> Iterator[Client]:
    with Client(jobs_stack.target, timeout=60) as client:
        yield client


def poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_learned_discovery_returns_a_job_streams_progress_and_stores_usable_directions(
    c: Client,
) -> None:
    assert "toy" in c.models()[0].training_methods
    params = {"steps": "150", "step_ms": "10"}
    job = c.discover(MODEL, "toy", top_k=3, name_prefix="toyjob", seed=5, params=params)
    assert isinstance(job, TrainingJob)
    first = job.status()
    assert first.state in ("queued", "running") and first.step < 150  # answered before training

    events = list(job)  # WatchJob: the status now, then each update, until it ends
    running = [e for e in events if e.state == "running" and e.step > 0]
    assert len(running) >= 3, [(e.state, e.step) for e in events]
    steps = [e.step for e in running]
    assert steps == sorted(steps) and steps[-1] == 150
    assert all({"loss", "mse", "accuracy"} <= set(e.metrics) for e in running)
    assert all(e.total_steps == 150 for e in running)
    assert any(e.eta_seconds > 0 for e in running if e.step < 150)
    assert running[0].metrics["loss"] > 100 * running[-1].metrics["loss"]  # it learned
    assert running[-1].accuracy == 1.0

    done = job.wait(30)
    assert done.state == "succeeded" and done.step == 150 and done.attempts == 1
    assert done.direction_ids == ["shapes/toyjob_00", "shapes/toyjob_01", "shapes/toyjob_02"]
    assert done.finished_unix_ms >= done.started_unix_ms >= done.created_unix_ms > 0

    # The stored directions are the ones the trainer learned, and Edit uses them.
    target = truth(DIM, 3, seed=5).numpy()
    for k, direction_id in enumerate(done.direction_ids):
        vector = c.get_direction(direction_id).vector
        assert vector is not None
        assert float(vector @ target[k]) > 0.999
    z = c.generate(MODEL, seeds=[1, 2]).latents
    edited = c.edit(MODEL, z, {done.direction_ids[1]: 2.0})
    moved = edited.latents[:, 0] - z
    np.testing.assert_allclose(moved, np.tile(2.0 * target[1], (2, 1)), atol=2e-3)

    listed = {j.id: j for j in c.jobs(MODEL)}
    assert listed[job.id].state == "succeeded"
    assert job.id in {j.id for j in c.jobs(MODEL, states=["succeeded"])}
    assert job.id not in {j.id for j in c.jobs(MODEL, states=["running", "queued"])}


def test_cancel_stops_a_running_job_within_5_s_and_frees_the_worker(c: Client) -> None:
    job = c.discover(MODEL, "toy", top_k=2, params={"steps": "1000000", "step_ms": "5"})
    poll(lambda: job.status().step > 0, 30, "the job to start training")

    start = time.monotonic()
    status = job.cancel()
    elapsed = time.monotonic() - start
    assert elapsed < 5.0, elapsed
    assert status.state == "cancelled" and status.cancel_requested
    assert 0 < status.step < 1_000_000
    with pytest.raises(Cancelled, match="cancelled at step"):
        job.wait(10)
    time.sleep(1.0)
    assert job.status().step == status.step  # it does not train on

    # The worker's training slot is free again: the next job runs to the end.
    nxt = c.discover(MODEL, "toy", top_k=1, name_prefix="after_cancel", params={"steps": "20"})
    assert nxt.wait(30).state == "succeeded"
    assert c.cancel_job(nxt.id).state == "succeeded"  # cancelling a finished job changes nothing


def test_cancel_a_queued_job_is_immediate(c: Client) -> None:
    blocker = c.discover(MODEL, "toy", top_k=1, params={"steps": "1000000", "step_ms": "5"})
    poll(lambda: blocker.status().state == "running", 30, "the first job to run")
    queued = c.discover(MODEL, "toy", top_k=1, params={"steps": "10"})
    time.sleep(0.5)
    assert queued.status().state == "queued"  # one training job per worker
    assert queued.cancel(wait_seconds=0.1).state == "cancelled"
    assert blocker.cancel().state == "cancelled"
    assert queued.status().state == "cancelled"  # never ran
    assert queued.status().started_unix_ms == 0


def test_bad_job_ids_and_requests_get_clear_statuses(c: Client) -> None:
    for bad in ("", "xyz", "A" * 32, "0" * 31):
        with pytest.raises(InvalidArgument, match="job_id"):
            c.job_status(bad)
        with pytest.raises(InvalidArgument, match="job_id"):
            list(c.job(bad))
        with pytest.raises(InvalidArgument, match="job_id"):
            c.cancel_job(bad)
    missing = "0123456789abcdef" * 2
    for call in (c.job_status, c.cancel_job, lambda i: c.job(i).wait(5)):
        with pytest.raises(NotFound, match="no job"):
            call(missing)
    with pytest.raises(NotFound, match="unknown model"):
        c.jobs("no-such-model")
    with pytest.raises(ValueError, match="unknown job state"):
        c.jobs(MODEL, states=["paused"])
    with pytest.raises(InvalidArgument, match="scorer"):
        c.discover(MODEL, "toy", scorer="hue")
    with pytest.raises(InvalidArgument, match="params: key"):
        c.discover(MODEL, "toy", params={"Bad Key": "1"})
    # A value only the trainer can judge fails the job, with the trainer's message.
    job = c.discover(MODEL, "toy", top_k=1, params={"steps": "0"})
    with pytest.raises(InvalidArgument, match=r"params\.steps"):
        job.wait(30)
    assert job.status().state == "failed"


async def test_async_client_job_handle(jobs_stack: Stack) -> None:
    async with AsyncClient(jobs_stack.target, timeout=60) as ac:
        job = await ac.discover(
            MODEL, "toy", top_k=2, name_prefix="async_toy", params={"steps": "60"}
        )
        assert isinstance(job, AsyncTrainingJob)
        seen = [s.step async for s in job]
        assert seen[-1] == 60
        done = await job.wait(30)
        assert done.direction_ids == ["shapes/async_toy_00", "shapes/async_toy_01"]
        assert job.id in {j.id for j in await ac.jobs(MODEL, states=["succeeded"])}
        assert (await ac.job_status(job.id)).state == "succeeded"
        await asyncio.sleep(0)


def test_sigkilled_worker_job_resumes_from_its_checkpoint_on_another(tmp_path: Path) -> None:
    stack = start_stack(stack_config(tmp_path / "logs"))
    try:
        r = redis.Redis.from_url(stack.redis_url)
        with Client(stack.target, timeout=60) as c:
            job = c.discover(
                MODEL, "toy", top_k=2, name_prefix="resumed", seed=9,
                params={"steps": "400", "step_ms": "20"},
            )  # fmt: skip
            poll(lambda: job.status().checkpoint_step > 0, 60, "a checkpoint")
            before = job.status()
            assert r.exists(keys.training_checkpoint(job.id))
            os.kill(stack.workers[0].pid, signal.SIGKILL)
            assert stack.workers[0].wait(30) == -signal.SIGKILL
            assert job.status().state == "running"  # nobody knows yet

            stack.add_worker()
            done = job.wait(120)
            assert done.state == "succeeded" and done.step == 400
            assert done.attempts == 2
            assert done.resumed_from_step >= before.checkpoint_step > 0  # not from scratch
            assert done.worker != before.worker
            target = truth(DIM, 2, seed=9).numpy()
            vector = c.get_direction("shapes/resumed_01").vector
            assert vector is not None and float(vector @ target[1]) > 0.999
            assert not r.exists(keys.training_checkpoint(job.id))  # dropped when done
            assert r.xlen(keys.training_stream(MODEL)) == 0  # acknowledged and deleted
        r.close()
    finally:
        stack.stop()


def test_sigterm_requeues_the_job_and_the_next_worker_resumes(tmp_path: Path) -> None:
    stack = start_stack(stack_config(tmp_path / "logs"))
    try:
        with Client(stack.target, timeout=60) as c:
            job = c.discover(MODEL, "toy", top_k=1, params={"steps": "300", "step_ms": "20"})
            poll(lambda: job.status().step > 20, 60, "training to get going")
            stack.workers[0].terminate()
            assert stack.workers[0].wait(30) == 0
            status = job.status()
            assert status.state == "queued" and "resumes from step" in status.message
            assert status.checkpoint_step > 0
            stack.add_worker()
            done = job.wait(120)
            assert done.attempts == 2 and done.resumed_from_step == status.checkpoint_step
            assert done.state == "succeeded"
    finally:
        stack.stop()


@pytest.mark.parametrize("method", ["linear", "curvilinear"])
def test_a_learned_job_trains_and_its_directions_edit(c: Client, method: str) -> None:
    job = c.discover(MODEL, method, top_k=3, params={"steps": "30", "batch": "8"}, seed=1)
    assert isinstance(job, TrainingJob)
    events = [s for s in job if s.state == "running" and s.step > 0]
    assert events and {"loss", "ce", "mae", "accuracy"} <= set(events[-1].metrics)
    done = job.wait(120)
    assert done.state == "succeeded" and done.step == 30 == done.total_steps
    assert len(done.direction_ids) == 3
    z = c.generate(MODEL, seeds=[3]).latents
    edited = c.edit(MODEL, z, {done.direction_ids[2]: 1.5})
    moved = float(np.linalg.norm(edited.latents[0, 0] - z[0]))
    if method == "linear":
        assert moved == pytest.approx(1.5, rel=1e-3)
    else:  # a curved path: it moves, and not along a straight unit vector
        assert moved > 0.1
    assert not np.array_equal(np.asarray(edited.images[0][0]), np.asarray(c.generate(
        MODEL, latents=z).images[0]))  # fmt: skip


def test_with_api_keys_a_job_is_its_owners(jobs_stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    ring = KeyRing()
    k = {name: ring.add(name, admin=name == "root") for name in ("alice", "bob", "root")}
    ring.save(path)
    gw = start_gateway(
        jobs_stack.redis_url, tmp_path / "logs", ["--auth-file", str(path)], ready_key=k["root"]
    )
    try:
        with (
            Client(gw.target, api_key=k["alice"], timeout=60) as alice,
            Client(gw.target, api_key=k["bob"], timeout=60) as bob,
            Client(gw.target, api_key=k["root"], timeout=60) as root,
        ):
            job = alice.discover(
                MODEL, "toy", top_k=1, name_prefix="alices", params={"steps": "20"}
            )
            assert job.status().owner == "alice"
            for call in (bob.job_status, bob.cancel_job, lambda i: list(bob.job(i))):
                with pytest.raises(PermissionDenied, match="another API key"):
                    call(job.id)
            assert job.id not in {j.id for j in bob.jobs(MODEL)}
            assert job.id in {j.id for j in root.jobs(MODEL)}
            done = job.wait(60)
            assert root.job_status(job.id).state == "succeeded"
            assert done.direction_ids == ["shapes/alices_00"]
            # Bob's job may not overwrite Alice's directions: it fails with her direction named.
            theirs = bob.discover(
                MODEL, "toy", top_k=1, name_prefix="alices", params={"steps": "5"}
            )
            with pytest.raises(PermissionDenied, match="alices_00"):
                theirs.wait(60)
    finally:
        gw.stop()


def gateway(redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A ``latentedit gateway`` child on a fixed port (so that it can come back there)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "latentedit.deploy.cli", "gateway", "--listen",
             f"127.0.0.1:{port}", "--redis-url", redis_url],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_a_watch_survives_a_gateway_restart(jobs_stack: Stack, tmp_path: Path) -> None:
    """Job state lives in Redis: when the gateway streaming WatchJob restarts, the SDK
    re-opens the watch and sees the job to its end."""
    port = free_port()
    procs = [gateway(jobs_stack.redis_url, port, tmp_path / "gw.log")]
    try:
        with Client(f"127.0.0.1:{port}", timeout=60) as c:
            c.wait_ready(60)
            job = c.discover(MODEL, "toy", top_k=1, params={"steps": "600", "step_ms": "20"})
            seen = []
            for status in job.watch(timeout=120):
                seen.append(status.step)
                if len(seen) == 3:
                    procs[0].terminate()  # its streams end after its 5 s grace
                    assert procs[0].wait(30) == 0
                    at_restart = job.id, status.step
                    procs.append(gateway(jobs_stack.redis_url, port, tmp_path / "gw.log"))
            assert seen[-1] == 600 and len(seen) > 3
            assert at_restart[1] < 600
            assert c.job_status(job.id).state == "succeeded"
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
