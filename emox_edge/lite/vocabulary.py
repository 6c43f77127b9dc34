"""Open-vocabulary emotion from a fixed vocabulary: the word list, a GBNF grammar over it, the parser.

``emotion_words.txt`` (emox_edge/data) holds ~500 common English emotion words, adjectives and nouns a
person would use ("worried", "relief", "heartbroken"), lower case, one per line. Decoding the language
core's answer under ``open_vocab_grammar(words)`` makes every answer 1-``max_words`` words of that list
separated by ", ": never a non-word, never a sentence.

The grammar is written as a character trie (``word ::= "a" ("fraid" | "ngr" ("y" | "er")) | ...``)
rather than one alternative per word: llama.cpp's grammar sampler checks every candidate token against
every live alternative, so a flat list keeps ~500 alternatives alive at the first character of each
word, while the trie keeps only as many as the branching at the current prefix (at most 26).

Distinct words: GBNF has no cheap way to say "a word not used before" (it would take one rule per
word listing all the others, ~250,000 alternatives for this list), so the grammar allows a repeat and
``parse_open_vocab_words`` removes it (the answer then has fewer words). Order is the model's: the
prompt asks for the most strongly supported emotion first.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Iterable, Sequence

from emox_edge.llm.grammar import gbnf_literal

WORDS_FILE = "data/emotion_words.txt"
SEPARATOR = ", "
_WORD_RE = re.compile(r"[a-z]+")
_END = ""


@functools.lru_cache(maxsize=None)
def load_emotion_words() -> tuple[str, ...]:
    """The shipped emotion vocabulary, in file order.

    Raises:
        ValueError: the file holds a line that is not one lower-case word, or a duplicate.
    """
    text = resources.files("emox_edge").joinpath(WORDS_FILE).read_text(encoding="utf-8")
    words = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    _check_words(words, source=f"emox_edge/{WORDS_FILE}")
    return tuple(words)


def _check_words(words: Sequence[str], *, source: str = "words") -> None:
    seen: set[str] = set()
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{source}: {word!r} is {type(word).__name__}; expected str")
        if not _WORD_RE.fullmatch(word):
            raise ValueError(f"{source}: {word!r} is not one lower-case word of letters a-z")
        if word in seen:
            raise ValueError(f"{source}: {word!r} is listed twice")
        seen.add(word)


def _trie(words: Iterable[str]) -> dict:
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return root


def _trie_expr(node: dict) -> str:
    """GBNF alternatives spelling every word below ``node`` (common prefixes written once)."""
    parts = []
    for ch in sorted(k for k in node if k != _END):
        prefix, child = ch, node[ch]
        while _END not in child and len(child) == 1:  # a chain without branching: one literal
            (nxt, child), = child.items()
            prefix += nxt
        below = [k for k in child if k != _END]
        if not below:
            parts.append(gbnf_literal(prefix))
        elif _END in child:
            parts.append(f"{gbnf_literal(prefix)} ({_trie_expr(child)})?")
        else:
            parts.append(f"{gbnf_literal(prefix)} ({_trie_expr(child)})")
    return " | ".join(parts)


def open_vocab_grammar(words: Sequence[str], max_words: int = 3) -> str:
    """A GBNF grammar (llama.cpp) accepting 1-``max_words`` words of ``words`` separated by ", ".

    Repeats are possible (see the module docstring); ``parse_open_vocab_words`` removes them.

    Raises:
        TypeError: ``words`` is a single string or holds a non-string.
        ValueError: no words, a word that is not lower-case letters a-z, a duplicate, or
            ``max_words`` < 1.
    """
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a single string")
    words = list(words)
    if not words:
        raise ValueError("open_vocab_grammar needs at least one word; got none")
    _check_words(words)
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise ValueError(f"max_words must be an integer >= 1; got {max_words!r}")
    tail = ""
    for _ in range(max_words - 1):
        tail = f" ({gbnf_literal(SEPARATOR)} word{tail})?"
    return f"root ::= word{tail}\nword ::= {_trie_expr(_trie(words))}\n"


def parse_open_vocab_words(text: str, words: Iterable[str], *, max_words: int = 3) -> tuple[str, ...]:
    """The listed emotion words in ``text``, in order, each once, at most ``max_words``.

    Anything that is not a word of ``words`` (other words, a word cut off by the token limit,
    punctuation) is dropped; matching is case-insensitive on whole words. An answer with none gives ().

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: ``max_words`` < 1.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str; got {type(text).__name__}")
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise ValueError(f"max_words must be an integer >= 1; got {max_words!r}")
    vocabulary = words if isinstance(words, (set, frozenset)) else set(words)
    out: list[str] = []
    for token in _WORD_RE.findall(text.lower()):
        if token in vocabulary and token not in out:
            out.append(token)
            if len(out) == max_words:
                break
    return tuple(out)


def matches_grammar(text: str, words: Iterable[str], *, max_words: int = 3) -> bool:
    """Whether ``text`` is exactly what ``open_vocab_grammar(words, max_words)`` accepts."""
    vocabulary = set(words)
    items = text.split(SEPARATOR)
    return 1 <= len(items) <= max_words and all(item in vocabulary for item in items)
