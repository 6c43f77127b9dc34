"""``LanguageCore.run_batch``: several prompts in one context, shared prefixes once, answers together."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.errors import BadInputError
from emox_edge.llm import BatchRequest, GenerationResult, LanguageCore, Scores, label_grammar

QUESTIONS = [
    "[Recogn_OV] Please recognize all possible emotional states of the character.",
    "[Sentiment] What is the sentiment of the character? Positive, negative or neutral?",
    "[Intent] What does the character want?",
    "[Reason] Why does the character feel this way?",
]


@pytest.fixture()
def pair(tiny_f32):
    """Two cores over the F32 model with flash attention off: batched and one-by-one runs compare exactly."""
    with LanguageCore.from_file(tiny_f32, n_ctx=2048, flash_attn="off", n_seq=16) as batched, \
            LanguageCore.from_file(tiny_f32, n_ctx=2048, flash_attn="off", prefix_cache=False) as alone:
        yield batched, alone


def _prompts(core, nano_emox_prompt, seed=3):
    """The same clip (injected rows) asked four questions."""
    return [nano_emox_prompt(core, np.random.default_rng(seed), question=q) for q in QUESTIONS]


def test_batched_answers_equal_answers_alone(pair, nano_emox_prompt):
    batched, alone = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=3)
    out = batched.run_batch([BatchRequest(p, max_new_tokens=12) for p in prompts])
    assert [type(o) for o in out] == [GenerationResult] * len(prompts)
    for prompt, got in zip(prompts, out):
        ref = alone.generate(prompt, max_new_tokens=12)
        assert got.token_ids == ref.token_ids
        assert got.n_prompt == ref.n_prompt
        assert got.n_generated == len(got.token_ids) > 0


def test_batched_logits_match_alone(pair, nano_emox_prompt):
    """The first answer token's distribution, batched vs alone: the parity gate of the batch path."""
    batched, alone = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=4)
    words = [" happy", " sad", " neutral", " angry"]
    cands = [w + "<|im_end|>" for w in words]
    out = batched.run_batch([BatchRequest(p, candidates=cands) for p in prompts])
    for prompt, scores in zip(prompts, out):
        assert isinstance(scores, Scores)
        logits = alone.next_token_logits(prompt).astype(np.float64)
        lse = logits.max() + np.log(np.exp(logits - logits.max()).sum())
        for cand, lp in zip(cands, scores.logprobs):
            ids = alone.tokenize(cand, special=True)
            rest = _teacher_forced(alone, prompt, ids)
            assert lp == pytest.approx(logits[ids[0]] - lse + rest, abs=1e-3)


def _teacher_forced(core, prompt, ids) -> float:
    """Sum of log p(ids[i] | prompt + ids[:i]) for i >= 1, one call per position."""
    total = 0.0
    for i in range(1, len(ids)):
        logits = core.next_token_logits([*prompt, list(ids[:i])]).astype(np.float64)
        total += logits[ids[i]] - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    return total


def test_shared_prefix_is_decoded_once(pair, nano_emox_prompt):
    batched, _ = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=5)
    sizes = [len(batched.tokenize(p[-1])) for p in prompts]
    batched.reset()
    before = batched.rows_decoded
    out = batched.run_batch([BatchRequest(p, max_new_tokens=2) for p in prompts])
    rows = batched.rows_decoded - before
    assert all(o.n_reused == 0 for o in out)
    # the injected rows and the text up to the question once, then each question's own tokens
    assert rows < out[0].n_prompt + sum(sizes[1:])
    assert rows > out[0].n_prompt + 3
    # every answer is kept in the cache: the same batch again decodes only each prompt's last position
    again = batched.run_batch([BatchRequest(p, max_new_tokens=2) for p in prompts])
    assert [o.n_reused for o in again] == [o.n_prompt - 1 for o in out]
    assert [o.token_ids for o in again] == [o.token_ids for o in out]


def test_a_continuation_reuses_its_answer(pair, nano_emox_prompt):
    """Empathize's reply continues its chain of thought: the second call reuses the first's answer."""
    batched, alone = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=10)
    batched.reset()
    first = batched.run_batch([BatchRequest(p, max_new_tokens=6) for p in prompts])
    follow = [*prompts[2], list(first[2].token_ids[:5]), " Therefore"]
    second = batched.run_batch([BatchRequest(follow, max_new_tokens=4)])[0]
    assert second.n_reused == first[2].n_prompt + 5
    assert second.token_ids == alone.generate(follow, max_new_tokens=4).token_ids


