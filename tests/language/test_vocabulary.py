"""Open-vocabulary emotion: the word list, the GBNF grammar (in llama.cpp, on a tiny and a real model), the parser."""

from __future__ import annotations

import re

import pytest

from emox_edge.lite.vocabulary import (load_emotion_words, matches_grammar, open_vocab_grammar,
                                       parse_open_vocab_words)
from emox_edge.llm import LanguageCore


def gbnf_to_regex(grammar: str) -> re.Pattern:
    """The regular language of our grammar (literals, |, (), ?, rule references) as a Python regex."""
    rules = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())

    def expand(expr: str) -> str:
        out, i = [], 0
        while i < len(expr):
            ch = expr[i]
            if ch == '"':
                j = expr.index('"', i + 1)
                out.append(re.escape(expr[i + 1:j]))
                i = j + 1
            elif ch == "(":
                out.append("(?:")
                i += 1
            elif ch in ")|?":
                out.append(ch)
                i += 1
            elif ch.isalpha():
                name = re.match(r"[a-z]+", expr[i:]).group(0)
                out.append("(?:" + expand(rules[name]) + ")")
                i += len(name)
            else:
                i += 1  # spaces
        return "".join(out)

    return re.compile(expand(rules["root"]))


def test_word_list():
    words = load_emotion_words()
    assert 300 <= len(words) <= 800
    assert len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)
    for label in ("neutral", "angry", "happy", "sad", "worried", "surprise",  # MER
                  "anger", "joy", "sadness", "disgust", "fear"):               # MELD
        assert label in words
    for word in ("grateful", "heartbroken", "relief", "nervous", "frustrated", "lonely", "proud"):
        assert word in words


@pytest.mark.parametrize("max_words", [1, 2, 3])
def test_grammar_accepts_exactly_the_listed_words(max_words):
    words = load_emotion_words()
    pattern = gbnf_to_regex(open_vocab_grammar(words, max_words=max_words))
    assert all(pattern.fullmatch(w) for w in words)
    combo = ", ".join(words[:max_words])
    assert pattern.fullmatch(combo)
    for bad in ("", "sadd", "hap", "Happy", "happy,sad", "happy ,sad", "happy, ", " happy", "happy.",
                "emotionallypal", "iraqiwarismath", ", ".join(words[:max_words + 1])):
        assert not pattern.fullmatch(bad), bad


def test_grammar_is_a_trie():
    """Shared prefixes are spelled once: the word rule branches on first letters, not on 500 words."""
    words = load_emotion_words()
    rule = open_vocab_grammar(words).splitlines()[1].split(" ::= ", 1)[1]
    depth, top_level = 0, 1
    for ch in re.sub(r'"[^"]*"', "", rule):
        depth += ch == "("
        depth -= ch == ")"
        top_level += ch == "|" and depth == 0
    assert top_level == len({w[0] for w in words}) <= 26
    assert open_vocab_grammar(["sad", "sadness", "happy"], max_words=2) == (
        'root ::= word (", " word)?\nword ::= "happy" | "sad" ("ness")?\n')


def _check_answers(core, prompts, *, seeds, temperature):
    words = load_emotion_words()
    grammar = open_vocab_grammar(words)
    answers = []
    for prompt in prompts:
        for seed in seeds:
            out = core.generate(prompt, grammar=grammar, max_new_tokens=96, temperature=temperature,
                                seed=seed, repeat_penalty=1.3)
            assert out.stop_reason in ("grammar", "eos"), (out.text, out.stop_reason)
            assert matches_grammar(out.text, words), out.text
            parsed = parse_open_vocab_words(out.text, words)
            assert 1 <= len(parsed) <= 3 and all(w in words for w in parsed), out.text
            answers.append(out.text)
    return answers


def test_grammar_constrains_a_tiny_random_model(tiny_gguf):
    """A random-weight model would babble anything; under the grammar every answer is 1-3 listed words."""
    with LanguageCore.from_file(tiny_gguf, n_ctx=512, n_threads=1) as core:
        answers = _check_answers(core, ["The person feels", "Emotions:"], seeds=range(12), temperature=1.5)
    assert len(set(answers)) > 5  # sampling really explored the grammar


def test_grammar_constrains_smollm2(smollm2):
    """The real default core, which produced non-words ('iraqiwarismath') under the old [a-z]{3,14} grammar."""
    prompts = [
        f"<|im_start|>user\nA person says: \"{said}\". List up to three words for the emotions they feel, "
        f"most likely first, separated by commas.<|im_end|>\n<|im_start|>assistant\n"
        for said in ("My grandmother passed away last night.", "We're having a baby!",
                     "This is the third time my order arrived broken!")
    ]
    greedy = _check_answers(smollm2, prompts, seeds=[0], temperature=0.0)
    sampled = _check_answers(smollm2, prompts[:1], seeds=range(4), temperature=0.9)
    assert len(greedy) == 3 and len(sampled) == 4


def test_invalid_grammar_is_rejected_by_llama_cpp(tiny_gguf):
    """The same path raises for a broken grammar, so the tests above really went through llama.cpp's parser."""
    with LanguageCore.from_file(tiny_gguf, n_ctx=256, n_threads=1) as core:
        with pytest.raises(ValueError):
            core.generate("x", grammar='root ::= word (", " word\n', max_new_tokens=2)


def test_parse_open_vocab_words():
    words = load_emotion_words()
    assert parse_open_vocab_words("sad, happy, sad", words) == ("sad", "happy")
    assert parse_open_vocab_words("I feel Sadness and JOY!", words) == ("sadness", "joy")
    assert parse_open_vocab_words("sad, happy, angry, worried", words) == ("sad", "happy", "angry")
    assert parse_open_vocab_words("sad, happy, angry", words, max_words=2) == ("sad", "happy")
    assert parse_open_vocab_words("hap", words) == ()
    assert parse_open_vocab_words("emotionallypal, iraqiwarismath", words) == ()
    assert parse_open_vocab_words("", words) == ()
    assert parse_open_vocab_words("grateful", {"grateful"}) == ("grateful",)


def test_matches_grammar():
    words = ["sad", "happy"]
    assert matches_grammar("sad, happy", words)
    assert not matches_grammar("sad,happy", words)
    assert not matches_grammar("sad, happy, sad, happy", words)
    assert not matches_grammar("", words)


def test_vocabulary_misuse():
    with pytest.raises(TypeError, match="single string"):
        open_vocab_grammar("sad")
    with pytest.raises(ValueError, match="at least one word"):
        open_vocab_grammar([])
    with pytest.raises(ValueError, match="lower-case"):
        open_vocab_grammar(["Sad"])
    with pytest.raises(ValueError, match="lower-case"):
        open_vocab_grammar(["fed up"])
    with pytest.raises(ValueError, match="twice"):
        open_vocab_grammar(["sad", "sad"])
    with pytest.raises(TypeError, match="expected str"):
        open_vocab_grammar(["sad", 3])
    with pytest.raises(ValueError, match="max_words"):
        open_vocab_grammar(["sad"], max_words=0)
    with pytest.raises(TypeError, match="text must be str"):
        parse_open_vocab_words(None, ["sad"])
    with pytest.raises(ValueError, match="max_words"):
        parse_open_vocab_words("sad", ["sad"], max_words=0)
