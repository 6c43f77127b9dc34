"""Text the lite bundle writes from its evidence alone: the ``reason`` and the empathy chain of small cores.

A 135M-parameter language core, asked to explain an emotion from a perception summary, invents cues
("relief (0.98)", "2% chance") and echoes the prompt back (docs/lite-bundle.md, measured on
benchmarks/data/lite_eval.json). What it was shown is known exactly, so these sentences say it
directly: the fused emotion and its probability, then each cue that was present (the face's leading
expression and its probability over the analysed frames, the voice's arousal and tone, the words'
polarity by VADER) and nothing that was not.

``reply_messages`` is the prompt of the empathic reply itself: the person's words as the user's turn
of a chat, the perceived emotion in the system turn (small instruction-tuned cores answer a message far
better than a question about a perception report, SmolLM2: reply rules passed 0.57 on the first 30
eval cases with a reply rule, against 0.10 on the first 20 cases for the earlier question prompt).
"""

from __future__ import annotations

from typing import Sequence

from emox_edge.lite.perception import DEFAULT_LABEL_SET, Perception
from emox_edge.lite.tables import table

QUOTE_WORDS = 12  # words of the transcript quoted in a reason


def _polarity(valence: float | None) -> str | None:
    if valence is None:
        return None
    return "positive" if valence >= 0.05 else "negative" if valence <= -0.05 else "neutral"


def _quote(words: str) -> str:
    parts = words.split()
    return " ".join(parts[:QUOTE_WORDS]) + ("..." if len(parts) > QUOTE_WORDS else "")


def cues(p: Perception, words: str, text_valence: float | None) -> list[str]:
    """The evidence present in the clip, one phrase each (face, voice, words), in that order."""
    found = []
    if p.expression:
        label, prob = max(p.expression.items(), key=lambda kv: kv[1])
        seen, analysed = p.face_frames
        frames = f" over {seen} of {analysed} frames" if analysed else ""
        found.append(f"the face looks {table('expression_words').get(label, label)} ({prob:.2f}{frames})")
    if p.voice is not None and p.voice.confidence > 0:
        found.append(f"the voice has {p.voice.arousal_label} and a {p.voice.valence_label} "
                     f"(arousal {p.voice.arousal:+.2f})")
    polarity = _polarity(text_valence)
    if words.strip() and polarity:
        found.append(f"the words \"{_quote(words.strip())}\" read {polarity} ({text_valence:+.2f})")
    return found


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def evidence_reason(p: Perception, words: str, text_valence: float | None, *,
                    label_set: str = DEFAULT_LABEL_SET) -> tuple[str, str | None]:
    """``(text, emotion)``: why the clip reads as it does, from the cues present; emotion None when none is."""
    found = cues(p, words, text_valence)
    if p.expression is None and p.voice is None:
        if not found:
            return "Nothing to explain: no face, no speech and no words in the clip.", None
        return f"Only words to go on: {found[0]}.", None
    probs = p.emotion(label_set)
    label = max(probs, key=probs.get)
    text = f"The person most likely feels {label} ({probs[label]:.2f}): {_join(found)}."
    return text[0].upper() + text[1:], label


def evidence_chain(p: Perception, words: str, text_valence: float | None) -> str:
    """The empathy chain of thought of a small core: what was said, how the person seems, what to do."""
    said = f"They said: \"{_quote(words.strip())}\"." if words.strip() else "They said nothing."
    if p.expression is None and p.voice is None:
        return f"{said} I cannot see or hear how they feel, so I answer the words."
    label = p.emotion_label()
    found = cues(p, "", None)
    goal = table("reply_goals").get(label, table("reply_goals")["neutral"])
    return f"{said} They seem {label}: {_join(found)}. My reply should {goal}."


def reply_messages(p: Perception, words: str, history: Sequence[str] = ()) -> tuple[str, str]:
    """``(system, user)`` turns of the reply prompt: the emotion seen in the system turn, the words as the user's."""
    chat = table("chat")
    seen = p.emotion_label() if (p.expression is not None or p.voice is not None) else None
    system = chat["reply_system"].format(emotion=seen) if seen else chat["reply_system_unseen"]
    if history:
        system += "\n" + chat["reply_history"] + "\n" + "\n".join(f"- {turn}" for turn in history)
    return system, words.strip() or chat["reply_no_words"]
