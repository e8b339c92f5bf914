"""latentedit.workers.methods.preprocess: centre crop + resize, and PSNR of uint8 images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentedit.workers.methods.inversion.metrics import psnr_uint8
from latentedit.workers.methods.preprocess import preprocess

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
