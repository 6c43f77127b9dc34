"""What a worker runs for a session: decode a window's frames into a ``Clip`` and analyse it, whole
(``analyse_window``) or in two halves so that clips of several sessions are answered together
(``perceive_window``, then ``answer_windows`` for a round of them); detect faces on one frame. All
run on a worker thread, with that worker's analyzer.

A session's faces overlay and its clips share its tracker, and the overlay's analysed frames are kept
(``SeenFaces``) for the clips: a clip's perception takes the overlay's faces for the sampled frames
they cover and detects only the others (``FaceStage.detect(known=...)``)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from emox_edge.serve.protocol import SessionConfig
from emox_edge.serve.windows import Window
from emox_edge.serve.worker import Perceived

log = logging.getLogger(__name__)


@dataclass
class ClipOutcome:
    """A clip's result (as a dict), the frames that would not decode, and how many clips (of all
    sessions) the language core answered together with it."""

    result: dict[str, Any]
    bad_frames: list[float]
    frames: int
    analysis_ms: float
    batch: int = 1


@dataclass
class PerceivedWindow:
    """A window after perception, waiting to be answered in a round (``answer_windows``)."""

    perceived: Any  # emox_edge.analyzer.PerceivedClip
    requests: list
    bad_frames: list[float]
    frames: int
    perceive_ms: float


class SeenFaces:
    """The faces overlay's analysed frames of one session: (time, frame size, tracked faces), the last
    ``keep`` of them, for its clips' perception to reuse. Written and read on worker threads (never
    two jobs of one session at once, but possibly two workers one after the other), hence the lock."""

    def __init__(self, keep: int = 256) -> None:
        self._frames: collections.deque = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, t: float, size: tuple[int, int], faces) -> None:
        with self._lock:
            self._frames.append((float(t), size, tuple(faces)))

    def around(self, start: float, end: float, size: tuple[int, int], *, margin: float = 1.0) -> list:
        """(time, faces) of the frames of ``size`` (width, height) analysed in ``[start - margin, end
        + margin]``; older frames are forgotten (a session's clips come in order)."""
        with self._lock:
            while self._frames and self._frames[0][0] < start - margin:
                self._frames.popleft()
            return [(t, faces) for t, s, faces in self._frames if s == size and t <= end + margin]


def pick(n: int, k: int) -> list[int]:
    """``min(n, k)`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def decode_jpeg(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray | None:
    """A JPEG as uint8 RGB [H, W, 3] (resized to ``size=(width, height)`` when given); None if corrupt."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def build_clip(window: Window, config: SessionConfig, *, source: str, max_frames: int):
    """The ``Clip`` of ``window`` (at most ``max_frames`` frames decoded) and the times of corrupt frames.

    Frames of another size than the first are resized to it (a client may switch cameras).
    """
    from emox_edge.media import Clip

    frames, times, bad = [], [], []
    size = None
    for i in pick(len(window.frames), max_frames):
        t, data = window.frames[i]
        rgb = decode_jpeg(data, size)
        if rgb is None:
            bad.append(t)
            continue
        size = size or (rgb.shape[1], rgb.shape[0])
        frames.append(rgb)
        times.append(t)
    array = np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    audio = window.audio.astype(np.float32) / 32768.0
    clip = Clip(array, np.asarray(times, np.float64), audio, start=window.start, end=window.end,
                subtitle=config.subtitle, source=source)
    return clip, bad


def analyse_window(analyzer: Any, window: Window, config: SessionConfig, *, source: str,
                   max_frames: int, tracker: Any = None) -> ClipOutcome | None:
    """Analyse one window; None when none of its frames decoded and it has no audio.

    An analyzer with its own ``analyse_window`` (``emox_edge.scaleout.RemoteAnalyzer``, which sends
    the window's JPEGs to a Ray replica that runs this function) is handed the window as is.
    """
    if hasattr(analyzer, "analyse_window"):
        return analyzer.analyse_window(window, config, source=source, max_frames=max_frames, tracker=tracker)
    clip, bad = build_clip(window, config, source=source, max_frames=max_frames)
    if clip.frames.shape[0] == 0 and not clip.audio.any():
        return ClipOutcome({}, bad, 0, 0.0) if bad else None
    t0 = time.perf_counter()
    result = analyzer.analyze(clip, list(config.tasks), history=config.history, tracker=tracker)
    return ClipOutcome(result.to_dict(), bad, int(clip.frames.shape[0]), (time.perf_counter() - t0) * 1000.0)


def perceive_window(analyzer: Any, window: Window, config: SessionConfig, *, source: str, max_frames: int,
                    tracker: Any = None, wait: bool = True, seen: SeenFaces | None = None
                    ) -> Perceived | ClipOutcome | None:
    """The first half of ``analyse_window``: a ``Perceived`` for ``answer_windows``, or the final
    outcome when nothing is left to answer (as ``analyse_window``). ``wait=False``: answer it at once
    rather than in a round (``Perceived.wait``). ``seen``: the session's overlay frames, reused where
    they cover the clip's sampled frames (then ``tracker`` must be the one the overlay used)."""
    clip, bad = build_clip(window, config, source=source, max_frames=max_frames)
    if clip.frames.shape[0] == 0 and not clip.audio.any():
        return ClipOutcome({}, bad, 0, 0.0) if bad else None
    requests = analyzer.check_tasks(list(config.tasks))
    known = None
    if seen is not None and clip.frames.shape[0]:
        known = seen.around(window.start, window.end, (int(clip.frames.shape[2]), int(clip.frames.shape[1])))
    t0 = time.perf_counter()
    perceived = analyzer.perceive_clip(clip, history=config.history, tracker=tracker, known_faces=known)
    item = PerceivedWindow(perceived, requests, bad, int(clip.frames.shape[0]), (time.perf_counter() - t0) * 1000.0)
    return Perceived(item, answer_windows, wait=wait)


def answer_windows(analyzer: Any, items: list[PerceivedWindow]) -> list[ClipOutcome | BaseException]:
    """Answer the tasks of every item in one ``Analyzer.answer_clips`` call; an outcome (or the
    exception) per item. When the batched call raises, each item is answered alone, so the clip at
    fault fails by itself. ``ClipOutcome.result["timings"]`` has ``answer_ms`` when the language core
    was used."""
    t0 = time.perf_counter()
    try:
        results = analyzer.answer_clips([w.perceived for w in items], [w.requests for w in items])
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        log.warning("answering %d clips together failed (%s: %s); answering them one by one", len(items),
                    type(exc).__name__, exc)
        return [answer_windows(analyzer, [w])[0] for w in items]
    ms = (time.perf_counter() - t0) * 1000.0
    return [ClipOutcome(r.to_dict(), w.bad_frames, w.frames, w.perceive_ms + ms, batch=len(items))
            for w, r in zip(items, results)]


def detect_faces(analyzer: Any, data: bytes, *, t: float, tracker: Any,
                 seen: SeenFaces | None = None) -> dict[str, Any] | None:
    """The ``faces`` message for one JPEG frame (None if it does not decode), its faces kept in ``seen``
    for the session's clips. An analyzer with its own ``detect_faces_jpeg`` (a remote one, as above)
    is handed the JPEG as is (and nothing is kept)."""
    if hasattr(analyzer, "detect_faces_jpeg"):
        return analyzer.detect_faces_jpeg(data, t=t, tracker=tracker)
    rgb = decode_jpeg(data)
    if rgb is None:
        return None
    faces = analyzer.detect_faces(rgb, t=t, tracker=tracker)
    if seen is not None:
        seen.add(t, (int(rgb.shape[1]), int(rgb.shape[0])), faces)
    return {"type": "faces", "t": t, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "faces": [face_message(face) for face in faces]}


def face_message(face: Any) -> dict[str, Any]:
    return {"id": face.track_id, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 3),
            "expression": {k: round(float(v), 4) for k, v in (face.expression or {}).items()}}
