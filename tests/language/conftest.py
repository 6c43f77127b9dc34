"""Fixtures of the language-building-block tests (vocabulary grammar, text sentiment, evaluation set).

``tiny_gguf``: the tiny random-weight Qwen2 of tests/llm (built offline in seconds; set
EMOX_TEST_CACHE to keep it). ``smollm2``: the real SmolLM2-135M-Instruct GGUF the lite bundle ships,
fetched once into ``$EMOX_EDGE_HOME`` like tests/lite does (one llama.cpp thread: the machine is shared).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    from converters.testing.tiny_qwen import tiny_qwen2_gguf

    env = os.environ.get("EMOX_TEST_CACHE")
    cache = Path(env) / "llm" if env else tmp_path_factory.mktemp("tiny-qwen2")
    cache.mkdir(parents=True, exist_ok=True)
    return tiny_qwen2_gguf(cache, out_type="f16")


@pytest.fixture(scope="session")
def smollm2():
    from converters.lite.sources import fetch
    from emox_edge.llm import LanguageCore

    with LanguageCore.from_file(fetch("smollm2-135m"), n_ctx=1024, n_threads=1) as core:
        yield core
