"""converters/llm/parity.py + metadata.py: the metrics, the tokenizer check and the GGUF self-check."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from converters.llm import parity  # noqa: E402
from converters.llm.metadata import STOP_STRINGS_KEY, STOP_TOKEN_IDS_KEY, check_gguf_metadata  # noqa: E402
from emox_edge.llm import LanguageCore  # noqa: E402

THREADS = 1  # one llama.cpp thread: the tiny model gains nothing from more


def _reference(rng, lengths=(6, 9), text_len=12, vocab=50) -> parity.Reference:
    prompts = [list(rng.integers(0, vocab, n)) for n in lengths]
    text = list(rng.integers(0, vocab, text_len))
    return parity.Reference(
        prompts=prompts,
        prompt_logits=[rng.normal(size=(n, vocab)).astype(np.float32) for n in lengths],
        text=text,
        text_logits=rng.normal(size=(text_len, vocab)).astype(np.float32),
    )


def test_identical_logits_are_perfect():
    ref = _reference(np.random.default_rng(0))
    m = parity.compare(ref, [x.copy() for x in ref.prompt_logits], ref.text_logits.copy())
    assert m.top1 == 1.0 and m.max_abs_dlogit == 0.0 and m.mean_kl == pytest.approx(0.0, abs=1e-12)
    assert m.ppl == m.ppl_ref and m.ppl_change == 0.0
    assert m.n_positions == (6 - 1) + (9 - 1) + (12 - 1)


def test_position_zero_is_excluded():
    ref = _reference(np.random.default_rng(1))
    prompts = [x.copy() for x in ref.prompt_logits]
    text = ref.text_logits.copy()
    for arr in prompts + [text]:
        arr[0] = -arr[0] * 100.0  # wildly different first position only
    m = parity.compare(ref, prompts, text)
    assert m.top1 == 1.0 and m.max_abs_dlogit == 0.0
    assert parity.compare(ref, prompts, text, skip=0).top1 < 1.0


def test_metrics_match_hand_computation():
    rng = np.random.default_rng(2)
    ref = _reference(rng, lengths=(4,), text_len=5, vocab=7)
    noise_p = [x + rng.normal(scale=0.5, size=x.shape).astype(np.float32) for x in ref.prompt_logits]
    noise_t = ref.text_logits + rng.normal(scale=0.5, size=ref.text_logits.shape).astype(np.float32)
    m = parity.compare(ref, noise_p, noise_t)
    rows_r = np.concatenate([ref.prompt_logits[0][1:], ref.text_logits[1:]]).astype(np.float64)
    rows_t = np.concatenate([noise_p[0][1:], noise_t[1:]]).astype(np.float64)
    p = np.exp(rows_r) / np.exp(rows_r).sum(-1, keepdims=True)
    q = np.exp(rows_t) / np.exp(rows_t).sum(-1, keepdims=True)
    assert m.mean_kl == pytest.approx(float((p * np.log(p / q)).sum(-1).mean()), rel=1e-9)
    assert m.top1 == pytest.approx(float((rows_r.argmax(-1) == rows_t.argmax(-1)).mean()))
    assert m.max_abs_dlogit == pytest.approx(float(np.abs(rows_r - rows_t).max()), rel=1e-6)
    lp = np.log(p[len(ref.prompt_logits[0]) - 1:][:-1])  # text rows from position 1, all but the last
    nll = -lp[np.arange(3), ref.text[2:]]
    assert m.ppl_ref == pytest.approx(math.exp(nll.mean()), rel=1e-9)


def test_shape_mismatch_is_refused():
    ref = _reference(np.random.default_rng(3))
    with pytest.raises(ValueError, match="cannot be compared"):
        parity.compare(ref, [x[:, :-1] for x in ref.prompt_logits], ref.text_logits)


def test_thresholds_report_each_failure():
    m = parity.ParityMetrics(n_positions=10, max_abs_dlogit=0.5, top1=0.9, mean_kl=0.01, ppl=11.0, ppl_ref=10.0,
                             ppl_change=0.1)
    assert parity.Thresholds(min_top1=0.8, max_kl=0.1, max_ppl_change=0.2, max_abs_dlogit=1).failures(m) == []
    fails = parity.Thresholds(min_top1=0.95, max_kl=0.001, max_ppl_change=0.05, max_abs_dlogit=0.1).failures(m)
    assert len(fails) == 4 and "top-1" in fails[0] and "KL" in fails[1] and "perplexity" in fails[2]
    nan = parity.ParityMetrics(10, float("nan"), float("nan"), float("nan"), 1.0, 1.0, float("nan"))
    assert len(parity.Thresholds(min_top1=0.5, max_kl=1, max_ppl_change=1, max_abs_dlogit=1).failures(nan)) == 4


def test_tokenizer_check_passes_on_the_converted_gguf(converted, tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    with LanguageCore.from_file(converted.out / "llm-f16.gguf", n_ctx=256, n_threads=THREADS) as core:
        n = parity.check_tokenizer(core, tok, label="f16")
    assert n == len(parity.TOKENIZER_PROBES) + len(parity.SPECIAL_PROBES)


def test_tokenizer_check_catches_a_different_vocabulary(converted, tmp_path):
    from transformers import AutoTokenizer

    from converters.testing.tiny_qwen import build_tiny_qwen2

    other = build_tiny_qwen2(tmp_path / "other", vocab_size=700)
    tok = AutoTokenizer.from_pretrained(str(other))
    with LanguageCore.from_file(converted.out / "llm-f16.gguf", n_ctx=256, n_threads=THREADS) as core:
        with pytest.raises(parity.TokenizerMismatchError, match="llama.cpp tokenizes"):
            parity.check_tokenizer(core, tok, label="f16")


def test_gguf_carries_nano_emox_metadata(converted, tiny_base):
    import json

    cfg = json.loads((tiny_base / "config.json").read_text())
    for name in ("llm-f16.gguf", "llm-q8_0.gguf"):
        meta = check_gguf_metadata(converted.out / name, cfg)
        assert meta[STOP_STRINGS_KEY] == ["###"]
        gen = json.loads((tiny_base / "generation_config.json").read_text())
        assert set(gen["eos_token_id"]) <= set(meta[STOP_TOKEN_IDS_KEY])
        assert meta["nano_emox.lora_merged"] is True and meta["nano_emox.lora_r"] == 16
        assert meta["qwen2.context_length"] == cfg["max_position_embeddings"]
    bad = dict(cfg, max_position_embeddings=cfg["max_position_embeddings"] * 2, rope_theta=10000.0)
    with pytest.raises(RuntimeError, match="context_length.*rope.freq_base"):
        check_gguf_metadata(converted.out / "llm-f16.gguf", bad)
