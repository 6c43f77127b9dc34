"""Sentiment of the words (the transcript) with VADER, and how it joins the face and the voice.

VADER (``vaderSentiment``, MIT; Hutto & Gilbert 2014) is a rule-based lexicon of ~7,500 English words
and emoticons rated by people, with rules for negation ("not good"), intensifiers ("very"), "but"
and punctuation/capitals emphasis. Its ``compound`` score is in [-1, 1]. It needs no model file and
scores a sentence in well under a millisecond, so it runs on every clip; benchmarks/bench_lite_quality.py
measures its agreement with the language core's sentiment on the evaluation set.

Limits: English only; sarcasm and irony are read literally ("Oh great, thanks a lot for deleting my
presentation" scores +0.8); politeness and hedges count as positive ("Please send me the file" +0.32,
"Honestly, this is the worst service" -0.27 against -0.62 without "Honestly"); words without
sentiment in its lexicon ("the meeting moved to Friday") score 0, read as neutral evidence.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping

DEFAULT_WEIGHTS: Mapping[str, float] = {"face": 0.5, "voice": 0.2, "text": 0.3}
CHANNELS = ("face", "voice", "text")


@functools.lru_cache(maxsize=1)
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:  # a dependency of emox-edge; missing only in a broken install
        raise ImportError("text sentiment needs the 'vaderSentiment' package: pip install vaderSentiment") from exc
    return SentimentIntensityAnalyzer()


def text_valence(text: str) -> float | None:
    """VADER's compound valence of ``text`` in [-1, 1]; None when the text is empty or blank.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str; got {type(text).__name__}")
    if not text.strip():
        return None
    return float(_analyzer().polarity_scores(text)["compound"])


def _check_value(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise ValueError(f"{name} valence must be in [-1, 1] or None; got {value}")
    return value


def fuse_valence(face: float | None, voice: float | None, text: float | None,
                 weights: Mapping[str, float] | None = None) -> float | None:
    """Valence from the face, the voice and the words: the weighted mean of the channels present.

    The rule: each channel that has evidence (not None) contributes ``weights[channel] * valence``;
    the sum is divided by the sum of the present channels' weights, so a missing channel neither
    pulls toward 0 nor changes the others' relative say. Default weights (face 0.5, voice 0.2,
    text 0.3) follow what each lite channel is good for: the face carries valence best, the
    prosody heuristic hardly separates happy from angry speech (docs/lite-bundle.md), and the words
    say what the face cannot (a complaint made with a polite smile). Scale ``voice`` by the voice's
    confidence before passing it, if wanted, by giving a smaller weight.

    Returns:
        The fused valence in [-1, 1]; None when no channel has evidence (or all present channels
        have weight 0): the caller abstains.

    Raises:
        ValueError: a valence outside [-1, 1] or not finite; a negative, non-finite or unknown weight.
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown valence channel(s) {sorted(unknown)}; expected some of {list(CHANNELS)}")
    for name, w in weights.items():
        if not (math.isfinite(float(w)) and float(w) >= 0.0):
            raise ValueError(f"weight of {name} must be a finite number >= 0; got {w}")
    values = {"face": _check_value("face", face), "voice": _check_value("voice", voice),
              "text": _check_value("text", text)}
    total = sum(float(weights.get(k, 0.0)) for k, v in values.items() if v is not None)
    if total <= 0.0:
        return None
    fused = sum(float(weights.get(k, 0.0)) * v for k, v in values.items() if v is not None) / total
    return max(-1.0, min(1.0, fused))


def sentiment_of(valence: float | None, threshold: float = 0.2) -> str | None:
    """"positive" / "negative" beyond ±``threshold``, else "neutral"; None for None (abstain).

    0.2 is the lite bundle's ``fusion.sentiment_threshold``; VADER's authors use ±0.05 on text alone.
    """
    if valence is None:
        return None
    return "positive" if valence > threshold else "negative" if valence < -threshold else "neutral"
