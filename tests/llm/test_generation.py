"""Generation through real llama.cpp: grammar, stops, end-of-generation, streaming, sampling."""

from __future__ import annotations

import pytest

from emox_edge.llm import STOP_REASONS, GenerationResult, Stream, label_grammar
from emox_edge.llm.generation import TextAssembler

PROMPT = "###Human: How does the character feel? ###Assistant: "
LABELS = ["happy", "sad", "angry", "neutral", "worried", "surprise", 'say "hi"', "back\\slash"]


def test_grammar_answers_always_belong_to_labels(core):
    grammar = label_grammar(LABELS)
    answers = []
    for seed in range(12):
        result = core.generate(PROMPT, grammar=grammar, temperature=1.5, top_k=0, seed=seed, max_new_tokens=16)
        assert result.text in LABELS, (seed, result.text)
        assert result.stop_reason == "grammar"
        answers.append(result.text)
    assert len(set(answers)) > 1  # sampling really explored the label set


def test_grammar_with_greedy_and_top_p(core):
    grammar = label_grammar(["positive", "negative", "neutral"])
    greedy = core.generate(PROMPT, grammar=grammar, max_new_tokens=16)
    assert greedy.text in ("positive", "negative", "neutral")
    nucleus = core.generate(PROMPT, grammar=grammar, temperature=0.8, top_p=0.9, top_k=40, seed=3)
    assert nucleus.text in ("positive", "negative", "neutral")


def test_same_seed_same_sample_and_seeds_differ(core):
    runs = [core.generate(PROMPT, temperature=1.0, seed=s, max_new_tokens=12).token_ids for s in (7, 7, 8, 9)]
    assert runs[0] == runs[1]
    assert len({runs[0], runs[2], runs[3]}) > 1


def _greedy_text(core, n=24) -> str:
    result = core.generate(PROMPT, max_new_tokens=n)
    assert result.stop_reason == "length" and result.n_generated == n
    return result.text


def test_string_stop_is_removed_and_never_streamed(core):
    full = _greedy_text(core)
    # a stop string that starts inside one token and ends in a later one
    stop = full[4:11]
    cut = full.find(stop)
    result = core.generate(PROMPT, max_new_tokens=24, stop=["never-there", stop])
    assert result.stop_reason == "stop"
    assert result.text == full[:cut]
    assert stop not in result.text
    stream = core.generate(PROMPT, max_new_tokens=24, stop=[stop], stream=True)
    pieces = list(stream)
    assert "".join(pieces) == full[:cut]
    assert all(stop not in p for p in pieces)
    assert stream.result.stop_reason == "stop"


def test_stop_absent_keeps_full_text(core):
    full = _greedy_text(core)
    result = core.generate(PROMPT, max_new_tokens=24, stop="###nothing###")
    assert result.text == full and result.stop_reason == "length"


def test_eog_token_stops_generation(core):
    im_end = core.tokenize("<|im_end|>")
    assert len(im_end) == 1 and im_end[0] in core.eog_token_ids
    free = core.generate(PROMPT, max_new_tokens=6)
    # a strong bias makes <|im_end|> the pick: at once, or after a prompt that continues 3 tokens
    forced = core.generate(PROMPT, max_new_tokens=6, logit_bias={im_end[0]: 1e4})
    assert forced.stop_reason == "eos" and forced.text == "" and forced.token_ids == ()
    ended = core.generate([PROMPT, list(free.token_ids[:3])], max_new_tokens=40, logit_bias={im_end[0]: 1e4})
    assert ended.stop_reason == "eos" and ended.n_generated == 0
    # banning every end-of-generation token never stops early
    banned = core.generate(PROMPT, max_new_tokens=30, logit_bias={t: float("-inf") for t in core.eog_token_ids})
    assert banned.stop_reason == "length" and banned.n_generated == 30


def test_stream_pieces_join_to_non_stream_text(core):
    plain = core.generate(PROMPT, max_new_tokens=20)
    stream = core.generate(PROMPT, max_new_tokens=20, stream=True)
    assert isinstance(stream, Stream)
    pieces = list(stream)
    assert "".join(pieces) == plain.text
    assert stream.done and isinstance(stream.result, GenerationResult)
    assert stream.result.token_ids == plain.token_ids


def test_stream_result_drains_and_close_early(core):
    stream = core.generate(PROMPT, max_new_tokens=10, stream=True)
    assert stream.result.n_generated == 10  # reading .result runs it to the end
    early = core.generate(PROMPT, max_new_tokens=10, stream=True)
    next(iter(early))
    early.close()
    with pytest.raises(RuntimeError, match="closed"):
        early.result
    # a new call on the core closes an unfinished stream, and the core stays usable
    dangling = core.generate(PROMPT, max_new_tokens=10, stream=True)
    next(dangling)
    again = core.generate(PROMPT, max_new_tokens=10)
    assert list(dangling) == [] and again.n_generated == 10


def test_result_fields(core):
    result = core.generate(PROMPT, max_new_tokens=5)
    assert result.stop_reason in STOP_REASONS
    assert result.n_prompt == len(core.tokenize(PROMPT))
    assert result.n_generated == len(result.token_ids) == 5
    assert result.decode_tokens_per_s > 0 and result.decode_ms > 0
    assert core.detokenize(list(result.token_ids)) == result.text
    assert result.to_dict()["token_ids"] == list(result.token_ids)
    zero = core.generate(PROMPT, max_new_tokens=0)
    assert zero.n_generated == 0 and zero.stop_reason == "length" and zero.text == ""


def test_repeat_penalty_changes_a_repetitive_greedy_output(core):
    plain = core.generate(PROMPT, max_new_tokens=16)
    penal = core.generate(PROMPT, max_new_tokens=16, repeat_penalty=3.0)
    assert len(set(plain.token_ids)) < len(plain.token_ids)  # the random model repeats itself
    assert penal.token_ids != plain.token_ids
    assert len(set(penal.token_ids)) > len(set(plain.token_ids))


def test_generation_stops_at_full_context(tiny_f16):
    from emox_edge.llm import LanguageCore

    with LanguageCore.from_file(tiny_f16, n_ctx=256) as small:
        prompt = small.tokenize("word " * 250)[:250]
        result = small.generate([prompt], max_new_tokens=100)
    assert result.stop_reason == "length"
    assert result.n_prompt + result.n_generated == small.n_ctx + 1  # the last token needs no decode


@pytest.mark.parametrize(
    "chunks, stops, want_pieces, want_stop",
    [
        ([b"Hel", b"lo ##", b"# rest"], ["###"], ["Hel", "lo ", ""], True),
        ([b"a#", b"b"], ["##"], ["a", "#b"], False),
        ([b"\xe2\x82", b"\xac ok"], [], ["", "€ ok"], False),
        ([b"x", b"STOP"], ["STOP"], ["x", ""], True),
    ],
)
def test_text_assembler_holds_back_partial_stops(chunks, stops, want_pieces, want_stop):
    asm = TextAssembler(stops)
    pieces, stopped = [], False
    for data in chunks:
        piece, stopped = asm.push(data)
        pieces.append(piece)
        if stopped:
            break
    if not stopped:
        pieces[-1] += asm.finish()
    assert pieces == want_pieces and stopped == want_stop
    assert asm.text == "".join(want_pieces)
