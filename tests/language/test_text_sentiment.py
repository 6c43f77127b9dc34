"""Text sentiment of the transcript with VADER, and the face/voice/text valence fusion rule."""

from __future__ import annotations

import pytest

from emox_edge.lite.text_sentiment import DEFAULT_WEIGHTS, fuse_valence, sentiment_of, text_valence

POSITIVE = ["Thank you so much, this is wonderful!", "I love it, you made my day.",
            "We won the championship, I'm so happy!"]
NEGATIVE = ["I hate this, it's awful and I'm so angry.", "My grandmother died and I feel terrible.",
            "This is the worst service I have ever had."]
NEUTRAL = ["The meeting is at three o'clock in room four.", "The train leaves from platform two.",
           "The file is in the folder on the desk."]


@pytest.mark.parametrize("text", POSITIVE)
def test_positive(text):
    assert text_valence(text) > 0.5
    assert sentiment_of(text_valence(text)) == "positive"


@pytest.mark.parametrize("text", NEGATIVE)
def test_negative(text):
    assert text_valence(text) < -0.5
    assert sentiment_of(text_valence(text)) == "negative"


@pytest.mark.parametrize("text", NEUTRAL)
def test_neutral(text):
    assert abs(text_valence(text)) < 0.1
    assert sentiment_of(text_valence(text)) == "neutral"


def test_negation_and_emphasis():
    assert text_valence("This is not good.") < 0 < text_valence("This is good.")
    assert text_valence("This is GOOD!!!") > text_valence("This is good.")


def test_empty_text_is_no_evidence():
    assert text_valence("") is None
    assert text_valence("   \n") is None
    assert sentiment_of(None) is None


def test_text_valence_misuse():
    with pytest.raises(TypeError, match="text must be str"):
        text_valence(None)
    with pytest.raises(TypeError, match="text must be str"):
        text_valence(b"good")


def test_fusion_rule():
    assert fuse_valence(None, None, None) is None
    assert fuse_valence(0.8, None, None) == pytest.approx(0.8)  # one channel: itself
    assert fuse_valence(None, None, -0.6) == pytest.approx(-0.6)
    w = DEFAULT_WEIGHTS
    both = (w["face"] * 0.9 + w["text"] * -0.7) / (w["face"] + w["text"])
    assert fuse_valence(0.9, None, -0.7) == pytest.approx(both)  # a missing voice does not pull to 0
    assert fuse_valence(0.9, 0.2, -0.7) == pytest.approx(
        (w["face"] * 0.9 + w["voice"] * 0.2 + w["text"] * -0.7) / sum(w.values()))
    # the words override a polite smile when they weigh more
    assert fuse_valence(0.6, None, -0.9, {"face": 0.3, "text": 0.7}) < 0
    # a channel with weight 0 is ignored; only weight-0 evidence is no evidence
    assert fuse_valence(0.5, -1.0, None, {"face": 1.0, "voice": 0.0}) == pytest.approx(0.5)
    assert fuse_valence(None, -1.0, None, {"face": 1.0, "voice": 0.0}) is None


def test_fusion_with_vader_on_a_masked_complaint():
    """Smiling face (valence +0.7) saying something bitter: when the words weigh more, the clip turns negative."""
    words = text_valence("This is the worst service I have ever had.")
    assert sentiment_of(fuse_valence(0.7, None, None)) == "positive"
    assert sentiment_of(fuse_valence(0.7, None, words, {"face": 0.3, "text": 0.7})) == "negative"


def test_known_lexicon_limits():
    """Documented limits: politeness and hedges count as positive, sarcasm is read literally."""
    assert text_valence("Please send me the file by Monday.") > 0.2
    assert text_valence("Honestly, this is the worst service I have ever had.") > text_valence(
        "This is the worst service I have ever had.")
    assert text_valence("Oh great, thanks a lot for deleting my whole presentation.") > 0.5


def test_fusion_misuse():
    with pytest.raises(ValueError, match="face valence"):
        fuse_valence(1.5, None, None)
    with pytest.raises(ValueError, match="text valence"):
        fuse_valence(None, None, float("nan"))
    with pytest.raises(ValueError, match="unknown valence channel"):
        fuse_valence(0.1, None, None, {"face": 1.0, "smell": 1.0})
    with pytest.raises(ValueError, match="weight of voice"):
        fuse_valence(0.1, 0.1, None, {"face": 1.0, "voice": -0.5})
