"""The per-model encoder: shapes, batch independence, training, progress, save/load, paths."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentedit.workers.methods import encoder as enc_mod
from latentedit.workers.methods.encoder import (
    Encoder,
    EncoderConfig,
    encoder_meta,
    encoder_path,
    load_encoder,
    psnr,
    save_encoder,
    train_encoder,
)
from latentedit.workers.models.dcgan import DCGANGenerator

log = logging.getLogger(__name__)
D = 16


def toy_generator(seed: int = 0) -> DCGANGenerator:
    """A small random DCGAN whose BatchNorm statistics come from its own samples."""
    torch.manual_seed(seed)
    g = DCGANGenerator(latent_dim=D, width=8)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    g.train()
    with torch.no_grad():
        g(torch.randn(512, D))
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def gen() -> DCGANGenerator:
    return toy_generator(0)


def held_out(gen: DCGANGenerator, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(n, D, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        return z, gen(z)


def test_shapes_features_and_bad_input() -> None:
    e = Encoder(EncoderConfig(latent_dim=D, width=8)).eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    z, feats = e.features(x)
    assert z.shape == (3, D)
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    torch.testing.assert_close(e(x), z)
    with pytest.raises(ValueError):
        e(torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError):
        Encoder(EncoderConfig(resolution=48))


def test_an_images_code_does_not_depend_on_its_batch() -> None:
    e = Encoder(EncoderConfig(latent_dim=D, width=8)).eval()
    x = torch.rand(5, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        together = e(x)
        alone = torch.cat([e(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_training_beats_an_untrained_encoder(gen: DCGANGenerator) -> None:
    z_val, x_val = held_out(gen)
    untrained = Encoder(EncoderConfig(latent_dim=D, width=8)).eval()
    seen: list[tuple[int, float, np.ndarray]] = []

    def progress(step: int, loss: float, p: np.ndarray) -> bool:
        seen.append((step, loss, p))
        return True

    trained, report = train_encoder(
        gen,
        D,
        64,
        steps=100,
        batch_size=32,
        lr=2e-3,
        seed=0,
        progress=progress,
        width=8,
        pixel_start=0.3,
        progress_every=20,
        val_size=16,
    )
    with torch.no_grad():
        before = psnr(gen(untrained(x_val)), x_val).mean().item()
        after = psnr(gen(trained(x_val)), x_val).mean().item()
        lat_before = (untrained(x_val) - z_val).square().mean().item()
        lat_after = (trained(x_val) - z_val).square().mean().item()
    log.info("PSNR %.2f -> %.2f dB, latent MSE %.3f -> %.3f", before, after, lat_before, lat_after)
    assert after > before + 2
    assert lat_after < 0.8 * lat_before
    assert report.steps == 100 and report.samples == 3200
    assert [s[0] for s in seen] == [20, 40, 60, 80, 100]
    assert all(s[2].shape == (16,) for s in seen)
    assert np.isfinite(report.val_psnr) and report.val_psnr > before
    assert not trained.training


def test_training_is_deterministic_and_reuse_pool_works(gen: DCGANGenerator) -> None:
    kw = {"steps": 6, "batch_size": 8, "lr": 1e-3, "seed": 3, "width": 8, "val_size": 4}
    a, ra = train_encoder(gen, D, 64, reuse=1, **kw)
    b, _ = train_encoder(gen, D, 64, reuse=1, **kw)
    assert ra.generated == ra.samples == 48
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(va, vb, msg=ka)
    _, report = train_encoder(gen, D, 64, reuse=4, pool_size=16, **kw)
    assert report.steps == 6 and report.samples == 6 * 8
    assert report.generated == 8 + 5 * 2


def test_progress_false_and_max_seconds_stop_training(gen: DCGANGenerator) -> None:
    calls = []

    def stop(step: int, loss: float, p: np.ndarray) -> bool:
        calls.append(step)
        return False

    _, report = train_encoder(
        gen, D, 64, steps=50, batch_size=4, seed=0, progress=stop, width=8,
        progress_every=3, val_size=4,
    )  # fmt: skip
    assert calls == [3] and report.steps == 3
    _, report = train_encoder(gen, D, 64, steps=50, batch_size=4, width=8, max_seconds=0.0)
    assert report.steps == 0


def test_save_load_round_trip_as_fp16_safetensors(tmp_path: Path) -> None:
    e = Encoder(EncoderConfig(latent_dim=D, width=8)).eval()
    path = tmp_path / "a" / "encoder.safetensors"
    save_encoder(e, path, {"steps": 7, "val_psnr": 21.5, "model": "toy"})
    loaded = load_encoder(path)
    assert loaded.cfg == e.cfg and not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # computes in fp32
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():  # fp16 storage: close, not equal
        torch.testing.assert_close(loaded(x), e(x), atol=2e-2, rtol=2e-2)
    assert encoder_meta(path) == {"steps": 7, "val_psnr": 21.5, "model": "toy"}
    # plain tensors + JSON metadata (no pickle), stored in fp16
    tensors = load_file(str(path))
    assert set(tensors) == set(e.state_dict())
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_encoder_path_lives_under_latentedit_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTEDIT_HOME", str(tmp_path))
    p = encoder_path("dcgan-faces", "0c3b90b138cfc4e8")
    assert p == tmp_path / "models" / "dcgan-faces" / "0c3b90b138cfc4e8" / "encoder.safetensors"
    monkeypatch.delenv("LATENTEDIT_HOME")
    assert enc_mod.models_home() == Path.home() / ".cache" / "latentedit"
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError):
            encoder_path(bad, "v1")
        with pytest.raises(ValueError):
            encoder_path("m", bad)
