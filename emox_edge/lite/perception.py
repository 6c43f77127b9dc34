"""Fuse the lite bundle's perception (facial expression + voice prosody) into emotion and sentiment.

Face: the 7 FER classes are averaged over the analysed frames (main face of each frame). Voice: the
heuristic arousal of ``prosody`` tilts that distribution toward classes of matching arousal
(``lite.json: expression_arousal``), weighted by the voice's confidence; with no face, the voice
alone gives a broad distribution near its (arousal, valence). The fused 7-class distribution is then
summed into any of Nano-EmoX's emotion label sets (``emotion_label_sets``: mer, meld, iemocap).
Sentiment is the sign of the fused valence (face valence pulled toward the voice's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from emox_edge.errors import BadInputError
from emox_edge.lite.expression import FER_CLASSES
from emox_edge.lite.prosody import ProsodyFeatures, VoiceAffect
from emox_edge.lite.tables import table

DEFAULT_LABEL_SET = "mer"


def label_sets() -> dict[str, dict[str, str]]:
    return table("emotion_label_sets")


@dataclass(frozen=True)
class Perception:
    """What the lite bundle perceived in one clip.

    Attributes:
        expression: mean FER class probabilities of the main face (None: no face seen).
        face_frames: (frames with a face, frames analysed).
        voice: heuristic voice affect (None: no speech found).
        prosody: the prosodic features behind ``voice``.
        fused: the 7 FER classes after the voice was weighed in (sums to 1).
        valence, arousal: fused estimates in [-1, 1].
    """

    expression: Mapping[str, float] | None
    face_frames: tuple[int, int]
    voice: VoiceAffect | None
    prosody: ProsodyFeatures | None
    fused: Mapping[str, float]
    valence: float
    arousal: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def emotion(self, label_set: str = DEFAULT_LABEL_SET) -> dict[str, float]:
        """Probability of each label of ``label_set`` (mer, meld, iemocap).

        Raises:
            ValueError: unknown label set (the message lists the known ones).
        """
        sets = label_sets()
        if label_set not in sets:
            raise BadInputError(f"unknown emotion label set {label_set!r}; the lite bundle knows: {', '.join(sets)}")
        mapping = sets[label_set]
        out: dict[str, float] = {}
        for cls in FER_CLASSES:
            out[mapping[cls]] = out.get(mapping[cls], 0.0) + float(self.fused[cls])
        return out

    def emotion_label(self, label_set: str = DEFAULT_LABEL_SET) -> str:
        probs = self.emotion(label_set)
        return max(probs, key=probs.get)

    @property
    def sentiment_label(self) -> str:
        threshold = float(table("fusion")["sentiment_threshold"])
        return "positive" if self.valence > threshold else "negative" if self.valence < -threshold else "neutral"

    def summary(self, *, top: int = 3) -> str:
        """One line for a prompt, e.g. "facial expression: happy 0.82, surprise 0.09; voice: high arousal, ..."."""
        if self.expression:
            best = sorted(self.expression.items(), key=lambda kv: -kv[1])[:top]
            parts = ["facial expression: " + ", ".join(f"{k} {v:.2f}" for k, v in best)]
        else:
            parts = ["facial expression: no face visible"]
        if self.voice is not None:
            parts.append(f"voice: {self.voice.arousal_label}, {self.voice.valence_label} "
                         f"(arousal {self.voice.arousal:+.2f}, valence {self.voice.valence:+.2f})")
        else:
            parts.append("voice: no speech")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expression": {k: round(v, 4) for k, v in self.expression.items()} if self.expression else None,
            "face_frames": list(self.face_frames),
            "voice": self.voice.to_dict() if self.voice else None,
            "prosody": self.prosody.to_dict() if self.prosody else None,
            "emotion": {k: round(v, 4) for k, v in self.emotion().items()},
            "valence": round(self.valence, 4),
            "arousal": round(self.arousal, 4),
            "summary": self.summary(),
            **dict(self.extra),
        }


def fuse(expression: Mapping[str, float] | None, voice: VoiceAffect | None, *,
         prosody: ProsodyFeatures | None = None, face_frames: tuple[int, int] = (0, 0)) -> Perception:
    """Combine a face's expression probabilities and the voice's affect into a ``Perception``.

    Raises:
        ValueError: ``expression`` names classes other than the 7 FER classes.
    """
    valences = table("expression_valence")
    arousals = table("expression_arousal")
    fusion = table("fusion")
    use_voice = voice is not None and voice.confidence > 0
    if expression:
        unknown = set(expression) - set(FER_CLASSES)
        if unknown:
            raise BadInputError(f"unknown expression classes {sorted(unknown)}; expected {list(FER_CLASSES)}")
        probs = {c: float(expression.get(c, 0.0)) for c in FER_CLASSES}
        if use_voice:
            w = float(fusion["voice_arousal_weight"]) * voice.confidence
            probs = {c: p * math.exp(2.0 * w * voice.arousal * arousals[c]) for c, p in probs.items()}
    elif use_voice:
        probs = {c: math.exp(-2.0 * ((arousals[c] - voice.arousal) ** 2 + (valences[c] - voice.valence) ** 2))
                 for c in FER_CLASSES}
    else:
        probs = {c: (1.0 if c == "neutral" else 0.0) for c in FER_CLASSES}
    total = sum(probs.values()) or 1.0
    probs = {c: p / total for c, p in probs.items()}
    face_valence = sum(probs[c] * valences[c] for c in FER_CLASSES)
    if expression and use_voice:
        wv = float(fusion["voice_valence_weight"]) * voice.confidence
        valence = (1 - wv) * face_valence + wv * voice.valence
    elif use_voice:
        valence = voice.valence
    else:
        valence = face_valence
    arousal = voice.arousal if use_voice else sum(probs[c] * arousals[c] for c in FER_CLASSES)
    return Perception(dict(expression) if expression else None, face_frames, voice if use_voice else None,
                      prosody, probs, float(valence), float(arousal))
