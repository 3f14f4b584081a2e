"""How many pixels an encoded image will decode to, read from its header before decoding it.

A few hundred kilobytes of PNG can claim 16000 x 16000 pixels: decoding it costs 768 MB, which a
tablet does not have to spare for one photo. The header of every format kensa takes (PNG, JPEG,
WebP, BMP, TIFF) says the size, so it is read first, with no decoder involved, and an image
over ``MAX_PIXELS`` is refused before any pixel is allocated. OpenCV's own limit
(``OPENCV_IO_MAX_IMAGE_PIXELS``, set in ``sidecar/__init__.py``) stays as a second bound: it is
read only once, when OpenCV loads, so it cannot be the only one.

Pure: bytes in, numbers out; no OpenCV, no I/O.
"""

from __future__ import annotations

import struct

from sidecar.errors import ImageInvalid

# A 50-megapixel photo is more than any inspection camera takes; decoded as 8-bit BGR it is
# 150 MB, the most one request may cost.
MAX_PIXELS = 50_000_000

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG and DAC share the range
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_MAX_TIFF_PAGES = 64


def dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, WebP, BMP or TIFF; None when the
    format is another or the header is cut short or malformed. A TIFF answers its largest page."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data.startswith(b"BM"):
            return _bmp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
    except (struct.error, IndexError):
        return None
    return None


def check(data: bytes, limit: int = MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of an image that may be decoded; :class:`ImageInvalid` otherwise."""
    size = dimensions(data)
    if size is None:
        raise ImageInvalid(
            "the image's size cannot be read from its header (PNG, JPEG, WebP, BMP or TIFF)",
            reason="undecodable",
        )
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageInvalid("the image has no pixels", reason="undecodable")
    if width * height > limit:
        raise ImageInvalid(
            f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} MP);"
            f" the limit is {limit / 1e6:.0f} MP",
            reason="too_many_pixels",
            width=width,
            height=height,
            limit=limit,
        )
    return size


def _png(data: bytes) -> tuple[int, int] | None:
    # IHDR is always the first chunk.
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        if length < 2:
            return None
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        return int(width), int(height)
    if header < 40:
        return None
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    largest: tuple[int, int] | None = None
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < _MAX_TIFF_PAGES:
        seen.add(offset)
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        width = height = None
        for n in range(count):
            entry = offset + 2 + 12 * n
            tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
            if tag not in (256, 257):
                continue
            if kind == 3:  # SHORT
                (value,) = struct.unpack(order + "H", data[entry + 8 : entry + 10])
            elif kind == 4:  # LONG
                (value,) = struct.unpack(order + "I", data[entry + 8 : entry + 12])
            else:
                return None
            if tag == 256:
                width = value
            else:
                height = value
        if width is None or height is None:
            return None
        if largest is None or width * height > largest[0] * largest[1]:
            largest = (width, height)
        next_at = offset + 2 + 12 * count
        (offset,) = struct.unpack(order + "I", data[next_at : next_at + 4])
    return largest
