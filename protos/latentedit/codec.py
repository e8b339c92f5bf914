"""Wire format of tensors and images (numpy / Pillow <-> protobuf), shared by all roles.

Tensors travel as dtype + shape + raw little-endian row-major bytes. Images
travel encoded (PNG, JPEG, WebP) or RAW (uint8 RGB, shape (H, W, 3)). Decoding
checks everything a peer could get wrong and raises :class:`InvalidArgument`
naming the field.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from latentedit.errors import InvalidArgument, clip
from latentedit.v1 import latentedit_pb2 as pb

Format = pb.ImageFormat

_DTYPES: dict[pb.DType, np.dtype] = {
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_FLOAT64: np.dtype("<f8"),
    pb.DTYPE_FLOAT16: np.dtype("<f2"),
    pb.DTYPE_UINT8: np.dtype("u1"),
}
MAX_DIMS = 8  # tensors of more dimensions are refused
MAX_TENSOR_BYTES = 1 << 40  # any shape spanning more is refused before numpy sees it
_CODES = {v.kind + str(v.itemsize): k for k, v in _DTYPES.items()}

_PIL_FORMATS: dict[Format, str] = {
    pb.IMAGE_FORMAT_UNSPECIFIED: "PNG",
    pb.IMAGE_FORMAT_PNG: "PNG",
    pb.IMAGE_FORMAT_JPEG: "JPEG",
    pb.IMAGE_FORMAT_WEBP: "WEBP",
}
PIL_INPUT_FORMATS = ("PNG", "JPEG", "WEBP")  # what Pillow may parse from a caller
FORMAT_NAMES: dict[str, Format] = {
    "png": pb.IMAGE_FORMAT_PNG,
    "jpeg": pb.IMAGE_FORMAT_JPEG,
    "jpg": pb.IMAGE_FORMAT_JPEG,
    "webp": pb.IMAGE_FORMAT_WEBP,
    "raw": pb.IMAGE_FORMAT_RAW,
}


def to_tensor(array: np.ndarray) -> pb.Tensor:
    """numpy array (float16/32/64 or uint8) -> Tensor message."""
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.kind + str(arr.dtype.itemsize))
    if code is None:
        raise InvalidArgument(f"unsupported tensor dtype {arr.dtype}; use float32")
    data = np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
    return pb.Tensor(dtype=code, shape=list(arr.shape), data=data)


def from_tensor(msg: pb.Tensor, field: str = "tensor") -> np.ndarray:
    """Tensor message -> numpy array in native byte order (a copy).

    Raises InvalidArgument when the dtype is unknown or the byte count does not
    match the shape.
    """
    dtype = _DTYPES.get(msg.dtype)
    if dtype is None:
        raise InvalidArgument(f"{field}: unknown dtype {msg.dtype}")
    if len(msg.shape) > MAX_DIMS:
        raise InvalidArgument(f"{field}: {len(msg.shape)} dimensions; at most {MAX_DIMS}")
    shape = tuple(int(s) for s in msg.shape)
    if any(s < 0 for s in shape):
        raise InvalidArgument(f"{field}: negative dimension in shape {shape}")
    # Python ints: a product of int64 dimensions must not wrap around (np.prod would), and
    # numpy refuses shapes whose non-zero dimensions overflow even when another one is 0.
    count, span = 1, 1
    for s in shape:
        count *= s
        span *= max(s, 1)
    if span * dtype.itemsize > MAX_TENSOR_BYTES:
        raise InvalidArgument(f"{field}: shape {clip(shape, 120)} is too large")
    expected = count * dtype.itemsize
    if expected != len(msg.data):
        raise InvalidArgument(
            f"{field}: shape {clip(shape, 120)} of {dtype.name} needs {clip(expected, 40)} "
            f"bytes, got {len(msg.data)}"
        )
    return np.frombuffer(msg.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def encode_image(
    pixels: np.ndarray, fmt: Format = pb.IMAGE_FORMAT_PNG, quality: int = 92
) -> pb.Image:
    """uint8 RGB array (H, W, 3) -> Image message in the asked format."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidArgument(f"image must be uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")
    if pixels.size == 0:
        raise InvalidArgument(f"image has no pixels: shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if fmt == pb.IMAGE_FORMAT_RAW:
        return pb.Image(format=fmt, data=np.ascontiguousarray(pixels).tobytes(), width=w, height=h)
    pil_format = _PIL_FORMATS.get(fmt)
    if pil_format is None:
        raise InvalidArgument(f"unknown image format {fmt}")
    buf = io.BytesIO()
    kwargs = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {"compress_level": 1}
    PILImage.fromarray(pixels, "RGB").save(buf, format=pil_format, **kwargs)
    return pb.Image(format=fmt or pb.IMAGE_FORMAT_PNG, data=buf.getvalue(), width=w, height=h)


def probe_image(msg: pb.Image, max_pixels: int, field: str = "image") -> tuple[int, int]:
    """Check an Image without decoding its pixels; returns (width, height).

    Reads only the header, so a decompression bomb (a small file declaring a
    huge canvas) is refused before any pixel memory is allocated.
    """
    if not msg.data:
        raise InvalidArgument(f"{field}: empty image data")
    if msg.format == pb.IMAGE_FORMAT_RAW:
        w, h = msg.width, msg.height
        if w <= 0 or h <= 0:
            raise InvalidArgument(f"{field}: RAW image needs positive width and height")
        if w * h > max_pixels:
            raise InvalidArgument(f"{field}: {w}x{h} pixels exceeds the cap of {max_pixels}")
        if len(msg.data) != w * h * 3:
            raise InvalidArgument(
                f"{field}: RAW {w}x{h} RGB needs {w * h * 3} bytes, got {len(msg.data)}"
            )
        return w, h
    try:
        with warnings.catch_warnings():
            # The cap below is ours; Pillow's own bomb warning must not turn it into "undecodable".
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(msg.data), formats=PIL_INPUT_FORMATS) as img:
                w, h = img.size
    except PILImage.DecompressionBombError:
        raise InvalidArgument(f"{field}: image exceeds the cap of {max_pixels} pixels") from None
    except Exception:  # Pillow raises many types for garbage bytes; its text holds reprs
        raise InvalidArgument(
            f"{field}: bytes are not a decodable image (PNG, JPEG or WebP)"
        ) from None
    if w * h > max_pixels:
        raise InvalidArgument(f"{field}: {w}x{h} pixels exceeds the cap of {max_pixels}")
    return w, h


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # Pillow's modes of a 16-bit grey PNG


