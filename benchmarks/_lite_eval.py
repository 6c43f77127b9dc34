"""The lite evaluation set (benchmarks/data/lite_eval.json): loading, the prompt context, and scoring rules.

Used by bench_lite_quality.py; no language model here, so the rules are testable on their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from emox_edge.lite.expression import FER_CLASSES
from emox_edge.lite.perception import Perception, fuse
from emox_edge.lite.prosody import VoiceAffect
from emox_edge.lite.tables import table

DATA = Path(__file__).resolve().parent / "data"
EVAL_FILE = DATA / "lite_eval.json"
PROMPTS_FILE = DATA / "lite_prompts.json"
TAG_RE = re.compile(r"</?think>|<\|[a-z_]+\|>|</?[a-z]+>", re.IGNORECASE)


def load_eval(path: Path = EVAL_FILE) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_prompts(path: Path = PROMPTS_FILE) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _level(value: float, what: str) -> str:  # the words of emox_edge.lite.prosody
    return f"high {what}" if value > 0.33 else f"low {what}" if value < -0.33 else f"medium {what}"


def _tone(value: float) -> str:
    return "positive tone" if value > 0.33 else "negative tone" if value < -0.33 else "neutral tone"


def voice_of(spec: Mapping[str, float] | None) -> VoiceAffect | None:
    if spec is None:
        return None
    a, v = float(spec["arousal"]), float(spec["valence"])
    return VoiceAffect(a, v, _level(a, "arousal"), _tone(v), float(spec.get("confidence", 1.0)))


def expression_of(spec: Mapping[str, float] | None) -> dict[str, float] | None:
    if spec is None:
        return None
    unknown = set(spec) - set(FER_CLASSES)
    if unknown:
        raise ValueError(f"unknown expression classes {sorted(unknown)}; expected {FER_CLASSES}")
    total = sum(spec.values())
    return {c: float(spec.get(c, 0.0)) / total for c in FER_CLASSES}


def perception_of(case: Mapping[str, Any]) -> Perception:
    """The ``Perception`` the lite bundle would have produced for this case."""
    p = case["perception"]
    return fuse(expression_of(p["expression"]), voice_of(p["voice"]))


def face_valence(case: Mapping[str, Any]) -> float | None:
    """Valence of the face alone (class valences of lite.json weighted by probability)."""
    expression = expression_of(case["perception"]["expression"])
    if expression is None:
        return None
    valences = table("expression_valence")
    return sum(p * valences[c] for c, p in expression.items())


def has_evidence(case: Mapping[str, Any]) -> bool:
    p = case["perception"]
    return p["expression"] is not None or p["voice"] is not None or bool(case["transcript"].strip())


def context_text(case: Mapping[str, Any], prompts: Mapping[str, Any]) -> str:
    """The user-turn context shared by every question of the case: faces, perception summary, words."""
    n = int(case["perception"]["faces"])
    faces = prompts["faces"].get(str(n)) or prompts["faces"]["many"].format(n=n)
    transcript = case["transcript"].strip()
    said = prompts["said"].format(transcript=transcript) if transcript else prompts["silent"]
    return prompts["context"].format(faces=faces, summary=perception_of(case).summary(), said=said)


def chatml(system: str, user: str, assistant_prefix: str = "") -> tuple[str, str]:
    """(head, tail) of a ChatML prompt: the prompt of a question is ``[head, question + tail]``.

    The head (system turn + the user turn's context) is the same for every question of a case, and
    as its own segment it tokenizes identically each time, so the KV cache reuses it.
    """
    head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}"
    return head, f"<|im_end|>\n<|im_start|>assistant\n{assistant_prefix}"


REPLY_RULES = ("non_empty", "no_tags", "short", "no_echo", "acknowledges", "avoids")
_LEAKS = ("the person said", "perception:", "facial expression:", "the person's face", "<think")


@dataclass(frozen=True)
class ReplyCheck:
    non_empty: bool
    no_tags: bool
    short: bool
    no_echo: bool
    acknowledges: bool
    avoids: bool

    @property
    def passed(self) -> bool:
        return all(getattr(self, rule) for rule in REPLY_RULES)


def _norm(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))) + " "


def _says(text: str, phrase: str) -> bool:
    """``phrase`` as whole words of ``text`` (normalised); a trailing ``*`` makes it a stem ("congrat*")."""
    phrase = phrase.lower().strip()
    stem = phrase.endswith("*")
    body = " ".join(re.findall(r"[a-z0-9']+", phrase.rstrip("*")))
    end = "" if stem else r"(?![a-z0-9'])"
    return re.search(r"(?<![a-z0-9'])" + re.escape(body) + end, text) is not None


def check_reply(reply: str, rules: Mapping[str, Any], reply_sets: Mapping[str, Sequence[str]],
                transcript: str = "") -> ReplyCheck:
    """The empathy rules of one case: non-empty, no tags, <= max_words, does not echo the words or the
    prompt's wording back, acknowledges (one phrase of its sets), avoids (none of its list)."""
    text = reply.strip()
    low = _norm(text)
    said = _norm(transcript)
    echo = len(said.split()) >= 4 and said.strip() in low
    leak = any(p in text.lower() for p in _LEAKS)
    phrases = [p for name in rules["acknowledge"] for p in reply_sets[name]]
    return ReplyCheck(
        non_empty=bool(re.search(r"[A-Za-z]", text)),
        no_tags=TAG_RE.search(text) is None,
        short=len(text.split()) <= int(rules["max_words"]),
        no_echo=not (echo or leak),
        acknowledges=any(_says(low, p) for p in phrases),
        avoids=not any(_says(low, p) for p in rules.get("avoid", ())),
    )


def label_ok(label: str | None, acceptable: Sequence[str] | None) -> bool:
    return acceptable is not None and label is not None and label in acceptable
