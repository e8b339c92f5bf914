"""latentedit.codec: the tensor and image wire format."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile

from latentedit.codec import (
    decode_image,
    encode_image,
    from_pil_or_array,
    from_tensor,
    latents_from,
    probe_image,
    to_tensor,
)
from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb

DTYPES = [np.float32, np.float64, np.float16, np.uint8]


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_tensor_round_trip(dtype: type, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
    arr = data.draw(hnp.arrays(dtype, shape))
    back = from_tensor(to_tensor(arr))
    assert back.shape == arr.shape and back.dtype == np.dtype(dtype)
    assert back.tobytes() == arr.tobytes()  # bit-exact: NaN payloads and -0.0 included
    assert back.flags.writeable  # a copy, not a view of the message bytes


@pytest.mark.parametrize("code", [">f2", ">f4", ">f8", "<f2", "<f4", "<f8", "|u1"])
def test_any_byte_order_travels_little_endian(code: str) -> None:
    base = np.arange(12).reshape(2, 3, 2)
    arr = (base - 5.5 if "f" in code else base).astype(code)  # floats: fractions, negatives
    assert arr.dtype.str == code
    msg = to_tensor(arr)
    assert list(msg.shape) == [2, 3, 2]
    assert msg.data == arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    back = from_tensor(msg)
    assert back.dtype.isnative and back.dtype.kind == arr.dtype.kind
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (
            pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[2, 3], data=b"\0" * 20),
            ["needs 24 bytes", "20"],
        ),
        (pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[-1, 3], data=b""), ["negative"]),
        (pb.Tensor(dtype=pb.DTYPE_FLOAT64, shape=[2], data=b"\0" * 24), ["needs 16 bytes", "24"]),
        (pb.Tensor(dtype=pb.DTYPE_UINT8, shape=[], data=b""), ["needs 1 bytes", "got 0"]),
        (pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[-2, -3], data=b"\0" * 24), ["negative"]),
        (pb.Tensor(dtype=pb.DTYPE_UNSPECIFIED, shape=[1], data=b"\0" * 4), ["unknown dtype"]),
        (pb.Tensor(dtype=99, shape=[1], data=b"\0" * 4), ["unknown dtype 99"]),
    ],
)
def test_bad_tensors_are_refused(msg: pb.Tensor, words: list[str]) -> None:
    with pytest.raises(InvalidArgument) as err:
        from_tensor(msg, "latents")
    assert "latents" in err.value.message
    for w in words:
        assert w in err.value.message


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="int64"):
        to_tensor(np.zeros(3, np.int64))


def test_latents_from_checks_shape_rows_and_values() -> None:
    z = np.zeros((2, 4), np.float32)
    assert latents_from(to_tensor(z), 4, 8).shape == (2, 4)
    assert latents_from(to_tensor(z[0]), 4, 8).shape == (1, 4)  # one code as (d,)
    cases = [
        (np.zeros((2, 5), np.float32), "expected shape (N, 4)"),
        (np.zeros((2, 2, 4), np.float32), "expected shape (N, 4)"),
        (np.zeros((9, 4), np.float32), "allowed 1..8"),
        (np.zeros((0, 4), np.float32), "allowed 1..8"),
        (np.full((1, 4), np.nan, np.float32), "non-finite"),
        (np.array([[0, 0, np.inf, 0]], np.float32), "1 non-finite"),
        (np.zeros((1, 4), np.uint8), "float"),
    ]
    for arr, words in cases:
        with pytest.raises(InvalidArgument, match=words.replace("(", r"\(").replace(")", r"\)")):
            latents_from(to_tensor(arr), 4, 8)


def _pixels(h: int = 9, w: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_and_raw_are_lossless() -> None:
    pixels = _pixels()
    for fmt in (pb.IMAGE_FORMAT_PNG, pb.IMAGE_FORMAT_RAW, pb.IMAGE_FORMAT_UNSPECIFIED):
        msg = encode_image(pixels, fmt)
        assert (msg.width, msg.height) == (7, 9)
        np.testing.assert_array_equal(decode_image(msg, 1 << 20), pixels)


@pytest.mark.parametrize("fmt", [pb.IMAGE_FORMAT_JPEG, pb.IMAGE_FORMAT_WEBP])
def test_lossy_formats_are_close(fmt: int) -> None:
    smooth = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 32, 3))
    back = decode_image(encode_image(np.ascontiguousarray(smooth), fmt), 1 << 20)
    assert np.abs(back.astype(int) - smooth.astype(int)).mean() < 4


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size in a few KB (rows of zeros compress away)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" + b"\0" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = pb.Image(data=_bilevel_png(20000, 20000))
    assert len(bomb.data) < 100_000
    with pytest.raises(InvalidArgument, match="cap of 16777216"):
        probe_image(bomb, 4096 * 4096)
    ok = pb.Image(data=_bilevel_png(300, 200))
    assert probe_image(ok, 4096 * 4096) == (300, 200)
    with pytest.raises(InvalidArgument, match="300x200 pixels exceeds the cap of 100"):
        probe_image(ok, 100)


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (pb.Image(data=b"not an image at all"), "not a decodable image"),
        (pb.Image(data=b""), "empty image data"),
        (
            pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 10, width=2, height=2),
            "needs 12 bytes",
        ),
        (pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 3, width=0, height=1), "positive"),
    ],
)
def test_bad_images_are_refused(msg: pb.Image, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        decode_image(msg, 1 << 20, "images[0]")


def _png(image: Image.Image) -> pb.Image:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return pb.Image(format=pb.IMAGE_FORMAT_PNG, data=buf.getvalue())


def test_grey_and_alpha_images_decode_to_rgb() -> None:
    out = decode_image(_png(Image.new("LA", (5, 4), (100, 255))), 1 << 20)
    assert out.shape == (4, 5, 3) and (out == 100).all()


def test_transparent_images_decode_as_a_viewer_shows_them_over_white() -> None:
    """Transparent pixels hold arbitrary colours (here red); dropping alpha showed them."""
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    rgba[2, :, 3] = 128  # one row half covered
    pil = Image.fromarray(rgba, "RGBA")
    for msg in (_png(pil), from_pil_or_array(pil)):  # sent as a file or as a PIL image
        got = decode_image(msg, 1 << 20).astype(int)
        assert (got[:2] == [200, 0, 0]).all()
        assert (got[3] == 255).all()
        assert (abs(got[2] - [228, 127, 127]) <= 1).all()
    palette = Image.new("P", (3, 2), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30])
    palette.info["transparency"] = 0
    palette.putpixel((0, 0), 0)  # the transparent index
    got = decode_image(_png(palette), 1 << 20)
    assert (got[0, 0] == 255).all() and (got[1, 2] == [10, 200, 30]).all()


def test_a_16_bit_grey_png_keeps_its_tones() -> None:
    """Pillow's own RGB conversion clips 16-bit values at 255 (this ramp: mean 254.5)."""
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    got = decode_image(pb.Image(format=pb.IMAGE_FORMAT_PNG, data=buf.getvalue()), 10_000)
    assert got.shape == (32, 32, 3) and (got == got[..., :1]).all()
    np.testing.assert_array_equal(got[..., 0], (ramp >> 8).astype(np.uint8))


