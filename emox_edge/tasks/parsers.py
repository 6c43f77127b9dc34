"""Turn the model's free text into typed answers. No bundle specifics here: the lite pipeline reuses them.

``postprocess_reply`` is Nano-EmoX's own clean-up (spec §9); the other functions read one task's answer
out of the cleaned text. Trained answer formats (spec §8): closed sets "The most likely label is X." /
"The character's sentiment state is X.", open vocabulary "The character's emotional state is {a, b}.",
intent the bare capitalised label, empathy "<think>...the emotion of the speaker is X...</think>\\n reply".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

_IS_RE = re.compile(r"\b(?:is|are|was|:)\s+(.+)$", re.IGNORECASE | re.DOTALL)
_FLOAT_RE = re.compile(r"[-+−]?\d+(?:\.\d+)?")
_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_TAG_RE = re.compile(r"</?think>", re.IGNORECASE)
_SPLIT_RE = re.compile(r"\s*(?:,|;|/|\band\b|\bor\b|\n)\s*", re.IGNORECASE)
_SPEAKER_EMOTION = r"the emotion of the speaker is\s+(\w+)"


def postprocess_reply(raw: str) -> str:
    """Nano-EmoX's clean-up: after ``<|im_start|>``, before ``<|im_end|>``, before the last ``###``,
    after the last ``Assistant:``, stripped."""
    text = raw
    if "<|im_start|>" in text:
        text = text.split("<|im_start|>")[-1]
    text = text.split("<|im_end|>")[0]
    text = text.rsplit("###", 1)[0]
    if "Assistant:" in text:
        text = text.rsplit("Assistant:", 1)[1]
    return text.strip()


def normalize_label(text: str) -> str:
    """Lower case, inner whitespace collapsed, surrounding quotes/punctuation removed."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.strip(" \t\"'`.,;:!?()[]{}<>*")


@dataclass(frozen=True)
class LabelAnswer:
    label: str | None
    valid: bool


def parse_label(text: str, labels: Sequence[str]) -> LabelAnswer:
    """The closed-set label in ``text``.

    Tries, in order: the whole text is a label; the phrase after the last "is"/":" is a label; the
    earliest label (longest on ties) named anywhere in the text as a whole word. ``valid`` says the
    label belongs to ``labels``; when none is found, the cleaned text's last phrase is returned as an
    invalid label (None for empty text).
    """
    canon = {normalize_label(label): label for label in labels}
    whole = normalize_label(text)
    if whole in canon:
        return LabelAnswer(canon[whole], True)
    tail = _IS_RE.search(text)
    if tail:
        candidate = normalize_label(tail.group(1).splitlines()[0] if tail.group(1) else "")
        if candidate in canon:
            return LabelAnswer(canon[candidate], True)
    found = _earliest_label(whole, canon)
    if found is not None:
        return LabelAnswer(found, True)
    if not whole:
        return LabelAnswer(None, False)
    guess = normalize_label(tail.group(1)) if tail else whole
    return LabelAnswer(guess[:64] or None, False)


def _earliest_label(text: str, canon: dict[str, str]) -> str | None:
    best: tuple[int, int, str] | None = None
    for key, label in canon.items():
        match = re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", text)
        if match:
            rank = (match.start(), -len(key), label)
            best = rank if best is None or rank < best else best
    return best[2] if best else None


def parse_open_vocab(text: str, *, empty_label: str = "neutral", max_words: int = 3) -> tuple[str, ...]:
    """The open-vocabulary emotion list, normalised: lower case, deduplicated, in order.

    Reads "The character's emotional state is {a, b}.", "[a, b]", "a, b and c" and the like; phrases
    longer than ``max_words`` words are dropped (they are sentences, not labels). Empty: ``(empty_label,)``.
    """
    body = text.strip()
    bracket = re.search(r"[\[{](.*?)[\]}]", body, re.DOTALL)
    if bracket:
        body = bracket.group(1)
    else:
        tail = _IS_RE.search(body.split("\n")[0])
        if tail:
            body = tail.group(1)
    out: list[str] = []
    for part in _SPLIT_RE.split(body):
        word = normalize_label(part)
        word = re.sub(r"^(?:a|an|the|feeling|feels|being)\s+", "", word)
        if word and len(word.split()) <= max_words and word not in out and re.search(r"[a-z]", word):
            out.append(word)
    return tuple(out) if out else ((empty_label,) if empty_label else ())


@dataclass(frozen=True)
class ValenceAnswer:
    score: float | None
    label: str | None
    valid: bool


def parse_valence(text: str, *, low: float, high: float) -> ValenceAnswer:
    """The first number in ``text`` as a valence in [low, high] and its polarity label."""
    match = _FLOAT_RE.search(text.replace("−", "-"))
    if not match:
        return ValenceAnswer(None, None, False)
    value = float(match.group(0).replace("−", "-"))
    inside = low <= value <= high
    value = min(max(value, low), high)
    label = "positive" if value > 0 else "negative" if value < 0 else "neutral"
    return ValenceAnswer(value, label, inside)


@dataclass(frozen=True)
class EmpathyAnswer:
    think: str | None
    reply: str
    emotion: str | None


def parse_empathy(text: str, *, emotion_pattern: str = _SPEAKER_EMOTION) -> EmpathyAnswer:
    """Split "<think>chain</think> reply" and read the speaker's emotion from the chain.

    Without any think tag the whole text is the reply; an unclosed ``<think>`` leaves an empty
    reply; a ``</think>`` without its opening tag (the prompt opened it) closes the chain before it.
    Stray tags never reach the reply.
    """
    match = _THINK_RE.search(text)
    closed = re.search(r"</think>", text, re.IGNORECASE)
    if match:
        think: str | None = match.group(1).strip()
        reply = text[match.end():] if closed else ""
    elif closed:
        think, reply = text[:closed.start()].strip(), text[closed.end():]
    else:
        think, reply = None, text
    reply = _TAG_RE.sub("", reply).strip()
    emotion = re.search(emotion_pattern, think if think is not None else text, re.IGNORECASE)
    return EmpathyAnswer(think, reply, emotion.group(1).lower() if emotion else None)


def capitalise(label: str) -> str:
    """'ask for help' -> 'Ask for help' (the MIntRec answer style)."""
    return label[:1].upper() + label[1:]


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return tuple(out)
