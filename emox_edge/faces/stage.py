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
from typing import Any, Sequence

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
        return self._express(frame, (tracker or self.tracker).update(self.detector.detect(frame), t=t))

    def detect(self, frames: np.ndarray, times: np.ndarray, *, tracker: Any = None,
               known: Sequence[FrameFaces] | None = None) -> tuple[list[FrameFaces], dict[str, float]]:
        """Faces on ``n_frames`` frames spread over the clip; returns them and the ms spent.

        ``known``: (time, tracked faces) of frames already analysed with the same ``tracker`` (a
        server's faces overlay). A sampled frame within half a sampling interval of a known frame
        inside the clip's span (its first to last frame time) takes that frame's faces (its time,
        boxes, landmarks, expressions and ids) instead of being detected again; each known frame
        serves once, and those outside the span only lend ids. The other sampled frames are detected; one
        older than the tracker's ``clock`` (the overlay went ahead) does not move the tracker back
        (``update`` would take it for a new stream and drop every track): its faces take the ids of
        the faces they overlap in the nearest analysed frame, or new ids. With ``known`` the
        timings also count ``faces_reused`` and ``faces_detected`` frames.
        """
        if self.detector is None or frames.shape[0] == 0:
            return [], {}
        t0 = time.perf_counter()
        tracker = tracker or self.tracker
        picks = pick_frames(frames.shape[0], self.n_frames)
        if known is None:
            out = [(float(times[i]), self.detect_frame(frames[i], t=float(times[i]), tracker=tracker)) for i in picks]
            return out, {"faces_ms": (time.perf_counter() - t0) * 1000.0}
        known = sorted(((float(t), tuple(faces)) for t, faces in known), key=lambda item: item[0])
        spaced = [float(times[i]) for i in picks]
        first, last = float(times[0]), float(times[-1])
        tolerance = max(0.5 * (spaced[-1] - spaced[0]) / max(len(spaced) - 1, 1), 1e-3)
        used: set[int] = set()
        slots: list[FrameFaces | int] = []  # a known frame, or the index of a frame to detect
        for i, t in zip(picks, spaced):
            near = [j for j, (tk, _) in enumerate(known)
                    if j not in used and abs(tk - t) <= tolerance and first <= tk <= last]
            if near:
                j = min(near, key=lambda j: abs(known[j][0] - t))
                used.add(j)
                slots.append(known[j])
            else:
                slots.append(i)
        out: list[FrameFaces] = []
        for slot in slots:
            if not isinstance(slot, int):
                out.append(slot)
                continue
            t, frame = float(times[slot]), np.ascontiguousarray(frames[slot])
            found = self.detector.detect(frame)
            clock = tracker.clock
            if clock is None or t >= clock:
                faces = tracker.update(found, t=t)
            else:
                faces = _borrow_ids(found, t, [*known, *out], tracker)
            out.append((t, self._express(frame, faces)))
        out.sort(key=lambda item: item[0])
        return out, {"faces_ms": (time.perf_counter() - t0) * 1000.0, "faces_reused": float(len(used)),
                     "faces_detected": float(len(slots) - len(used))}

    def _express(self, frame: np.ndarray, faces) -> tuple[Face, ...]:
        if self.expression is not None and faces:
            faces = self.expression.annotate(frame, faces)
        return tuple(faces)

    def close(self) -> None:
        for part in (self.detector, self.expression):
            if part is not None:
                part.close()
        self.detector = self.expression = None


def _borrow_ids(faces: Sequence[Face], t: float, analysed: Sequence[FrameFaces], tracker: Any) -> list[Face]:
    """``faces`` of a frame at ``t`` with the ids of the faces they overlap (IoU >= the tracker's
    ``iou_threshold``, best total first) in the analysed frame with faces nearest in time; new ids for the rest."""
    import dataclasses

    from emox_edge.faces._boxes import iou_matrix
    from emox_edge.faces.tracker import linear_assignment

    faces = list(faces)
    ids: list[int | None] = [None] * len(faces)
    near = sorted((item for item in analysed if any(f.track_id is not None for f in item[1])),
                  key=lambda item: abs(item[0] - t))
    others = [f for f in (near[0][1] if near else ()) if f.track_id is not None]
    if faces and others:
        overlaps = iou_matrix([f.box for f in faces], [f.box for f in others])
        threshold = getattr(tracker, "iou_threshold", 0.3)
        for i, j in linear_assignment(1.0 - overlaps):
            if overlaps[i, j] >= threshold:
                ids[i] = others[j].track_id
    return [dataclasses.replace(face, track_id=tracker.new_id() if ids[i] is None else ids[i])
            for i, face in enumerate(faces)]


def _entry(bundle: Bundle, dotted: str) -> Any:
    return bundle.require(dotted)
