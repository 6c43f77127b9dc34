"""The lite bundle's evidence sentences: only the cues that were present, the numbers that were measured."""

from __future__ import annotations

from emox_edge.lite.explain import evidence_chain, evidence_reason, reply_messages
from emox_edge.lite.perception import fuse
from emox_edge.lite.prosody import VoiceAffect

SAD_FACE = {"sad": 0.7, "neutral": 0.2, "fear": 0.1}
LOW_VOICE = VoiceAffect(-0.5, -0.4, "low arousal", "negative tone", 1.0)


def test_reason_cites_each_present_cue_with_its_number():
    p = fuse(SAD_FACE, LOW_VOICE, face_frames=(6, 8))
    text, label = evidence_reason(p, "My grandmother passed away last night.", -0.5)
    assert label == "sad" and text.startswith("The person most likely feels sad (")
    assert "the face looks sad (0.70 over 6 of 8 frames)" in text
    assert "low arousal and a negative tone (arousal -0.50)" in text
    assert '"My grandmother passed away last night." read negative (-0.50)' in text


def test_reason_never_mentions_an_absent_cue():
    face_only, _ = evidence_reason(fuse({"fear": 0.8, "neutral": 0.2}, None), "", None)
    assert "afraid (0.80" in face_only and "voice" not in face_only and "words" not in face_only
    words_only, label = evidence_reason(fuse(None, None), "Thanks a lot!", 0.44)
    assert label is None and words_only == 'Only words to go on: the words "Thanks a lot!" read positive (+0.44).'
    nothing, label = evidence_reason(fuse(None, None), "", None)
    assert label is None and nothing.startswith("Nothing to explain")


def test_long_words_are_quoted_short():
    text, _ = evidence_reason(fuse(SAD_FACE, None), " ".join(["word"] * 30), -0.2)
    assert '"' + " ".join(["word"] * 12) + '..." read negative' in text


def test_chain_and_reply_prompt():
    p = fuse(SAD_FACE, LOW_VOICE, face_frames=(8, 8))
    chain = evidence_chain(p, "I failed my driving test again.", -0.5)
    assert chain.startswith('They said: "I failed my driving test again.". They seem sad:')
    assert chain.endswith("My reply should comfort them.")
    system, user = reply_messages(p, "I failed my driving test again.", ["user: hi"])
    assert "looks sad" in system and "- user: hi" in system and user == "I failed my driving test again."
    system, user = reply_messages(fuse(None, None), "")
    assert "looks" not in system and user == "(They say nothing.)"
    assert evidence_chain(fuse(None, None), "", None).startswith("They said nothing. I cannot see or hear")