def _sideways_jpeg() -> bytes:
    """A 40 x 20 JPEG, blue left quarter, tagged EXIF orientation 6 (turn 90 degrees
    clockwise to view): upright it is 20 x 40 with the blue part on top."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_photos_decode_upright_by_their_exif_orientation() -> None:
    data = _sideways_jpeg()
    for msg in (
        pb.Image(format=pb.IMAGE_FORMAT_JPEG, data=data),  # bytes sent as they are
        from_pil_or_array(Image.open(io.BytesIO(data))),  # a PIL image the SDK encodes
    ):
        got = decode_image(msg, 10_000)
        assert got.shape == (40, 20, 3)
        assert got[2, 10, 2] > 200 and got[2, 10, 0] < 50  # blue on top
        assert got[-3, 10, 0] > 200 and got[-3, 10, 2] < 50  # red below


def test_oversized_images_are_refused_without_decoding_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for w, h in [(20000, 20000), (5000, 4000)]:  # over Pillow's own limit; under it
        with pytest.raises(InvalidArgument, match=r"images\[3\]: .*cap of 16777216"):
            decode_image(pb.Image(data=_bilevel_png(w, h)), 4096 * 4096, "images[3]")
    assert loads == []  # refused from the header alone
    small = decode_image(pb.Image(data=_bilevel_png(16, 8)), 4096 * 4096)
    assert small.shape == (8, 16, 3) and (small == 0).all()
    assert set(loads) == {(16, 8)}  # the spy does see a real decode (load is idempotent)


def test_the_cap_message_does_not_depend_on_warning_filters() -> None:
    with pytest.raises(InvalidArgument, match="exceeds the cap of 16777216"):
        probe_image(pb.Image(data=_bilevel_png(12000, 12000)), 4096 * 4096)


def test_probe_reads_the_size_of_every_format() -> None:
    pixels = _pixels(9, 7)
    for fmt in (pb.IMAGE_FORMAT_PNG, pb.IMAGE_FORMAT_JPEG, pb.IMAGE_FORMAT_WEBP):
        assert probe_image(encode_image(pixels, fmt), 63) == (7, 9)
        with pytest.raises(InvalidArgument, match="7x9 pixels exceeds the cap of 62"):
            probe_image(encode_image(pixels, fmt), 62)
    raw = encode_image(pixels, pb.IMAGE_FORMAT_RAW)
    assert probe_image(raw, 63) == (7, 9)
    with pytest.raises(InvalidArgument, match="7x9 pixels exceeds the cap of 62"):
        probe_image(raw, 62)


@pytest.mark.parametrize(
    ("pixels", "fmt", "words"),
    [
        (np.zeros((4, 4, 3), np.float32), pb.IMAGE_FORMAT_PNG, "uint8 \\(H, W, 3\\)"),
        (np.zeros((4, 4), np.uint8), pb.IMAGE_FORMAT_PNG, "uint8 \\(H, W, 3\\)"),
        (np.zeros((4, 4, 4), np.uint8), pb.IMAGE_FORMAT_RAW, "uint8 \\(H, W, 3\\)"),
        (np.zeros((4, 4, 3), np.uint8), 99, "unknown image format 99"),
    ],
)
def test_encode_refuses_what_it_cannot_write(pixels: np.ndarray, fmt: int, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        encode_image(pixels, fmt)  # type: ignore[arg-type]


def test_the_sdk_takes_grey_and_rgba_arrays_and_file_paths(tmp_path: Path) -> None:
    grey = np.full((4, 5), 90, np.uint8)
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 255
    rgba[0, :, 3] = 0  # a transparent row: white, as for a PIL image
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((4, 5, 3), 30, np.uint8)).save(photo)
    got = {
        "grey": decode_image(from_pil_or_array(grey), 100),
        "grey1": decode_image(from_pil_or_array(grey[..., None]), 100),
        "rgba": decode_image(from_pil_or_array(rgba), 100),
        "str": decode_image(from_pil_or_array(str(photo)), 100),
        "path": decode_image(from_pil_or_array(photo), 100),
    }
    assert all(g.shape == (4, 5, 3) for g in got.values())
    assert (got["grey"] == 90).all() and (got["grey1"] == 90).all()
    assert (got["rgba"][1:] == [0, 200, 0]).all() and (got["rgba"][0] == 255).all()
    assert (got["str"] == 30).all() and (got["path"] == 30).all()


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((4, 5, 3), np.float32), "uint8 array (H, W), (H, W, 3) or (H, W, 4)"),
        (np.zeros((4, 5, 2), np.uint8), "shape (4, 5, 2)"),
        (np.zeros((0, 5), np.uint8), "no pixels"),
        ("no/such/photo.png", "cannot read file 'no/such/photo.png'"),
    ],
)
def test_the_sdk_refuses_what_is_not_an_image_by_name(image: object, words: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(words)):
        from_pil_or_array(image)
