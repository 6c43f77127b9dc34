"""Fixtures of the scale-out tests: one real local Ray instance per run (2 CPUs, a 100 MB object store,
no dashboard, loopback only; shut down at the end), the analysis deployed on it as ``emox-edge serve
--ray`` does, the single-process server beside it for comparison, and generated media.

No mocks: real Ray, real Ray Serve replicas in their own processes, real uvicorn + FastAPI, real models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("websockets", reason="the serve extra is not installed (pip install -e '.[serve]')")

HAVE_ESPEAK = shutil.which("espeak-ng") is not None


def tiny_options():
    from emox_edge.options import AnalyzerOptions

    return AnalyzerOptions(deterministic=True, max_new_tokens=8, n_ctx=1024, n_threads=1)


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray instance for the whole run, started the way ``emox-edge serve --ray`` starts one."""
    pytest.importorskip("ray.serve", reason="the ray extra is not installed (pip install -e '.[ray]')")
    import ray
    from ray import serve

    from emox_edge.scaleout.cluster import start_ray
    from emox_edge.scaleout.options import ScaleoutOptions

    started = start_ray(ScaleoutOptions(num_cpus=2, object_store_mb=100))
    yield ray
    if started:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_analysis(ray_instance, tiny_bundle):
    """A perception and a language replica on the tiny Nano-EmoX bundle (deterministic, 1 thread each;
    half a CPU each, so that the lite bundle's pair fits beside them on the 2 CPUs)."""
    from emox_edge.scaleout import RayAnalysis, ScaleoutOptions

    analysis = RayAnalysis.start(tiny_bundle, tiny_options(),
                                 ScaleoutOptions(app_name="emox-test-tiny", request_timeout_s=120.0,
                                                 cpus_per_replica="0.5", batch_wait_ms=50.0))
    yield analysis
    analysis.close()


@pytest.fixture(scope="session")
def tiny_local(tiny_bundle):
    """The same analyzer in this process, behind the single-process server."""
    from emox_edge.analyzer import Analyzer

    analyzer = Analyzer.from_bundle(tiny_bundle, tiny_options())
    yield analyzer
    analyzer.close()


@pytest.fixture
def start_server():
    """``start_server(analyzers, **ServeOptions fields) -> Server`` on a free loopback port; stopped after."""
    from emox_edge.serve import ServeOptions, Server, create_app

    running = []

    def start(analyzers, **fields):
        options = ServeOptions(**{"port": 0, **fields})
        server = Server(create_app(list(analyzers), options), options).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def stream_media():
    """``(frames [30, 240, 320, 3], frame_times, audio float32 16 kHz)``: 3 s of the astronaut's face at
    10 fps, with espeak-ng speech (a tone when espeak-ng is absent)."""
    import cv2

    from converters.testing import media

    base = media.astronaut_rgb()
    frames = np.stack([cv2.resize(np.roll(base, 3 * k, axis=1), (320, 240)) for k in range(30)])
    times = np.arange(30, dtype=np.float64) / 10.0
    if HAVE_ESPEAK:
        speech, rate = media.espeak_samples("I am so happy to see you again.")
        audio = np.interp(np.arange(int(speech.size * 16000 / rate)) * rate / 16000, np.arange(speech.size),
                          speech).astype(np.float32)
    else:
        audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    audio = np.concatenate([audio, np.zeros(max(48000 - audio.size, 0), np.float32)])[:48000]
    return frames, times, audio


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory) -> Path:
    """A 2 s face video with speech (a silent one without espeak-ng), for /v1/analyze."""
    from converters.testing import media

    root = tmp_path_factory.mktemp("scaleout-uploads")
    media.make_face_video(root / "face.mp4", 2.0, 10, (160, 120))
    if not HAVE_ESPEAK:
        return root / "face.mp4"
    media.make_speech_wav(root / "speech.wav", "Hello there, how are you?", 16000, 1)
    return media.mux(root / "face.mp4", root / "speech.wav", root / "clip.mp4")


def answers(result: dict) -> dict:
    """What must match between servers: each task's label and text (timings and ids may differ)."""
    return {key: (task.get("label"), task.get("text")) for key, task in result["tasks"].items()}


def stream_answers(url: str, media, *, tasks=("emotion", "sentiment"), window_s: float = 1.0):
    """Stream ``media`` through the client; ``(answers per clip, spans, session)``."""
    from emox_edge.client import Client

    frames, times, audio = media
    with Client(url).stream(list(tasks), window_s=window_s) as session:
        session.feed(frames, times, audio)
        session.end()
        results = list(session.results(timeout=180))
    return [answers(r) for r in results], [(r["start"], r["end"]) for r in results], session
