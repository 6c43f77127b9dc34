"""Nano-EmoX preprocessing, identical to what the model saw in training (spec §2).

``preprocess_clip(clip, config)`` turns a ``Clip`` into the three encoder inputs:

- ``pixel_values`` float32 ``[8, 3, 224, 224]``: 8 uniformly sampled frames (by index as trained;
  a live clip, ``Clip.even_in_time``, by time: ``time_picks``), resized to 224x224
  without keeping the aspect ratio, CLIP-normalised (visual branch);
- ``face_frames`` float32 ``[8, 3, 224, 224]``: the same frames as raw 0..255 floats (facial
  branch: full frames, no face crop, as trained);
- ``waveforms`` float32 ``[8, 32000]``: 8 windows of 2 s of 16 kHz mono audio, jointly z-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.media import Clip
from emox_edge.preprocess.audio import audio_windows, joint_normalize, window_starts
from emox_edge.preprocess.frames import (
    CLIP_MEAN,
    CLIP_STD,
    clip_normalize,
    pick_instants,
    raw_float,
    resize_rgb,
    sample_indices,
    select_frames,
    time_picks,
)
from emox_edge.preprocess.resample import downmix, resample_sinc, to_model_audio

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ModelInputs",
    "PreprocessConfig",
    "audio_windows",
    "clip_normalize",
    "downmix",
    "joint_normalize",
    "pick_instants",
    "preprocess_clip",
    "raw_float",
    "resample_sinc",
    "resize_rgb",
    "sample_indices",
    "select_frames",
    "time_picks",
    "to_model_audio",
    "window_starts",
]


@dataclass(frozen=True)
class PreprocessConfig:
    """The numbers of spec §2; ``from_manifest`` reads them from a bundle's ``preprocess`` section."""

    n_frames: int = 8
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    sample_rate: int = 16000
    n_windows: int = 8
    window_samples: int = 32000
    normalize_audio: bool = True
    eps: float = 1e-7

    @classmethod
    def from_manifest(cls, section: Mapping[str, Any] | None) -> "PreprocessConfig":
        """Read ``frames``, ``visual`` and ``audio`` of a manifest ``preprocess`` section (missing keys: defaults)."""
        if not section:
            return cls()
        frames = section.get("frames", {})
        visual = section.get("visual", {})
        audio = section.get("audio", {})
        norm = audio.get("normalize", {})
        height, width = int(frames.get("height", 224)), int(frames.get("width", 224))
        if height != width:
            raise BadInputError(f"preprocess.frames must be square, got {height}x{width}")
        return cls(
            n_frames=int(frames.get("count", 8)),
            image_size=height,
            mean=tuple(float(v) for v in visual.get("mean", CLIP_MEAN)),
            std=tuple(float(v) for v in visual.get("std", CLIP_STD)),
            sample_rate=int(audio.get("sample_rate", 16000)),
            n_windows=int(audio.get("windows", 8)),
            window_samples=int(audio.get("window_samples", 32000)),
            normalize_audio=norm.get("mode", "joint") != "none",
            eps=float(norm.get("eps", 1e-7)),
        )


@dataclass(frozen=True)
class ModelInputs:
    """Encoder inputs of one clip (see the module doc for shapes)."""

    pixel_values: np.ndarray
    face_frames: np.ndarray
    waveforms: np.ndarray
    frames: np.ndarray  # the selected uint8 frames [8, 224, 224, 3], for inspection


def preprocess_clip(clip: Clip, config: PreprocessConfig = PreprocessConfig()) -> ModelInputs:
    """Build the encoder inputs of ``clip``.

    Raises:
        ValueError: the clip's audio is not at ``config.sample_rate`` (the resolver resamples it).
    """
    if clip.audio.size and clip.sample_rate != config.sample_rate:
        raise BadInputError(
            f"clip audio is at {clip.sample_rate} Hz, the model needs {config.sample_rate} Hz "
            "(sources from resolve_source() are resampled; resample arrays with emox_edge.preprocess.resample_sinc)"
        )
    picks = time_picks(clip.frame_times, clip.start, clip.end, config.n_frames) if clip.even_in_time else None
    frames = select_frames(clip.frames, clip.model_frames, n_frames=config.n_frames, size=config.image_size,
                           indices=picks)
    waveforms = audio_windows(
        clip.audio,
        n_windows=config.n_windows,
        window=config.window_samples,
        normalize=config.normalize_audio,
        eps=config.eps,
    )
    return ModelInputs(
        pixel_values=clip_normalize(frames, config.mean, config.std),
        face_frames=raw_float(frames),
        waveforms=waveforms,
        frames=frames,
    )
