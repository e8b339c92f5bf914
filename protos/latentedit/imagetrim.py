"""Find where an encoded image ends, so trailing bytes never travel past the gateway.

PNG ends after its ``IEND`` chunk, JPEG at its ``EOI`` marker (FF D9), WebP after the
``RIFF`` size its header declares. Only the container structure is walked (chunk
lengths, segment lengths, one C-speed regex scan per JPEG scan); no pixel is decoded.
Other encodings are refused: the service takes PNG, JPEG, WebP or RAW.
"""

from __future__ import annotations

import re

from latentedit.errors import InvalidArgument

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_CHUNKS = 100_000
# In JPEG entropy-coded data, FF is followed by 00 (stuffing) or D0-D7 (restart markers);
# anything else starts the next marker.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _png_end(data: bytes, field: str) -> int:
    pos = len(PNG_SIGNATURE)
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 12 > len(data):
            break
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length > 0x7FFFFFFF:
            raise InvalidArgument(f"{field}: PNG chunk length {length} is invalid")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            if pos > len(data):
                break
            return pos
    else:
        raise InvalidArgument(f"{field}: PNG has more than {MAX_PNG_CHUNKS} chunks")
    raise InvalidArgument(f"{field}: PNG is truncated (no IEND chunk)")


def _jpeg_end(data: bytes, field: str) -> int:
    pos = 2  # after SOI
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise InvalidArgument(f"{field}: JPEG marker expected at byte {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        if pos + 2 > n:
            break
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    raise InvalidArgument(f"{field}: JPEG is truncated (no end-of-image marker)")


def _webp_end(data: bytes, field: str) -> int:
    size = int.from_bytes(data[4:8], "little")
    end = 8 + size + (size & 1)
    if size < 4 or end > len(data):
        raise InvalidArgument(f"{field}: WebP is truncated (RIFF size {size}, {len(data)} bytes)")
    return end


def image_end(data: bytes, field: str = "image") -> int:
    """Byte offset just past the end of the PNG, JPEG or WebP image at the start of ``data``."""
    if data.startswith(PNG_SIGNATURE):
        return _png_end(data, field)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_end(data, field)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_end(data, field)
    raise InvalidArgument(
        f"{field}: bytes are not a decodable image (not PNG, JPEG or WebP; or send RAW pixels)"
    )


def trimmed(data: bytes, field: str = "image") -> bytes:
    """``data`` without whatever follows the image's end (the same object when nothing does)."""
    end = image_end(data, field)
    return data if end == len(data) else data[:end]
