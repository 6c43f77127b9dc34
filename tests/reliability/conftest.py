"""Generated media for the reliability tests: tones instead of speech, colour bars instead of faces.

Nothing here needs espeak-ng, a camera or weights: videos are encoded with PyAV (libx264, ultrafast),
audio is a sine tone written as a 16-bit WAV and muxed as AAC.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from converters.testing.media import bars_frame, write_wav


def tone(seconds: float, rate: int = 44100, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def bars(k: int, width: int, height: int) -> np.ndarray:
    return bars_frame(k, (width, height))


def make_video(path: Path, seconds: float, *, fps: int = 25, size: tuple[int, int] = (320, 240),
               audio_rate: int | None = 44100) -> Path:
    """Colour bars (H.264) and, with ``audio_rate``, a 440 Hz tone (AAC) of the same length."""
    import av

    width, height = size
    n = int(round(seconds * fps))
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "28"}
        audio = None
        if audio_rate:
            audio = out.add_stream("aac", rate=audio_rate, layout="mono")
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(bars(k, width, height), format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            samples = tone(seconds, audio_rate)
            for lo in range(0, samples.size, audio_rate):
                chunk = av.AudioFrame.from_ndarray(samples[None, lo:lo + audio_rate], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = audio_rate, lo, Fraction(1, audio_rate)
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """short.mp4 (2 s, bars + tone), tone.wav (2 s, 16 kHz), empty.wav (0 frames), garbage.mp4."""
    root = tmp_path_factory.mktemp("reliability-media")
    make_video(root / "short.mp4", 2.0)
    write_wav(root / "tone.wav", tone(2.0, 16000), 16000)
    write_wav(root / "empty.wav", np.zeros(0, np.float32), 16000)
    (root / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4096))
    return root
