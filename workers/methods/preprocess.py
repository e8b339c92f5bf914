"""Input images for inversion: centre crop + resize to the model.

The inversion methods and their metrics live in :mod:`latentedit.workers.methods.inversion`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage


@dataclass
class Crop:
    left: int
    top: int
    size: int


def preprocess(pixels: np.ndarray, resolution: int, channels: int = 3) -> tuple[np.ndarray, Crop]:
    """Centre-crop to a square and resize: uint8 (H, W, 3) -> uint8 (r, r, 3) and the crop used.

    ``channels`` = 1 (a grey model): the result is grey (ITU-R 601 luma, Pillow's "L") in R,
    G and B, as the model renders it."""
    h, w = pixels.shape[:2]
    size = min(h, w)
    crop = Crop(left=(w - size) // 2, top=(h - size) // 2, size=size)
    img = PILImage.fromarray(pixels).crop((crop.left, crop.top, crop.left + size, crop.top + size))
    if size != resolution:
        img = img.resize((resolution, resolution), PILImage.Resampling.LANCZOS)
    if channels == 1:
        img = img.convert("L").convert("RGB")
    return np.asarray(img, dtype=np.uint8), crop
