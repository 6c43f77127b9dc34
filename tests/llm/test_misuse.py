"""Every misuse of the language core raises a built-in exception naming what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.llm import LanguageCore, label_grammar


def test_wrong_embedding_width(core):
    with pytest.raises(ValueError, match=rf"\(3, 7\).*\(n, {core.embedding_width}\)"):
        core.next_token_logits(["hi", np.zeros((3, 7), np.float32)])


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_wrong_embedding_dtype(core, dtype):
    with pytest.raises(ValueError, match="dtype.*float32|float32.*dtype"):
        core.next_token_logits(["hi", np.zeros((3, core.embedding_width), dtype)])


def test_one_dimensional_embedding_and_nan(core):
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        core.next_token_logits([np.zeros(core.embedding_width, np.float32)])
    bad = np.zeros((2, core.embedding_width), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        core.generate(["hi", bad])


def test_prompt_longer_than_context(tiny_f16):
    with LanguageCore.from_file(tiny_f16, n_ctx=256) as small:
        rows = np.zeros((300, small.embedding_width), np.float32)
        with pytest.raises(ValueError, match=r"305 positions.*n_ctx=256"):
            small.next_token_logits(["a b c d e"[:1], rows, [1, 2, 3, 4]])
        with pytest.raises(ValueError, match=r"n_ctx=256"):
            small.generate([rows], stream=True)  # raised at the call, not at the first piece
        assert small.generate("still usable", max_new_tokens=2).n_generated == 2


def test_unknown_segment_types(core):
    for bad in ([{"text": "hi"}], [3.5], [None], 42):
        with pytest.raises(TypeError, match="str .*list\\[int\\].*np.ndarray"):
            core.next_token_logits(bad)
    with pytest.raises(TypeError, match="wrap token ids"):
        core.next_token_logits([1, 2, 3])
    with pytest.raises(TypeError):
        core.next_token_logits([["a", "b"]])


def test_token_ids_out_of_range_and_empty_prompt(core):
    with pytest.raises(ValueError, match=rf"\[0, {core.n_vocab}\)"):
        core.next_token_logits([[1, core.n_vocab]])
    with pytest.raises(ValueError, match=r"\[0, "):
        core.token_embeddings([-1])
    with pytest.raises(ValueError, match="empty"):
        core.next_token_logits(["", []])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        LanguageCore.from_file(tmp_path / "nope.gguf")


def test_not_a_gguf_file(tmp_path):
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ValueError, match=r"not a GGUF file.*b'PK\\x03\\x04'"):
        LanguageCore.from_file(junk)


def test_damaged_gguf_is_an_error_not_an_abort(tiny_f16, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_f16.read_bytes()[:50_000])
    with pytest.raises(ValueError, match="could not load"):
        LanguageCore.from_file(cut)


def test_calls_after_close(tiny_f16):
    core = LanguageCore.from_file(tiny_f16, n_ctx=256)
    core.close()
    core.close()  # idempotent
    assert core.closed
    for call in (lambda: core.generate("hi"), lambda: core.next_token_logits("hi"),
                 lambda: core.tokenize("hi"), lambda: core.token_embeddings([1]), lambda: core.metadata):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_close_while_streaming(tiny_f16):
    core = LanguageCore.from_file(tiny_f16, n_ctx=256)
    stream = core.generate("hello", max_new_tokens=20, stream=True)
    next(stream)
    core.close()
    assert list(stream) == []
    with pytest.raises(RuntimeError):
        stream.result


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"repeat_penalty": 0.0}, "repeat_penalty"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"grammar": "root ::= (unclosed"}, "GBNF"),
        ({"logit_bias": {10**6: 1.0}}, r"\[0, "),
    ],
)
def test_bad_generate_arguments(core, kwargs, match):
    with pytest.raises(ValueError, match=match):
        core.generate("hi", **kwargs)


def test_bad_stop_and_grammar_types(core):
    with pytest.raises(TypeError, match="stop"):
        core.generate("hi", stop=[1, 2])
    with pytest.raises(TypeError, match="GBNF"):
        core.generate("hi", grammar=["happy"])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_ctx": 0}, "n_ctx"), ({"n_batch": -1}, "n_batch"), ({"n_threads": 0}, "n_threads"),
     ({"flash_attn": "maybe"}, "auto, off, on")],
)
def test_bad_from_file_arguments(tiny_f16, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LanguageCore.from_file(tiny_f16, **kwargs)


def test_label_grammar_misuse():
    with pytest.raises(ValueError, match="at least one"):
        label_grammar([])
    with pytest.raises(ValueError, match="non-empty"):
        label_grammar(["ok", ""])
    with pytest.raises(TypeError, match="list of strings"):
        label_grammar("happy")
    with pytest.raises(TypeError, match="expected str"):
        label_grammar(["happy", 3])
    assert label_grammar(['a"b', "c\\d", "e\nf", "a\"b"]) == 'root ::= "a\\"b" | "c\\\\d" | "e\\nf"\n'
