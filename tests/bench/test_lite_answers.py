"""bench_lite_answers' check for invented cues: numbers a reason states that were never measured."""

from __future__ import annotations

from benchmarks._lite_eval import load_eval, perception_of
from benchmarks.bench_lite_answers import invented_numbers
from emox_edge.lite.explain import evidence_reason
from emox_edge.lite.text_sentiment import text_valence


def test_made_up_numbers_are_caught_and_measured_ones_are_not():
    case = next(c for c in load_eval()["cases"] if c["id"] == "happy-greet")  # face happy 0.88, arousal +0.6
    assert invented_numbers("A mix of relief (0.98) and joy, 2% chance of surprise.", case, None) == ["0.98", "2%"]
    assert invented_numbers("The face looks happy (0.88); arousal +0.60.", case, None) == []


def test_the_evidence_reason_never_invents_on_the_eval_set():
    for case in load_eval()["cases"]:
        words = case["transcript"]
        valence = text_valence(words)
        text, _ = evidence_reason(perception_of(case), words, valence)
        assert invented_numbers(text, case, valence) == [], (case["id"], text)
