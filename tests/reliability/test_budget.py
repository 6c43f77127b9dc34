"""``trim_text_to_tokens``: an over-long subtitle keeps its most recent words, found in O(log n) counts."""

from __future__ import annotations

import math
import re

import pytest

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.tasks.budget import trim_text_to_tokens


class CountingTokenizer:
    """Words, numbers and punctuation each one token, long words one token per 4 characters (as BPE
    splits rare words); counts how often it was called and how many characters it read."""

    def __init__(self) -> None:
        self.calls = 0
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return sum(max(1, math.ceil(len(piece) / 4)) for piece in re.findall(r"\w+|[^\w\s]", text))


def test_text_that_fits_is_returned_whole_with_one_count():
    count = CountingTokenizer()
    assert trim_text_to_tokens("I can't believe we won!", count, 50) == "I can't believe we won!"
    assert count.calls == 1


def test_keeps_the_end_within_budget_on_a_word_boundary():
    words = [f"word{i}" for i in range(30_000)]  # ~200 kB, like the 120 kB subtitle of issue 17
    text = " ".join(words)
    count = CountingTokenizer()
    kept = trim_text_to_tokens(text, count, 800)
    assert count(kept) <= 800
    assert kept.endswith("word29999") and text.endswith(kept)
    assert kept.split(" ")[0] in words  # starts on a whole word
    n = len(kept.split(" "))
    assert kept == " ".join(words[-n:]) and count(" ".join(words[-n - 1:])) > 800  # one more word would not fit
    assert count.calls <= 2 * math.ceil(math.log2(len(text))) + 4, count.calls
    assert count.chars < len(text)  # all counts together read less than the text once: suffixes near the answer


def test_text_without_spaces_is_cut_between_characters():
    text = "很" * 5000
    kept = trim_text_to_tokens(text, len, 100)
    assert kept == "很" * 100


def test_nothing_fits_and_misuse():
    assert trim_text_to_tokens("anything", CountingTokenizer(), 0) == ""
    assert trim_text_to_tokens("", CountingTokenizer(), 10) == ""
    assert trim_text_to_tokens("x" * 100, lambda s: 1000, 5) == ""  # even one character is over
    with pytest.raises(BadInputError, match="budget must be >= 0 tokens, got -1"):
        trim_text_to_tokens("text", len, -1)
    with pytest.raises(InputTypeError, match="budget must be an int"):
        trim_text_to_tokens("text", len, 2.5)
    with pytest.raises(InputTypeError, match="text must be a str"):
        trim_text_to_tokens(b"bytes", len, 5)
