"""The demo clip ``emox-edge run`` analyses on a machine without a camera.

It is made by the project itself, from two small assets shipped in ``emox_edge/data`` (see
``emox_edge/data/README.md``): a real face (scikit-image's astronaut, a public-domain NASA photo,
256 px JPEG) and a few seconds of speech synthesized once with espeak-ng (16 kHz WAV). The face
drifts slowly across a 640x480 frame (so detection and tracking have work to do) while the speech
plays; video H.264 + audio AAC in MP4, written with PyAV (a runtime dependency).
"""

from __future__ import annotations

import logging
import os
import wave
from importlib import resources
from pathlib import Path

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge._io import atomic_path

log = logging.getLogger(__name__)

FACE_IMAGE = "data/astronaut_256.jpg"
SPEECH_WAV = "data/demo_speech_16k.wav"
DEMO_TRANSCRIPT = ("Hi! I am so glad you came today. We finally finished the project, and it works really well. "
                   "Thank you for all your help!")
DEMO_NAME = "emox-demo.mp4"
WIDTH, HEIGHT, FPS = 640, 480, 15
LEAD_S = 0.5  # silence before and after the speech


def _asset(rel: str) -> bytes:
    return resources.files("emox_edge").joinpath(rel).read_bytes()


def load_face_image() -> np.ndarray:
    """The shipped face photo as uint8 RGB [256, 256, 3]."""
    import cv2

    data = np.frombuffer(_asset(FACE_IMAGE), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadInputError(f"emox_edge/{FACE_IMAGE} is not a readable JPEG; reinstall emox-edge")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_demo_speech() -> tuple[np.ndarray, int]:
    """The shipped speech as (float32 mono samples in [-1, 1], sample rate)."""
    import io

    with wave.open(io.BytesIO(_asset(SPEECH_WAV))) as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise BadInputError(f"emox_edge/{SPEECH_WAV}: expected 16-bit mono PCM")
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    return (pcm.astype(np.float32) / 32768.0), rate


def demo_frames(n_frames: int) -> np.ndarray:
    """uint8 RGB frames [n, 480, 640, 3]: the face (440 px) drifting left to right on a dark background."""
    import cv2

    face = cv2.resize(load_face_image(), (440, 440), interpolation=cv2.INTER_CUBIC)
    frames = np.empty((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(n_frames):
        frame = frames[i]
        frame[:] = (24, 28, 36)
        x = int(40 + 120 * i / max(n_frames - 1, 1))
        frame[20:460, x : x + 440] = face
    return frames


def ensure_demo_clip(path: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Return the demo clip's path, writing it first when missing (or when ``force``).

    Args:
        path: where to write it (default ``<EMOX_EDGE_HOME>/demo/emox-demo.mp4``).

    Raises:
        ImportError: PyAV (``av``) is missing.
    """
    from emox_edge.home import home

    target = Path(path).expanduser() if path is not None else home() / "demo" / DEMO_NAME
    if target.is_file() and target.stat().st_size > 0 and not force:
        return target
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a runtime dependency
        raise ImportError("writing the demo clip needs PyAV: pip install av") from exc
    speech, rate = load_demo_speech()
    lead = np.zeros(int(LEAD_S * rate), np.float32)
    audio = np.concatenate([lead, speech, lead])
    n_frames = int(np.ceil(len(audio) / rate * FPS))
    frames = demo_frames(n_frames)
    with atomic_path(target) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=FPS)
            video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            video.options = {"crf": "23", "preset": "veryfast"}
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono"
            for frame in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            block = 1024
            for start in range(0, len(audio), block):
                chunk = audio[start : start + block]
                if len(chunk) < block:
                    chunk = np.pad(chunk, (0, block - len(chunk)))
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = rate
                af.pts = start
                for packet in sound.encode(af):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    log.info("demo clip written to %s (%.1f s, %d frames)", target, len(audio) / rate, n_frames)
    return target
