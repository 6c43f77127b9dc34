"""The unit of analysis: a clip of video frames and audio over one time span."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emox_edge.errors import BadInputError

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Clip:
    """Video frames and mono audio covering the same time span of one source.

    Attributes:
        frames: uint8 RGB frames ``[N, H, W, 3]`` as captured (not yet resized); N may be 0 for
            audio-only sources.
        frame_times: seconds from the source's start for each frame, ``[N]`` float64.
        audio: mono float32 samples in [-1, 1] at ``sample_rate``; may be empty for image sources.
        sample_rate: samples per second of ``audio`` (16000 after the resolver).
        start, end: the span of the clip in seconds from the source's start.
        subtitle: transcript or user-supplied text for the span ("" when unknown).
        source: a short description of where the clip came from (file path, "camera:0", ...).
        model_frames: optional uint8 RGB ``[N, S, S, 3]``, the same frames already resized to the
            model's square input size by the video decoder (resizing in the decoder's YUV domain is
            what Nano-EmoX's training decoder did; see docs/runtime.md). None: preprocessing
            resizes ``frames`` itself.
        error: set on a placeholder clip that stands for a unit of the source that could not be read
            (a corrupt file of a directory, ...): the analyzer reports it as a failed result and the
            job goes on. Make one with ``Clip.failed``.
        even_in_time: the model samples the clip's frames evenly in time (``preprocess.time_picks``)
            rather than by index: live camera clips, whose frame rate is not steady and whose picks
            are encoded while the clip is still being captured.
    """

    frames: np.ndarray
    frame_times: np.ndarray
    audio: np.ndarray
    sample_rate: int = SAMPLE_RATE
    start: float = 0.0
    end: float = 0.0
    subtitle: str = ""
    source: str = ""
    model_frames: np.ndarray | None = None
    error: str | None = None
    even_in_time: bool = False

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise BadInputError(
                f"Clip.frames must be uint8 [N, H, W, 3] RGB, got {self.frames.dtype} {self.frames.shape}"
            )
        if self.frame_times.shape != (self.frames.shape[0],):
            raise BadInputError(
                f"Clip.frame_times must have shape ({self.frames.shape[0]},), got {self.frame_times.shape}"
            )
        if self.audio.ndim != 1 or self.audio.dtype != np.float32:
            raise BadInputError(f"Clip.audio must be mono float32 [S], got {self.audio.dtype} {self.audio.shape}")
        if self.model_frames is not None and (
            self.model_frames.ndim != 4
            or self.model_frames.shape[0] != self.frames.shape[0]
            or self.model_frames.shape[-1] != 3
            or self.model_frames.dtype != np.uint8
        ):
            raise BadInputError(
                f"Clip.model_frames must be uint8 [{self.frames.shape[0]}, S, S, 3], got "
                f"{self.model_frames.dtype} {self.model_frames.shape}"
            )
        if self.sample_rate <= 0:
            raise BadInputError(f"Clip.sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return max(self.end - self.start, 0.0)

    @classmethod
    def failed(cls, source: str, error: str, *, start: float = 0.0, end: float = 0.0) -> "Clip":
        """A placeholder for a part of a source that could not be read; ``error`` says why."""
        return cls(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.float64), np.zeros(0, np.float32),
                   start=start, end=end, source=source, error=error)
