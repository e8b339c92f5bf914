"""paste_back: an edited crop goes back into its photo, blended at interior edges only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentedit.client import InvalidArgument, paste_back


def photo() -> np.ndarray:
    """A 200 x 128 photo: a horizontal ramp in red, green 40, blue 200."""
    out = np.zeros((128, 200, 3), np.uint8)
    out[..., 0] = np.linspace(0, 255, 200).astype(np.uint8)
    out[..., 1], out[..., 2] = 40, 200
    return out


def test_the_crop_is_replaced_and_the_rest_of_the_photo_kept(tmp_path: Path) -> None:
    original = photo()
    path = tmp_path / "photo.png"
    Image.fromarray(original).save(path)
    edited = Image.new("RGB", (64, 64), (10, 250, 10))  # what an Edit returns: the crop, small
    out = np.asarray(paste_back(path, edited, (36, 0, 128), feather=0.1))
    assert out.shape == original.shape
    np.testing.assert_array_equal(out[:, :36], original[:, :36])  # outside: untouched
    np.testing.assert_array_equal(out[:, 164:], original[:, 164:])
    assert (out[20:108, 50:150] == [10, 250, 10]).all()  # inside, past the blend
    # left / right edges lie inside the photo: blended over 12.8 px, half way at ~6 px in
    left = out[64, 36:50, 1].astype(int)
    assert left[0] < 70 and left[-1] == 250 and np.all(np.diff(left) >= 0)
    # top / bottom touch the photo's border: no blend there (no seam to hide)
    assert (out[0, 60:140] == [10, 250, 10]).all() and (out[127, 60:140] == [10, 250, 10]).all()


def test_a_hard_edge_and_a_crop_outside_the_photo() -> None:
    edited = np.full((32, 32, 3), 7, np.uint8)
    out = np.asarray(paste_back(photo(), edited, (10, 20, 50), feather=0))
    assert (out[20:70, 10:60] == 7).all() and (out[19, 10:60] != 7).any()
    with pytest.raises(InvalidArgument, match="does not lie inside the 200x128 photo"):
        paste_back(photo(), edited, (100, 0, 128))
    with pytest.raises(InvalidArgument, match="feather"):
        paste_back(photo(), edited, (0, 0, 64), feather=0.7)
