"""latentedit.workers.methods.invert: preprocessing, PSNR, and batched latent optimisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentedit.workers.methods.invert import OptimizeConfig, optimize, preprocess, psnr_uint8
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import load_model, to_uint8

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _framed(h: int, w: int, left: int, top: int, size: int) -> np.ndarray:
    """Red canvas (h, w, 3) with a blue square (size) at (left, top)."""
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:] = RED
    pixels[top : top + size, left : left + size] = BLUE
    return pixels


@pytest.mark.parametrize(
    ("h", "w", "left", "top", "size"),
    [
        (40, 100, 30, 0, 40),  # landscape
        (41, 100, 29, 0, 41),  # landscape, odd margin rounds down
        (100, 40, 0, 30, 40),  # portrait
        (90, 64, 0, 13, 64),  # portrait, already at the resolution: no resize
        (80, 80, 0, 0, 80),  # square
    ],
)
def test_preprocess_centre_crops_and_resizes(
    h: int, w: int, left: int, top: int, size: int
) -> None:
    out, crop = preprocess(_framed(h, w, left, top, size), 64)
    assert (crop.left, crop.top, crop.size) == (left, top, size)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # only the blue square survives: the crop is taken before resampling, so nothing bleeds in
    assert np.abs(out.astype(int) - np.array(BLUE)).max() <= 1


def test_preprocess_at_the_resolution_is_an_exact_crop() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 70, 3), dtype=np.uint8)
    out, crop = preprocess(pixels, 64)
    assert (crop.left, crop.top, crop.size) == (3, 0, 64)
    np.testing.assert_array_equal(out, pixels[:, 3:67])


def test_psnr_of_identical_images_is_inf() -> None:
    a = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert np.isposinf(psnr_uint8(a, a.copy())).all()


def test_psnr_from_a_known_mse() -> None:
    a = np.zeros((3, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0] = 5  # MSE 25
    b[1, :2] = 255  # half the pixels off by 255: MSE 255^2 / 2
    out = psnr_uint8(a, b)
    assert out.shape == (3,)
    assert out[0] == pytest.approx(10 * math.log10(255**2 / 25))
    assert out[1] == pytest.approx(10 * math.log10(2))  # no uint8 wrap-around
    assert np.isposinf(out[2])
    np.testing.assert_array_equal(psnr_uint8(b, a), out)


def test_the_best_restart_of_each_image_is_kept() -> None:
    """With no prior, a start at the true code has zero gradient and must win and stay."""
    torch.manual_seed(0)
    # float64, so that batch-size-dependent rounding leaves no gradient at the true code
    gen = DCGANGenerator(latent_dim=8, width=4).double().eval().requires_grad_(False)
    truth = torch.randn(2, 8, dtype=torch.float64)
    with torch.no_grad():
        targets = gen(truth)
    z0 = torch.randn(2, 3, 8, dtype=torch.float64) * 3
    z0[0, 2], z0[1, 0] = truth[0], truth[1]  # a different restart slot per image
    assert (z0 - truth[:, None]).norm(dim=2).sort(dim=1).values[:, 1].min() > 1  # others far
    out = optimize(gen, targets, z0, torch.zeros(2), OptimizeConfig(steps=16, lr=0.05))
    assert out.shape == (2, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out, truth.float(), rtol=0, atol=1e-6)


def test_optimize_reconstructs_generated_faces() -> None:
    model = load_model(get_spec("dcgan-faces"))
    rng = torch.Generator().manual_seed(0)
    truth = torch.randn(2, 100, generator=rng)
    z0 = torch.randn(2, 2, 100, generator=rng)
    with torch.no_grad():
        targets = model.forward(truth)
        starts = model.forward(z0.reshape(4, 100))
    target_pixels = to_uint8(targets)
    start_psnr = psnr_uint8(to_uint8(starts), np.repeat(target_pixels, 2, 0)).reshape(2, 2)

    z = optimize(model.forward, targets, z0, torch.full((2,), 1e-3), OptimizeConfig(steps=40))
    with torch.no_grad():
        psnr = psnr_uint8(to_uint8(model.forward(z)), target_pixels)
    # far better than the best random start of each image (about 10-14 dB)
    assert (psnr > start_psnr.max(1) + 5).all(), (psnr, start_psnr)
    assert (psnr > 18).all(), psnr