def pil_to_rgb(img: PILImage.Image) -> np.ndarray:
    """A decoded picture as uint8 RGB (H, W, 3), upright.

    Its EXIF orientation is applied (a phone photo stored sideways comes out as it was
    taken), a 16-bit grey PNG keeps its tones (Pillow's own conversion to RGB clips 16-bit
    values at 255, which turns such an image white), and a transparent one (alpha, or a
    palette / colour key with transparency) is laid over white, as a viewer shows it:
    dropping alpha would show whatever colours its transparent pixels happen to hold.
    """
    # a malformed EXIF block: the pixels as stored are still the picture
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img) or img
    if img.has_transparency_data:
        page = PILImage.new("RGBA", img.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(page, img.convert("RGBA"))
    if img.mode in _SIXTEEN_BIT:
        grey = np.asarray(img, dtype=np.int64)
        return np.repeat((np.clip(grey, 0, 65535) >> 8).astype(np.uint8)[..., None], 3, 2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def decode_image(msg: pb.Image, max_pixels: int, field: str = "image") -> np.ndarray:
    """Image message -> uint8 RGB array (H, W, 3) (:func:`pil_to_rgb`), refusing more than
    ``max_pixels``."""
    w, h = probe_image(msg, max_pixels, field)
    if msg.format == pb.IMAGE_FORMAT_RAW:
        return np.frombuffer(msg.data, dtype=np.uint8).reshape(h, w, 3).copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(msg.data), formats=PIL_INPUT_FORMATS) as img:
                return pil_to_rgb(img)
    except Exception:
        raise InvalidArgument(f"{field}: image failed to decode (truncated or corrupt)") from None


def to_pil(msg: pb.Image, max_pixels: int = 1 << 26) -> PILImage.Image:
    """Image message -> PIL RGB image."""
    return PILImage.fromarray(decode_image(msg, max_pixels))


def _encoded(image: object) -> bytes | None:
    """The encoded bytes of a file path or of bytes; None for other forms."""
    if isinstance(image, str | os.PathLike):
        try:
            image = Path(image).read_bytes()
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise InvalidArgument(f"image: cannot read file {str(image)!r}: {why}") from None
    if not isinstance(image, bytes | bytearray):
        return None
    if not image:
        raise InvalidArgument("image: empty bytes")
    return bytes(image)


def image_to_rgb(image: object, max_pixels: int = 1 << 26) -> np.ndarray:
    """What a caller hands the SDK as an image -> uint8 RGB (H, W, 3), as the service reads it.

    Accepted: a PIL image; a uint8 array (H, W) grey, (H, W, 1), (H, W, 3) RGB or
    (H, W, 4) RGBA; encoded bytes (PNG, JPEG, WebP); a file's path (``str`` or
    ``os.PathLike``). Decoded pictures and PIL images go through :func:`pil_to_rgb` (upright
    by EXIF, transparency over white); so do grey and RGBA arrays.
    """
    data = _encoded(image)
    if data is not None:
        return decode_image(pb.Image(format=pb.IMAGE_FORMAT_PNG, data=data), max_pixels)
    if isinstance(image, PILImage.Image):
        return pil_to_rgb(image)
    pixels = np.asarray(image)
    shape_ok = pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 3, 4))
    if pixels.dtype != np.uint8 or not shape_ok:
        raise InvalidArgument(
            "image: expected a PIL image, a uint8 array (H, W), (H, W, 3) or (H, W, 4), "
            f"encoded bytes or a file path; got {type(image).__name__} of dtype "
            f"{pixels.dtype} and shape {pixels.shape}"
        )
    if pixels.size == 0:
        raise InvalidArgument(f"image has no pixels: shape {pixels.shape}")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    grey_or_rgba = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    return pil_to_rgb(PILImage.fromarray(grey_or_rgba))


def from_pil_or_array(image: object, fmt: Format = pb.IMAGE_FORMAT_PNG) -> pb.Image:
    """What a caller hands the SDK as an image (:func:`image_to_rgb`'s forms) -> Image message.

    Encoded bytes and files are sent as they are (the worker decodes them); the rest is
    encoded in ``fmt``.
    """
    data = _encoded(image)
    if data is not None:
        return pb.Image(format=fmt, data=data)
    return encode_image(image_to_rgb(image), fmt)


def latents_from(msg: pb.Tensor, dim: int, max_rows: int, field: str = "latents") -> np.ndarray:
    """Tensor message -> float32 latents (N, d): 2-D, d columns, 1..max_rows rows, finite."""
    arr = from_tensor(msg, field)
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidArgument(f"{field}: expected shape (N, {dim}), got {tuple(arr.shape)}")
    if arr.dtype.kind != "f":
        raise InvalidArgument(f"{field}: expected a float tensor, got {arr.dtype.name}")
    if not 1 <= arr.shape[0] <= max_rows:
        raise InvalidArgument(f"{field}: {arr.shape[0]} rows; allowed 1..{max_rows}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InvalidArgument(f"{field}: {bad} non-finite value(s) (NaN or inf)")
    return arr.astype(np.float32)
