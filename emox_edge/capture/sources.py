"""``resolve_source``: one function decides what a source is and returns a ``Source`` of ``Clip``s.

Accepted forms (anything else raises ``TypeError`` listing them):

- camera: an int index or a string of digits ("0"); with ``mic=`` also the microphone;
- microphone alone: ``source=None`` with ``mic=True`` (default device), a device index or a name;
- a video or audio file (anything PyAV/FFmpeg reads: .mp4 .mkv .mov .avi .webm .wav .mp3 ...);
- an image file (.jpg .png .bmp .webp .tif);
- a directory: its media files in name order, each a source of its own;
- a stream URL: rtsp:// rtsps:// rtmp:// http:// https:// udp:// tcp:// srt://;
- in memory: a ``Clip``, a list/tuple of ``Clip``s, an image ``[H,W,3]``, frames ``[N,H,W,3]``
  (uint8 RGB, at ``fps``), mono audio ``[S]`` float at ``sample_rate``, or a tuple ``(frames, audio)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from emox_edge.capture.decode import MediaInfo, iter_video, probe, read_audio
from emox_edge.capture.base import Source, empty_frames
from emox_edge.capture.segment import Segmentation
from emox_edge.media import SAMPLE_RATE, Clip
from emox_edge.preprocess.resample import downmix, resample_sinc

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".3gp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
ACCEPTED = (
    "a camera index (int or digit string such as '0'), a video/audio/image file path, a directory of "
    "such files, a stream URL (" + ", ".join(s[:-3] for s in STREAM_SCHEMES) + "), None with mic= "
    "(microphone only), a Clip or a list of Clips, a uint8 image [H,W,3], frames [N,H,W,3], mono audio "
    "[S] float32, or a (frames, audio) tuple"
)


class FileSource(Source):
    """A local video or audio file, cut into clips by ``segmentation``."""

    def __init__(self, path: Path, *, segmentation: Segmentation, max_side: int | None, model_size: int = 224) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.segmentation = segmentation
        self.max_side = max_side
        self.model_size = model_size
        self.info: MediaInfo = probe(self.path)

    def clips(self) -> Iterator[Clip]:
        audio = read_audio(self.path) if self.info.has_audio else np.zeros(0, np.float32)
        duration = max(self.info.duration, audio.size / SAMPLE_RATE)
        spans = self.segmentation.spans(audio, SAMPLE_RATE, duration)
        if not self.info.has_video:
            for start, end in spans:
                frames, times = empty_frames()
                yield self._clip(frames, times, None, audio, start, end)
            return
        index, bucket = 0, []
        for t, display, model in iter_video(self.path, model_size=self.model_size, max_side=self.max_side):
            while index < len(spans) and t >= spans[index][1]:
                yield self._from_bucket(bucket, audio, spans[index])
                index, bucket = index + 1, []
            if index >= len(spans):
                break
            if t >= spans[index][0]:
                bucket.append((t, display, model))
        while index < len(spans):
            yield self._from_bucket(bucket, audio, spans[index])
            index, bucket = index + 1, []

    def _from_bucket(self, bucket, audio, span) -> Clip:
        if bucket:
            times = np.asarray([b[0] for b in bucket], np.float64)
            frames = np.stack([b[1] for b in bucket])
            model = np.stack([b[2] for b in bucket])
        else:
            (frames, times), model = empty_frames(), None
        return self._clip(frames, times, model, audio, *span)

    def _clip(self, frames, times, model, audio, start, end) -> Clip:
        a = audio[int(round(start * SAMPLE_RATE)) : int(round(end * SAMPLE_RATE))]
        return Clip(frames=frames, frame_times=times, audio=np.ascontiguousarray(a), sample_rate=SAMPLE_RATE,
                    start=float(start), end=float(end), source=self.name, model_frames=model)


class ImageSource(Source):
    """One still image: a clip of one frame and no audio."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)

    def clips(self) -> Iterator[Clip]:
        import cv2

        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{self.path}: not a readable image (expected one of {', '.join(IMAGE_SUFFIXES)})")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        yield Clip(frames=rgb[None], frame_times=np.zeros(1), audio=np.zeros(0, np.float32), source=self.name)


