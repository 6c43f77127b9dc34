"""benchmarks/bench_lite_quality.py runs end to end on a tiny random-weight core.

The real cores are benchmarked, not tested."""

from __future__ import annotations

from benchmarks._lite_eval import load_eval, load_prompts
from benchmarks.bench_lite_quality import DEFAULT_TASKS, TASKS, rule_baselines, run_model, score


def test_bench_runs_and_scores_on_a_tiny_core(tiny_gguf):
    data = load_eval()
    by_id = {c["id"]: c for c in data["cases"]}
    cases = [by_id["happy-greet"], by_id["nospeech-sad"]]
    run = run_model("tiny", tiny_gguf, cases, load_prompts(), 1, TASKS)
    first, second = run["answers"]
    assert "intent" in first and "intent" not in second  # no words: intent abstains, the core is not asked
    assert "text_sentiment" not in second
    assert all("<" not in row["reply"] for row in run["answers"])  # tag tokens are banned in the reply
    result = score(run, by_id, data["reply_sets"])
    assert result["open_vocab_valid"] == 1.0  # the vocabulary grammar holds even for random weights
    assert result["n_intent"] == 1 and result["clip_ms_median"] > 0
    assert set(DEFAULT_TASKS) < set(TASKS)
    base = rule_baselines(data["cases"])
    assert base["n"] == sum(1 for c in data["cases"] if c["expected"]["emotion"])
    assert 0.0 <= base["sentiment_acc_face_voice_vader"] <= 1.0
