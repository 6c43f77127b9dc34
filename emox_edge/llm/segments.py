"""Prompt segments: text, token ids and injected embedding rows, checked and flattened into runs.

A prompt is a sequence of segments, each one of
    ``str``                                  text, tokenized with special tokens parsed;
    ``Literal`` (a ``str``)                  untrusted text: ``<|im_end|>`` in it stays plain text;
    ``list[int]`` / ``tuple`` / 1-D int array token ids;
    float32 ``np.ndarray`` of shape (n, width) embedding rows injected in place of tokens.
A bare ``str`` or ``np.ndarray`` is accepted as a one-segment prompt. Positions run contiguously
across segments. Each position also gets a cache key (the token id, or the bytes of the embedding
row) so that consecutive prompts can share their common prefix in the KV cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError

Segment = Union[str, Sequence[int], np.ndarray]
ACCEPTED_FORMS = "str (text), list[int] (token ids) or float32 np.ndarray of shape (n, width) (embeddings)"


class Literal(str):
    """Text tokenized *without* parsing special tokens: a transcript or user message in a prompt.

    A plain ``str`` segment turns ``<|im_end|>`` into the control token, so a subtitle could end
    the user turn or start a fake assistant turn; a ``Literal`` keeps it as the characters it is.
    """

    __slots__ = ()


class UntrustedText:
    """Fills templates with user strings (subtitles, dialogue turns) safely.

    Call it on each user string while filling a template: a string with no special-token text comes
    back unchanged (the prompt tokenizes exactly as the model was trained on); one that would parse
    as control tokens comes back as a marker, and ``resolve`` later cuts it out of the text segments
    as a ``Literal``. Its first and last tokens may then differ from a joint tokenization.
    """

    _OPEN, _CLOSE = "\ue000", "\ue001"  # Unicode private use: removed from user strings

    def __init__(self, has_special: Callable[[str], bool]) -> None:
        self._has_special = has_special
        self._texts: list[str] = []

    def __call__(self, text: str) -> str:
        if not text or not self._has_special(text):
            return text
        self._texts.append(text.replace(self._OPEN, "").replace(self._CLOSE, ""))
        return f"{self._OPEN}{len(self._texts) - 1}{self._CLOSE}"

    @property
    def marked(self) -> int:
        """How many user strings were cut out as ``Literal``."""
        return len(self._texts)

    def resolve(self, segments: Sequence[Segment]) -> list[Segment]:
        """``segments`` with every marker replaced by its ``Literal`` segment."""
        if not self._texts:
            return list(segments)
        pattern = re.compile(f"{self._OPEN}(\\d+){self._CLOSE}")
        out: list[Segment] = []
        for seg in segments:
            if not isinstance(seg, str) or isinstance(seg, Literal):
                out.append(seg)
                continue
            for i, piece in enumerate(pattern.split(seg)):
                if i % 2:
                    out.append(Literal(self._texts[int(piece)]))
                elif piece:
                    out.append(piece)
        return out


@dataclass(frozen=True)
class Run:
    """A maximal stretch of one kind: ``tokens`` (int32 [n]) or ``embd`` (float32 [n, width])."""

    kind: str
    data: np.ndarray

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def keys(self) -> list:
        if self.kind == "tokens":
            return self.data.tolist()
        return [row.tobytes() for row in self.data]


def _as_tokens(seg: Sequence[int] | np.ndarray, n_vocab: int, index: int) -> np.ndarray:
    try:
        ids = np.asarray(seg)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"prompt segment {index} is not a list of token ids; expected {ACCEPTED_FORMS}") from exc
    if ids.size == 0:
        return ids.astype(np.int32).reshape(0)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        if isinstance(seg, np.ndarray) and seg.ndim == 2:
            raise BadInputError(
                f"prompt segment {index} has dtype {seg.dtype}; embedding rows must be float32 (n, width)"
            )
        raise InputTypeError(f"prompt segment {index} holds {ids.dtype} values; expected {ACCEPTED_FORMS}")
    if ids.min() < 0 or ids.max() >= n_vocab:
        bad = int(ids[(ids < 0) | (ids >= n_vocab)][0])
        raise BadInputError(f"prompt segment {index} has token id {bad}; expected ids in [0, {n_vocab})")
    return ids.astype(np.int32)


def _as_embeddings(seg: np.ndarray, width: int, index: int) -> np.ndarray:
    if seg.dtype != np.float32:
        raise BadInputError(f"prompt segment {index} has dtype {seg.dtype}; expected float32 embedding rows")
    if seg.ndim != 2 or seg.shape[1] != width:
        raise BadInputError(f"prompt segment {index} has shape {seg.shape}; expected (n, {width}) embedding rows")
    if not np.isfinite(seg).all():
        raise BadInputError(f"prompt segment {index} has NaN or infinite values; expected finite embeddings")
    return np.ascontiguousarray(seg)


def to_runs(
    prompt: Segment | Sequence[Segment],
    *,
    tokenize: Callable[[str], list[int]],
    n_vocab: int,
    width: int,
) -> list[Run]:
    """Check ``prompt`` and turn it into runs, merging neighbours of the same kind.

    Raises:
        TypeError: a segment of an unaccepted type (the message lists the accepted forms).
        ValueError: a wrong embedding width or dtype, a token id out of range, an empty prompt.
    """
    if isinstance(prompt, (str, np.ndarray)):
        prompt = [prompt]
    if not isinstance(prompt, (list, tuple)):
        raise InputTypeError(f"prompt is {type(prompt).__name__}; expected a list of segments, each {ACCEPTED_FORMS}")
    runs: list[Run] = []
    for index, seg in enumerate(prompt):
        if isinstance(seg, str):
            kind, data = "tokens", np.asarray(tokenize(seg), dtype=np.int32)
        elif isinstance(seg, np.ndarray) and seg.ndim == 2 and np.issubdtype(seg.dtype, np.floating):
            kind, data = "embd", _as_embeddings(seg, width, index)
        elif isinstance(seg, np.ndarray) and seg.ndim == 1 and np.issubdtype(seg.dtype, np.floating):
            raise BadInputError(f"prompt segment {index} has shape {seg.shape}; expected (n, {width}) embedding rows")
        elif isinstance(seg, (list, tuple, np.ndarray)):
            kind, data = "tokens", _as_tokens(seg, n_vocab, index)
        else:
            raise InputTypeError(
                f"prompt segment {index} is {type(seg).__name__}; expected {ACCEPTED_FORMS}"
                + (" (wrap token ids in a list: [[1, 2, 3]])" if isinstance(seg, (int, np.integer)) else "")
            )
        if len(data) == 0:
            continue
        if runs and runs[-1].kind == kind:
            runs[-1] = Run(kind, np.concatenate([runs[-1].data, data]))
        else:
            runs.append(Run(kind, data))
    if not runs:
        raise BadInputError("the prompt is empty; expected at least one token or embedding row")
    return runs


def common_prefix(a: list, b: list) -> int:
    """Length of the longest common prefix of two key lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
