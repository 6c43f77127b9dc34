"""Images stay bounded in memory, and native libraries (libpng, OpenCV) print nothing on our error paths."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from emox_edge.capture import ImageSource, resolve_source
from emox_edge.capture.images import MAX_IMAGE_PIXELS, image_size, read_image
from emox_edge.errors import MediaError


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_gray(path, width: int, height: int, *, rows: int | None = None) -> None:
    """An 8-bit grey PNG of ``width`` x ``height`` whose pixel data holds ``rows`` rows (all: a real image;
    fewer: a header that declares more than the file holds), streamed so nothing large is in memory."""
    squeeze = zlib.compressobj(1)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        block = []
        for _ in range(height if rows is None else rows):
            block.append(squeeze.compress(row))
            if len(block) >= 256:
                handle.write(_chunk(b"IDAT", b"".join(block)))
                block = []
        block.append(squeeze.flush() if rows is None else b"")
        handle.write(_chunk(b"IDAT", b"".join(block)))
        if rows is None:
            handle.write(_chunk(b"IEND", b""))


def test_a_png_declaring_20000_squared_is_refused_quietly(tmp_path, capfd):
    path = tmp_path / "huge_header.png"
    png_gray(path, 20000, 20000, rows=3)
    assert image_size(path) == (20000, 20000, "png") and path.stat().st_size < 10_000
    with pytest.raises(MediaError, match=r"huge_header.png: PNG image of 20000x20000 pixels \(400 MP\) is larger than "
                                         r"the 50 MP"):
        list(resolve_source(path))
    assert capfd.readouterr().err == ""


def test_a_damaged_small_png_gives_one_clean_error(tmp_path, capfd):
    path = tmp_path / "cut.png"
    png_gray(path, 640, 480, rows=10)  # header and 10 rows, then the file ends
    with pytest.raises(MediaError, match="cut.png: not a readable image"):
        list(resolve_source(path))
    assert "libpng" not in capfd.readouterr().err


_MEASURE = """
import json, sys
from emox_edge.capture.images import read_image
try:
    read_image(sys.argv[1]); outcome = "read"
except Exception as exc:
    outcome = type(exc).__name__
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"outcome": outcome, "peak_mb": peak / 1024}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status (Linux)")
def test_a_real_20000_squared_png_stays_bounded_in_memory(tmp_path):
    path = tmp_path / "huge.png"
    png_gray(path, 20000, 20000)  # 400 MP of pixels (~1.2 GB as RGB), ~0.4 MB on disk
    small = tmp_path / "small.png"
    png_gray(small, 640, 480)
    runs = {}
    for name, image in (("huge", path), ("small", small)):
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(image)], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert out.returncode == 0, out.stderr
        runs[name] = json.loads(out.stdout)
    assert runs["huge"]["outcome"] == "MediaError" and runs["small"]["outcome"] == "read"
    assert runs["huge"]["peak_mb"] < runs["small"]["peak_mb"] + 50, runs


def test_a_large_jpeg_is_decoded_at_a_reduced_size(tmp_path):
    import cv2

    rgb = np.zeros((2000, 3000, 3), np.uint8)
    rgb[:, :1500] = (200, 30, 30)
    path = tmp_path / "large.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert image_size(path) == (3000, 2000, "jpeg")
    image = read_image(path, max_pixels=1_000_000)  # 6 MP: 1/2 is 1.5 MP, 1/4 fits
    assert image.shape == (500, 750, 3) and abs(int(image[250, 100, 0]) - 200) < 8
    (clip,) = list(ImageSource(path, max_pixels=1_000_000).clips())
    assert clip.frames.shape == (1, 500, 750, 3)
    assert read_image(path).shape == (2000, 3000, 3)  # under the default limit: full size
    assert MAX_IMAGE_PIXELS == 50_000_000


@pytest.mark.parametrize("suffix, writer", [(".bmp", ".bmp"), (".webp", ".webp"), (".tif", ".tiff"), (".png", ".png")])
def test_header_sizes_of_every_image_format(tmp_path, suffix, writer):
    import cv2

    path = tmp_path / f"img{suffix}"
    ok, data = cv2.imencode(writer, np.full((37, 53, 3), 90, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    width, height, _ = image_size(path)
    assert (width, height) == (53, 37)
    assert read_image(path).shape == (37, 53, 3)


def test_a_missing_camera_prints_no_opencv_warnings(capfd):
    with pytest.raises(ConnectionError, match="camera 57 could not be opened"):
        resolve_source(57)
    err = capfd.readouterr().err
    assert "WARN" not in err and "cap_v4l" not in err, err
