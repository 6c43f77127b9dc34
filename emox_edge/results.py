"""Frozen result records: one ``ClipResult`` per analysed clip, holding one ``TaskResult`` per task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from emox_edge.summary import summary_line

TASKS = ("sentiment", "emotion", "open_vocab_emotion", "intent", "reason", "empathize")


@dataclass(frozen=True)
class Face:
    """One detected face in a frame (pixel coordinates of the source frame)."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()
    track_id: int | None = None
    expression: Mapping[str, float] | None = None  # class -> probability, when a bundle provides it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskResult:
    """The answer to one task on one clip.

    Attributes:
        task: one of ``TASKS``.
        text: the model's post-processed answer text.
        label: the closed-set label (sentiment, emotion, intent) or the first open-vocabulary
            emotion; None when the text holds none.
        labels: the open-vocabulary emotion list, normalised (lower case, deduplicated).
        valid: whether ``label`` belongs to the task's label set (True for free-text tasks).
        think: the ``<think>`` chain of ``empathize``; reply: the reply after it.
        score: a number the task yields (e.g. valence), when it yields one.
        timings: milliseconds per stage of this task (prefill, decode, ...).
    """

    task: str
    text: str
    label: str | None = None
    labels: tuple[str, ...] = ()
    valid: bool = True
    think: str | None = None
    reply: str | None = None
    score: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = list(self.labels)
        out["timings"] = dict(self.timings)
        return out


@dataclass(frozen=True)
class ClipResult:
    """Everything emox-edge found in one clip."""

    source: str
    start: float
    end: float
    bundle: str  # "<kind>:<name>" of the bundle that produced it
    tasks: Mapping[str, TaskResult]
    faces: tuple[Face, ...] = ()
    perception: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)  # ms per stage for the whole clip
    error: str | None = None  # set when the clip failed and was skipped by a live loop
    # (time in seconds from the source's start, faces detected on that frame) for each analysed frame
    frame_faces: tuple[tuple[float, tuple[Face, ...]], ...] = ()

    def faces_at(self, t: float | None) -> tuple[Face, ...]:
        """The faces detected on the analysed frame nearest to time ``t`` (``faces`` when unknown)."""
        if t is None or not self.frame_faces:
            return self.faces
        return min(self.frame_faces, key=lambda item: abs(item[0] - t))[1]

    def line(self) -> str:
        """One readable line: span, each task's answer, and the total time."""
        return summary_line(self)

    def plot(self, frame: Any, *, t: float | None = None) -> Any:
        """A copy of ``frame`` (uint8 RGB [H, W, 3]) with face boxes, labels and the reply drawn on it.

        ``t`` is the frame's time (seconds from the source's start): the boxes drawn are those of the
        analysed frame nearest to it, so they follow a face that moves within the clip.
        """
        from emox_edge.overlay import draw_result

        return draw_result(frame, self, faces=self.faces_at(t))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "bundle": self.bundle,
            "tasks": {name: result.to_dict() for name, result in self.tasks.items()},
            "faces": [face.to_dict() for face in self.faces],
            "perception": dict(self.perception),
            "timings": dict(self.timings),
            "error": self.error,
            "frame_faces": [{"time": t, "faces": [face.to_dict() for face in faces]} for t, faces in self.frame_faces],
        }
