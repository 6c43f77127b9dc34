"""The annotated video (``--save``): H.264 through PyAV, with the source's audio muxed in, written atomically.

Frames are encoded as they come (``write``) into a temporary file beside the target. Audio
(``add_audio``: mono float samples placed at their time in the source) is encoded to AAC into a
second temporary file, so frames and audio may arrive in any order; ``close()`` then copies both
streams' packets, interleaved by time, into the final file (no re-encoding) and renames it onto the
target. Without frames nothing replaces the target. libx264 is in PyAV's wheels; a PyAV built without
it falls back to MPEG-4 Part 2 (logged once).
"""

from __future__ import annotations

import heapq
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from emox_edge._io import AtomicFile
from emox_edge.errors import BadInputError, InputTypeError

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
_FALLBACK_CODEC = "mpeg4"
_warned: set[str] = set()


def h264_codec() -> str:
    """"libx264" when this PyAV can encode H.264, else "mpeg4" (the fallback is logged once)."""
    import av

    try:
        av.Codec("libx264", "w")
        return "libx264"
    except Exception as exc:  # av.codec.codec.UnknownCodecError (a ValueError) in PyAV >= 14
        if "libx264" not in _warned:
            _warned.add("libx264")
            log.warning("this PyAV has no H.264 encoder (libx264: %s); writing MPEG-4 Part 2 video instead", exc)
        return _FALLBACK_CODEC


