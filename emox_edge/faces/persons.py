"""Per-person answers: each tracked face's own emotion and sentiment, from its expressions over a clip.

Every face the tracker followed through the clip becomes one ``Person``: its mean expression
probabilities over the frames it was seen in, the most likely emotion (MER labels) and the sentiment
of the expression's valence (the lite tables' ``expression_valence`` and threshold). The person the
language tasks speak about is marked ``speaker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from emox_edge.results import Face


@dataclass(frozen=True)
class Person:
    """One tracked face over a clip."""

    track_id: int
    frames: int
    box: tuple[float, float, float, float]  # on the last frame it was seen in
    expression: Mapping[str, float]
    emotion: str | None
    sentiment: str | None
    valence: float | None
    speaker: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.track_id, "frames": self.frames, "box": list(self.box),
                "expression": {k: round(v, 4) for k, v in self.expression.items()}, "emotion": self.emotion,
                "sentiment": self.sentiment, "valence": None if self.valence is None else round(self.valence, 4),
                "speaker": self.speaker}


def persons(frame_faces: Sequence[tuple[float, Sequence[Face]]], *, speaker: int | None = None) -> tuple[Person, ...]:
    """One ``Person`` per track id seen in ``frame_faces`` (largest on screen first)."""
    from emox_edge.lite.tables import table

    mapping = table("emotion_label_sets")["mer"]
    valences = table("expression_valence")
    threshold = float(table("fusion")["sentiment_threshold"])
    seen: dict[int, list[Face]] = {}
    for _, faces in frame_faces:
        for face in faces:
            if face.track_id is not None:
                seen.setdefault(face.track_id, []).append(face)
    out = []
    for track_id, faces in seen.items():
        scored = [f.expression for f in faces if f.expression]
        expression: dict[str, float] = {}
        emotion = sentiment = valence = None
        if scored:
            classes = list(scored[0])
            mean = np.mean([[e[c] for c in classes] for e in scored], axis=0)
            expression = {c: float(p) for c, p in zip(classes, mean)}
            labels: dict[str, float] = {}
            for c, p in expression.items():
                labels[mapping.get(c, c)] = labels.get(mapping.get(c, c), 0.0) + p
            emotion = max(labels, key=labels.get)
            valence = float(sum(p * float(valences.get(c, 0.0)) for c, p in expression.items()))
            sentiment = "positive" if valence > threshold else "negative" if valence < -threshold else "neutral"
        out.append(Person(track_id, len(faces), tuple(faces[-1].box), expression, emotion, sentiment, valence,
                          speaker=track_id == speaker))
    return tuple(sorted(out, key=lambda p: -((p.box[2] - p.box[0]) * (p.box[3] - p.box[1]))))
