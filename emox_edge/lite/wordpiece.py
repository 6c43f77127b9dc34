"""BERT's uncased WordPiece tokenizer over a ``vocab.txt``, in pure Python (no ``tokenizers`` at run time).

It reproduces Hugging Face's ``BertTokenizer(do_lower_case=True)`` as all-MiniLM-L6-v2 uses it:

1. basic tokenization: drop control characters and U+FFFD, turn every whitespace into a space, put
   spaces around CJK ideographs, lower-case, strip accents (NFD, drop combining marks), split on
   whitespace and on every punctuation character (ASCII symbols count as punctuation);
2. WordPiece: each word is split greedily into the longest vocabulary pieces from the left, later
   pieces carrying the ``##`` prefix; a word with no split (or longer than 100 characters) is ``[UNK]``;
3. ``[CLS] ... [SEP]``, truncated to ``max_length`` ids.

tests/lite/test_intent_model.py compares it with ``tokenizers``' ``tokenizer.json`` when that is installed.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Sequence

from emox_edge.errors import BundleError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
MAX_WORD_CHARS = 100


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text: str) -> list[str]:
    """BERT's basic (pre-WordPiece) tokenization of ``text`` with lower-casing and accent stripping."""
    chars = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_cjk(cp):
            chars.append(f" {ch} ")
        else:
            chars.append(" " if _is_whitespace(ch) else ch)
    words = []
    for word in "".join(chars).split():
        word = unicodedata.normalize("NFD", word.lower())
        word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
        current = ""
        for ch in word:
            if _is_punctuation(ch):
                if current:
                    words.append(current)
                    current = ""
                words.append(ch)
            else:
                current += ch
        if current:
            words.append(current)
    return words


class WordPieceTokenizer:
    """Uncased BERT WordPiece tokenizer: ``encode(text) -> list[int]`` with ``[CLS]``/``[SEP]``.

    Use ``from_file(vocab_path)``; ``vocab`` maps token -> id (line number of ``vocab.txt``).
    """

    def __init__(self, vocab: dict[str, int], *, max_length: int = 256):
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise BundleError(f"WordPiece vocabulary lacks the special tokens {missing}")
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3 (room for [CLS], [SEP] and a token); got {max_length}")
        self.vocab = vocab
        self.max_length = int(max_length)
        self.unk_id, self.cls_id, self.sep_id = vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"]
        self.pad_id = vocab["[PAD]"]
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, max_length: int = 256) -> "WordPieceTokenizer":
        """Read a ``vocab.txt`` (one token per line, the line number is its id).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            BundleError: the file is not UTF-8 text or lacks the BERT special tokens.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"WordPiece vocabulary not found: {path}")
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise BundleError(f"{path}: not a UTF-8 vocab.txt ({exc})") from exc
        if lines and lines[-1] == "":
            lines.pop()
        vocab = {token.rstrip("\r"): i for i, token in enumerate(lines)}
        try:
            return cls(vocab, max_length=max_length)
        except BundleError as exc:
            raise BundleError(f"{path}: {exc}") from exc

    def word_pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece ids of one basic token."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if len(word) > MAX_WORD_CHARS:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                ids = [self.unk_id]
                break
            ids.append(found)
            start = end
        if len(self._cache) < 50_000:
            self._cache[word] = ids
        return ids

    def tokenize_ids(self, text: str) -> list[int]:
        """WordPiece ids of ``text`` without the special tokens and without truncation."""
        return [i for word in basic_tokenize(text) for i in self.word_pieces(word)]

    def encode(self, text: str) -> list[int]:
        """``[CLS] pieces [SEP]`` ids of ``text``, truncated to ``max_length``.

        Raises:
            TypeError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str; got {type(text).__name__}")
        ids = self.tokenize_ids(text)[: self.max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    def encode_batch(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """(ids per text, longest length)."""
        rows = [self.encode(t) for t in texts]
        return rows, max((len(r) for r in rows), default=0)
