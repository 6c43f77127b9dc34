"""Frozen result records: one ``ClipResult`` per analysed clip, holding one ``TaskResult`` per task.

Timings are milliseconds, every key ends in ``_ms`` (counts excepted), the same for every bundle kind:

- per clip (``ClipResult.timings``): ``capture_ms`` (waiting for the clip), ``faces_ms`` (detection,
  tracking and expression), ``preprocess_ms`` and ``encoder_<graph>_ms`` (Nano-EmoX), ``vad_ms`` and
  ``prosody_ms`` (lite), ``asr_ms`` (speech recognition), ``perceive_ms`` (every perception
  stage), ``prefill_ms`` and ``decode_ms`` (the language core: the longest task's, as the tasks run in
  one batch), ``answer_ms`` (the batch), ``total_ms`` (perceive + answer); in the server,
  ``faces_reused`` / ``faces_detected`` count the sampled frames taken from the faces overlay or detected;
- per task (``TaskResult.timings``): ``prefill_ms``, ``decode_ms``, ``n_prompt``, ``n_generated``
  (token counts) and ``total_ms``; the lite bundle's intent has ``intent_encoder_ms`` instead.
"""

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
        timings: milliseconds per stage of this task (``prefill_ms``, ``decode_ms``, ``total_ms``, ...).
        abstain_reason: set when the task had no evidence to answer from (then ``label`` is None):
            why it abstained, e.g. "no face and no speech in the clip".
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
    abstain_reason: str | None = None

    @classmethod
    def abstain(cls, task: str, reason: str) -> "TaskResult":
        """The result of a task that had no evidence: no label, ``abstain_reason`` says why."""
        return cls(task, "", label=None, valid=False, abstain_reason=reason)

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = list(self.labels)
        out["timings"] = dict(self.timings)
        out["abstained"] = self.abstained
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
    transcript: Mapping[str, Any] | None = None  # the speech stage's record (text, language, segments)
    speaker: int | None = None  # track id of the face the language tasks speak about
    # one record per tracked face: {"id", "frames", "box", "expression", "emotion", "sentiment", "valence", "speaker"}
    persons: tuple[Mapping[str, Any], ...] = ()
    # the last analysed frame (uint8 RGB), kept so ``plot()`` and ``save()`` need no argument; not serialised
    frame: Any = field(default=None, repr=False, compare=False)
    frame_time: float | None = field(default=None, repr=False, compare=False)

    def faces_at(self, t: float | None) -> tuple[Face, ...]:
        """The faces detected on the analysed frame nearest to time ``t`` (``faces`` when unknown)."""
        if t is None or not self.frame_faces:
            return self.faces
        return min(self.frame_faces, key=lambda item: abs(item[0] - t))[1]

    def line(self) -> str:
        """One readable line: span, each task's answer, and the total time."""
        return summary_line(self)

    def plot(self, frame: Any = None, *, t: float | None = None) -> Any:
        """A copy of ``frame`` (uint8 RGB [H, W, 3]) with face boxes, labels and the reply drawn on it.

        Without ``frame``, the clip's last analysed frame (kept on the result) is drawn. ``t`` is the
        frame's time (seconds from the source's start): the boxes drawn are those of the analysed
        frame nearest to it, so they follow a face that moves within the clip.

        Raises:
            BadInputError: no ``frame`` given and the result keeps none (an audio-only clip).
        """
        from emox_edge.overlay import draw_result

        if frame is None:
            if self.frame is None:
                from emox_edge.errors import BadInputError

                raise BadInputError(f"result of {self.source!r} keeps no frame (audio only?): pass one to plot(frame)")
            frame, t = self.frame, self.frame_time if t is None else t
        return draw_result(frame, self, faces=self.faces_at(t))

    def save(self, path: Any) -> Any:
        """Write the result: ``.json`` -> ``to_dict()``; an image suffix (.jpg, .png, ...) -> ``plot()``.

        The file is written atomically. Returns the path.

        Raises:
            BadInputError: an unsupported suffix, or an image asked of a result that keeps no frame.
        """
        from pathlib import Path

        from emox_edge._io import atomic_path, write_json_atomic
        from emox_edge.errors import BadInputError

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            return write_json_atomic(path, self.to_dict())
        if suffix not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            raise BadInputError(f"{path}: save() writes .json or an image (.jpg, .png, .bmp, .webp), not {suffix!r}")
        import cv2

        image = self.plot()
        with atomic_path(path) as tmp:
            ok, data = cv2.imencode(suffix, image[:, :, ::-1])
            if not ok:
                raise BadInputError(f"{path}: OpenCV cannot encode {suffix}")
            Path(tmp).write_bytes(data.tobytes())
        return path

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
            "transcript": dict(self.transcript) if self.transcript is not None else None,
            "speaker": self.speaker,
            "persons": [dict(p) for p in self.persons],
        }
