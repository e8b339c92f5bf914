"""Inversion methods through the SDK: extras that round-trip, streaming, cancel, real photos."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentedit.client import Client, InvertProgress, NotFound, Unavailable
from latentedit.client.types import CodeExtras, Inverted
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"
FACES = sorted((Path(__file__).parents[1] / "data" / "faces").glob("*.png"))


def arrays(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images]).astype(int)


@pytest.fixture
def faces(client: Client) -> list[Image.Image]:
    return client.generate(MODEL, seeds=[90_001, 90_002]).images


def test_encoder_methods_need_a_trained_encoder(client: Client, faces: list[Image.Image]) -> None:
    with pytest.raises(Unavailable, match="train-encoder dcgan-faces"):
        client.invert(MODEL, faces[:1], method="hybrid")
    assert client.generate(MODEL, seeds=[1]).images  # and the service goes on


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
    photos = [Image.open(p).convert("RGB") for p in FACES[:2]]
    wide = Image.new("RGB", (200, 128))
    wide.paste(photos[0], (36, 0))  # a non-square input: the centre crop is reported
    inv = client.invert(MODEL, [wide, photos[1]], method="auto", steps=200, target_psnr=26)
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
    encoder, _ = train_encoder(model.forward, 100, 64, steps=40, batch_size=8, seed=0)
    save_encoder(encoder, encoder_path(MODEL, model.version))  # workers pick it up
    alone = client.invert(MODEL, faces, method="encoder")
    hybrid = client.invert(MODEL, faces, method="hybrid", steps=60)
    assert alone.methods == ["encoder", "encoder"]
    assert np.mean(hybrid.psnr) > np.mean(alone.psnr) + 3
