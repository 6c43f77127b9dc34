"""Embedding injection through real llama.cpp: token rows, arbitrary rows vs transformers, chunking."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.llm import LanguageCore

PRE = "###Human: The audio content is as follows: <Audio>"
POST = "</Audio>. Now, please answer my question based on all the provided information. ###Assistant: "
MIDDLE = "I can't believe you did that, it makes me so happy and a little worried!"


@pytest.mark.parametrize("qtype", ["f16", "q8_0", "q4_k_m"])
def test_own_token_rows_equal_token_ids(tiny_gguf_by_type, qtype):
    """Injecting the GGUF's own (dequantized) embedding rows is the same computation as the ids."""
    with LanguageCore.from_file(tiny_gguf_by_type[qtype], n_ctx=512) as core:
        ids = core.tokenize(MIDDLE)
        by_ids = core.next_token_logits([PRE, ids, POST])
        rows = core.token_embeddings(ids)
        assert rows.shape == (len(ids), core.embedding_width) and rows.dtype == np.float32
        by_rows = core.next_token_logits([PRE, rows, POST])
        np.testing.assert_allclose(by_rows, by_ids, atol=1e-4, rtol=0)
        # the prompt may also *end* on injected rows: logits come from the last row
        end_ids = core.next_token_logits([PRE, ids])
        end_rows = core.next_token_logits([PRE, rows])
        np.testing.assert_allclose(end_rows, end_ids, atol=1e-4, rtol=0)
        assert np.abs(end_ids - by_ids).max() > 1e-2  # different prompts really differ


def test_q4_k_m_fixture_is_k_quantized(tiny_k_q4km):
    import gguf

    reader = gguf.GGUFReader(tiny_k_q4km)
    types = {t.tensor_type.name for t in reader.tensors}
    assert types & {"Q4_K", "Q6_K"}, types


def test_arbitrary_rows_match_transformers_inputs_embeds(tiny_hf, tiny_f16):
    """llama.cpp (F16 GGUF) vs transformers fp32 ``inputs_embeds`` on text + random rows + text.

    Tolerance: logits have std ≈ 0.4 here; measured max |Δ| was 1.2e-3..1.9e-3 for both the F32 and
    the F16 GGUF (llama.cpp keeps the KV cache in F16, which dominates), over several random draws.
    ``atol=1e-2`` leaves a 5x margin, and the negative control below (rows shifted by one
    position) differs by far more, so a misplaced or mis-scaled row cannot pass.
    """
    torch = pytest.importorskip("torch")
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(tiny_hf, dtype=torch.float32).eval()
    embed = model.get_input_embeddings()
    rng = np.random.default_rng(1)
    with LanguageCore.from_file(tiny_f16, n_ctx=512) as core:
        pre, post = core.tokenize(PRE), core.tokenize(POST)
        rows = (rng.standard_normal((37, core.embedding_width)) * 0.05).astype(np.float32)
        got = core.next_token_logits([pre, rows, post])
        shifted = core.next_token_logits([pre, np.roll(rows, 1, axis=0), post])
    with torch.no_grad():
        seq = torch.cat([embed(torch.tensor(pre)), torch.from_numpy(rows), embed(torch.tensor(post))])
        ref = model(inputs_embeds=seq[None]).logits[0, -1].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-2, rtol=0)
    assert int(np.argmax(got)) == int(np.argmax(ref))
    assert np.abs(shifted - ref).max() > 5e-2


@pytest.mark.parametrize("flash_attn, atol", [("off", 1e-5), ("auto", 2e-2)])
def test_chunked_prefill_matches_unchunked(tiny_f16, nano_emox_prompt, flash_attn, atol):
    """n_batch=16 splits text and the 32-row runs across chunk borders; logits must not change.

    With flash attention off the result is bit-stable (measured Δ = 0). llama.cpp's CPU flash
    attention rounds its inputs to F16 with batch-size-dependent kernels: measured Δ up to 7e-3
    (logit std ≈ 0.4), hence 2e-2 there; dropping a single injected row moves the logits by 7.7e-2.
    """
    rng = np.random.default_rng(2)
    with LanguageCore.from_file(tiny_f16, n_ctx=512, n_batch=512, flash_attn=flash_attn) as whole, \
            LanguageCore.from_file(tiny_f16, n_ctx=512, n_batch=16, flash_attn=flash_attn) as chunked:
        prompt = nano_emox_prompt(whole, rng)
        n = sum(len(whole.tokenize(s)) if isinstance(s, str) else len(s) for s in prompt)
        assert n > 4 * 16
        np.testing.assert_allclose(chunked.next_token_logits(prompt), whole.next_token_logits(prompt),
                                   atol=atol, rtol=0)
        # one run of 69 rows (5 chunks) in a single segment, and a prompt ending on rows
        rows = (rng.standard_normal((69, whole.embedding_width)) * 0.05).astype(np.float32)
        for p in (["Hi", rows, "there"], ["Hi", rows]):
            np.testing.assert_allclose(chunked.next_token_logits(p), whole.next_token_logits(p), atol=atol, rtol=0)
        dropped = ["Hi", rows[1:], "there"]
        assert np.abs(whole.next_token_logits(dropped) - whole.next_token_logits(["Hi", rows, "there"])).max() > atol


def test_greedy_generation_after_injected_rows_equals_token_path(tiny_f16):
    with LanguageCore.from_file(tiny_f16, n_ctx=512) as core:
        ids = core.tokenize(MIDDLE)
        by_ids = core.generate([PRE, ids, POST], max_new_tokens=24, temperature=0.0)
        by_rows = core.generate([PRE, core.token_embeddings(ids), POST], max_new_tokens=24, temperature=0.0)
    assert by_ids.n_generated == 24
    assert by_rows.token_ids == by_ids.token_ids
    assert by_rows.text == by_ids.text


def test_nano_emox_shape_generates(core, nano_emox_prompt):
    rng = np.random.default_rng(3)
    prompt = nano_emox_prompt(core, rng)
    result = core.generate(prompt, max_new_tokens=8)
    text_positions = sum(len(core.tokenize(s)) for s in prompt if isinstance(s, str))
    assert result.n_prompt == text_positions + 69
    assert result.n_generated == len(result.token_ids) <= 8
    assert result.prefill_ms > 0 and result.first_token_ms >= result.prefill_ms


@pytest.mark.parametrize("n_batch", [16, 512])
def test_separate_token_and_embedding_batches_match_merged(tiny_f16, nano_emox_prompt, n_batch):
    """Mixed prompts are decoded as one stream of rows (text turned into its own embedding rows);
    the fallback decodes tokens and embeddings in separate batches. Both must agree."""
    rng = np.random.default_rng(4)
    with LanguageCore.from_file(tiny_f16, n_ctx=512, n_batch=n_batch, flash_attn="off") as merged, \
            LanguageCore.from_file(tiny_f16, n_ctx=512, n_batch=n_batch, flash_attn="off") as separate:
        separate._merge_rows = False  # noqa: SLF001 - force the fallback path
        prompt = nano_emox_prompt(merged, rng)
        np.testing.assert_allclose(separate.next_token_logits(prompt), merged.next_token_logits(prompt),
                                   atol=1e-5, rtol=0)
        a = merged.generate(prompt, max_new_tokens=10)
        b = separate.generate(prompt, max_new_tokens=10)
        assert a.token_ids == b.token_ids
