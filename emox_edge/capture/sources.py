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

import errno
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from emox_edge.capture.base import Source, empty_frames
from emox_edge.capture.decode import DecodeLoss, FrameConverter, MediaInfo, iter_video_frames, probe, read_audio
from emox_edge.capture.images import MAX_IMAGE_PIXELS, read_image
from emox_edge.capture.pending import PendingFrames
from emox_edge.capture.segment import Segmentation
from emox_edge.errors import BadInputError, EmoxEdgeError, InputTypeError, MediaError
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
    """A local video or audio file, cut into clips by ``segmentation``.

    Clips cover what decodes, never the duration the container claims. Undecodable packets are
    skipped (one warning per file; counts in ``stats()``); a file with neither a decodable frame
    nor an audio sample raises ``MediaError`` when its clips are read. Spans with neither frames
    nor audio samples (a timestamp jump) give no clip.
    """

    def __init__(self, path: Path, *, segmentation: Segmentation, max_side: int | None, model_size: int = 224) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.segmentation = segmentation
        self.max_side = max_side
        self.model_size = model_size
        self.info: MediaInfo = probe(self.path)
        self.loss = DecodeLoss()
        self.frames_decoded = 0
        self.empty_spans = 0

    def stats(self) -> dict[str, Any]:
        return {"frames_decoded": self.frames_decoded, "empty_spans_skipped": self.empty_spans, **self.loss.to_dict()}

    def clips(self) -> Iterator[Clip]:
        self.loss, self.frames_decoded, self.empty_spans = DecodeLoss(), 0, 0
        try:
            yield from self._clips()
        finally:
            if self.loss.total:
                log.warning("%s: %s", self.name, self.loss.describe())

    def _clips(self) -> Iterator[Clip]:
        audio = read_audio(self.path, loss=self.loss) if self.info.has_audio else np.zeros(0, np.float32)
        plan = self.segmentation.planner(audio, SAMPLE_RATE)
        media_end = audio.size / SAMPLE_RATE
        pending = PendingFrames(self.segmentation.max_frames if self.segmentation.mode == "whole" else None)
        if self.info.has_video:
            convert = FrameConverter(model_size=self.model_size, max_side=self.max_side)
            step = 1.0 / self.info.fps if self.info.fps > 0 else 0.04
            horizon = -1.0
            for t, frame in iter_video_frames(self.path, loss=self.loss):
                self.frames_decoded += 1
                media_end = max(media_end, t + step)
                if t >= horizon:  # beyond what the plan covers: plan further (doubling: O(log n) plans)
                    horizon = max(media_end, 2 * t + self.segmentation.window_s)
                    pending.set_plan(plan(horizon))
                for span in pending.closed(t, self.segmentation.min_clip_s):
                    yield from self._emit(pending.take(span), audio, span)
                if pending.wants(t):
                    pending.add(t, *convert(frame))
        if self.frames_decoded == 0 and audio.size == 0:
            lost = f" ({self.loss.describe()})" if self.loss.total else ""
            raise MediaError(f"{self.name}: no decodable video frame and no audio sample{lost}; expected a video "
                             "or audio file with content")
        pending.set_plan(plan(media_end))
        for span in pending.closed(float("inf"), 0.0):
            yield from self._emit(pending.take(span), audio, span)

    def _emit(self, taken: tuple | None, audio: np.ndarray, span: tuple[float, float]) -> Iterator[Clip]:
        start, end = span
        a = audio[int(round(start * SAMPLE_RATE)) : int(round(end * SAMPLE_RATE))]
        if taken is None and a.size == 0:
            self.empty_spans += 1
            return
        if taken is not None:
            times, frames, model = taken
        else:
            (frames, times), model = empty_frames(), None
        yield Clip(frames=frames, frame_times=times, audio=np.ascontiguousarray(a), sample_rate=SAMPLE_RATE,
                   start=float(start), end=float(end), source=self.name, model_frames=model)


