"""Still images with bounded memory: the size is read from the header before anything is decoded.

An image of more than ``MAX_IMAGE_PIXELS`` pixels (50 megapixels, about 150 MB as RGB) is not decoded
at full size: a JPEG is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling
(``cv2.IMREAD_REDUCED_COLOR_*``, memory bounded by the reduced size); other formats cannot be
decoded partially and are refused with a ``MediaError`` naming the size and the limit. The header
readers know PNG, JPEG, BMP, GIF, WebP and TIFF; for any other format OpenCV's own limit (2^30
pixels) applies. OpenCV's log is silenced while decoding, and libpng/libjpeg's own messages on
stderr are captured and logged at DEBUG, so a damaged image gives one clean error.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np

from emox_edge.capture.quiet import quiet_native
from emox_edge.errors import MediaError

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 50_000_000
_HEAD = 1 << 16  # bytes read for a header (JPEG markers before the frame header are skipped by length)


def image_size(path: str | Path) -> tuple[int, int, str] | None:
    """``(width, height, format)`` from the file's header, or None when the format is not recognised."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return width, height, "png"
            if head.startswith(b"\xff\xd8"):
                return _jpeg_size(handle)
            if head.startswith(b"BM"):
                if struct.unpack("<I", head[14:18])[0] == 12:
                    width, height = struct.unpack("<HH", head[18:22])
                else:
                    width, height = struct.unpack("<ii", head[18:26])
                return abs(width), abs(height), "bmp"
            if head[:6] in (b"GIF87a", b"GIF89a"):
                width, height = struct.unpack("<HH", head[6:10])
                return width, height, "gif"
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(handle, "<" if head[:2] == b"II" else ">")
        except struct.error:
            return None
    return None


def _jpeg_size(handle) -> tuple[int, int, str] | None:
    handle.seek(2)
    while True:
        byte = handle.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        raw = handle.read(2)
        if len(raw) < 2 or marker == 0xD9:
            return None
        length = struct.unpack(">H", raw)[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">xHH", handle.read(5))
            return width, height, "jpeg"
        handle.seek(length - 2, 1)


def _webp_size(head: bytes) -> tuple[int, int, str] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF, "webp"
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, "webp"
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1, "webp"
    return None


def _tiff_size(handle, order: str) -> tuple[int, int, str] | None:
    handle.seek(4)
    (offset,) = struct.unpack(order + "I", handle.read(4))
    handle.seek(offset)
    (count,) = struct.unpack(order + "H", handle.read(2))
    found: dict[int, int] = {}
    for _ in range(min(count, 512)):
        tag, kind, _n, value = struct.unpack(order + "HHI4s", handle.read(12))
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    if 256 in found and 257 in found:
        return found[256], found[257], "tiff"
    return None


def _reduction(width: int, height: int, max_pixels: int) -> int | None:
    """The smallest JPEG scale-down (1, 2, 4 or 8) that fits ``max_pixels``, or None."""
    for factor in (1, 2, 4, 8):
        if -(-width // factor) * -(-height // factor) <= max_pixels:
            return factor
    return None


def read_image(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The image as uint8 RGB ``[H, W, 3]``, at most ``max_pixels`` pixels (see the module doc).

    Raises:
        MediaError: not a readable image, or one larger than ``max_pixels`` that cannot be decoded
            at a reduced size (the message gives its size and the limit).
    """
    import cv2

    path = Path(path)
    size = image_size(path)
    flags = cv2.IMREAD_COLOR
    if size is not None:
        width, height, kind = size
        if width <= 0 or height <= 0:
            raise MediaError(f"{path}: the {kind.upper()} header declares {width}x{height} pixels; expected an image")
        if kind == "jpeg":
            factor = _reduction(width, height, max_pixels)
        else:
            factor = 1 if width * height <= max_pixels else None
        if factor is None:
            raise MediaError(
                f"{path}: {kind.upper()} image of {width}x{height} pixels ({width * height / 1e6:.0f} MP) is larger "
                f"than the {max_pixels / 1e6:.0f} MP this reader decodes; downscale it first (or save it as JPEG, "
                "which is decoded at a reduced size)")
        if factor > 1:
            log.info("%s: %dx%d pixels, decoded at 1/%d of its size", path, width, height, factor)
            flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                     8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    with quiet_native():
        bgr = cv2.imread(str(path), flags)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0:
        raise MediaError(f"{path}: not a readable image (corrupt, truncated or of another type); expected one of "
                         ".jpg .jpeg .png .bmp .webp .tif .tiff")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)  # in place: no second full-size copy
