"""GBNF grammars for constrained answers (llama.cpp's grammar sampler)."""

from __future__ import annotations

from typing import Iterable

from emox_edge.errors import BadInputError, InputTypeError

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def gbnf_literal(text: str) -> str:
    """``text`` as a quoted GBNF string literal (backslash, quote and control characters escaped)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def label_grammar(labels: Iterable[str]) -> str:
    """A GBNF grammar whose language is exactly the given labels (one of them, nothing else).

    Raises:
        TypeError: a label is not a string.
        ValueError: no labels, or an empty label.
    """
    if isinstance(labels, str):
        raise InputTypeError("labels must be a list of strings, not a single string")
    unique: list[str] = []
    for label in labels:
        if not isinstance(label, str):
            raise InputTypeError(f"label {label!r} is {type(label).__name__}; expected str")
        if not label:
            raise BadInputError("labels must be non-empty strings; got ''")
        if label not in unique:
            unique.append(label)
    if not unique:
        raise BadInputError("label_grammar needs at least one label; got none")
    return "root ::= " + " | ".join(gbnf_literal(label) for label in unique) + "\n"
