"""Fixtures of the language-core converter tests: a tiny random Qwen2, synthetic LoRA checkpoints and
one shared conversion (built once per session; every test that only reads it reuses it)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the converter tests need the [convert] extra (torch)")

from converters.llm.convert import LLMConvertOptions, convert_llm  # noqa: E402
from converters.testing.synthetic_lora import build_synthetic_checkpoint  # noqa: E402
from converters.testing.tiny_qwen import build_tiny_qwen2  # noqa: E402

# One llama.cpp thread: the tiny model decodes faster without thread hand-offs on a busy machine.
THREADS = 1


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("llm_convert_base") / "hf", seed=0)


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_base, tmp_path_factory) -> Path:
    return build_synthetic_checkpoint(tiny_base, tmp_path_factory.mktemp("llm_convert_ckpt") / "nano_emox.pth")


@pytest.fixture(scope="session")
def converted(tiny_base, tiny_ckpt, tmp_path_factory):
    """F16 + Q8_0 of the tiny base with the synthetic LoRA merged (default thresholds relaxed only
    where random weights are known to exaggerate the loss: see docs/llm-converter.md)."""
    out = tmp_path_factory.mktemp("llm_convert_out") / "out"
    return convert_llm(LLMConvertOptions(base=tiny_base, out=out, checkpoint=tiny_ckpt, quant=("f16", "q8_0"),
                                         n_threads=THREADS, progress=False))


@pytest.fixture
def ckpt_with(tiny_base, tmp_path):
    """Write a variant of the synthetic checkpoint: ``ckpt_with(extra={...}, drop=(...), ...)``."""

    def make(name: str = "variant.pth", **kwargs) -> Path:
        return build_synthetic_checkpoint(tiny_base, tmp_path / name, **kwargs)

    return make
