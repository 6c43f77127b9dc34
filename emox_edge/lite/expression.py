"""Facial expression of each detected face with the lite bundle's FER graph (mini-Xception)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.results import Face

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_NAME = "image"  # float32 [batch, 1, 64, 64], grey in [-1, 1]
SIZE = 64
MARGIN = 0.1  # each side, as a fraction of the box: fer's crops include a little context


def crop_face(frame_rgb: np.ndarray, box: Sequence[float], *, margin: float = MARGIN) -> np.ndarray:
    """The FER input for one face: grey 64x64 float32 in [-1, 1], cropped around ``box`` (x1, y1, x2, y2)."""
    import cv2

    h, w = frame_rgb.shape[:2]
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = int(max(0, np.floor(x1 - dx))), int(max(0, np.floor(y1 - dy)))
    right, bottom = int(min(w, np.ceil(x2 + dx))), int(min(h, np.ceil(y2 + dy)))
    if right - left < 2 or bottom - top < 2:
        raise BadInputError(f"face box {tuple(box)} is empty inside a {w}x{h} frame")
    grey = cv2.cvtColor(np.ascontiguousarray(frame_rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 127.5 - 1.0


class ExpressionModel:
    """Seven-class facial expression probabilities (angry, disgust, fear, happy, sad, surprise, neutral)."""

    classes = FER_CLASSES

    def __init__(self, model_path: str | os.PathLike, *, providers=None, n_threads: int | None = None) -> None:
        from emox_edge.onnx_session import create_session

        self._session = create_session(model_path, providers=providers, n_threads=n_threads)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities [N, 7] for crops [N, 64, 64] made by ``crop_face``."""
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 3 or crops.shape[1:] != (SIZE, SIZE):
            raise BadInputError(f"crops must be [N, {SIZE}, {SIZE}], got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, len(FER_CLASSES)), np.float32)
        return self._session.run(None, {INPUT_NAME: crops[:, None]})[0]

    def annotate(self, frame_rgb: np.ndarray, faces: Sequence[Face]) -> list[Face]:
        """Return ``faces`` with ``expression`` set (class -> probability)."""
        import dataclasses

        if not faces:
            return []
        probs = self.predict_crops(np.stack([crop_face(frame_rgb, f.box) for f in faces]))
        return [dataclasses.replace(f, expression={c: float(p) for c, p in zip(FER_CLASSES, row)})
                for f, row in zip(faces, probs)]

    def close(self) -> None:
        self._session = None