class VideoSaver:
    """Annotated RGB frames (and the source's audio) into a video file, renamed onto ``path`` when closed.

    Args:
        path: the target; its suffix picks the container (.mp4 .m4v .mov .mkv .avi).
        fps: frame rate; may be changed until the first frame is written.
        codec: video encoder (None: H.264 via libx264, else MPEG-4 Part 2).

    Raises:
        BadInputError: an unsupported suffix (the message lists the accepted ones), a name too long.
        IsADirectoryError: ``path`` is a directory.
    """

    SUFFIXES = tuple(CONTAINERS)

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0, codec: str | None = None) -> None:
        self.final = Path(path)
        self.suffix = self.final.suffix.lower()
        if self.suffix not in CONTAINERS:
            raise BadInputError(f"--save {self.final}: unsupported video suffix {self.suffix!r}; "
                                f"use one of {', '.join(CONTAINERS)}")
        self.fps = fps
        self.codec = codec
        self.frames = 0
        self.audio_samples = 0
        self._video_file = AtomicFile(path, suffix=self.suffix)
        self._audio_file: AtomicFile | None = None
        self._video = None  # (container, stream) once the first frame came
        self._audio = None  # (container, stream, sample_rate)
        self._last_pts = -1
        self._done: bool | None = None  # None while open, then whether the target was written

    @property
    def path(self) -> Path:
        return self.final

    # ------------------------------------------------------------------------------ writing
    def write(self, frame_rgb: np.ndarray, t: float | None = None) -> None:
        """Encode one uint8 RGB frame ``[H, W, 3]``, shown at ``t`` seconds (None: after the previous one).

        Frames of another size than the first are scaled to it.

        Raises:
            InputTypeError: not a uint8 RGB frame.
            ValueError: the saver is closed.
        """
        import av

        self._check_open()
        frame_rgb = np.asarray(frame_rgb)
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise InputTypeError(f"VideoSaver.write needs a uint8 RGB frame [H, W, 3], got {frame_rgb.dtype} "
                                 f"{frame_rgb.shape}")
        if self._video is None:
            self._video = self._open_video(frame_rgb.shape[1], frame_rgb.shape[0])
        container, stream = self._video
        rate = stream.codec_context.framerate or Fraction(25)
        pts = self._last_pts + 1 if t is None else int(round(float(t) * rate))
        pts = max(pts, self._last_pts + 1)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = 1 / rate
        container.mux(stream.encode(frame))
        self._last_pts = pts
        self.frames += 1

    def _open_video(self, width: int, height: int):
        import av

        if not (self.fps and 0 < float(self.fps) <= 1000):
            raise BadInputError(f"--save {self.final}: frame rate must be in (0, 1000], got {self.fps!r}")
        rate = Fraction(float(self.fps)).limit_denominator(1001)
        codec = self.codec or h264_codec()
        container = av.open(str(self._video_file.tmp), mode="w", format=CONTAINERS[self.suffix])
        try:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = max(2, width - width % 2), max(2, height - height % 2)
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "23", "preset": "veryfast"}
            else:
                stream.bit_rate = max(500_000, int(stream.width * stream.height * float(rate) * 0.2))
        except BaseException:
            container.close()
            raise
        return container, stream

    def add_audio(self, samples: np.ndarray, sample_rate: int, start_s: float) -> None:
        """Add mono audio that starts ``start_s`` seconds into the source (the time of the frames).

        Gaps are filled with silence; audio before what was already added is dropped. Every call
        uses the first call's ``sample_rate`` (others are resampled to it).

        Raises:
            InputTypeError: ``samples`` is not 1-D float audio.
            BadInputError: a rate that is not a positive integer or a negative/non-finite start.
            ValueError: the saver is closed.
        """
        import av

        self._check_open()
        samples = np.asarray(samples)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise InputTypeError(f"VideoSaver.add_audio needs mono float samples [S], got {samples.dtype} "
                                 f"{samples.shape}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise BadInputError(f"VideoSaver.add_audio: sample_rate must be a positive integer, got {sample_rate!r}")
        if not (np.isfinite(start_s) and start_s >= 0):
            raise BadInputError(f"VideoSaver.add_audio: start_s must be a finite number >= 0, got {start_s!r}")
        if samples.size == 0:
            return
        if self._audio is None:
            self._audio = self._open_audio(int(sample_rate))
        container, stream, rate = self._audio
        samples = samples.astype(np.float32)
        if int(sample_rate) != rate:
            from emox_edge.preprocess.resample import resample_sinc

            samples = resample_sinc(samples, int(sample_rate), rate)
        start = int(round(float(start_s) * rate))
        if start > self.audio_samples:  # a gap (VAD, skipped clips): silence keeps the audio in sync
            samples = np.concatenate([np.zeros(start - self.audio_samples, np.float32), samples])
        elif start < self.audio_samples:
            samples = samples[self.audio_samples - start:]
        for lo in range(0, samples.size, 1 << 16):
            chunk = np.ascontiguousarray(np.clip(samples[lo:lo + (1 << 16)], -1.0, 1.0)[None, :])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = self.audio_samples
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
            self.audio_samples += chunk.shape[1]

    def _open_audio(self, rate: int):
        import av

        self._audio_file = AtomicFile(self.final, suffix=".mka")
        container = av.open(str(self._audio_file.tmp), mode="w", format="matroska")
        try:
            stream = container.add_stream("aac", rate=rate, layout="mono")
        except BaseException:
            container.close()
            raise
        return container, stream, rate

    # ------------------------------------------------------------------------------ finishing
    def close(self, commit: bool | None = None) -> bool:
        """Finish the file and move it onto its final name (idempotent).

        Args:
            commit: None or True: keep the video when it has at least one frame (a video without
                frames never replaces anything); False: discard, as ``abort()``.

        Returns:
            Whether the target now holds this run's video.

        Raises:
            Whatever the encoder or muxer raise while finishing; the temporary files are removed first.
        """
        if self._done is not None:
            return self._done
        if commit is False or self.frames == 0:
            self.abort()
            return False
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        self._done = True
        return True

    def _finish(self) -> None:
        container, stream = self._video
        container.mux(stream.encode(None))
        container.close()
        self._video = None
        if self._audio is None:
            self._video_file.commit()
            return
        acontainer, astream, _ = self._audio
        acontainer.mux(astream.encode(None))
        acontainer.close()
        self._audio = None
        muxed = AtomicFile(self.final, suffix=self.suffix)
        try:
            _remux(self._video_file.tmp, self._audio_file.tmp, muxed.tmp, CONTAINERS[self.suffix])
            muxed.commit()
        finally:
            muxed.discard()
            self._video_file.discard()
            self._audio_file.discard()

    def abort(self) -> None:
        """Stop and remove the temporary files; the target is left as it was (idempotent)."""
        for part in (self._video, self._audio):
            if part is not None:
                try:
                    part[0].close()
                except Exception as exc:  # a half-written container may not close cleanly
                    log.debug("closing an aborted video: %s", exc)
        self._video = self._audio = None
        for temp in (self._video_file, self._audio_file):
            if temp is not None:
                temp.discard()
        if self._done is None:
            self._done = False

    def _check_open(self) -> None:
        if self._done is not None:
            raise BadInputError(f"video output {self.final} is already closed")

    def __enter__(self) -> "VideoSaver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remux(video: Path, audio: Path, out: Path, fmt: str) -> None:
    """Copy the video stream of ``video`` and the audio stream of ``audio`` into ``out``, interleaved."""
    import av

    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with av.open(str(video)) as vin, av.open(str(audio)) as ain, \
            av.open(str(out), mode="w", format=fmt, container_options=options) as dst:
        vs = dst.add_stream_from_template(vin.streams.video[0])
        as_ = dst.add_stream_from_template(ain.streams.audio[0])
        merged = heapq.merge(_timed(vin.demux(vin.streams.video[0]), vs), _timed(ain.demux(ain.streams.audio[0]), as_),
                             key=lambda item: item[0])
        for _, packet, stream in merged:
            packet.stream = stream
            dst.mux(packet)


def _timed(packets, stream) -> Iterator[tuple[float, object, object]]:
    for packet in packets:
        if packet.dts is None:  # the demuxer's flush packet
            continue
        yield float(packet.dts * packet.time_base), packet, stream
