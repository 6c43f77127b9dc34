"""Decoding files and streams with PyAV (FFmpeg in its wheels): video frames and 16 kHz mono audio.

Video frames are delivered twice: for display/face detection at most ``max_side`` pixels on the long
side (aspect kept, libswscale "area"), and for the model resized straight from the decoded YUV frame
to ``model_size`` x ``model_size`` with libswscale bilinear, which is how Nano-EmoX's training decoder
(decord over FFmpeg 4's ``scale`` filter) produced its frames. Audio of local files is decoded whole at
its native rate, down-mixed as training did (2 channels: mean; more: channel 0) and resampled with the
torchaudio-equivalent windowed sinc (``emox_edge.preprocess.resample``), piece by piece as it decodes.

Damage is survived, not fatal: packets are decoded one by one, an undecodable one is skipped and
counted in a ``DecodeLoss`` (its audio replaced by silence of the same length, so sound and pictures
stay in sync), and a read error part-way through a file ends the file there. What a file holds is
what decodes: the container's claimed duration is never used to make clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from emox_edge.errors import MediaError
from emox_edge.preprocess.resample import SincResampler, downmix

log = logging.getLogger(__name__)

# FFmpeg demuxers that turn text into pictures (ANSI art): a .txt file is no media for us.
TEXT_FORMATS = ("tty",)
EXPECTED = "a video or audio file (.mp4 .mkv .mov .webm .wav .mp3 ...)"
# Audio is resampled in pieces of this many seconds: few enough BLAS calls that idle BLAS threads do
# not spin between them (1 s pieces tripled the CPU time of a 60 s file), small enough to bound memory.
PIECE_S = 8


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds (``duration`` is what the container claims; clips never rely on it)."""

    has_video: bool
    has_audio: bool
    duration: float  # seconds (0.0 when unknown)
    fps: float
    width: int
    height: int


@dataclass
class DecodeLoss:
    """What could not be decoded from one file: counted and reported, never fatal on its own."""

    video_packets: int = 0
    audio_packets: int = 0
    audio_seconds: float = 0.0  # silence put in place of undecodable audio packets
    read_errors: int = 0  # the file could not be read to its end
    first_error: str = ""

    @property
    def total(self) -> int:
        return self.video_packets + self.audio_packets + self.read_errors

    def note(self, error: Exception) -> None:
        if not self.first_error:
            self.first_error = str(error).splitlines()[0][:200] if str(error) else type(error).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"video_packets_skipped": self.video_packets, "audio_packets_skipped": self.audio_packets,
                "audio_seconds_lost": round(self.audio_seconds, 3), "read_errors": self.read_errors}

    def describe(self) -> str:
        parts = []
        if self.video_packets:
            parts.append(f"{self.video_packets} undecodable video packet(s) skipped")
        if self.audio_packets:
            parts.append(f"{self.audio_packets} undecodable audio packet(s) replaced by "
                         f"{self.audio_seconds:.2f} s of silence")
        if self.read_errors:
            parts.append("the file could not be read to its end")
        return "; ".join(parts) + (f" (first error: {self.first_error})" if self.first_error else "")


def _open(target: str, *, timeout: float | None = None):
    import av

    try:
        if timeout is None:
            return av.open(target)
        return av.open(target, timeout=timeout)
    except av.error.FileNotFoundError as exc:
        raise FileNotFoundError(f"media file not found: {target}") from exc
    except av.error.PermissionError as exc:
        raise PermissionError(f"{target}: permission denied while opening it as media") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"{target}: corrupt or unsupported media file ({exc}); expected {EXPECTED}") from exc


def open_container(target: str | Path, *, timeout: float | None = None):
    """Open a file with PyAV, turning its errors into built-in ones naming the file.

    Raises:
        FileNotFoundError, PermissionError: as the OS says.
        MediaError: FFmpeg cannot open it as media.
    """
    return _open(str(target), timeout=timeout)


def probe(target: str | Path) -> MediaInfo:
    """Streams and claimed duration of a media file.

    Raises:
        FileNotFoundError: no such file.
        MediaError: not a readable media file, text, or a file with neither video nor audio.
    """
    with open_container(target) as container:
        return _info(container, str(target))


def _info(container, name: str) -> MediaInfo:
    if container.format.name in TEXT_FORMATS:
        raise MediaError(f"{name}: a text file, not media (FFmpeg would render it as text); expected {EXPECTED}")
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise MediaError(f"{name}: the file has neither a video nor an audio stream; expected {EXPECTED}")
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


def _packets(container, stream, loss: DecodeLoss, name: str) -> Iterator[Any]:
    """Demuxed packets of ``stream``; a read error ends the file there (counted in ``loss``)."""
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            loss.read_errors += 1
            loss.note(exc)
            log.debug("%s: reading stopped: %s", name, exc)
            return
        yield packet