class DirectorySource(Source):
    """Every media file of a directory (not recursive), in name order."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES + AUDIO_SUFFIXES
        self.files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not self.files:
            raise FileNotFoundError(f"{self.path}: no media files (expected suffixes {' '.join(suffixes)})")
        self._options = options

    def clips(self) -> Iterator[Clip]:
        for path in self.files:
            with resolve_source(path, **self._options) as source:
                yield from source.clips()


class ArraySource(Source):
    """Clips built from in-memory arrays (see the module doc for the accepted forms)."""

    def __init__(self, items: Sequence[Any], *, fps: float, sample_rate: int, name: str = "array") -> None:
        self.name = name
        self._clips = [_to_clip(item, fps=fps, sample_rate=sample_rate, name=name) for item in items]

    def clips(self) -> Iterator[Clip]:
        yield from self._clips


def _to_clip(item: Any, *, fps: float, sample_rate: int, name: str) -> Clip:
    if isinstance(item, Clip):
        return item
    frames, audio = None, None
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, np.ndarray) for x in item):
        frames, audio = item
    elif isinstance(item, np.ndarray) and item.ndim in (3, 4) and item.shape[-1] == 3:
        frames = item
    elif isinstance(item, np.ndarray) and item.ndim in (1, 2):
        audio = item
    else:
        raise TypeError(f"cannot make a clip of {type(item).__name__} {getattr(item, 'shape', '')}; accepted: {ACCEPTED}")
    if frames is None:
        frames = np.zeros((0, 1, 1, 3), np.uint8)
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB [N,H,W,3] or [H,W,3], got {frames.dtype} {frames.shape}")
    if audio is None:
        audio = np.zeros(0, np.float32)
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise TypeError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    if audio.ndim == 2:  # [C, S] or [S, C]
        audio = downmix(audio if audio.shape[0] <= audio.shape[1] else audio.T)
    audio = resample_sinc(audio.astype(np.float32), sample_rate, SAMPLE_RATE)
    times = np.arange(frames.shape[0], dtype=np.float64) / fps
    end = max(frames.shape[0] / fps if frames.shape[0] > 1 else 0.0, audio.size / SAMPLE_RATE)
    return Clip(frames=np.ascontiguousarray(frames), frame_times=times, audio=audio, start=0.0, end=end, source=name)


def _is_camera_string(value: str) -> bool:
    return value.strip().isdigit()


def resolve_source(
    source: Any = None,
    *,
    mic: int | str | bool | None = None,
    segmentation: Segmentation | None = None,
    fps: float = 25.0,
    sample_rate: int = SAMPLE_RATE,
    max_side: int | None = 640,
    camera_factory: Callable[[int], Any] | None = None,
    mic_factory: Callable[..., Any] | None = None,
) -> Source:
    """Turn what the user gave into a ``Source`` (see the module doc for the accepted forms).

    Args:
        source: the source (None: microphone only, needs ``mic``).
        mic: also capture this microphone (True: the default input device).
        segmentation: how to cut clips (default fixed 4 s windows).
        fps, sample_rate: for in-memory frames / audio.
        max_side: long side of the frames kept for display and faces (the model gets its own
            224x224 frames from the decoder).
        camera_factory, mic_factory: OS-edge replacements (tests).

    Raises:
        TypeError: ``source`` is none of the accepted forms (the message lists them).
        FileNotFoundError: a path that does not exist, or a directory without media.
        ValueError: a file that is not readable media; a microphone with a file source.
        ConnectionError: a camera, microphone or stream that cannot be opened.
    """
    from emox_edge.capture.live import LiveSource, StreamSource

    if isinstance(source, Source):
        return source
    segmentation = segmentation or Segmentation()
    if isinstance(source, bool):
        raise TypeError(f"source {source!r} is a bool; accepted: {ACCEPTED}")
    if source is None:
        if mic is None or mic is False:
            raise TypeError(f"no source given; accepted: {ACCEPTED}")
        return LiveSource(camera=None, mic=mic, segmentation=segmentation, mic_factory=mic_factory)
    if isinstance(source, (int, np.integer)) or (isinstance(source, str) and _is_camera_string(source)):
        return LiveSource(camera=int(source), mic=mic, segmentation=segmentation,
                          camera_factory=camera_factory, mic_factory=mic_factory)
    if isinstance(source, (Clip, np.ndarray)) or (
        isinstance(source, (list, tuple)) and source and all(isinstance(x, (Clip, np.ndarray, tuple)) for x in source)
    ):
        items = [source] if isinstance(source, (Clip, np.ndarray)) else list(source)
        if isinstance(source, tuple) and len(source) == 2 and all(isinstance(x, np.ndarray) for x in source):
            items = [source]
        return ArraySource(items, fps=fps, sample_rate=sample_rate)
    if isinstance(source, str) and source.lower().startswith(STREAM_SCHEMES):
        _no_mic(mic, source)
        return StreamSource(source, segmentation=segmentation, max_side=max_side)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        _no_mic(mic, path)
        if not path.exists():
            raise FileNotFoundError(f"source not found: {path} (expected a file, a directory, a camera index or a URL)")
        if path.is_dir():
            return DirectorySource(path, segmentation=segmentation, max_side=max_side, fps=fps, sample_rate=sample_rate)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSource(path)
        return FileSource(path, segmentation=segmentation, max_side=max_side)
    raise TypeError(f"unsupported source of type {type(source).__name__}; accepted: {ACCEPTED}")


def _no_mic(mic: Any, source: Any) -> None:
    if mic is not None and mic is not False:
        raise ValueError(f"a microphone can be combined with a camera only, not with {source}")
