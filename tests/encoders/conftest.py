"""Fixtures of the encoder-converter tests: tiny sources and one CLI conversion per session.

The tiny bundle fixture is shared with the runtime tests and lives in tests/conftest.py.
"""

from __future__ import annotations

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
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A ``convert llm``-style output directory (llm-f16.gguf) whose width matches the tiny adapters (64)."""
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.testing.tiny_qwen import build_tiny_qwen2

    root = tmp_path_factory.mktemp("tiny-llm")
    hf = build_tiny_qwen2(root / "hf", hidden_size=TinySizes().llm_width)
    write_qwen2_gguf(hf, root / "out" / "llm-f16.gguf", out_type="f16")
    return root / "out"