def decode_packet(packet, loss: DecodeLoss, kind: str) -> list:
    """The frames of one packet; an undecodable packet gives none (counted in ``loss``)."""
    import av

    try:
        return packet.decode()
    except av.error.FFmpegError as exc:
        setattr(loss, f"{kind}_packets", getattr(loss, f"{kind}_packets") + 1)
        loss.note(exc)
        return []


def read_audio(target: str | Path, *, sample_rate: int = 16000, loss: DecodeLoss | None = None) -> np.ndarray:
    """The whole audio track as mono float32 at ``sample_rate`` (empty when there is none).

    Decoded, down-mixed and resampled packet by packet (``SincResampler``: the same samples as
    resampling the whole track at once), so only the output is held. An undecodable packet becomes
    silence of its length (counted in ``loss``).

    Raises:
        FileNotFoundError / MediaError: as ``open_container``.
    """
    import av

    loss = loss if loss is not None else DecodeLoss()
    name = str(target)
    with open_container(target) as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        stream = container.streams.audio[0]
        converter = av.AudioResampler(format="fltp")  # planar float at the native rate and layout
        out: list[np.ndarray] = []
        rate = int(stream.codec_context.sample_rate or sample_rate)
        resampler = SincResampler(rate, sample_rate)
        piece: list[np.ndarray] = []  # native-rate samples, handed to the resampler every PIECE_S seconds

        def feed(samples: np.ndarray | None) -> None:
            if samples is not None:
                piece.append(samples)
            if piece and (samples is None or sum(p.size for p in piece) >= PIECE_S * rate):
                out.append(resampler.push(np.concatenate(piece)))
                piece.clear()

        for packet in _packets(container, stream, loss, name):
            before = loss.audio_packets
            frames = decode_packet(packet, loss, "audio")
            if loss.audio_packets > before:
                seconds = float(packet.duration * packet.time_base) if packet.duration and packet.time_base else 0.0
                seconds = seconds or (stream.codec_context.frame_size or 1024) / float(rate)
                loss.audio_seconds += seconds
                feed(np.zeros(int(round(seconds * rate)), np.float32))
                continue
            for frame in frames:
                if frame.sample_rate != rate:  # the rate changed mid-stream: finish the old one
                    feed(None)
                    out.append(resampler.flush())
                    rate, resampler = int(frame.sample_rate), SincResampler(int(frame.sample_rate), sample_rate)
                    converter = av.AudioResampler(format="fltp")
                try:
                    converted = converter.resample(frame)
                except (ValueError, av.error.FFmpegError) as exc:  # the layout changed mid-stream
                    loss.audio_packets += 1
                    loss.note(exc)
                    continue
                for part in converted:
                    feed(downmix(part.to_ndarray()))
        feed(None)
        out.append(resampler.flush())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def iter_video_frames(target: str | Path, *, loss: DecodeLoss | None = None) -> Iterator[tuple[float, Any]]:
    """Yield ``(seconds, av.VideoFrame)`` for every decodable frame of the first video stream.

    Seconds count from the stream's start; undecodable packets are skipped (counted in ``loss``).

    Raises:
        FileNotFoundError / MediaError: as ``open_container``.
    """
    loss = loss if loss is not None else DecodeLoss()
    name = str(target)
    with open_container(target) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
        last = -step
        for packet in _packets(container, stream, loss, name):
            for frame in decode_packet(packet, loss, "video"):
                last = float(frame.time) - start if frame.time is not None else last + step
                yield last, frame
        if loss.read_errors:  # frames still inside the decoder when reading stopped
            try:
                tail = stream.codec_context.decode(None)
            except Exception as exc:  # noqa: BLE001 - a broken decoder at the end of a broken file
                loss.note(exc)
                tail = []
            for frame in tail:
                last = float(frame.time) - start if frame.time is not None else last + step
                yield last, frame


class FrameConverter:
    """Turns decoded frames into (display RGB, model RGB) arrays; see the module doc."""

    def __init__(self, *, model_size: int = 224, max_side: int | None = 640) -> None:
        self.model_size = model_size
        self.max_side = max_side
        self._size: tuple[int, int] | None = None

    def __call__(self, frame) -> tuple[np.ndarray, np.ndarray]:
        if self._size is None:
            self._size = display_size(frame.width, frame.height, self.max_side)
        display = frame.reformat(width=self._size[0], height=self._size[1], format="rgb24", interpolation="AREA")
        model = frame.reformat(width=self.model_size, height=self.model_size, format="rgb24", interpolation="BILINEAR")
        return display.to_ndarray(), model.to_ndarray()


def iter_video(
    target: str | Path,
    *,
    model_size: int = 224,
    max_side: int | None = 640,
    loss: DecodeLoss | None = None,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Yield ``(seconds, display_rgb, model_rgb)`` for every decodable frame of the first video stream.

    Raises:
        FileNotFoundError / MediaError: as ``open_container``.
    """
    convert = FrameConverter(model_size=model_size, max_side=max_side)
    for t, frame in iter_video_frames(target, loss=loss):
        yield (t, *convert(frame))
