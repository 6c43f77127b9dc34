"""Fixtures of the language-core tests: tiny Qwen2 models built once per session.

Set EMOX_TEST_CACHE=/some/dir to keep the built models between sessions (builds are stamped with
their arguments, so a stale cache is rebuilt, never reused).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converters.testing.tiny_qwen import build_tiny_qwen2, tiny_qwen2_gguf

# hidden 256 so that K-quants (rows divisible by 256) really are K-quants, not fallbacks.
KQUANT_SHAPE = dict(hidden_size=256, intermediate_size=512, num_heads=4, num_kv_heads=2)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    env = os.environ.get("EMOX_TEST_CACHE")
    if env:
        path = Path(env) / "llm"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("tiny-qwen2")


@pytest.fixture(scope="session")
def tiny_hf(model_cache) -> Path:
    return build_tiny_qwen2(model_cache / "hf-default")


@pytest.fixture(scope="session")
def tiny_f16(model_cache, tiny_hf) -> Path:
    return tiny_qwen2_gguf(model_cache, out_type="f16")


@pytest.fixture(scope="session")
def tiny_f32(model_cache, tiny_hf) -> Path:
    return tiny_qwen2_gguf(model_cache, out_type="f32")


@pytest.fixture(scope="session")
def tiny_q8(model_cache, tiny_hf) -> Path:
    return tiny_qwen2_gguf(model_cache, quant="q8_0")


@pytest.fixture(scope="session")
def tiny_k_f16(model_cache) -> Path:
    return tiny_qwen2_gguf(model_cache, **KQUANT_SHAPE)


@pytest.fixture(scope="session")
def tiny_k_q4km(model_cache) -> Path:
    return tiny_qwen2_gguf(model_cache, quant="q4_k_m", **KQUANT_SHAPE)


@pytest.fixture(scope="session")
def tiny_gguf_by_type(tiny_f16, tiny_q8, tiny_k_q4km) -> dict[str, Path]:
    return {"f16": tiny_f16, "q8_0": tiny_q8, "q4_k_m": tiny_k_q4km}


@pytest.fixture()
def core(tiny_f16):
    from emox_edge.llm import LanguageCore

    with LanguageCore.from_file(tiny_f16, n_ctx=1024, n_batch=512) as c:
        yield c


@pytest.fixture(scope="session")
def nano_emox_prompt():
    """Builder of prompts of the Nano-EmoX shape: ``nano_emox_prompt(core, rng, **texts)``."""
    return _nano_emox_prompt


def _nano_emox_prompt(core, rng, *, subtitle: str = "I can't believe you did that!",
                      question: str = "[Recogn_OV] Please recognize all possible emotional states of the character."):
    """The Nano-EmoX prompt shape (spec §7.5): text, multi x1, text, audio x32, text, face x4, text,
    frame x32, text; the injected rows are random vectors of the model's width."""
    import numpy as np

    w = core.embedding_width

    def rows(n):
        return (rng.standard_normal((n, w)) * 0.05).astype(np.float32)

    return [
        "###Human: The audio and video merged info is: <Multi>", rows(1),
        "</Multi>. The audio content is as follows: <Audio>", rows(32),
        "</Audio>. Meanwhile, We uniformly extract facial informations from video: <Video>", rows(4),
        "</Video>. Meanwhile, we uniformly sample raw frames from the video: <Video>", rows(32),
        f"</Video>. The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. Now, please answer my "
        f"question based on all the provided information. {question} ###Assistant: ",
    ]
