"""Fixtures of the server tests: one analyzer on the tiny bundle, servers started per test on a free
loopback port (real uvicorn, real FastAPI, real models), and generated media to stream.

The tiny nano-emox bundle comes from the project-wide ``tiny_bundle`` fixture (tests/conftest.py); the
lite bundle (browser test, benchmark) from the same builder as tests/lite/conftest.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("websockets", reason="the serve extra is not installed (pip install -e '.[serve]')")

HAVE_ESPEAK = shutil.which("espeak-ng") is not None


@pytest.fixture(scope="session")
def serve_analyzer(tiny_bundle):
    """A deterministic analyzer on the tiny bundle, shared by the servers of every test (one at a time)."""
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions

    analyzer = Analyzer.from_bundle(tiny_bundle, AnalyzerOptions(deterministic=True, max_new_tokens=8, n_ctx=1024,
                                                                 n_threads=1))
    yield analyzer
    analyzer.close()


@pytest.fixture(scope="session")
def lite_bundle_dir() -> Path:
    from converters.lite.build import build_lite_bundle

    return build_lite_bundle()


@pytest.fixture
def start_server(serve_analyzer):
    """``start_server(**ServeOptions fields) -> Server`` (port 0 = a free one); stopped after the test.

    Only one runs at a time on the shared analyzer: the analyzer is not thread-safe.
    """
    from emox_edge.serve import ServeOptions, Server, create_app

    running = []

    def start(analyzers=None, **fields):
        for server in running:
            server.stop()
        options = ServeOptions(**{"port": 0, **fields})
        server = Server(create_app(analyzers or [serve_analyzer], options), options).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def stream_media():
    """``(frames [N, 240, 320, 3], frame_times, audio float32 16 kHz)``: 3 s of the astronaut's face at
    10 fps and espeak-ng speech (a tone when espeak-ng is absent)."""
    import cv2

    from converters.testing import media

    base = media.astronaut_rgb()
    n = 30
    frames = np.stack([cv2.resize(np.roll(base, 3 * k, axis=1), (320, 240)) for k in range(n)])
    times = np.arange(n, dtype=np.float64) / 10.0
    if HAVE_ESPEAK:
        speech, rate = media.espeak_samples("I am so happy to see you again.")
        audio = np.interp(np.arange(int(speech.size * 16000 / rate)) * rate / 16000, np.arange(speech.size),
                          speech).astype(np.float32)
    else:
        audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000 * 2) / 16000)).astype(np.float32)
    audio = np.concatenate([audio, np.zeros(max(48000 - audio.size, 0), np.float32)])[:48000]
    return frames, times, audio


@pytest.fixture(scope="session")
def upload_files(tmp_path_factory) -> dict[str, Path]:
    """clip.mp4 (2 s face video, with speech when espeak-ng is there), corrupt.mp4, notes.txt."""
    import os

    from converters.testing import media

    root = tmp_path_factory.mktemp("uploads")
    media.make_face_video(root / "face.mp4", 2.0, 10, (160, 120))
    if HAVE_ESPEAK:
        media.make_speech_wav(root / "speech.wav", "Hello there, how are you?", 16000, 1)
        media.mux(root / "face.mp4", root / "speech.wav", root / "clip.mp4")
    else:
        shutil.copy(root / "face.mp4", root / "clip.mp4")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    (root / "notes.txt").write_text("not media at all\n")
    return {"clip": root / "clip.mp4", "corrupt": root / "corrupt.mp4", "text": root / "notes.txt"}
