"""Which 224x224 resize matches Nano-EmoX's decoder (decord: FFmpeg ``scale=224:224`` -> rgb24)?

decord builds the filter graph ``scale=W:H`` with an rgb24 sink; its wheels bundle FFmpeg 4.x, whose
``scale`` filter defaults to ``flags=bilinear``. We run that graph with the ffmpeg CLI as the
reference and compare candidate resizers on generated face videos (mean / max |diff| in 0..255).

    .venv/bin/python benchmarks/runtime_resize.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from converters.testing.media import make_face_video  # noqa: E402


def reference(path: Path, flags: str) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"scale=224:224:flags={flags},format=rgb24",
         "-f", "rawvideo", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 224, 224, 3).astype(np.float32)


def candidates(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, list] = {k: [] for k in ("pyav_yuv_bilinear", "pyav_rgb_bilinear", "cv2_linear", "cv2_area")}
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out["pyav_yuv_bilinear"].append(f.reformat(224, 224, "rgb24", interpolation="BILINEAR").to_ndarray())
            rgb = f.to_ndarray(format="rgb24")
            rf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out["pyav_rgb_bilinear"].append(rf.reformat(224, 224, interpolation="BILINEAR").to_ndarray())
            out["cv2_linear"].append(cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_LINEAR))
            out["cv2_area"].append(cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA))
    return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((320, 240), (640, 480), (1280, 720)):
            video = make_face_video(Path(tmp) / f"v{size[0]}.mp4", 1.0, 25, size)
            ref = reference(video, "bilinear")
            ref_bicubic = reference(video, "bicubic")
            for name, arr in candidates(video).items():
                d = np.abs(arr - ref)
                db = np.abs(arr - ref_bicubic)
                print(f"{size[0]}x{size[1]} {name:18s} vs bilinear ref: mean {d.mean():.3f} max {d.max():.0f}"
                      f" | vs bicubic ref: mean {db.mean():.3f} max {db.max():.0f}")
            frame = np.ascontiguousarray(candidates(video)["cv2_area"][0].astype(np.uint8))
            rgb = cv2.resize(frame, size)
            for name, fn in (("cv2_area", lambda: cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)),
                             ("pyav_rgb_bilinear", lambda: av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                                 224, 224, interpolation="BILINEAR").to_ndarray())):
                t = time.perf_counter()
                for _ in range(50):
                    fn()
                print(f"  {name} per frame {(time.perf_counter() - t) / 50 * 1000:.2f} ms")


if __name__ == "__main__":
    main()
