"""Putting an edited crop back into the photo it came from (torch-free, PIL + numpy)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from latentedit.codec import image_to_rgb
from latentedit.errors import InvalidArgument


def _ramp(size: int, width: float, start_open: bool, end_open: bool) -> np.ndarray:
    """(size,) weights in [0, 1]: rising over ``width`` pixels from each closed end."""
    if width <= 0:
        return np.ones(size)
    i = np.arange(size) + 0.5
    up = np.ones(size) if start_open else np.clip(i / width, 0, 1)
    down = np.ones(size) if end_open else np.clip((size - i) / width, 0, 1)
    return np.minimum(up, down)


def paste_back(
    photo: object, edited: object, crop: tuple[int, int, int], feather: float = 0.08
) -> Image.Image:
    """``photo`` with ``edited`` resized into ``crop`` -> PIL RGB image of the photo's size.

    ``photo``: what was inverted, in any form ``invert`` takes (path, bytes, PIL, uint8
    array; read upright as the service read it). ``edited``: a reconstruction or an edit of
    that photo's crop (any size, any of those forms). ``crop``: (left, top, size) from
    :attr:`Inverted.crops`. ``feather``: the blend border, as a fraction of ``size``
    (0: a hard edge); sides on the photo's own border are not blended.
    """
    base = image_to_rgb(photo).astype(np.float32)
    left, top, size = (int(v) for v in crop)
    h, w = base.shape[:2]
    if size < 1 or left < 0 or top < 0 or left + size > w or top + size > h:
        raise InvalidArgument(f"crop {tuple(crop)} does not lie inside the {w}x{h} photo")
    if not 0 <= feather <= 0.5:
        raise InvalidArgument(f"feather must be in [0, 0.5], got {feather}")
    face = Image.fromarray(image_to_rgb(edited)).resize((size, size), Image.Resampling.LANCZOS)
    width = feather * size
    rows = _ramp(size, width, top == 0, top + size == h)
    cols = _ramp(size, width, left == 0, left + size == w)
    mask = np.minimum.outer(rows, cols)[..., None]
    region = base[top : top + size, left : left + size]
    base[top : top + size, left : left + size] = region * (1 - mask) + np.asarray(face) * mask
    return Image.fromarray(np.clip(np.rint(base), 0, 255).astype(np.uint8))
