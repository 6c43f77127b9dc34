"""The face stage every bundle kind shares: detection, tracking and (when the bundle has a facial
expression model) per-face expression, on a few frames of each clip.

The detector is, in order: ``FaceOptions.model`` (a CenterFace ONNX graph), the bundle's own
``graphs.face_detector``, OpenCV's Haar cascade. The expression model is the bundle's
``graphs.expression`` when there is one. One tracker lives as long as the stage, so a person keeps
one id across the clips of a stream.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from emox_edge.bundle import Bundle
from emox_edge.errors import BundleError
from emox_edge.options import FaceOptions
from emox_edge.results import Face

log = logging.getLogger(__name__)

FrameFaces = tuple[float, tuple[Face, ...]]


def pick_frames(n: int, count: int) -> list[int]:
    """``count`` frame indices spread uniformly over ``n`` frames (first and last included)."""
    if n <= 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(int))]


class FaceStage:
    """Faces of a clip: ``detect(frames, times)`` -> (time, tracked faces) per analysed frame.

    Args:
        bundle: the opened bundle (its ``graphs.face_detector`` / ``graphs.expression`` are used when present).
        options: ``FaceOptions``.
        default_frames: frames per clip when ``options.frames`` is None.
        providers, n_threads: ONNX Runtime settings for the detector and the expression model.
        fer_precision: "fp32" | "int8" | None (the bundle's ``runtime_precision``).

    Raises:
        BundleError: the bundle names a face or expression graph that cannot be loaded.
    """

    def __init__(self, bundle: Bundle, options: FaceOptions, *, default_frames: int, providers, n_threads: int,
                 fer_precision: str | None = None) -> None:
        from emox_edge.faces import FaceDetector, FaceDetectorOptions, FaceTracker

        self.options = options
        self.n_frames = int(options.frames or default_frames)
        self.detector = None
        self.expression = None
        self.tracker = FaceTracker()
        if not options.enabled:
            return
        graphs = bundle.manifest.get("graphs") or {}
        model = options.model
        if model is None and isinstance(graphs.get("face_detector"), dict):
            model = bundle.path(_entry(bundle, "graphs.face_detector.file"))
        self.detector = FaceDetector(FaceDetectorOptions(model_path=model, providers=providers, n_threads=n_threads))
        if isinstance(graphs.get("expression"), dict):
            from emox_edge.lite.expression import ExpressionModel

            entry = graphs["expression"]
            precision = fer_precision or str(entry.get("runtime_precision", "int8"))
            rel = entry.get("fp32") if precision == "fp32" else entry.get("file")
            if rel is None:
                raise BundleError(f"{bundle.root}: graphs.expression has no {precision} file")
            self.expression = ExpressionModel(bundle.path(rel), providers=providers, n_threads=n_threads)

    @property
    def active(self) -> bool:
        return self.detector is not None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.expression.classes) if self.expression is not None else ()

    def detect_frame(self, frame: np.ndarray, *, tracker: Any = None, t: float | None = None) -> tuple[Face, ...]:
        """Tracked faces (with expressions when available) of one uint8 RGB frame."""
        if self.detector is None:
            return ()
        frame = np.ascontiguousarray(frame)
        faces = (tracker or self.tracker).update(self.detector.detect(frame), t=t)
        if self.expression is not None and faces:
            faces = self.expression.annotate(frame, faces)
        return tuple(faces)

    def detect(self, frames: np.ndarray, times: np.ndarray, *, tracker: Any = None
               ) -> tuple[list[FrameFaces], dict[str, float]]:
        """Faces on ``n_frames`` frames spread over the clip; returns them and the ms spent."""
        if self.detector is None or frames.shape[0] == 0:
            return [], {}
        t0 = time.perf_counter()
        out = [(float(times[i]), self.detect_frame(frames[i], t=float(times[i]), tracker=tracker))
               for i in pick_frames(frames.shape[0], self.n_frames)]
        return out, {"faces_ms": (time.perf_counter() - t0) * 1000.0}

    def close(self) -> None:
        for part in (self.detector, self.expression):
            if part is not None:
                part.close()
        self.detector = self.expression = None


def _entry(bundle: Bundle, dotted: str) -> Any:
    return bundle.require(dotted)
