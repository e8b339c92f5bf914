"""The Voynov trainer (a few steps, resume), the measures on exact shapes directions,
and learned sets in the direction store / edit path on a real Redis."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from redis.asyncio import Redis

from latentedit.errors import InvalidArgument
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.discovery import ModelTools
from latentedit.workers.learned import make_trainer
from latentedit.workers.learned.curvilinear import CurvilinearDirections
from latentedit.workers.learned.editing import LearnedSets
from latentedit.workers.learned.measures import evaluate, linear_edit, set_edit
from latentedit.workers.learned.store import store_set
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.scorers import scorers_for

SMALL = {"steps": "6", "batch": "8", "num_directions": "6", "image_size": "16", "init": "random"}


@pytest.mark.parametrize("method", ["linear", "warped", "curvilinear"])
def test_train_steps_report_progress_and_resume_exactly(shapes: LoadedModel, method: str) -> None:
    a = make_trainer(shapes, method, SMALL, seed=3)
    first = [a.train_step() for _ in range(3)]
    assert a.step == 3 and a.total_steps == 6
    assert {"loss", "ce", "mae", "accuracy", "step"} <= set(first[-1])
    assert all(np.isfinite(v) for row in first for v in row.values())
    if method == "curvilinear":
        assert "logdet" in first[-1]
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = make_trainer(shapes, method, SMALL, seed=99)  # a different seed: the state wins
    b.load_state_dict(state)
    rest_a = [a.train_step()["loss"] for _ in range(3)]
    rest_b = [b.train_step()["loss"] for _ in range(3)]
    np.testing.assert_allclose(rest_a, rest_b, rtol=1e-5)
    assert b.step == 6
    z = torch.randn(4, 16)
    ks, ts = torch.zeros(4, 1, dtype=torch.long), torch.ones(4, 1)
    torch.testing.assert_close(a.result().apply(z, ks, ts), b.result().apply(z, ks, ts))


def test_bad_params_are_invalid_argument(shapes: LoadedModel) -> None:
    with pytest.raises(InvalidArgument, match="method"):
        make_trainer(shapes, "spline", {}, 0)
    with pytest.raises(InvalidArgument, match="steps"):
        make_trainer(shapes, "linear", {"steps": "-1"}, 0)
    with pytest.raises(InvalidArgument, match="unknown param"):
        make_trainer(shapes, "linear", {"stpes": "3"}, 0)
    with pytest.raises(InvalidArgument, match="num_directions"):
        make_trainer(shapes, "curvilinear", {"num_directions": "17"}, 0)


def _shapes_measures(shapes: LoadedModel, edit, names: list[str]):  # type: ignore[no-untyped-def]
    tools = ModelTools(shapes, scorers_for("shapes", shapes.generator))
    attrs = list(tools.scorers)
    g = shapes.generator
    ranges = (g.factor_high - g.factor_low).numpy()
    return evaluate(
        names,
        edit,
        lambda z: tools.score_latents(z.numpy(), attrs),
        attrs,
        16,
        samples=64,
        strength=1.0,
        ranges=ranges,
    )


def test_measures_on_exact_shapes_directions(shapes: LoadedModel) -> None:
    true = shapes.generator.true_directions().numpy()  # (6, 16) rows of the mixing matrix
    ev = _shapes_measures(shapes, linear_edit(true), [f"t{i}" for i in range(6)])
    # Linear edits commute and reverse exactly.
    assert ev.summary()["commutativity"] < 1e-4 and ev.summary()["reversibility"] < 1e-6
    assert list(ev.targets) == list(range(6))
    # Only the entangled pair (scale, hue: cosine 0.6) has side effects.
    side = ev.side_effect.copy()
    side[range(6), range(6)] = 0
    assert side[2, 4] > 10 and side[4, 2] > 10
    side[2, 4] = side[4, 2] = 0
    assert side.max() < 1e-3  # float32 round-off only
    # The dual basis (each direction moves exactly one factor) has none at all.
    dual = np.linalg.pinv(true).T
    ev_dual = _shapes_measures(shapes, linear_edit(dual), [f"d{i}" for i in range(6)])
    assert ev_dual.summary()["side_effect"] < 1e-3
    assert np.all(ev_dual.alignment > 0.999)


def test_measures_see_warped_paths_do_not_commute(shapes: LoadedModel) -> None:
    from latentedit.workers.learned.directions import WarpedDirections

    warped = WarpedDirections(3, 16, seed=0).eval().requires_grad_(False)
    ev = _shapes_measures(shapes, set_edit(warped, [0, 1, 2]), ["a", "b", "c"])
    assert ev.summary()["commutativity"] > 0.05
    assert ev.summary()["reversibility"] > 1e-6  # Euler steps do not retrace exactly


async def test_store_and_edit_with_a_learned_set(redis_client: Redis, shapes: LoadedModel) -> None:
    store = DirectionStore(redis_client)
    dset = CurvilinearDirections(4, 16, layers=2, hidden=16, seed=0)
    with torch.no_grad():
        for p in dset.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    dset.eval().requires_grad_(False)
    records = await store_set(store, shapes, "cur", dset, {"steps": "0"})
    assert [r.name for r in records] == [f"cur_{r:02d}" for r in range(4)]
    changes = [r.metrics["image_change"] for r in records]
    assert changes == sorted(changes, reverse=True)
    dirs = await store.get_many("shapes", ["cur_00", "cur_02"])
    sets = LearnedSets(store)
    z = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    ts = np.array([0.0, 1.0, -2.0])
    strengths = np.array([1.5, -0.5])
    out = await sets.edit("shapes", z, dirs, strengths, ts, np.zeros(2, bool))
    assert out.shape == (3, 3, 16)
    k = [int(d.meta.params["index"]) for d in dirs]
    want = dset.apply(
        torch.from_numpy(z[:, None].repeat(3, 1).reshape(-1, 16)),
        torch.tensor([k] * 9),
        torch.from_numpy(np.tile(ts, 3)[:, None] * strengths[None]).float(),
    )
    np.testing.assert_allclose(out.reshape(-1, 16), want.numpy(), atol=1e-5)
    np.testing.assert_allclose(out[:, 0], z, atol=1e-5)  # t = 0 is a no-op
    with pytest.raises(InvalidArgument, match="absolute"):
        await sets.edit("shapes", z, dirs, strengths, ts, np.array([True, False]))
    # Conditional: walking cur_00 while holding cur_02 barely moves along cur_02's axis.
    edited, projected, cos_c, _ = await sets.conditional("shapes", z, dirs, 1.0, np.array([2.0]))
    assert abs(cos_c[0]) < 1e-6 and abs(np.linalg.norm(projected) - 1) < 1e-6
    zt, et = torch.from_numpy(z).double(), torch.from_numpy(edited[:, 0]).double()
    v0, _ = dset(zt)
    v1, _ = dset(et)
    moved = (v1 - v0).abs()
    held = moved[:, int(dirs[1].meta.params["index"])]
    assert float(held.max()) < 0.05 * float(moved.max())
