"""Generated media for tests, examples and benchmarks: a real face on video, real synthetic speech.

- ``make_face_video``: the astronaut portrait shipped with scikit-image (a real, smiling face), slowly
  panned and zoomed so frames differ, encoded with H.264 through PyAV (``face=False`` gives a scene
  with no face: moving colour bars).
- ``make_speech_wav``: espeak-ng speech (Debian package ``espeak-ng``) resampled with PyAV to 16 or
  44.1 kHz, mono or stereo, 16-bit PCM WAV, optionally padded with silence to a minimum length.
- ``make_silence_wav``: digital silence (or an empty WAV when ``seconds=0``).
- ``mux``: copy a video stream and an audio file into one container (MP4/MKV/MOV), audio as AAC.

Every writer goes through ``emox_edge._io.atomic_path``, so a failed generation leaves nothing behind.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from emox_edge._io import atomic_path

ESPEAK_HINT = "apt-get install -y espeak-ng"


def astronaut_rgb() -> np.ndarray:
    """The 512x512 RGB astronaut portrait of scikit-image (uint8)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _face_frame(base: np.ndarray, k: int, n: int, size: tuple[int, int]) -> np.ndarray:
    import cv2

    width, height = size
    h, w = base.shape[:2]
    t = k / max(n - 1, 1)
    zoom = 1.0 - 0.15 * t  # slow zoom in
    cw, ch = int(w * zoom), int(h * zoom)
    x0 = int((w - cw) * (0.5 + 0.3 * np.sin(2 * np.pi * t)) * 0.5)
    y0 = int((h - ch) * 0.25)
    crop = base[y0 : y0 + ch, x0 : x0 + cw]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def bars_frame(k: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    x = (np.arange(width)[None, :] + 4 * k) % width
    y = np.arange(height)[:, None]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (255 * x / width).astype(np.uint8)
    frame[..., 1] = (255 * y / height).astype(np.uint8)
    frame[..., 2] = ((x + y) % 64 * 4).astype(np.uint8)
    return frame


def make_face_video(
    path: str | Path,
    seconds: float = 3.0,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    *,
    face: bool = True,
    codec: str = "libx264",
) -> Path:
    """Write a silent video of ``seconds`` at ``fps`` and ``size=(width, height)``.

    With ``face=True`` every frame shows the astronaut's face (panned and zoomed); with
    ``face=False`` moving colour bars (no face). Width and height must be even for H.264.
    """
    import av

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"size must have even width and height for H.264, got {size}")
    n = max(int(round(seconds * fps)), 1)
    base = astronaut_rgb() if face else None
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_container_format(path)) as out:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18", "preset": "veryfast"}
            for k in range(n):
                rgb = _face_frame(base, k, n, size) if face else bars_frame(k, size)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return path


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi", ".webm": "webm", ".ts": "mpegts"}.get(
        path.suffix.lower()
    )


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write float samples ``[S]`` or ``[S, C]`` in [-1, 1] as 16-bit PCM WAV, atomically."""
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as handle:
            handle.setnchannels(pcm.shape[1])
            handle.setsampwidth(2)
            handle.setframerate(int(rate))
            handle.writeframes(pcm.tobytes())
    return path


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample mono float32 audio with PyAV's swresample."""
    import av

    if rate_in == rate_out:
        return samples.astype(np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt", layout="mono")
    frame.sample_rate = rate_in
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def espeak_samples(text: str, *, voice: str = "en", speed: int = 150, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Synthesize ``text`` with espeak-ng; returns mono float32 samples and their rate (22050)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError(f"espeak-ng is not installed ({ESPEAK_HINT})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(out), "rb") as handle:
            rate = handle.getframerate()
            raw = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
            channels = handle.getnchannels()
    samples = raw.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0
    return samples, rate


def make_speech_wav(
    path: str | Path,
    text: str = "I am so happy to see you again, this is wonderful news.",
    rate: int = 16000,
    channels: int = 1,
    *,
    min_seconds: float = 0.0,
    voice: str = "en",
    speed: int = 150,
    pitch: int = 50,
) -> Path:
    """Write espeak-ng speech of ``text`` as a 16-bit WAV at ``rate`` Hz with ``channels`` (1 or 2).

    Stereo files carry the speech at full level on the left and at half level on the right, so a
    correct down-mix (the mean) is distinguishable from taking one channel. ``min_seconds`` pads
    the end with silence.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    samples, native = espeak_samples(text, voice=voice, speed=speed, pitch=pitch)
    samples = _resample(samples, native, int(rate))
    need = int(round(min_seconds * rate))
    if samples.size < need:
        samples = np.concatenate([samples, np.zeros(need - samples.size, np.float32)])
    if channels == 2:
        samples = np.stack([samples, 0.5 * samples], axis=1)
    return write_wav(Path(path), samples, rate)


def make_silence_wav(path: str | Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """Write ``seconds`` of digital silence (``seconds=0`` gives a valid WAV with no samples)."""
    return write_wav(Path(path), np.zeros(int(round(seconds * rate)), np.float32), rate)


def mux(video: str | Path, audio: str | Path, out: str | Path, *, audio_codec: str = "aac") -> Path:
    """Copy the video stream of ``video`` and encode ``audio`` (any PyAV-readable file) into ``out``.

    The container follows ``out``'s suffix (.mp4, .mkv, .mov). Audio keeps its sample rate and
    channel count. The result lasts as long as the longer of the two inputs.
    """
    import av

    out = Path(out)
    with atomic_path(out) as tmp:
        with av.open(str(video)) as vin, av.open(str(audio)) as ain, av.open(
            str(tmp), mode="w", format=_container_format(out)
        ) as dst:
            vsrc = vin.streams.video[0]
            asrc = ain.streams.audio[0]
            vdst = dst.add_stream_from_template(vsrc)
            adst = dst.add_stream(audio_codec, rate=asrc.rate)
            layout = {1: "mono", 2: "stereo"}.get(asrc.codec_context.channels, asrc.layout.name)
            adst.layout = layout
            fmt = adst.codec_context.codec.audio_formats[0].name
            resampler = av.AudioResampler(format=fmt, layout=layout, rate=asrc.rate)
            for packet in vin.demux(vsrc):
                if packet.dts is None:
                    continue
                packet.stream = vdst
                dst.mux(packet)
            for frame in ain.decode(asrc):
                frame.pts = None
                for converted in resampler.resample(frame):
                    for packet in adst.encode(converted):
                        dst.mux(packet)
            for packet in adst.encode():
                dst.mux(packet)
    return out
