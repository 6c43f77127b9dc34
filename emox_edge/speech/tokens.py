"""Whisper's token ids and text decoding from the CTranslate2 model's vocabulary file alone.

The converted model ships its vocabulary as ``vocabulary.json`` (a JSON list) or ``vocabulary.txt``
(one token per line); the token's index is its id. Text tokens are GPT-2 byte-level BPE strings, so
decoding is: join the strings, map each character back to its byte (``bytes_to_unicode`` inverted),
decode UTF-8. Special tokens (``<|en|>``, ``<|translate|>``, ``<|0.42|>`` ...) are looked up by name.
This needs neither the ``tokenizers`` library nor the hub; ``tokenizer.json`` travels in the bundle for
other readers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_TIMESTAMP = re.compile(r"^<\|(\d+\.\d\d)\|>$")
_LANGUAGE = re.compile(r"^<\|([a-z]{2,3})\|>$")
TIME_PER_TIMESTAMP = 0.02


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's reversible map from the printable characters BPE uses back to bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def read_vocabulary(path: Path) -> list[str]:
    """The tokens of a CTranslate2 vocabulary file (.json list or .txt lines), index = id.

    Raises:
        ValueError: the file is not a vocabulary (the message names it).
    """
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".json":
        tokens = json.loads(text)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}: not a JSON list of token strings")
        return tokens
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@dataclass(frozen=True)
class WhisperTokens:
    """The ids Whisper decoding needs, and ``decode`` for its text tokens."""

    vocabulary: tuple[str, ...]
    ids: dict[str, int]
    eot: int
    sot: int
    translate: int | None
    transcribe: int | None
    no_timestamps: int
    timestamp_begin: int
    languages: tuple[str, ...]

    @classmethod
    def from_vocabulary(cls, tokens: list[str], *, source: Path | str = "vocabulary") -> "WhisperTokens":
        """Raises ValueError naming ``source`` when a token Whisper needs is absent."""
        ids = {t: i for i, t in enumerate(tokens) if t.startswith("<|") and t.endswith("|>")}
        missing = [t for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>") if t not in ids]
        if missing:
            raise ValueError(f"{source}: not a Whisper vocabulary, it lacks {', '.join(missing)}")
        sot = ids["<|startoftranscript|>"]
        languages = []
        for token, index in sorted(ids.items(), key=lambda kv: kv[1]):
            match = _LANGUAGE.match(token)
            if match and index > sot and token not in ("<|nospeech|>",):
                languages.append(match.group(1))
        return cls(tuple(tokens), ids, ids["<|endoftext|>"], sot, ids.get("<|translate|>"), ids.get("<|transcribe|>"),
                   ids["<|notimestamps|>"], ids["<|0.00|>"], tuple(languages))

    def language_id(self, code: str) -> int | None:
        return self.ids.get(f"<|{code}|>")

    def prompt(self, *, multilingual: bool, language: str, task: str, timestamps: bool = True) -> list[int]:
        """Decoder start: <|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]."""
        out = [self.sot]
        if multilingual:
            out += [self.ids[f"<|{language}|>"], self.translate if task == "translate" else self.transcribe]
        if not timestamps:
            out.append(self.no_timestamps)
        return out

    def is_timestamp(self, token_id: int) -> bool:
        return token_id >= self.timestamp_begin

    def timestamp(self, token_id: int) -> float:
        return (token_id - self.timestamp_begin) * TIME_PER_TIMESTAMP

    def decode(self, token_ids: list[int]) -> str:
        """Text of the text tokens among ``token_ids`` (special tokens are skipped)."""
        decoder = _byte_decoder()
        pieces = "".join(self.vocabulary[i] for i in token_ids if i < self.eot)
        data = bytes(decoder[c] for c in pieces if c in decoder)
        return data.decode("utf-8", errors="replace")

    def split_timestamped(self, token_ids: list[int]) -> list[tuple[float, float, list[int]]]:
        """``<|t0|> text <|t1|>`` runs -> (t0, t1, text ids); a run with no closing timestamp ends at -1.0."""
        out: list[tuple[float, float, list[int]]] = []
        start = 0.0
        text: list[int] = []
        for token in token_ids:
            if token == self.eot:
                break
            if self.is_timestamp(token):
                if text:
                    out.append((start, self.timestamp(token), text))
                    text = []
                start = self.timestamp(token)
            elif token < self.eot:
                text.append(token)
        if text:
            out.append((start, -1.0, text))
        return out
