"""Decoding files and streams with PyAV (FFmpeg in its wheels): video frames and 16 kHz mono audio.

Video frames are delivered twice: for display/face detection at most ``max_side`` pixels on the long
side (aspect kept, libswscale "area"), and for the model resized straight from the decoded YUV frame
to ``model_size`` x ``model_size`` with libswscale bilinear, which is how Nano-EmoX's training decoder
(decord over FFmpeg 4's ``scale`` filter) produced its frames. Audio of local files is decoded whole at
its native rate, down-mixed as training did (2 channels: mean; more: channel 0) and resampled with the
torchaudio-equivalent windowed sinc (``emox_edge.preprocess.resample``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from emox_edge.preprocess.resample import downmix, resample_sinc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds."""

    has_video: bool
    has_audio: bool
    duration: float  # seconds (0.0 when unknown)
    fps: float
    width: int
    height: int


def _open(target: str, *, timeout: float | None = None):
    import av

    try:
        if timeout is None:
            return av.open(target)
        return av.open(target, timeout=timeout)
    except av.error.FileNotFoundError as exc:
        raise FileNotFoundError(f"media file not found: {target}") from exc
    except av.error.FFmpegError as exc:
        raise ValueError(f"{target}: corrupt or unsupported media file ({exc})") from exc


def open_container(target: str | Path, *, timeout: float | None = None):
    """Open a file with PyAV, turning its errors into built-in ones naming the file."""
    return _open(str(target), timeout=timeout)


def probe(target: str | Path) -> MediaInfo:
    """Streams and duration of a media file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable media file, or one with neither video nor audio.
    """
    with open_container(target) as container:
        return _info(container, str(target))


def _info(container, name: str) -> MediaInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise ValueError(f"{name}: the file has neither a video nor an audio stream")
    duration = float(container.duration / 1_000_000) if container.duration else 0.0
    fps = float(video.average_rate) if video is not None and video.average_rate else 0.0
    return MediaInfo(
        has_video=video is not None,
        has_audio=audio is not None,
        duration=duration,
        fps=fps,
        width=int(video.codec_context.width) if video is not None else 0,
        height=int(video.codec_context.height) if video is not None else 0,
    )


def display_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the long side is at most ``max_side`` (even numbers, aspect kept)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def read_audio(target: str | Path, *, sample_rate: int = 16000) -> np.ndarray:
    """The whole audio track as mono float32 at ``sample_rate`` (empty when there is none).

    Raises:
        FileNotFoundError / ValueError: as ``probe``; ValueError also for a stream that fails to decode.
    """
    import av

    with open_container(target) as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # planar float at the native rate and layout
        chunks: list[np.ndarray] = []
        rate = stream.codec_context.sample_rate or sample_rate
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            raise ValueError(f"{target}: audio stream could not be decoded ({exc})") from exc
    if not chunks:
        return np.zeros(0, np.float32)
    width = max(chunk.shape[0] for chunk in chunks)
    chunks = [c if c.shape[0] == width else np.repeat(c[:1], width, axis=0) for c in chunks]
    return resample_sinc(downmix(np.concatenate(chunks, axis=1)), rate, sample_rate)


def iter_video(
    target: str | Path,
    *,
    model_size: int = 224,
    max_side: int | None = 640,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Yield ``(seconds, display_rgb, model_rgb)`` for every frame of the first video stream.

    Raises:
        ValueError: the video stream fails to decode.
    """
    import av

    with open_container(target) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        size = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = display_size(frame.width, frame.height, max_side)
                t = float(frame.time) - start if frame.time is not None else 0.0
                display = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
                model = frame.reformat(width=model_size, height=model_size, format="rgb24", interpolation="BILINEAR")
                yield t, display.to_ndarray(), model.to_ndarray()
        except av.error.FFmpegError as exc:
            raise ValueError(f"{target}: video stream could not be decoded ({exc})") from exc
