"""Fusion of facial expression and voice affect into emotion and sentiment."""

from __future__ import annotations

import pytest

from converters.lite.fer_onnx import FER_CLASSES
from emox_edge.lite.perception import fuse
from emox_edge.lite.prosody import VoiceAffect


def _face(**probs: float) -> dict[str, float]:
    out = {c: 0.0 for c in FER_CLASSES}
    out.update(probs)
    return out


HIGH = VoiceAffect(0.8, 0.3, "high arousal", "neutral tone", 1.0)
LOW = VoiceAffect(-0.8, -0.5, "low arousal", "negative tone", 1.0)


def test_face_decides_when_clear():
    p = fuse(_face(happy=0.9, neutral=0.1), None)
    assert p.emotion_label() == "happy" and p.sentiment_label == "positive"
    p = fuse(_face(sad=0.8, neutral=0.2), None)
    assert p.emotion_label() == "sad" and p.sentiment_label == "negative"
    assert p.emotion_label("meld") == "sadness" and p.emotion_label("iemocap") == "sad"
    assert fuse(_face(fear=1.0), None).emotion_label() == "worried"


def test_voice_arousal_breaks_a_face_tie():
    tie = _face(angry=0.5, sad=0.5)
    assert fuse(tie, HIGH).emotion_label() == "angry"
    assert fuse(tie, LOW).emotion_label() == "sad"
    quiet = VoiceAffect(0.8, 0.3, "high arousal", "neutral tone", 0.0)  # no confidence: ignored
    assert fuse(tie, quiet).voice is None


def test_voice_alone_and_nothing():
    p = fuse(None, LOW)
    assert p.expression is None and p.emotion_label() in ("sad", "neutral")
    assert p.sentiment_label == "negative"
    p = fuse(None, None)
    assert p.emotion_label() == "neutral" and p.sentiment_label == "neutral"
    assert "no face visible" in p.summary() and "no speech" in p.summary()


def test_summary_and_dict():
    p = fuse(_face(happy=0.82, surprise=0.1, neutral=0.08), HIGH)
    assert p.summary().startswith("facial expression: happy 0.82, surprise 0.10")
    assert "voice: high arousal" in p.summary()
    d = p.to_dict()
    assert abs(sum(d["emotion"].values()) - 1) < 1e-3 and set(d["emotion"]) == {
        "neutral", "angry", "happy", "sad", "worried", "surprise"}


def test_fusion_misuse():
    with pytest.raises(ValueError, match="unknown expression classes"):
        fuse({"joy": 1.0}, None)
    with pytest.raises(ValueError, match="mer, meld, iemocap"):
        fuse(_face(happy=1.0), None).emotion("ravdess")
