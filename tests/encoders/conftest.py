"""Fixtures of the encoder-converter tests: tiny sources, one CLI conversion, one tiny bundle per session.

Set EMOX_TEST_CACHE=/some/dir to keep the tiny bundle between sessions (it is stamped with its
builder's arguments and rebuilt when they change).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converters.testing.tiny_encoders import TinySizes, build_tiny_encoders


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory):
    return build_tiny_encoders(tmp_path_factory.mktemp("tiny-encoders"), seed=0, sizes=TinySizes())


@pytest.fixture(scope="session")
def cli_conversion(tiny_sources, tmp_path_factory):
    """``emox-edge convert encoders`` run in-process on the tiny sources: (exit code, out dir)."""
    from emox_edge.cli.main import main

    out = tmp_path_factory.mktemp("converted") / "enc"
    code = main(["convert", "encoders", "--checkpoint", str(tiny_sources.checkpoint), "--clip", str(tiny_sources.clip),
                 "--hubert", str(tiny_sources.hubert), "--facexformer", str(tiny_sources.facexformer),
                 "--out", str(out), "--quiet"])
    return code, out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    from converters.testing.tiny_bundle import build_tiny_bundle

    env = os.environ.get("EMOX_TEST_CACHE")
    root = Path(env) / "encoders" if env else tmp_path_factory.mktemp("tiny-bundle")
    return build_tiny_bundle(root / "tiny-nano-emox")


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A ``convert llm``-style output directory (llm-f16.gguf) whose width matches the tiny adapters (64)."""
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.testing.tiny_qwen import build_tiny_qwen2

    root = tmp_path_factory.mktemp("tiny-llm")
    hf = build_tiny_qwen2(root / "hf", hidden_size=TinySizes().llm_width)
    write_qwen2_gguf(hf, root / "out" / "llm-f16.gguf", out_type="f16")
    return root / "out"
