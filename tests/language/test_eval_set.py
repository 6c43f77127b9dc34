"""The lite evaluation set (benchmarks/data/lite_eval.json) and its scoring rules are well-formed."""

from __future__ import annotations

import pytest

from benchmarks._lite_eval import (check_reply, context_text, face_valence, has_evidence, load_eval, load_prompts,
                                   perception_of)
from emox_edge.lite.perception import label_sets
from emox_edge.lite.tables import intent_labels
from emox_edge.lite.vocabulary import load_emotion_words


@pytest.fixture(scope="module")
def data():
    return load_eval()


def test_cases_use_the_label_sets(data):
    cases = data["cases"]
    assert len(cases) >= 60
    assert len({c["id"] for c in cases}) == len(cases)
    mer = set(label_sets()["mer"].values())
    intents = set(intent_labels("mintrec")[0])
    words = set(load_emotion_words())
    for case in cases:
        want = case["expected"]
        assert set(want["emotion"] or ()) <= mer, case["id"]
        assert set(want["sentiment"] or ()) <= {"positive", "negative", "neutral"}, case["id"]
        assert set(want["text_sentiment"] or ()) <= {"positive", "negative", "neutral"}, case["id"]
        assert set(want["intent"] or ()) <= intents, case["id"]
        assert set(want["open_vocab"] or ()) <= words, case["id"]
        if want["reply"]:
            assert set(want["reply"]["acknowledge"]) <= set(data["reply_sets"]), case["id"]
        # no words -> intent and text sentiment abstain; nothing at all -> every task abstains
        if not case["transcript"].strip():
            assert want["intent"] is None and want["text_sentiment"] is None, case["id"]
        if not has_evidence(case):
            assert want["emotion"] is None and want["sentiment"] is None and want["reply"] is None, case["id"]


def test_coverage(data):
    cases = data["cases"]
    top_face = [max(c["perception"]["expression"], key=c["perception"]["expression"].get)
                for c in cases if c["perception"]["expression"]]
    for expression in ("happy", "sad", "angry", "fear", "surprise", "neutral", "disgust"):
        assert expression in top_face
    assert sum(c["perception"]["expression"] is None and has_evidence(c) for c in cases) >= 5  # no face
    assert sum(not c["transcript"] for c in cases if has_evidence(c)) >= 6  # no speech: intent abstains
    assert sum(not has_evidence(c) for c in cases) >= 2  # nothing: every task abstains
    assert sum(c["id"].startswith("conflict") for c in cases) >= 5
    assert sum(c["perception"]["faces"] > 1 for c in cases) >= 3
    intents = {i for c in cases for i in (c["expected"]["intent"] or ())[:1]}
    assert len(intents) >= 15  # requests, thanks, greetings, complaints, apologies, ...


def test_context_is_what_the_core_sees(data):
    prompts = load_prompts()
    by_id = {c["id"]: c for c in data["cases"]}
    text = context_text(by_id["happy-greet"], prompts)
    assert "facial expression: happy 0.88" in text and "high arousal" in text
    assert 'The person said: "Hi! It\'s so good to see you again!"' in text
    assert "no face visible" in context_text(by_id["noface-greet"], prompts)
    assert "said nothing" in context_text(by_id["nospeech-sad"], prompts)
    assert "3 faces are visible" in context_text(by_id["multi-welcome"], prompts)
    assert perception_of(by_id["sad-loss"]).emotion_label() == "sad"
    assert face_valence(by_id["noface-greet"]) is None and face_valence(by_id["happy-greet"]) > 0.5


def test_reply_rules_can_fail(data):
    sets = data["reply_sets"]
    by_id = {c["id"]: c for c in data["cases"]}
    loss = by_id["sad-loss"]
    good = check_reply("I'm so sorry for your loss. I'm here for you.", loss["expected"]["reply"], sets,
                       loss["transcript"])
    assert good.passed
    checks = {
        "non_empty": "",
        "no_tags": "<think>sad</think> I'm so sorry.",
        "short": "I'm so sorry. " * 40,
        "no_echo": "I'm sorry. My grandmother passed away last night.",
        "acknowledges": "Okay, noted.",
        "avoids": "Sorry, but congratulations anyway!",
    }
    for rule, reply in checks.items():
        result = check_reply(reply, loss["expected"]["reply"], sets, loss["transcript"])
        assert not getattr(result, rule) and not result.passed, rule
    assert not check_reply("The person said they feel sad, sorry.", loss["expected"]["reply"], sets).no_echo