class ImageSource(Source):
    """One still image: a clip of one frame and no audio (see ``capture.images`` for the size limit)."""

    def __init__(self, path: Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.max_pixels = max_pixels

    def clips(self) -> Iterator[Clip]:
        rgb = read_image(self.path, max_pixels=self.max_pixels)
        yield Clip(frames=rgb[None], frame_times=np.zeros(1), audio=np.zeros(0, np.float32), source=self.name)


class DirectorySource(Source):
    """Every media file of a directory (not recursive), in name order, each its own unit.

    A file that cannot be read (corrupt, empty, not media, unreadable) gives one ``Clip.failed``
    naming it and the reason, and the directory goes on with the next file; ``stats()`` counts them.
    """

    def __init__(self, path: Path, **options: Any) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES + AUDIO_SUFFIXES
        self.files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not self.files:
            raise FileNotFoundError(f"{self.path}: no media files (expected suffixes {' '.join(suffixes)})")
        self._options = options
        self.failed: list[tuple[str, str]] = []
        self._loss: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"files": len(self.files), "files_failed": len(self.failed)}
        for key, value in self._loss.items():
            out[key] = round(out.get(key, 0) + value, 3)
        return out

    def clips(self) -> Iterator[Clip]:
        for path in self.files:
            last_end = 0.0
            try:
                with resolve_source(path, **self._options) as source:
                    try:
                        for clip in source.clips():
                            last_end = clip.end
                            yield clip
                    finally:
                        for key, value in source.stats().items():
                            if isinstance(value, (int, float)):
                                self._loss[key] = self._loss.get(key, 0) + value
            except (EmoxEdgeError, OSError) as exc:
                log.warning("%s: skipped: %s", path, exc)
                self.failed.append((str(path), str(exc)))
                yield Clip.failed(source=str(path), error=str(exc), start=last_end, end=last_end)


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
        raise InputTypeError(f"cannot make a clip of {type(item).__name__} {getattr(item, 'shape', '')}; accepted: {ACCEPTED}")
    if frames is None:
        frames = np.zeros((0, 1, 1, 3), np.uint8)
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputTypeError(f"frames must be uint8 RGB [N,H,W,3] or [H,W,3], got {frames.dtype} {frames.shape}")
    if audio is None:
        audio = np.zeros(0, np.float32)
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise InputTypeError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
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
        max_side: long side of the frames kept for display and faces (None: as decoded or
            captured). Files and streams give the model its own 224x224 frames from the decoder;
            camera frames are downscaled in the camera thread and the model's are resized from them.
        camera_factory, mic_factory: OS-edge replacements (tests).

    Raises:
        TypeError: ``source`` is none of the accepted forms (the message lists them).
        FileNotFoundError: a path that does not exist, or a directory without media.
        BadInputError: a path with a name longer than the file system allows.
        MediaError: a file that is not readable media (a ``ValueError``; a file that opens but holds
            nothing decodable raises it when its clips are read).
        ValueError: a microphone with a file source.
        ConnectionError: a camera, microphone or stream that cannot be opened.
    """
    from emox_edge.capture.live import LiveSource, StreamSource

    if isinstance(source, Source):
        return source
    segmentation = segmentation or Segmentation()
    if isinstance(source, bool):
        raise InputTypeError(f"source {source!r} is a bool; accepted: {ACCEPTED}")
    if source is None:
        if mic is None or mic is False:
            raise InputTypeError(f"no source given; accepted: {ACCEPTED}")
        return LiveSource(camera=None, mic=mic, segmentation=segmentation, mic_factory=mic_factory)
    if isinstance(source, (int, np.integer)) or (isinstance(source, str) and _is_camera_string(source)):
        return LiveSource(camera=int(source), mic=mic, segmentation=segmentation, max_side=max_side,
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
        if not _exists(path):
            raise FileNotFoundError(f"source not found: {path} (expected a file, a directory, a camera index or a URL)")
        if path.is_dir():
            return DirectorySource(path, segmentation=segmentation, max_side=max_side, fps=fps, sample_rate=sample_rate)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSource(path)
        return FileSource(path, segmentation=segmentation, max_side=max_side)
    raise InputTypeError(f"unsupported source of type {type(source).__name__}; accepted: {ACCEPTED}")


def _exists(path: Path) -> bool:
    """``path.exists()``, with a name too long for the file system reported as bad input."""
    try:
        return path.exists()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            longest = max((len(part) for part in path.parts), default=0)
            raise BadInputError(f"source path too long: {str(path)[:60]}... ({longest} characters in one name, "
                                f"{len(str(path))} in all; file systems allow 255 per name)") from exc
        raise


def _no_mic(mic: Any, source: Any) -> None:
    if mic is not None and mic is not False:
        raise BadInputError(f"a microphone can be combined with a camera only, not with {source}")
