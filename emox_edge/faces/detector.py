"""``FaceDetector``: faces (box, score, 5 landmarks) in RGB frames, from CenterFace or a Haar cascade."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.results import Face

log = logging.getLogger(__name__)

BACKENDS = ("centerface", "haar")


@dataclass(frozen=True)
class FaceDetectorOptions:
    """How faces are detected.

    Attributes:
        model_path: a CenterFace ONNX graph prepared by ``prepare_centerface`` (the lite bundle's
            ``faces/centerface.onnx``). None: OpenCV's Haar cascade (no landmarks).
        score_threshold: minimum detection score in (0, 1) (CenterFace only).
        nms_iou: IoU above which overlapping boxes are merged.
        max_side: frames whose longer side exceeds this are downscaled before detection.
        min_size: faces smaller than this (pixels, shorter box side) are dropped.
        providers, n_threads: ONNX Runtime settings.
    """

    model_path: str | os.PathLike | None = None
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    max_side: int = 640
    min_size: float = 16.0
    providers: Sequence[str] | None = None
    n_threads: int | None = None


class FaceDetector:
    """Detect faces in RGB frames.

    Example::

        with FaceDetector.create_from_options(FaceDetectorOptions(model_path=bundle_path)) as det:
            faces = det.detect(frame_rgb)

    Raises (on construction):
        FileNotFoundError: ``model_path`` does not exist.
        ValueError: an option is out of range.
    """

    def __init__(self, options: FaceDetectorOptions | None = None) -> None:
        options = options or FaceDetectorOptions()
        if not 0.0 < options.score_threshold < 1.0:
            raise BadInputError(f"score_threshold must be in (0, 1), got {options.score_threshold}")
        if not 0.0 < options.nms_iou <= 1.0:
            raise BadInputError(f"nms_iou must be in (0, 1], got {options.nms_iou}")
        if options.max_side < 32:
            raise BadInputError(f"max_side must be at least 32 pixels, got {options.max_side}")
        self.options = options
        if options.model_path is not None:
            from emox_edge.faces.centerface import CenterFaceBackend

            self._backend = CenterFaceBackend(options.model_path, providers=options.providers, n_threads=options.n_threads)
        else:
            from emox_edge.faces.haar import HaarBackend

            self._backend = HaarBackend()

    @classmethod
    def create_from_options(cls, options: FaceDetectorOptions) -> "FaceDetector":
        return cls(options)

    @property
    def backend(self) -> str:
        return self._backend.name

    def detect(self, frame_rgb: np.ndarray) -> list[Face]:
        """Faces in one frame, best score first, in the frame's pixel coordinates.

        Raises:
            TypeError: ``frame_rgb`` is not a numpy array.
            ValueError: it is not uint8 [H, W, 3].
        """
        if not isinstance(frame_rgb, np.ndarray):
            raise InputTypeError(f"detect() takes a numpy uint8 [H, W, 3] RGB frame, got {type(frame_rgb).__name__}")
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise BadInputError(f"detect() takes a uint8 [H, W, 3] RGB frame, got {frame_rgb.dtype} {frame_rgb.shape}")
        if self._backend is None:
            raise BadInputError("FaceDetector is closed")
        opts = self.options
        boxes, scores, points = self._backend(frame_rgb, threshold=opts.score_threshold, nms_iou=opts.nms_iou,
                                              max_side=opts.max_side)
        h, w = frame_rgb.shape[:2]
        faces = []
        for i in np.argsort(-scores):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if min(x2 - x1, y2 - y1) < opts.min_size:
                continue
            landmarks = tuple((float(px), float(py)) for px, py in points[i])
            faces.append(Face(box=(x1, y1, x2, y2), score=float(scores[i]), landmarks=landmarks))
        return faces

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
