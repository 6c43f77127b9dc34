"""KV-cache reuse of the common prefix between consecutive calls."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.llm import LanguageCore


@pytest.fixture()
def pair(tiny_f16):
    """A warm core (reuses its cache) and a cold one (cache cleared before every call)."""
    with LanguageCore.from_file(tiny_f16, n_ctx=1024, flash_attn="off") as warm, \
            LanguageCore.from_file(tiny_f16, n_ctx=1024, flash_attn="off") as cold:
        yield warm, cold


def _cold(core: LanguageCore, prompt, **kw):
    core.reset()
    assert core.cached_positions == 0
    result = core.generate(prompt, **kw)
    assert result.n_reused == 0
    return result


def test_prefix_reuse_gives_cold_logits(pair, nano_emox_prompt):
    warm, cold = pair
    rng = np.random.default_rng(5)
    question = "[Recogn_OV] Identify all possible emotions the character may be experiencing."
    first = nano_emox_prompt(warm, rng, question=question)
    second = first[:-1] + [first[-1].replace("Identify all possible emotions", "What are the various emotional states")]
    warm.next_token_logits(first)
    reused = warm.generate(second, max_new_tokens=8)
    cold_run = _cold(cold, second, max_new_tokens=8)
    assert reused.n_reused > 69  # everything up to the question, injected rows included
    assert reused.n_reused < reused.n_prompt
    assert cold_run.n_reused == 0
    assert reused.token_ids == cold_run.token_ids
    warm.next_token_logits(first)
    warm_logits = warm.next_token_logits(second)
    cold.reset()
    np.testing.assert_allclose(warm_logits, cold.next_token_logits(second), atol=1e-5, rtol=0)


def test_reset_empties_the_cache(pair):
    warm, _ = pair
    warm.generate("hello there", max_new_tokens=3)
    assert warm.cached_positions == len(warm.tokenize("hello there")) + 2
    warm.reset()
    assert warm.cached_positions == 0
    assert warm.generate("hello there", max_new_tokens=3).n_reused == 0


def test_identical_prompt_reuses_all_but_one_position(pair):
    warm, _ = pair
    prompt = ["The character's emotional state is", np.full((5, warm.embedding_width), 0.01, np.float32), " so"]
    first = warm.generate(prompt, max_new_tokens=4)
    again = warm.generate(prompt, max_new_tokens=4)
    assert first.n_reused == 0
    assert again.n_reused == again.n_prompt - 1
    assert again.token_ids == first.token_ids


def test_changed_embedding_row_stops_reuse_there(pair):
    warm, cold = pair
    rng = np.random.default_rng(6)
    rows = (rng.standard_normal((10, warm.embedding_width)) * 0.05).astype(np.float32)
    head = warm.tokenize("###Human: <Audio>")
    warm.next_token_logits([head, rows, "</Audio> tail"])
    changed = rows.copy()
    changed[4, 0] += 1e-3  # one value of the fifth row
    result = warm.generate([head, changed, "</Audio> tail"], max_new_tokens=6)
    assert result.n_reused == len(head) + 4
    assert result.token_ids == _cold(cold, [head, changed, "</Audio> tail"], max_new_tokens=6).token_ids


def test_generated_tokens_stay_in_cache(pair):
    warm, cold = pair
    prompt = "###Human: Tell me how they feel. ###Assistant: "
    first = warm.generate(prompt, max_new_tokens=6)
    follow = [prompt, list(first.token_ids), " and then"]
    result = warm.generate(follow, max_new_tokens=6)
    # every generated token but the last was decoded into the cache during the first call
    assert result.n_reused == first.n_prompt + first.n_generated - 1
    assert result.token_ids == _cold(cold, follow, max_new_tokens=6).token_ids


def test_reuse_with_default_flash_attention_is_close(tiny_f16):
    """With llama.cpp's default (flash attention on CPU), re-decoding only the suffix rounds
    differently from a full prefill: measured up to 3.5e-3 (logit std ≈ 0.4)."""
    prompt = "word " * 150
    with LanguageCore.from_file(tiny_f16, n_ctx=512) as core:
        cold = core.next_token_logits(prompt)
        warm = core.next_token_logits(prompt)
    np.testing.assert_allclose(warm, cold, atol=2e-2, rtol=0)


def test_prefix_cache_off_never_reuses(tiny_f16):
    with LanguageCore.from_file(tiny_f16, n_ctx=512, prefix_cache=False) as core:
        assert core.prefix_cache is False
        first = core.generate("hello there friend", max_new_tokens=3)
        again = core.generate("hello there friend", max_new_tokens=3)
        assert first.n_reused == again.n_reused == 0
        assert again.token_ids == first.token_ids
        core.prefix_cache = True
        assert core.generate("hello there friend", max_new_tokens=3).n_reused > 0
