"""The training lane's pieces: checkpoints of every learned trainer, and the job store.

Checkpoints go through the lane's own functions (``torch.save`` bytes, loaded with
``weights_only=True``); a trainer resumed from one must continue exactly as the
uninterrupted one. The job store's conditional writes run on a real redis-server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from redis.asyncio import Redis

from latentedit import keys
from latentedit.errors import InvalidArgument, NotFound
from latentedit.jobstate import TERMINAL, JobStore, check_job_id
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.learned.protocol import METHODS
from latentedit.workers.trainers import TRAINERS, ckpt_bytes, ckpt_load, load_plugin, run_chunk
from latentedit.workers.training_jobs import TrainingLane, TrainingSettings

PARAMS = {"steps": "6", "batch": "4", "num_directions": "3", "init": "random"}


@pytest.mark.parametrize("method", METHODS)
def test_resumed_trainer_continues_exactly(shapes, method: str) -> None:  # type: ignore[no-untyped-def]
    make = TRAINERS[method]
    straight = make(shapes, method, PARAMS, 3)
    for _ in range(3):
        straight.train_step()
    blob = ckpt_bytes(straight)  # a checkpoint at step 3 ...
    run_chunk(straight, 1e9, 0.0)
    assert straight.step == straight.total_steps == 6

    resumed = make(shapes, method, PARAMS, 3)
    ckpt_load(resumed, blob)  # ... loaded with weights_only=True into a fresh trainer
    assert resumed.step == 3
    steps, metrics, _ = run_chunk(resumed, 1e9, 0.0)
    assert steps == 3 and "loss" in metrics and "step" not in metrics

    z = torch.randn(5, shapes.latent_dim, generator=torch.Generator().manual_seed(0))
    ks = torch.tensor([[0], [1], [2], [0], [1]])
    ts = torch.full((5, 1), 1.5)
    want = straight.result().apply(z, ks, ts)
    got = resumed.result().apply(z, ks, ts)
    assert not torch.equal(want, z)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_trainer_params_are_invalid_argument(shapes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument):
        TRAINERS["linear"](shapes, "linear", {"steps": "-1"}, 0)


def test_job_ids_are_checked() -> None:
    assert check_job_id("0123456789abcdef" * 2)
    for bad in ("", "0" * 31, "0" * 33, "G" * 32, "../" + "0" * 29):
        with pytest.raises(InvalidArgument, match="job_id"):
            check_job_id(bad)


async def test_store_writes_are_conditional(redis_client: Redis) -> None:
    store = JobStore(redis_client)
    req = pb.DiscoverDirectionsRequest(model="shapes", method="linear", params={"steps": "5"})
    created = await store.create("shapes", req)
    snap = await store.read(created.job_id, with_job=True)
    assert snap.status.state == pb.JOB_STATE_QUEUED and snap.owner == "" and not snap.cancel
    assert snap.job is not None and snap.job.discover.params["steps"] == "5"

    # A worker takes it (owner set); a write at a stale revision is refused.
    status = snap.status
    status.state = pb.JOB_STATE_RUNNING
    ok, rev = await store.put(status, snap.rev, new_owner="w1")
    assert ok and rev == snap.rev + 1
    assert (await store.put(status, snap.rev))[0] is False
    # Only the owner writes progress and checkpoints.
    assert (await store.put(status, rev, owner="w2"))[0] is False
    assert not await store.save_checkpoint(created.job_id, "w2", b"x")
    assert await store.save_checkpoint(created.job_id, "w1", b"ckpt")
    assert await store.load_checkpoint(created.job_id) == b"ckpt"

    # WatchJob's cursor: the status now and the last event; later events come after it.
    now, cursor = await store.read_with_cursor(created.job_id)
    assert now.state == pb.JOB_STATE_RUNNING
    status.step = 2
    assert (await store.put(status, rev, owner="w1"))[0]
    events, _ = await store.events(created.job_id, cursor, 100)
    assert [e.step for e in events] == [2]

    await store.request_cancel(created.job_id)
    assert await store.cancel_requested(created.job_id)
    assert (await store.read(created.job_id)).status.cancel_requested

    listed = await store.list("shapes", {pb.JOB_STATE_RUNNING})
    assert [j.job_id for j in listed] == [created.job_id]
    assert await store.list("shapes", {pb.JOB_STATE_QUEUED}) == []
    with pytest.raises(NotFound):
        await store.read("f" * 32)


async def test_lane_recovers_when_redis_comes_back_empty(shapes, redis_client: Redis) -> None:  # type: ignore[no-untyped-def]
    """In-process lane: a job runs; Redis is emptied (restart without persistence); the lane
    re-creates its consumer group and runs the next job."""
    load_plugin(str(Path(__file__).parents[2] / "integration/toy_trainer.py"))
    lane = TrainingLane(
        redis_client,
        {"shapes": shapes},
        DirectionStore(redis_client),
        "w-test",
        TrainingSettings(checkpoint_every_s=0.2, chunk_s=0.05),
    )
    store = JobStore(redis_client)
    await redis_client.set(keys.worker_heartbeat("w-test"), 1)  # alive: nobody claims its jobs

    async def run_one(prefix: str) -> pb.JobStatus:
        req = pb.DiscoverDirectionsRequest(
            model="shapes",
            method="toy",
            name_prefix=prefix,
            params={"steps": "30", "step_ms": "20"},
        )
        job_id = (await store.create("shapes", req)).job_id
        for _ in range(400):
            status = (await store.read(job_id)).status
            if status.state in TERMINAL:
                return status
            await asyncio.sleep(0.05)
        raise AssertionError(f"job did not finish: {status}")

    lane.start()
    try:
        first = await run_one("before")
        assert first.state == pb.JOB_STATE_SUCCEEDED and first.checkpoint_step > 0
        await redis_client.flushdb()
        await redis_client.set(keys.worker_heartbeat("w-test"), 1)
        second = await run_one("after")
        assert second.state == pb.JOB_STATE_SUCCEEDED, second
        assert list(second.direction_ids) == ["shapes/after_00", "shapes/after_01",
                                              "shapes/after_02", "shapes/after_03"]  # fmt: skip
    finally:
        await lane.close()
