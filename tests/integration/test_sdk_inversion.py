"""Inversion methods through the SDK: extras that round-trip, streaming, cancel, real photos."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentedit.client import Client, FailedPrecondition, InvertProgress, NotFound
from latentedit.client.types import CodeExtras, Inverted
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"
FACES = sorted((Path(__file__).parents[1] / "data" / "faces").glob("*.png"))


def arrays(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images]).astype(int)


@pytest.fixture
def faces(client: Client) -> list[Image.Image]:
    return client.generate(MODEL, seeds=[90_001, 90_002]).images


def test_encoder_methods_work_on_a_fresh_home_with_the_shipped_encoder(
    client: Client, faces: list[Image.Image]
) -> None:
    """No `train-encoder` run (the model home is empty): the shipped encoder serves."""
    res = client.invert(MODEL, faces, method="encoder")
    assert res.methods == ["encoder", "encoder"]
    mean_face = arrays(client.generate(MODEL, latents=np.zeros((1, 100), np.float32)).images)
    mse = (((arrays(faces) - mean_face) / 255.0) ** 2).mean(axis=(1, 2, 3))
    assert np.all(res.psnr > -10 * np.log10(mse) + 2), (res.psnr, mse)  # beats the mean face


def test_an_encoder_method_on_a_model_without_an_encoder_is_a_failed_precondition(
    client: Client,
) -> None:
    """`shapes` ships no encoder: FAILED_PRECONDITION (not UNAVAILABLE: retrying won't help)."""
    image = client.generate("shapes", seeds=[5]).images
    with pytest.raises(FailedPrecondition, match="train-encoder shapes"):
        client.invert("shapes", image, method="encoder")


@pytest.mark.parametrize("method", ["extended", "tune"])
def test_extras_round_trip_through_generate_and_edit(
    client: Client, faces: list[Image.Image], method: str
) -> None:
    inv = client.invert(MODEL, faces, method=method, steps=60)
    assert inv.methods == [method, method]
    assert inv.ssim.shape == (2,) and np.all((inv.ssim > 0) & (inv.ssim <= 1))
    if method == "extended":
        assert inv.extras.residual is not None and inv.extras.residual.shape[0] == 2
    else:
        assert all(inv.extras.tuning_ids) and all(b > 0 for b in inv.tuning_bytes)
    # Passing the result back renders exactly the reconstructions ...
    again = client.generate(MODEL, latents=inv)
    np.testing.assert_array_equal(arrays(again.images), arrays(inv.reconstructions))
    # ... while the bare latents do not (the extras matter).
    bare = client.generate(MODEL, latents=inv.latents)
    assert np.abs(arrays(bare.images) - arrays(inv.reconstructions)).mean() > 0.5
    # code_psnr says how far the bare codes are: below psnr (the extras carry the rest)
    assert inv.code_psnr.shape == (2,) and np.all(inv.code_psnr < inv.psnr - 0.5), inv.code_psnr
    client.discover(MODEL, "sefa", top_k=2)
    edited = client.edit(MODEL, inv, {"sefa_00": 3.0}, sweep=(3, -1, 1))
    np.testing.assert_array_equal(
        arrays([row[1] for row in edited.images]), arrays(inv.reconstructions)
    )
    assert (
        np.abs(arrays([row[2] for row in edited.images]) - arrays(inv.reconstructions)).mean() > 2
    )


def test_unknown_tuning_id_is_not_found(client: Client) -> None:
    z = np.zeros((1, 100), np.float32)
    fake = Inverted(
        "", z, [], np.zeros(1), 0, 0.0, "tune", [], extras=CodeExtras(None, ["deadbeef"])
    )
    with pytest.raises(NotFound, match="tuning id"):
        client.generate(MODEL, latents=fake)


def test_stream_reports_progress_and_cancel_stops_the_work(
    client: Client, faces: list[Image.Image]
) -> None:
    events = []
    for event in client.invert_stream(MODEL, faces[:1], method="optimize", steps=5000):
        events.append(event)
        if len(events) == 3:
            break  # cancels the call
    assert all(isinstance(e, InvertProgress) for e in events)
    assert events[-1].step > events[0].step and events[0].psnr.shape == (1,)
    # Had the 5000-step job gone on, the heavy lane would be busy for minutes.
    start = time.monotonic()
    quick = client.invert(MODEL, faces[:1], method="optimize", steps=30, restarts=1, timeout=60)
    assert quick.psnr.shape == (1,)
    assert time.monotonic() - start < 45


def test_streamed_result_matches_a_plain_call(client: Client, faces: list[Image.Image]) -> None:
    events = list(client.invert_stream(MODEL, faces[:1], method="extended", steps=40, seed=3))
    final = events[-1]
    assert isinstance(final, Inverted)
    plain = client.invert(MODEL, faces[:1], method="extended", steps=40, seed=3)
    np.testing.assert_allclose(final.latents, plain.latents, atol=1e-5)


def test_real_photos_any_size_with_auto(client: Client) -> None:
    assert len(FACES) >= 8
    photos = [Image.open(p).convert("RGB") for p in FACES[:1]]
    wide = Image.new("RGB", (200, 128))
    wide.paste(photos[0], (36, 0))  # a non-square input: the centre crop is reported
    # a loose edit-error bound: this test is about sizes and crops (the bound: next test file)
    # the second photo goes as its file's path: the SDK sends the file, the worker decodes it
    inv = client.invert(
        MODEL, [wide, FACES[1]], method="auto", steps=200, target_psnr=26, max_edit_error=1.0
    )
    assert inv.edit_error.shape == (2,) and np.all(inv.edit_error <= 1.0)
    assert inv.crops[0] == (36, 0, 128)
    assert inv.crops[1] == (0, 0, 128)
    assert np.all(inv.psnr >= 24), (inv.psnr, inv.methods)
    assert set(inv.methods) <= {"optimize", "encoder", "hybrid", "extended", "tune"}


def test_hybrid_with_a_trained_encoder(
    stack: Stack, latentedit_home: Path, client: Client, faces: list[Image.Image]
) -> None:
    from latentedit.workers.methods.encoder import encoder_path, save_encoder, train_encoder
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    model = load_model(get_spec(MODEL))
    shipped = client.invert(MODEL, faces, method="encoder")
    encoder, _ = train_encoder(model.forward, 100, 64, steps=40, batch_size=8, seed=0)
    path = encoder_path(MODEL, model.version)
    save_encoder(encoder, path)  # workers pick it up, in place of the shipped one
    try:
        alone = client.invert(MODEL, faces, method="encoder")
        hybrid = client.invert(MODEL, faces, method="hybrid", steps=60)
    finally:
        path.unlink()  # later tests see the shipped encoder again
    assert alone.methods == ["encoder", "encoder"]
    assert not np.allclose(alone.latents, shipped.latents)  # the trained file was used
    assert np.mean(hybrid.psnr) > np.mean(alone.psnr) + 3


def test_a_short_inversion_does_not_wait_for_a_long_one(
    stack: Stack, client: Client, faces: list[Image.Image]
) -> None:
    """Continuous batching: a 50-step call joins the running session at a step boundary."""
    import threading

    kw = {"method": "optimize", "restarts": 1, "timeout": 300}
    client.invert(MODEL, faces[:1], steps=50, **kw)  # warm-up
    start = time.monotonic()
    client.invert(MODEL, faces[:1], steps=50, **kw)
    alone = time.monotonic() - start
    started, stop = threading.Event(), threading.Event()

    def long_call() -> None:
        with Client(stack.target) as other:
            stream = other.invert_stream(MODEL, faces[1:], method="optimize", steps=3000)
            for _ in stream:
                started.set()
                if stop.is_set():
                    stream.close()
                    return

    thread = threading.Thread(target=long_call, daemon=True)
    thread.start()
    try:
        assert started.wait(120)
        start = time.monotonic()
        client.invert(MODEL, faces[:1], steps=50, **kw)
        beside = time.monotonic() - start
    finally:
        stop.set()
        thread.join(120)
    # Waiting for the long call would take ~60x as long; interleaving costs about 2x.
    assert beside < 8 * alone + 2.0, (alone, beside)


def test_edit_error_is_measured_when_asked(client: Client, faces: list[Image.Image]) -> None:
    plain = client.invert(MODEL, faces, method="extended", steps=20)
    assert plain.edit_error.shape == (0,)
    ext = client.invert(MODEL, faces, method="extended", steps=20, report_edit_error=True)
    assert ext.edit_error.shape == (2,) and np.all(np.isfinite(ext.edit_error))
    assert np.all(ext.edit_error > 0)  # the residual changes how edits look, a little
    opt = client.invert(
        MODEL, faces, method="optimize", steps=10, restarts=1, report_edit_error=True
    )
    np.testing.assert_array_equal(opt.edit_error, [0.0, 0.0])  # latent only: edits as G's


def test_models_advertise_only_the_methods_they_support(client: Client) -> None:
    by_name = {m.name: m for m in client.models()}
    assert "extended" in by_name[MODEL].invert_methods
    if "shapes" in by_name:
        methods = by_name["shapes"].invert_methods
        assert "extended" not in methods and {"optimize", "tune", "auto"} <= set(methods)
