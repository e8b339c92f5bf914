"""Where encoded images end: trailing bytes cut, truncated or foreign encodings refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentedit import validate
from latentedit.errors import InvalidArgument, ResourceExhausted
from latentedit.imagetrim import image_end, trimmed
from latentedit.v1 import latentedit_pb2 as pb


def _encoded(fmt: str, **kw: object) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (23, 31, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_trailing_bytes_are_cut_and_the_image_is_intact(fmt: str, kw: dict) -> None:
    data = _encoded(fmt, **kw)
    assert image_end(data) == len(data)
    for junk in (b"\0" * 1000, b"\xff\xd9\xff" * 10, data):
        out = trimmed(data + junk)
        assert out == data
        with Image.open(io.BytesIO(out)) as im:
            assert im.size == (31, 23)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_refused(fmt: str) -> None:
    data = _encoded(fmt)
    with pytest.raises(InvalidArgument, match="truncated"):
        trimmed(data[: len(data) - 5], "images[2]")


def test_other_encodings_are_refused() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    for data in (gif.getvalue(), b"BM" + b"\0" * 50, b"hello"):
        with pytest.raises(InvalidArgument, match="not a decodable image"):
            trimmed(data)


def test_request_budgets() -> None:
    png = _encoded("PNG")
    limits = validate.Limits(max_request_bytes=10 * len(png), max_request_pixels=3 * 23 * 31)
    images = [pb.Image(data=png + b"\0" * 100) for _ in range(3)]
    assert validate.images(images, limits) == 3 * 23 * 31
    assert all(i.data == png for i in images)  # stripped in place
    with pytest.raises(ResourceExhausted, match="max_request_pixels"):
        validate.images([pb.Image(data=png) for _ in range(4)], limits)
    with pytest.raises(ResourceExhausted, match="max_request_bytes"):
        validate.images([pb.Image(data=png + b"\0" * 11 * len(png))], limits)