def test_generate_after_batch_and_batch_after_generate(pair, nano_emox_prompt):
    batched, alone = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=6)
    ref = alone.generate(prompts[1], max_new_tokens=10)
    batched.run_batch([BatchRequest(p, max_new_tokens=5) for p in prompts])
    assert batched.generate(prompts[1], max_new_tokens=10).token_ids == ref.token_ids
    out = batched.run_batch([BatchRequest(prompts[1], max_new_tokens=10), BatchRequest(prompts[2], max_new_tokens=3)])
    assert out[0].token_ids == ref.token_ids


def test_mixed_requests_grammar_scores_and_sampling(pair, nano_emox_prompt):
    batched, alone = pair
    prompts = _prompts(batched, nano_emox_prompt, seed=7)
    labels = ["positive", "negative", "neutral"]
    grammar = label_grammar(labels)
    requests = [BatchRequest(prompts[0], max_new_tokens=8, stop=("\n",)),
                BatchRequest(prompts[1], max_new_tokens=8, grammar=grammar),
                BatchRequest(prompts[1], candidates=labels),
                BatchRequest(prompts[3], max_new_tokens=6, temperature=0.8, seed=11, top_k=20)]
    out = batched.run_batch(requests)
    assert out[1].text in labels and out[1].stop_reason in ("grammar", "eos")
    assert out[1].text == alone.generate(prompts[1], max_new_tokens=8, grammar=grammar).text
    assert isinstance(out[2], Scores) and out[2].text in labels
    assert sum(out[2].probabilities().values()) == pytest.approx(1.0)
    sampled = alone.generate(prompts[3], max_new_tokens=6, temperature=0.8, seed=11, top_k=20)
    assert out[3].token_ids == sampled.token_ids  # same seed, same logits: the same sample


def test_streaming_pieces_and_waves(tiny_f32, nano_emox_prompt):
    """More answers than sequences run in waves; pieces arrive per request and join to the text."""
    with LanguageCore.from_file(tiny_f32, n_ctx=2048, flash_attn="off", n_seq=3) as core:
        prompts = _prompts(core, nano_emox_prompt, seed=8)
        pieces: dict[int, str] = {}
        out = core.run_batch([BatchRequest(p, max_new_tokens=6) for p in prompts],
                             on_piece=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
        assert [pieces.get(i, "") for i in range(len(prompts))] == [o.text for o in out]
        ref = [core.generate(p, max_new_tokens=6).token_ids for p in prompts]
        assert [o.token_ids for o in out] == ref


def test_quantized_batch_keeps_greedy_answers(tiny_k_q4km, nano_emox_prompt):
    """On Q4_K_M the kernels round differently per batch shape; greedy answers stay the same."""
    with LanguageCore.from_file(tiny_k_q4km, n_ctx=2048, flash_attn="off") as core:
        prompts = _prompts(core, nano_emox_prompt, seed=9)
        out = core.run_batch([BatchRequest(p, max_new_tokens=8) for p in prompts])
        core.prefix_cache = False
        agree = sum(o.token_ids[:3] == core.generate(p, max_new_tokens=8).token_ids[:3] for p, o in zip(prompts, out))
        assert agree >= len(prompts) - 1


def test_misuse(pair, nano_emox_prompt):
    batched, _ = pair
    prompt = _prompts(batched, nano_emox_prompt)[0]
    assert batched.run_batch([]) == []
    with pytest.raises(BadInputError, match="BatchRequest"):
        batched.run_batch([prompt])
    with pytest.raises(BadInputError, match="candidates"):
        batched.run_batch([BatchRequest(prompt, candidates=[])])
    with pytest.raises(BadInputError, match="candidate"):
        batched.run_batch([BatchRequest(prompt, candidates=["yes", ""])])
    with pytest.raises(BadInputError, match="max_new_tokens"):
        batched.run_batch([BatchRequest(prompt, max_new_tokens=-1)])
    with pytest.raises(BadInputError, match="n_seq"):
        batched.run_batch([BatchRequest(prompt, candidates=[f"w{i}" for i in range(17)])])
    # the core still works after refused calls
    assert batched.run_batch([BatchRequest(prompt, max_new_tokens=2)])[0].n_generated >= 1


def test_n_seq_is_capped_by_n_batch(tiny_f32):
    """llama.cpp aborts the process when a context has more sequences than n_batch: the core caps it."""
    with LanguageCore.from_file(tiny_f32, n_ctx=512, n_batch=16, n_seq=64) as core:
        assert core.n_seq_max == 16
        out = core.run_batch([BatchRequest("Hello", max_new_tokens=2), BatchRequest("Hello there", max_new_tokens=2)])
        assert all(o.n_generated == 2 for o in out)
