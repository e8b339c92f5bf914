"""Learned direction sets and the Evaluate RPC through the SDK, on the shared stack.

A curvilinear set is written into the stack's Redis the way a finished training job stores
it (``store_set``); Edit, ConditionalEdit and Evaluate then go through gateway and worker.
Evaluate on ``shapes``' exact factor directions checks the measures against ground truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
import torch
from redis.asyncio import Redis

from latentedit.client import Client, InvalidArgument, LatentEditError
from latentedit.deploy.stack import Stack
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.learned.curvilinear import CurvilinearDirections
from latentedit.workers.learned.store import store_set
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import load_model
from latentedit.workers.models.shapes import FACTOR_NAMES, ShapesGenerator

SHAPES = "shapes"


def _curvilinear() -> CurvilinearDirections:
    dset = CurvilinearDirections(4, 16, layers=2, hidden=16, seed=0)
    with torch.no_grad():
        for p in dset.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return dset.eval().requires_grad_(False)


async def _store(url: str, dset: CurvilinearDirections) -> None:
    redis = Redis.from_url(url)
    try:
        await store_set(DirectionStore(redis), load_model(get_spec(SHAPES)), "lrn_cur", dset)
    finally:
        await redis.aclose()


def test_evaluate_exact_directions(client: Client) -> None:
    true = ShapesGenerator().true_directions().numpy()
    for i in (0, 1, 5):
        client.put_direction(SHAPES, f"lrn_true_{FACTOR_NAMES[i]}", true[i])
    ev = client.evaluate(
        SHAPES, ["lrn_true_x", "lrn_true_y", "lrn_true_background"], samples=64, figure_samples=2
    )
    assert ev.exact_ranges and ev.scorers == sorted(FACTOR_NAMES)
    assert [ev.scorers[t] for t in ev.targets] == ["x", "y", "background"]
    assert ev.summary["commutativity"] < 1e-3 and ev.summary["side_effect"] < 1e-3
    assert np.all(ev.reversibility < 1e-6) and np.all(ev.alignment > 0.999)
    assert len(ev.pair_images) == 2 and all(len(row) == 5 for row in ev.pair_images)


def test_edit_and_evaluate_a_learned_set(
    client: Client, stack: Stack, expect_error: Callable[..., LatentEditError]
) -> None:
    dset = _curvilinear()
    asyncio.run(_store(stack.redis_url, dset))
    listed = {d.name: d for d in client.directions(SHAPES)}
    names = [f"lrn_cur_{r:02d}" for r in range(4)]
    assert set(names) <= set(listed) and listed[names[0]].method == "curvilinear"
    z = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    edited = client.edit(SHAPES, z, {names[0]: 1.5, names[1]: -1.0}, sweep=(3, 0.0, 1.0))
    ks = [int(listed[n].params["index"]) for n in names[:2]]
    rows = torch.from_numpy(np.repeat(z, 3, axis=0))
    ts = torch.tensor([[0.0, 0.0], [0.75, -0.5], [1.5, -1.0]]).repeat(2, 1)
    want = dset.apply(rows, torch.tensor([ks] * 6), ts).numpy().reshape(2, 3, 16)
    np.testing.assert_allclose(edited.latents, want, atol=1e-4)
    cond = client.conditional_edit(SHAPES, z, names[0], [names[1]], strength=2.0)
    assert abs(cond.condition_cosines[0]) < 1e-5
    ev = client.evaluate(SHAPES, names[:3], samples=32)
    assert ev.summary["commutativity"] < 0.01 and ev.summary["reversibility"] < 1e-5
    expect_error(
        InvalidArgument,
        lambda: client.edit(SHAPES, z, [(names[0], 1.0, "absolute")]),
        "absolute",
        "learned",
    )
    expect_error(InvalidArgument, lambda: client.evaluate(SHAPES, names[:1]), "directions")


@pytest.mark.parametrize("samples", [1, 5000])
def test_evaluate_bad_samples(client: Client, samples: int) -> None:
    client.put_direction(SHAPES, "lrn_a", np.eye(16)[0])
    client.put_direction(SHAPES, "lrn_b", np.eye(16)[1])
    with pytest.raises(InvalidArgument, match="samples"):
        client.evaluate(SHAPES, ["lrn_a", "lrn_b"], samples=samples)
