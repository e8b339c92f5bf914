"""Every job kind on a small seeded StyleGAN2 in z, w and w+, through JobRunner (real Redis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from redis.asyncio import Redis

from latentedit.codec import from_tensor, to_tensor
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.jobs import JobRunner
from latentedit.workers.models.registry import ModelSpec
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.models.stylegan2_ckpt import from_rosinality
from latentedit.workers.models.stylegan2_write import random_rosinality_state

NAME = "sg"
WIDTHS = {4: 32, 8: 32, 16: 16, 32: 16}


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    state, w_avg = random_rosinality_state(32, 32, 2, widths=WIDTHS, seed=3)
    gen = from_rosinality(state, w_avg)
    spec = ModelSpec(name=NAME, architecture="stylegan2", path="seeded.pt", resolution=32)
    return LoadedModel(spec, gen, "test", torch.device("cpu"), torch.float32, 64)


async def run(runner: JobRunner, **request: object) -> jobs_pb2.JobResult:
    job = jobs_pb2.Job(id="j", **request)  # type: ignore[arg-type]
    out: list[jobs_pb2.JobResult] = []

    async def publish(_job: jobs_pb2.Job, result: jobs_pb2.JobResult) -> None:
        out.append(result)

    await runner.run_batch(NAME, [job], publish)
    assert len(out) == 1
    return out[0]


def ok(result: jobs_pb2.JobResult) -> object:
    assert not result.HasField("error"), result.error.message
    return getattr(result, str(result.WhichOneof("outcome")))


def err(result: jobs_pb2.JobResult, *words: str) -> str:
    assert result.HasField("error"), result
    assert result.error.code == 3, result.error  # INVALID_ARGUMENT
    for w in words:
        assert w in result.error.message, result.error.message
    return result.error.message


async def test_generate_in_every_space_renders_the_same_face(
    model: LoadedModel, redis_client: Redis
) -> None:
    runner = JobRunner({NAME: model}, DirectionStore(redis_client), Limits())
    seeds = pb.Seeds(seeds=[1, 2])
    z = ok(await run(runner, generate=pb.GenerateRequest(model=NAME, seeds=seeds, space="z")))
    w = ok(await run(runner, generate=pb.GenerateRequest(model=NAME, seeds=seeds, space="w")))
    wp = ok(await run(runner, generate=pb.GenerateRequest(model=NAME, seeds=seeds, space="w+")))
    zc, wc, wpc = (from_tensor(r.latents) for r in (z, w, wp))  # type: ignore[attr-defined]
    assert zc.shape == (2, 32) and wc.shape == (2, 32) and wpc.shape == (2, 8, 32)
    with torch.no_grad():
        np.testing.assert_allclose(
            wc, model.generator.mapping(torch.from_numpy(zc)).numpy(), atol=1e-5
        )
    np.testing.assert_array_equal(wpc, np.repeat(wc[:, None], 8, axis=1))
    assert [i.data for i in z.images] == [i.data for i in w.images] == [i.data for i in wp.images]  # type: ignore[attr-defined]
    # truncation pulls w towards w_avg
    t = ok(
        await run(
            runner,
            generate=pb.GenerateRequest(model=NAME, seeds=seeds, space="w", truncation_psi=0.5),
        )
    )
    avg = model.generator.w_avg.numpy()
    np.testing.assert_allclose(from_tensor(t.latents), avg + 0.5 * (wc - avg), atol=1e-5)  # type: ignore[attr-defined]


async def test_sefa_in_w_edits_chosen_layers_and_wrong_space_is_refused(
    model: LoadedModel, redis_client: Redis
) -> None:
    runner = JobRunner({NAME: model}, DirectionStore(redis_client), Limits())
    found = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(
                model=NAME, method="sefa", top_k=3, space="w", params={"layers": "0-1"}
            ),
        )
    )
    dirs = found.directions  # type: ignore[attr-defined]
    assert [d.space for d in dirs] == ["w"] * 3 and dirs[0].params["layers"] == "0-1"
    # independent: genforce's factorize_weight on the state dict's modulation weights, layers 0-1
    sd = model.generator.state_dict()
    styles = [sd["conv1.conv.modulation.weight"], sd["convs.0.conv.modulation.weight"]]
    wt = torch.cat(styles).double().numpy().T  # (w_dim, sum out)
    wt = wt / np.linalg.norm(wt, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(wt @ wt.T)
    ref = vectors.real[:, np.argsort(values.real)[::-1][:3]].T
    ours = np.stack([from_tensor(d.vector) for d in dirs]).astype(np.float64)
    np.testing.assert_allclose(np.abs(np.sum(ours * ref, axis=1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        [d.metrics["eigenvalue"] for d in dirs], np.sort(values.real)[::-1][:3], rtol=1e-6
    )
    every = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(
                model=NAME, top_k=2, name_prefix="all", space="w"
            ),
        )
    )
    assert every.directions[0].params["layers"] == "all"  # type: ignore[attr-defined]
    err(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(model=NAME, space="w", params={"layers": "7"}),
        ),
        "SeFa factorises style layers 0-6",
    )
    zg = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(
                model=NAME, method="ganspace", space="z", top_k=2, samples=300, name_prefix="zg"
            ),
        )
    )
    assert zg.directions[0].params["layer"] == "style.1" and zg.directions[0].space == "z"  # type: ignore[attr-defined]
    zs = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(model=NAME, space="z", name_prefix="zsefa"),
        )
    )
    assert zs.directions[0].space == "z"  # type: ignore[attr-defined]
    wp = np.random.default_rng(0).standard_normal((2, 8, 32)).astype(np.float32)
    edit = pb.EditRequest(
        model=NAME,
        latents=to_tensor(wp),
        space="w+",
        edits=[pb.DirectionStrength(direction="sefa_00", strength=2.0)],
        sweep=pb.Sweep(frames=3, start=-1, stop=1),
    )
    out = ok(await run(runner, edit=edit))
    codes = from_tensor(out.latents)  # type: ignore[attr-defined]
    assert codes.shape == (2, 3, 8, 32)
    moved = np.abs(codes - wp[:, None]).max(axis=(0, 1, 3))
    assert (moved[:2] > 1).all() and (moved[2:] == 0).all()  # only the direction's layers 0-1
    n = from_tensor(dirs[0].vector).astype(np.float64)
    np.testing.assert_allclose((codes[:, 2, 0] - wp[:, 0]) @ n, 2.0, atol=1e-4)
    # explicit layers on the term override the direction's own range
    edit.edits[0].layers = "5"
    codes = from_tensor(ok(await run(runner, edit=edit)).latents)  # type: ignore[attr-defined]
    moved = np.abs(codes - wp[:, None]).max(axis=(0, 1, 3))
    assert moved[5] > 1 and np.delete(moved, 5).max() == 0
    # absolute edit per layer: layer 3 lands at signed distance 1.5
    edit.edits[0].mode = pb.EDIT_MODE_ABSOLUTE
    edit.edits[0].layers = "3"
    edit.edits[0].strength = 1.5
    codes = from_tensor(ok(await run(runner, edit=edit)).latents)  # type: ignore[attr-defined]
    np.testing.assert_allclose(codes[:, 2, 3] @ n, 1.5, atol=1e-4)
    # a w direction cannot edit z codes, a z direction cannot edit w+ codes
    z = np.zeros((1, 32), np.float32)
    bad = pb.EditRequest(
        model=NAME,
        latents=to_tensor(z),
        space="z",
        edits=[pb.DirectionStrength(direction="sefa_00", strength=1)],
    )
    err(await run(runner, edit=bad), "lives in space 'w'", "'z'")
    bad = pb.ConditionalEditRequest(
        model=NAME, latents=to_tensor(wp), space="w+", direction="sefa_01", conditions=["sefa_00"]
    )
    ok(await run(runner, conditional_edit=bad))
    bad.conditions[0] = f"{NAME}/" + zs.directions[1].name  # type: ignore[attr-defined]
    err(await run(runner, conditional_edit=bad), "lives in space 'z'", "'w+'")


async def test_score_analyze_interfacegan_ganspace_put_list_in_w(
    model: LoadedModel, redis_client: Redis
) -> None:
    runner = JobRunner({NAME: model}, DirectionStore(redis_client), Limits())
    wp = np.random.default_rng(1).standard_normal((3, 8, 32)).astype(np.float32)
    s = ok(await run(runner, score=pb.ScoreRequest(model=NAME, latents=to_tensor(wp), space="w+")))
    assert from_tensor(s.scores).shape == (3, 4)  # type: ignore[attr-defined]
    ig = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(
                model=NAME, method="interfacegan", scorer="brightness", samples=400, space="w"
            ),
        )
    )
    assert ig.directions[0].space == "w" and ig.directions[0].metrics["val_accuracy"] > 0.6  # type: ignore[attr-defined]
    gs = ok(
        await run(
            runner,
            discover=pb.DiscoverDirectionsRequest(
                model=NAME,
                method="ganspace",
                top_k=2,
                samples=500,
                space="w+",
                params={"layers": "2-5"},
            ),
        )
    )
    assert [d.params["layers"] for d in gs.directions] == ["2-5", "2-5"]  # type: ignore[attr-defined]
    rep = ok(
        await run(
            runner,
            analyze=pb.AnalyzeRequest(
                model=NAME, directions=["brightness", "ganspace_00"], samples=16, space="w+"
            ),
        )
    )
    assert from_tensor(rep.rescoring).shape == (2, 4)  # type: ignore[attr-defined]
    # the brightness boundary raises brightness in w
    rep = ok(
        await run(
            runner,
            analyze=pb.AnalyzeRequest(model=NAME, directions=["brightness"], samples=32, space="w"),
        )
    )
    col = list(rep.scorers).index("brightness")  # type: ignore[attr-defined]
    assert from_tensor(rep.rescoring)[0, col] > 0  # type: ignore[attr-defined]
    put = ok(
        await run(
            runner,
            put_direction=pb.PutDirectionRequest(
                model=NAME, name="mine", vector=to_tensor(np.ones(32, np.float32)), space="w+"
            ),
        )
    )
    assert put.space == "w"  # type: ignore[attr-defined]
    listed = ok(await run(runner, list_directions=pb.ListDirectionsRequest(model=NAME, space="w")))
    assert {d.space for d in listed.directions} == {"w"}  # type: ignore[attr-defined]


async def test_invert_in_w_plus_recovers_generated_images(
    model: LoadedModel, redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTEDIT_HOME", str(tmp_path))  # no trained encoders
    runner = JobRunner({NAME: model}, DirectionStore(redis_client), Limits())
    gen = ok(
        await run(
            runner,
            generate=pb.GenerateRequest(model=NAME, seeds=pb.Seeds(seeds=[11, 12]), space="w+"),
        )
    )
    images = list(gen.images)  # type: ignore[attr-defined]
    inv = ok(
        await run(
            runner,
            invert=pb.InvertRequest(model=NAME, images=images, space="w+", steps=200),
        )
    )
    assert from_tensor(inv.latents).shape == (2, 8, 32)  # type: ignore[attr-defined]
    assert min(inv.psnr) >= 30, list(inv.psnr)  # type: ignore[attr-defined]
    # the codes render the reconstructions they came with
    again = ok(
        await run(
            runner,
            generate=pb.GenerateRequest(model=NAME, latents=inv.latents, space="w+"),  # type: ignore[attr-defined]
        )
    )
    assert [i.data for i in again.images] == [i.data for i in inv.reconstructions]  # type: ignore[attr-defined]
    err(
        await run(
            runner,
            invert=pb.InvertRequest(model=NAME, images=images, space="w", method="extended"),
        ),
        "inverts to z codes",
    )
    no_encoder = await run(
        runner, invert=pb.InvertRequest(model=NAME, images=images, space="w", method="hybrid")
    )
    assert no_encoder.error.code == 9, no_encoder  # FAILED_PRECONDITION: train one first
    assert f"train-encoder {NAME} --space w" in no_encoder.error.message
