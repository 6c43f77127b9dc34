"""Fixtures of the runtime tests: generated media (real face, espeak-ng speech) and the tiny bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from converters.testing import media

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install -y espeak-ng)")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Generated media, made once per session.

    face.mp4 (3 s, 25 fps, 320x240, the astronaut), bars.mp4 (2 s, no face), speech16.wav (16 kHz mono,
    padded to 3.5 s), speech44s.wav (44.1 kHz stereo), clip.mp4 / clip.ts (face + 44.1 kHz stereo speech as AAC),
    short.mp4 (1 s face + speech), silence.wav (2 s), empty.wav (0 samples), corrupt.mp4 (garbage),
    face.png (one frame).
    """
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    root = tmp_path_factory.mktemp("media")
    media.make_face_video(root / "face.mp4", 3.0, 25, (320, 240))
    media.make_face_video(root / "bars.mp4", 2.0, 25, (320, 240), face=False)
    media.make_speech_wav(root / "speech16.wav", "I am so happy to see you again.", 16000, 1, min_seconds=3.5)
    media.make_speech_wav(root / "speech44s.wav", "This is wonderful news for all of us.", 44100, 2)
    media.mux(root / "face.mp4", root / "speech44s.wav", root / "clip.mp4")
    media.mux(root / "face.mp4", root / "speech44s.wav", root / "clip.ts")  # streamable (MPEG-TS)
    media.make_face_video(root / "face1s.mp4", 1.0, 25, (320, 240))
    media.make_speech_wav(root / "hello.wav", "Hello there.", 16000, 1)
    media.mux(root / "face1s.mp4", root / "hello.wav", root / "short.mp4")
    media.make_silence_wav(root / "silence.wav", 2.0)
    media.make_silence_wav(root / "empty.wav", 0.0)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    import cv2

    cv2.imwrite(str(root / "face.png"), cv2.cvtColor(media.astronaut_rgb(), cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="session")
def analyzer(tiny_bundle):
    """A deterministic Analyzer on the tiny Nano-EmoX bundle (session-wide; tests must not close it)."""
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions

    # n_threads=1: on a shared, oversubscribed CPU llama.cpp threads spin-wait on each other (see docs/runtime.md)
    pipe = Analyzer.from_bundle(tiny_bundle, AnalyzerOptions(deterministic=True, max_new_tokens=24, n_ctx=1024, n_threads=1))
    yield pipe
    pipe.close()


class PacedCapture:
    """OS-edge stand-in for ``cv2.VideoCapture(index)``: a real ``cv2.VideoCapture`` on a generated video
    file, paced to its frame rate. After ``fail_after`` frames it stops delivering (a camera unplugged)."""

    def __init__(self, path: Path, *, fps: float = 25.0, fail_after: int | None = None, loop: bool = True) -> None:
        import cv2

        self._cap = cv2.VideoCapture(str(path))
        self._path = path
        self._period = 1.0 / fps
        self._next = time.monotonic()
        self._fail_after = fail_after
        self._loop = loop
        self.delivered = 0

    def isOpened(self) -> bool:
        return self._cap.isOpened()

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        if self._fail_after is not None and self.delivered >= self._fail_after:
            time.sleep(0.01)
            return False, None
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._period, time.monotonic() - self._period)
        ok, frame = self._cap.read()
        if not ok and self._loop:
            import cv2

            self._cap.release()
            self._cap = cv2.VideoCapture(str(self._path))
            ok, frame = self._cap.read()
        if ok:
            self.delivered += 1
        return ok, frame

    def release(self) -> None:
        self._cap.release()


@pytest.fixture
def paced_capture(media_dir):
    """Factory ``index -> PacedCapture`` over face.mp4 (records every capture it made)."""
    made: list[PacedCapture] = []

    def factory(index: int, **kwargs) -> PacedCapture:
        cap = PacedCapture(media_dir / "face.mp4", **kwargs)
        made.append(cap)
        return cap

    factory.made = made
    return factory


def astronaut_frames(n: int = 12, size=(160, 120)) -> np.ndarray:
    import cv2

    base = media.astronaut_rgb()
    return np.stack([cv2.resize(np.roll(base, 4 * k, axis=1), size) for k in range(n)])


@pytest.fixture(scope="session")
def pulse_source():
    """A PulseAudio null sink whose monitor is the default PortAudio input (skipped when unavailable)."""
    if not (shutil.which("pactl") and shutil.which("paplay")):
        pytest.skip("PulseAudio tools are not installed (apt-get install pulseaudio libasound2-plugins)")
    started = None
    if subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        if not shutil.which("pulseaudio"):
            pytest.skip("no PulseAudio server")
        started = subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True)
        if not any(subprocess.run(["pactl", "info"], capture_output=True).returncode == 0 or time.sleep(0.1)
                   for _ in range(50)):  # up to ~5 s for the daemon to answer
            pytest.skip("a PulseAudio server could not be started")
    module = subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=emox_test_sink"],
                            capture_output=True, text=True)
    if module.returncode != 0:
        pytest.skip(f"cannot create a PulseAudio null sink: {module.stderr.strip()}")
    subprocess.run(["pactl", "set-default-source", "emox_test_sink.monitor"], check=True)
    import sounddevice as sd

    sd._terminate()
    sd._initialize()  # PortAudio enumerates devices once: rescan
    if not any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        subprocess.run(["pactl", "unload-module", module.stdout.strip()])
        pytest.skip("PortAudio sees no input device (ALSA pulse plugin missing: apt-get install libasound2-plugins)")
    yield "emox_test_sink"
    subprocess.run(["pactl", "unload-module", module.stdout.strip()], capture_output=True)
    if started is not None:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True)
