"""The dcgan-faces encoder shipped in the package: pinned, loadable with no training, useful."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentedit.errors import Unavailable
from latentedit.workers.methods import encoder as enc_mod
from latentedit.workers.methods.encoder import (
    Encoder,
    EncoderConfig,
    effective_encoder_path,
    encoder_meta,
    encoder_path,
    load_encoder,
    psnr,
    save_encoder,
    shipped_encoder_path,
)
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model

MODEL = "dcgan-faces"


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(get_spec(MODEL))


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $LATENTEDIT_HOME: nothing trained, as on a fresh clone."""
    home = tmp_path / "home"
    monkeypatch.setenv("LATENTEDIT_HOME", str(home))
    return home


def test_shipped_file_is_pinned_small_fp16_and_loads_with_no_training(
    model: LoadedModel, fresh_home: Path
) -> None:
    path = effective_encoder_path(MODEL, model.version)
    assert path == shipped_encoder_path(MODEL)
    assert not encoder_path(MODEL, model.version).exists()
    spec = get_spec(MODEL)
    assert len(spec.encoder_sha256) == 64
    assert enc_mod._shipped_digest(path, path.stat().st_mtime_ns) == spec.encoder_sha256
    assert path.stat().st_size <= 10 * 2**20
    assert {t.dtype for t in load_file(str(path)).values()} == {torch.float16}
    assert encoder_meta(path)["model_version"] == model.version
    enc = load_encoder(path)
    assert enc.cfg.latent_dim == model.latent_dim and enc.cfg.resolution == 64
    assert not list(fresh_home.rglob("*"))  # nothing written to the home


def test_a_trained_file_overrides_the_shipped_one(model: LoadedModel, fresh_home: Path) -> None:
    trained = encoder_path(MODEL, model.version)
    save_encoder(Encoder(EncoderConfig(width=8)), trained)
    assert effective_encoder_path(MODEL, model.version) == trained
    # other generator versions get neither (the shipped file was trained for this one)
    assert effective_encoder_path(MODEL, "0" * 16) is None
    assert effective_encoder_path("shapes", "any") is None  # no encoder shipped


def test_a_corrupt_shipped_file_is_refused(
    model: LoadedModel, fresh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "weights" / shipped_encoder_path(MODEL).name
    copy.parent.mkdir()
    shutil.copyfile(shipped_encoder_path(MODEL), copy)
    with copy.open("r+b") as f:  # flip one byte near the end (weights, not the header)
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(enc_mod, "SHIPPED_DIR", copy.parent)
    with pytest.raises(Unavailable, match="SHA-256"):
        effective_encoder_path(MODEL, model.version)


def test_shipped_encoder_beats_trivial_codes_on_held_out_faces(
    model: LoadedModel, fresh_home: Path
) -> None:
    """Seeds the trainer never draws (it draws from seed 0); a few faces keep it cheap."""
    path = effective_encoder_path(MODEL, model.version)
    assert path is not None
    enc = load_encoder(path)
    z = torch.randn(6, model.latent_dim, generator=torch.Generator().manual_seed(31337))
    with torch.no_grad():
        x = model.forward(z)
        z_hat = enc(x)
        p_enc = psnr(model.forward(z_hat), x)
        p_mean_face = psnr(model.forward(torch.zeros_like(z)), x)  # the average code
        p_shuffled = psnr(model.forward(z.roll(1, 0)), x)  # another face's true code
    assert p_enc.mean() > p_mean_face.mean() + 4, (p_enc, p_mean_face)
    assert p_enc.mean() > p_shuffled.mean() + 4, (p_enc, p_shuffled)
    assert torch.all(p_enc > p_mean_face) and torch.all(p_enc > p_shuffled)
    # ... and its codes stay out on the prior's shell instead of collapsing towards the
    # average face (an encoder trained without the shell term: |E(x)| / |z| ~ 0.4)
    shell = (z_hat.norm(dim=1) / z.norm(dim=1)).mean()
    assert shell > 0.6, shell
