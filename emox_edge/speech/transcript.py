"""Result records of the speech stage: ``Transcript`` and its ``TranscriptSegment``s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TranscriptSegment:
    """One stretch of recognised speech.

    Attributes:
        start, end: seconds, from the start of the audio given (the stage shifts them to stream time).
        text: the words, stripped.
        no_speech_prob: Whisper's probability that its window holds no speech.
        avg_logprob: mean log-probability of the window's tokens (closer to 0 = more confident).
    """

    start: float
    end: float
    text: str
    no_speech_prob: float
    avg_logprob: float

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "no_speech_prob": round(self.no_speech_prob, 4), "avg_logprob": round(self.avg_logprob, 4)}


@dataclass(frozen=True)
class Transcript:
    """What was said in a clip, in English unless the task was ``transcribe`` on other speech.

    Attributes:
        text: the segments' text joined by spaces ("" when nothing was said).
        language: the code of the language detected (or forced); None when nothing was decoded.
        language_probability: how sure the detection is (1.0 when forced or English-only model).
        task: "transcribe" or "translate"; None when nothing was decoded.
        segments: the recognised stretches, in time order.
        error: why there is no transcript when decoding failed; None otherwise.
        timings: milliseconds per step (features, encode, language, decode).
    """

    text: str
    language: str | None
    language_probability: float
    task: str | None
    segments: tuple[TranscriptSegment, ...] = ()
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def empty(cls, reason: str | None = None) -> "Transcript":
        """A transcript with no words; ``reason`` (a decoding failure) goes into ``error``."""
        return cls(text="", language=None, language_probability=0.0, task=None, segments=(), error=reason)

    def shifted(self, seconds: float) -> "Transcript":
        """The same transcript with every segment moved by ``seconds``."""
        if not seconds:
            return self
        segments = tuple(TranscriptSegment(s.start + seconds, s.end + seconds, s.text, s.no_speech_prob, s.avg_logprob)
                         for s in self.segments)
        return Transcript(self.text, self.language, self.language_probability, self.task, segments, self.error,
                          dict(self.timings))

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language,
                "language_probability": round(self.language_probability, 4), "task": self.task,
                "segments": [s.to_dict() for s in self.segments], "error": self.error,
                "timings_ms": {k: round(v, 1) for k, v in self.timings.items()}}
