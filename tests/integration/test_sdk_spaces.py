"""Every RPC in z, w and w+ through the SDK, on a small seeded StyleGAN2 served by configuration.

The checkpoint is made here by the stylegan branch's seeded-checkpoint function (random
weights in rosinality's layout at 32 px, 2 mapping layers, narrow widths), written with
``torch.save`` and served with ``--model sg2=stylegan2:PATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentedit.client import Client, FailedPrecondition, InvalidArgument, Inverted
from latentedit.deploy.stack import Stack, StackConfig

NAME = "sg2"
WIDTHS = {4: 32, 8: 32, 16: 16, 32: 16}
NUM_WS, W_DIM, Z_DIM = 8, 32, 32


def write_checkpoint(path: Path) -> Path:
    pytest.importorskip("torch")
    from latentedit.workers.models.stylegan2_write import random_rosinality_state, write_rosinality

    state, w_avg = random_rosinality_state(32, Z_DIM, 2, widths=WIDTHS, seed=7)
    return write_rosinality(path, state, w_avg)


@pytest.fixture(scope="module")
def sg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("spaces")
    ckpt = write_checkpoint(tmp / "sg2.pt")
    stack = Stack(
        StackConfig(
            port=0,
            workers=1,
            log_dir=str(tmp / "logs"),
            extra_worker_args=[f"--model={NAME}=stylegan2:{ckpt}"],
        )
    )
    try:
        stack.start(timeout=180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def sg(sg_stack: Stack) -> Iterator[Client]:
    with Client(sg_stack.target, timeout=300) as c:
        yield c


def pixels(images: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


def raises(fn: Callable[[], object], *words: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn()
    for w in words:
        assert w in info.value.message, info.value.message
    return info.value.message


def test_model_lists_its_spaces(sg: Client) -> None:
    info = {m.name: m for m in sg.models()}[NAME]
    assert info.spaces == ["z", "w", "w+"] and info.default_space == "w"
    assert (info.latent_dim, info.w_dim, info.num_ws) == (Z_DIM, W_DIM, NUM_WS)


def test_generate_in_every_space(sg: Client) -> None:
    z = sg.generate(NAME, seeds=[1, 2], space="z")
    w = sg.generate(NAME, seeds=[1, 2], space="w")
    wp = sg.generate(NAME, seeds=[1, 2], space="w+")
    assert z.latents.shape == (2, Z_DIM) and w.latents.shape == (2, W_DIM)
    assert wp.latents.shape == (2, NUM_WS, W_DIM)
    np.testing.assert_array_equal(wp.latents, np.repeat(w.latents[:, None], NUM_WS, 1))
    np.testing.assert_array_equal(pixels(z.images), pixels(wp.images))
    np.testing.assert_array_equal(pixels(w.images), pixels(wp.images))
    assert not np.array_equal(pixels(z.images)[0], pixels(z.images)[1])
    # codes sent back render the same images; the default space is w
    np.testing.assert_array_equal(
        pixels(sg.generate(NAME, latents=w.latents).images), pixels(w.images)
    )
    again = sg.generate(NAME, latents=wp.latents.reshape(2, -1), space="w+")  # flattened w+
    np.testing.assert_array_equal(pixels(again.images), pixels(wp.images))
    whole = sg.generate(NAME, latents=wp, space="w+")  # the result object itself
    np.testing.assert_array_equal(pixels(whole.images), pixels(wp.images))
    t = sg.generate(NAME, seeds=[1, 2], space="w", truncation_psi=0.0)
    np.testing.assert_allclose(t.latents[0], t.latents[1], atol=1e-6)  # all at w_avg
    raises(lambda: sg.generate(NAME, seeds=[1], space="z", truncation_psi=0.5), "truncation_psi")
    raises(
        lambda: sg.generate(NAME, latents=np.zeros((1, 5, W_DIM)), space="w+"),
        f"(N, {NUM_WS}, {W_DIM})",
    )
    raises(lambda: sg.generate(NAME, seeds=[1], space="q"), "not a space of this model")


def test_discover_edit_conditional_in_w_and_w_plus(sg: Client) -> None:
    sefa = sg.discover(NAME, "sefa", top_k=3, space="w", params={"layers": "0-1"})
    assert [d.space for d in sefa] == ["w"] * 3 and sefa[0].params["layers"] == "0-1"
    ganspace = sg.discover(NAME, "ganspace", top_k=2, samples=600, space="w+", name_prefix="gs")
    assert ganspace[0].space == "w" and ganspace[0].metrics["std"] > 0
    zsefa = sg.discover(NAME, "sefa", top_k=2, space="z", name_prefix="zsefa")
    assert zsefa[0].space == "z" and zsefa[0].vector is not None
    assert zsefa[0].vector.shape == (Z_DIM,)
    wp = sg.generate(NAME, seeds=[3, 4], space="w+").latents
    out = sg.edit(NAME, wp, {"sefa_00": 3.0}, sweep=(3, -1, 1), space="w+")
    assert out.latents.shape == (2, 3, NUM_WS, W_DIM)
    moved = np.linalg.norm(out.latents - wp[:, None], axis=3).max(axis=(0, 1))
    np.testing.assert_allclose(moved, [3, 3, 0, 0, 0, 0, 0, 0], atol=1e-4)  # layers 0-1
    assert not np.array_equal(pixels(out.images[0][:1]), pixels(out.images[0][2:]))
    frames = sg.generate(NAME, latents=out, space="w+")  # an Edited: every frame one code
    np.testing.assert_array_equal(
        pixels(frames.images), pixels([im for row in out.images for im in row])
    )
    # a term's own layer range; an absolute term per layer
    one = sg.edit(NAME, wp, [("gs_00", 2.0, "relative", "4-5")], space="w+")
    moved = np.linalg.norm(one.latents[:, 0] - wp, axis=2).max(axis=0)
    np.testing.assert_allclose(moved, [0, 0, 0, 0, 2, 2, 0, 0], atol=1e-4)
    n = sefa[1].vector.astype(np.float64)
    ab = sg.edit(NAME, wp, [("sefa_01", 1.5, "absolute", "6")], space="w+")
    np.testing.assert_allclose(ab.latents[:, 0, 6] @ n, 1.5, atol=1e-4)
    w = sg.generate(NAME, seeds=[3, 4], space="w").latents
    ew = sg.edit(NAME, w, {"sefa_00": 2.0}, space="w")
    np.testing.assert_allclose((ew.latents[:, 0] - w) @ sefa[0].vector, 2.0, atol=1e-4)
    z = sg.generate(NAME, seeds=[3], space="z").latents
    ez = sg.edit(NAME, z, {"zsefa_00": 2.0}, space="z")
    assert not np.array_equal(
        pixels(ez.images[0]), pixels(sg.generate(NAME, latents=z, space="z").images)
    )
    cond = sg.conditional_edit(
        NAME, wp, "sefa_00", ["sefa_01"], strength=2.0, space="w+", layers="0-3"
    )
    assert abs(cond.condition_cosines[0]) < 1e-9
    moved = np.abs(cond.latents[:, 0] - wp).max(axis=(0, 2))
    assert (moved[:4] > 0).all() and (moved[4:] == 0).all()
    sg.conditional_edit(NAME, z, "zsefa_00", ["zsefa_01"], space="z")
    # wrong spaces: named both ways
    raises(lambda: sg.edit(NAME, z, {"sefa_00": 1.0}, space="z"), "lives in space 'w'", "'z'")
    raises(lambda: sg.edit(NAME, wp, {"zsefa_00": 1.0}, space="w+"), "lives in space 'z'", "'w+'")
    # learned directions train in z: asked for in w, the call says so (it used to train in z)
    raises(lambda: sg.discover(NAME, "linear", space="w"), "z only", "space='z'")
    raises(
        lambda: sg.conditional_edit(NAME, w, "sefa_00", ["zsefa_00"], space="w"),
        "lives in space 'z'",
    )
    raises(lambda: sg.edit(NAME, w, {"sefa_00": 1.0}, space="w", layers="0-1"), "need space 'w+'")
    raises(lambda: sg.edit(NAME, wp, {"sefa_00": 1.0}, space="w+", layers="0-8"), "outside")


def test_score_analyze_interfacegan_and_the_store_per_space(sg: Client) -> None:
    wp = sg.generate(NAME, seeds=[5, 6, 7], space="w+").latents
    s = sg.score(NAME, wp, space="w+")
    z = sg.generate(NAME, seeds=[5, 6, 7], space="z").latents
    np.testing.assert_allclose(sg.score(NAME, z, space="z").scores, s.scores, atol=1e-9)
    ig = sg.discover(
        NAME, "interfacegan", scorer="brightness", samples=600, space="w", name_prefix="bright"
    )[0]
    assert ig.space == "w" and ig.metrics["val_accuracy"] > 0.7
    report = sg.analyze(NAME, ["bright"], samples=32, space="w")
    assert report.rescoring[0, report.scorers.index("brightness")] > 0
    wplus = sg.analyze(NAME, ["bright", "sefa_00"], samples=16, space="w+", layers="0-3")
    assert wplus.cosine.shape == (2, 2) and wplus.rescoring.shape == (2, 4)
    raises(lambda: sg.analyze(NAME, ["bright", "zsefa_00"], space="w"), "lives in space 'z'")
    mine = sg.put_direction(NAME, "mine_w", np.ones(W_DIM), space="w+")
    assert mine.space == "w"
    assert {d.space for d in sg.directions(NAME, space="w")} == {"w"}
    assert {d.space for d in sg.directions(NAME, space="z")} == {"z"}
    raises(lambda: sg.put_direction(NAME, "bad", np.ones(Z_DIM + 1), space="z"), "vector")
    raises(lambda: sg.directions(NAME, space="w+"), "directions live in 'z' or 'w'")


def test_invert_in_w_plus_recovers_generated_images(sg: Client) -> None:
    wp = np.random.default_rng(0).standard_normal((2, NUM_WS, W_DIM)).astype(np.float32)
    target = sg.generate(NAME, latents=wp, space="w+")
    inv = sg.invert(NAME, target.images, space="w+", steps=300)
    assert inv.latents.shape == (2, NUM_WS, W_DIM)
    assert inv.psnr.min() >= 30, inv.psnr
    again = sg.generate(NAME, latents=inv.latents, space="w+")
    np.testing.assert_array_equal(pixels(again.images), pixels(inv.reconstructions))
    w = sg.invert(NAME, sg.generate(NAME, seeds=[9], space="w").images, space="w", steps=200)
    assert w.latents.shape == (1, W_DIM) and w.psnr.min() >= 30, w.psnr
    z = sg.invert(NAME, target.images[:1], space="z", steps=30, restarts=1)
    assert z.latents.shape == (1, Z_DIM) and np.isfinite(z.psnr).all()
    raises(lambda: sg.invert(NAME, target.images, space="w", method="extended"), "choose from")
    events = list(sg.invert_stream(NAME, target.images[:1], space="w+", steps=20))
    assert [e.step for e in events[:-1]] == [10, 20]  # type: ignore[union-attr]
    assert isinstance(events[-1], Inverted) and events[-1].latents.shape == (1, NUM_WS, W_DIM)


def test_pivotal_tuning_in_w_plus_reconstructs_photos_and_edits_them(sg: Client) -> None:
    """PTI through the SDK: photos the seeded model cannot make, tuned in w+; the tuning ids
    come back as extras and Generate / Edit render the tuned generator with them."""
    from PIL import Image

    info = {m.name: m for m in sg.models()}[NAME]
    assert info.w_invert_methods == ["optimize", "encoder", "hybrid", "tune", "auto"]
    assert "tune" in info.invert_methods  # z as well: its modulated convs are tunable
    faces = sorted((Path(__file__).resolve().parents[1] / "data" / "faces").glob("*.png"))
    photos = [Image.open(f).convert("RGB") for f in faces[2:4]]
    plain = sg.invert(NAME, photos, space="w+", steps=150)
    tuned = sg.invert(NAME, photos, space="w+", method="tune", steps=150, report_edit_error=True)
    assert tuned.methods == ["tune", "tune"] and len(tuned.extras.tuning_ids) == 2
    assert min(tuned.tuning_bytes) > 0
    np.testing.assert_array_equal(plain.code_psnr, plain.psnr)  # no extras: the code is all
    assert (tuned.code_psnr < tuned.psnr - 1).all(), (tuned.code_psnr, tuned.psnr)
    assert (tuned.psnr >= plain.psnr + 1.5).all(), (plain.psnr, tuned.psnr)
    # the extras render the reconstruction; the pivot alone is another image
    again = sg.generate(NAME, latents=tuned, space="w+")
    # (the tuning renders the delta in its batched forward, Generate from the tuned weights:
    # the same sums in another order, so a pixel may round the other way: 1 of 6144 once)
    off = np.abs(pixels(again.images).astype(int) - pixels(tuned.reconstructions))
    assert off.max() <= 1 and (off > 0).mean() < 0.01, (off.max(), (off > 0).mean())
    pivot = sg.generate(NAME, latents=tuned.latents, space="w+")
    assert np.abs(pixels(pivot.images).astype(int) - pixels(again.images)).mean() > 5
    # edits of the tuned photos move them as the generator moves their pivots (the locality
    # term): relative edit error at alpha 2 along SeFa's first w direction, in all layers.
    # This tiny random-weight model: 0.31 / 0.55 (in-process, tuning without the term: 1.5-6.4)
    sg.discover(NAME, "sefa", top_k=2, space="w", name_prefix="pti")
    edits = {"pti_00": 2.0}
    moved = pixels([f[0] for f in sg.edit(NAME, tuned, edits, space="w+").images]).astype(float)
    base = pixels([f[0] for f in sg.edit(NAME, tuned.latents, edits, space="w+").images])
    d_tuned = moved - pixels(tuned.reconstructions).astype(float)
    d_base = base.astype(float) - pixels(pivot.images).astype(float)
    errors = ((d_tuned - d_base) ** 2).sum((1, 2, 3)) / (d_base**2).sum((1, 2, 3))
    assert errors.max() < 0.9, errors
    # the service's own measure (top-5 SeFa w directions, alpha +-2, every layer) agrees
    assert tuned.edit_error.shape == (2,) and (tuned.edit_error > 0).all(), tuned.edit_error
    assert tuned.edit_error.max() < 0.9, tuned.edit_error
    # auto: the projection, then tuning for what it cannot reach, within the edit-error bound
    # (this random-weight model's tuned photos in w+: error 0.18 / 0.08)
    auto = sg.invert(NAME, photos, space="w+", method="auto", steps=300, max_edit_error=0.6)
    assert auto.methods == ["tune", "tune"] and all(auto.extras.tuning_ids), auto.methods
    assert (auto.psnr >= plain.psnr + 1.5).all() and (auto.edit_error <= 0.6).all()
    shown = sg.generate(NAME, latents=auto, space="w+")
    off = np.abs(pixels(shown.images).astype(int) - pixels(auto.reconstructions))
    assert off.max() <= 1, off.max()
    made = sg.generate(NAME, seeds=[11], space="w").images  # reachable: the code alone
    reached = sg.invert(NAME, made, space="w", method="auto", steps=300)
    assert reached.methods == ["optimize"] and not any(reached.extras.tuning_ids)
    assert reached.psnr[0] >= 30 and reached.edit_error[0] == 0, reached.psnr
    z_plain = sg.invert(NAME, photos[:1], space="z", steps=60, restarts=1)
    z_tuned = sg.invert(NAME, photos[:1], space="z", method="tune", steps=60, restarts=1)
    assert z_tuned.psnr[0] >= z_plain.psnr[0] + 1, (z_plain.psnr, z_tuned.psnr)
    again = sg.generate(NAME, latents=z_tuned, space="z")
    np.testing.assert_array_equal(pixels(again.images), pixels(z_tuned.reconstructions))


def test_a_w_encoder_trained_by_the_cli_serves_encoder_and_hybrid(
    sg: Client, sg_stack: Stack
) -> None:
    """``latentedit train-encoder NAME --space w`` writes the model's W encoder where the
    running worker finds it: "encoder" and "hybrid" then answer in w and w+."""
    target = sg.generate(NAME, seeds=[101, 102, 103], space="w").images  # unseen seeds
    with pytest.raises(FailedPrecondition, match=f"train-encoder {NAME} --space w"):
        sg.invert(NAME, target, space="w+", method="hybrid")
    model_arg = next(a for a in sg_stack.config.extra_worker_args if a.startswith("--model="))
    cmd = [sys.executable, "-m", "latentedit.deploy.cli", "train-encoder", NAME, model_arg]
    cmd += ["--space", "w", "--steps", "200", "--pixel-batch", "4", "--threads", "1"]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    plain = sg.invert(NAME, target, space="w", steps=60)
    mean_face = sg.generate(NAME, seeds=[0], space="w", truncation_psi=0.0).images[0]
    diff = pixels(target).astype(float) - pixels([mean_face]).astype(float)
    average = 10 * np.log10(255.0**2 / (diff**2).mean((1, 2, 3)))  # w_avg's PSNR, dB
    for space in ("w", "w+"):
        enc = sg.invert(NAME, target, space=space, method="encoder")
        assert enc.methods == ["encoder"] * 3 and enc.steps == 0
        # in-process, 8 unseen seeds: w_avg renders them at 24.4 dB, the encoder's codes at
        # 30.9 (here 32.6 / 25.1 / 26.9 dB against w_avg's 22.1 / 19.5 / 19.5)
        assert (enc.psnr >= average + 3).all() and enc.psnr.mean() >= average.mean() + 5, (
            average,
            enc.psnr,
        )
        again = sg.generate(NAME, latents=enc.latents, space=space)
        np.testing.assert_array_equal(pixels(again.images), pixels(enc.reconstructions))
        if space == "w+":  # one w in every layer: the prediction stays in W
            np.testing.assert_array_equal(enc.latents, enc.latents[:, :1].repeat(NUM_WS, 1))
        hybrid = sg.invert(NAME, target, space=space, method="hybrid", steps=60)
        # in-process at 60 steps: w 38 -> 45 dB
        assert hybrid.psnr.mean() >= plain.psnr.mean() + 3, (plain.psnr, hybrid.psnr)
    # auto's latent stage is hybrid once the model has an encoder (generated images: no tuning)
    auto = sg.invert(NAME, target, space="w", method="auto", steps=120)
    assert auto.methods == ["hybrid"] * 3 and not any(auto.extras.tuning_ids), auto.methods


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_cancelled_w_plus_inversion_stops_its_work(sg: Client, sg_stack: Stack) -> None:
    target = sg.generate(NAME, seeds=[3], space="w+").images
    pid = sg_stack.workers[0].pid
    events = []
    for event in sg.invert_stream(NAME, target, space="w+", steps=5000):
        events.append(event)
        break  # cancels the call after the first progress event (step 10)
    assert events[0].step == 10  # type: ignore[union-attr]
    time.sleep(2.5)  # the worker polls cancel flags twice a second, then stops at a step
    before, start = _cpu_seconds(pid), time.monotonic()
    time.sleep(3)
    busy = (_cpu_seconds(pid) - before) / (time.monotonic() - start)
    # Still optimising, the worker would use about a core (5000 steps: about a minute).
    assert busy < 0.25, f"worker still busy ({busy:.2f} CPU s per s) after the cancel"
    quick = sg.invert(NAME, target, space="w+", steps=10)
    assert quick.latents.shape == (1, NUM_WS, W_DIM)


def test_z_only_models_refuse_w(client: Client) -> None:
    for model in ("dcgan-faces", "shapes"):
        raises(lambda m=model: client.generate(m, seeds=[1], space="w"), "it has ['z']")
        raises(lambda m=model: client.discover(m, "sefa", space="w+"), "it has ['z']")
    assert client.generate("shapes", seeds=[1], space="z").latents.shape == (1, 16)
