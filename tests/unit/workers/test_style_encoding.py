"""The W encoder of a style generator and hybrid inversion in W / W+: trained on the model's
own (w, image) pairs, its codes stay in W, start projections far ahead of w_avg, and the file
lands where the worker looks for it. Small seeded StyleGAN2 (32 px, w_dim 32)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentedit.workers.methods.encoder import (
    Encoder,
    effective_encoder_path,
    encoder_path,
    load_encoder,
    psnr,
    save_encoder,
)
from latentedit.workers.methods.inversion.optim import blocking
from latentedit.workers.methods.style_encoding import (
    encode,
    encode_steps,
    hybrid_steps,
    train_w_encoder,
)
from latentedit.workers.methods.style_projection import project
from latentedit.workers.methods.style_tuning import renderer
from latentedit.workers.models.runtime import LoadedModel


@pytest.fixture(scope="module")
def model(small_stylegan2: LoadedModel) -> LoadedModel:
    return small_stylegan2


@pytest.fixture(scope="module")
def encoder(model: LoadedModel) -> Encoder:
    enc, report = train_w_encoder(model, steps=200, seed=0, pixel_batch=4, reuse=4)
    assert report.steps == 200 and report.history, report
    return enc.requires_grad_(False)


@pytest.fixture(scope="module")
def held_out(model: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(w (8, w_dim), images (8, 3, 32, 32)) from seeds the encoder never saw."""
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        w = model.generator.mapping(z)
        return w, model.synthesize(w, "w")


def test_w_encoder_predicts_codes_in_w_that_render_the_image(
    model: LoadedModel, encoder: Encoder, held_out: tuple[torch.Tensor, torch.Tensor]
) -> None:
    w, x = held_out
    with torch.no_grad():
        average = psnr(model.synthesize(model.generator.w_avg[None].expand(8, -1), "w"), x)
        codes = encode(model, encoder, x, "w")
        encoded = psnr(model.synthesize(codes, "w"), x)
    # measured: w_avg renders these at 24.4 dB, the encoder's codes at 30.9 dB
    assert encoded.mean() >= average.mean() + 4, (average, encoded)
    # e4e's point: predictions keep the spread of the generator's codes (not shrunk towards
    # w_avg, where faces are average and edits weak)
    r = renderer(model, "w", whitened=True)
    ratio = r.whiten(codes).norm(dim=1) / r.whiten(w).norm(dim=1)
    assert 0.7 <= float(ratio.mean()) <= 1.3, ratio
    # w+: the same w in every layer
    plus = encode(model, encoder, x, "w+")
    assert plus.shape == (8, model.info.num_ws, 32)
    torch.testing.assert_close(plus, codes[:, None].expand_as(plus))
    step = blocking(encode_steps)(model, x, "w+", 0, encoder=encoder)
    assert step.steps == 0 and step.codes.shape == (8, model.info.num_ws, 32)
    torch.testing.assert_close(torch.from_numpy(step.psnr), encoded, atol=1e-3, rtol=0)


@pytest.mark.parametrize("space", ["w", "w+"])
def test_hybrid_starts_the_projection_ahead_of_w_avg(
    model: LoadedModel,
    encoder: Encoder,
    held_out: tuple[torch.Tensor, torch.Tensor],
    space: str,
) -> None:
    _, x = held_out
    optimized = project(model, x, space, 60)
    hybrid = blocking(hybrid_steps)(model, x, space, 60, encoder=encoder)
    # measured at 60 steps: w 38.3 -> 44.9 dB, w+ 35.8 -> 44.5 dB
    assert hybrid.psnr.mean() >= optimized.psnr.mean() + 3, (optimized.psnr, hybrid.psnr)
    assert hybrid.steps == 60 and hybrid.codes.shape == optimized.codes.shape


def test_w_encoder_file_is_found_per_space(
    model: LoadedModel, encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTEDIT_HOME", str(tmp_path))
    assert effective_encoder_path("sg", "v1", "w") is None
    path = encoder_path("sg", "v1", "w")
    save_encoder(encoder, path, {"space": "w"})
    assert effective_encoder_path("sg", "v1", "w") == path
    assert effective_encoder_path("sg", "v1", "z") is None  # the z encoder is another file
    again = load_encoder(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():  # fp16 on disk
        torch.testing.assert_close(again(x), encoder(x), atol=5e-2, rtol=0)
