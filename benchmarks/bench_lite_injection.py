"""Which way should the lite bundle's perception reach the language core: text or lexical embeddings?

24 scripted perception vectors (facial expression probabilities + voice arousal/valence, or one of
them missing), each with the emotion and sentiment a person would read from it. For each injection
mode ("text": the summary written into the prompt; "lexical": probability-weighted token embeddings
of the class words injected as rows), the language core answers two grammar-constrained questions
(emotion among Nano-EmoX's 6 MER labels, sentiment among 3) greedily; the score is label agreement.

    .venv/bin/python benchmarks/bench_lite_injection.py [--lm smollm2-135m|qwen2.5-1.5b] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from converters.lite.fer_onnx import FER_CLASSES
from emox_edge.lite.injection import INJECTION_MODES, PromptBuilder
from emox_edge.lite.perception import fuse
from emox_edge.lite.prosody import VoiceAffect

EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
SENTIMENTS = ["positive", "negative", "neutral"]
HIGH_POS = VoiceAffect(0.7, 0.5, "high arousal", "positive tone", 1.0)
HIGH_NEG = VoiceAffect(0.7, -0.5, "high arousal", "negative tone", 1.0)
HIGH = VoiceAffect(0.7, 0.0, "high arousal", "neutral tone", 1.0)
MEDIUM = VoiceAffect(0.0, 0.0, "medium arousal", "neutral tone", 1.0)
LOW_NEG = VoiceAffect(-0.7, -0.5, "low arousal", "negative tone", 1.0)
LOW = VoiceAffect(-0.7, 0.0, "low arousal", "neutral tone", 1.0)

# (face probabilities or None, voice or None, expected emotion, expected sentiment)
CASES = [
    ({"happy": 0.9, "neutral": 0.1}, HIGH_POS, "happy", "positive"),
    ({"happy": 0.7, "surprise": 0.2, "neutral": 0.1}, None, "happy", "positive"),
    ({"happy": 0.55, "neutral": 0.45}, MEDIUM, "happy", "positive"),
    ({"happy": 0.95, "neutral": 0.05}, None, "happy", "positive"),
    ({"sad": 0.85, "neutral": 0.15}, LOW_NEG, "sad", "negative"),
    ({"sad": 0.6, "neutral": 0.3, "fear": 0.1}, LOW, "sad", "negative"),
    ({"sad": 0.5, "fear": 0.3, "neutral": 0.2}, None, "sad", "negative"),
    ({"sad": 0.9, "neutral": 0.1}, None, "sad", "negative"),
    ({"angry": 0.85, "neutral": 0.15}, HIGH_NEG, "angry", "negative"),
    ({"angry": 0.6, "disgust": 0.3, "neutral": 0.1}, None, "angry", "negative"),
    ({"disgust": 0.7, "angry": 0.2, "neutral": 0.1}, None, "angry", "negative"),
    ({"angry": 0.5, "sad": 0.4, "neutral": 0.1}, HIGH_NEG, "angry", "negative"),
    ({"angry": 0.45, "sad": 0.45, "neutral": 0.1}, LOW_NEG, "sad", "negative"),
    ({"surprise": 0.85, "neutral": 0.15}, HIGH, "surprise", "neutral"),
    ({"surprise": 0.6, "happy": 0.3, "neutral": 0.1}, HIGH_POS, "surprise", "positive"),
    ({"surprise": 0.5, "fear": 0.4, "neutral": 0.1}, HIGH, "surprise", "neutral"),
    ({"fear": 0.8, "neutral": 0.2}, None, "worried", "negative"),
    ({"fear": 0.5, "sad": 0.3, "neutral": 0.2}, MEDIUM, "worried", "negative"),
    ({"neutral": 0.9, "happy": 0.1}, None, "neutral", "neutral"),
    ({"neutral": 0.7, "happy": 0.2, "sad": 0.1}, LOW, "neutral", "neutral"),
    ({"neutral": 0.8, "surprise": 0.1, "sad": 0.1}, MEDIUM, "neutral", "neutral"),
    (None, HIGH_POS, "happy", "positive"),
    (None, LOW_NEG, "sad", "negative"),
    (None, MEDIUM, "neutral", "neutral"),
]
Q_EMOTION = "Which emotion is the person most likely feeling? Answer with one label from: {labels}."
Q_SENTIMENT = "Is the person's sentiment positive, negative or neutral? Answer with one label from: {labels}."


def perception(face, voice):
    expression = None if face is None else {c: float(face.get(c, 0.0)) for c in FER_CLASSES}
    return fuse(expression, voice)


def run(core, mode: str) -> dict:
    from emox_edge.llm import label_grammar

    builder = PromptBuilder(core, mode=mode)
    scores = {"emotion": 0, "sentiment": 0}
    prefill, n_prompt, answers = [], [], []
    for face, voice, want_emotion, want_sentiment in CASES:
        p = perception(face, voice)
        got = {}
        for key, question, labels in (("emotion", Q_EMOTION, EMOTIONS), ("sentiment", Q_SENTIMENT, SENTIMENTS)):
            segs = builder.segments(p, question.format(labels=", ".join(labels)))
            core.generate("x", max_new_tokens=0)  # drop the KV cache so every prefill is measured in full
            out = core.generate(segs, max_new_tokens=4, temperature=0.0, grammar=label_grammar(labels))
            got[key] = out.text
            prefill.append(out.prefill_ms)
            n_prompt.append(out.n_prompt)
        scores["emotion"] += got["emotion"] == want_emotion
        scores["sentiment"] += got["sentiment"] == want_sentiment
        answers.append({"want": [want_emotion, want_sentiment], "got": [got["emotion"], got["sentiment"]]})
    n = len(CASES)
    return {"mode": mode, "emotion_acc": round(scores["emotion"] / n, 3), "sentiment_acc": round(scores["sentiment"] / n, 3),
            "mean_acc": round((scores["emotion"] + scores["sentiment"]) / (2 * n), 3),
            "prompt_positions": round(statistics.mean(n_prompt), 1), "prefill_ms_median": round(statistics.median(prefill), 1),
            "answers": answers}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", default="smollm2-135m", choices=("smollm2-135m", "qwen2.5-1.5b"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from emox_edge.bundle import Bundle
    from converters.lite.build import build_lite_bundle
    from emox_edge.llm import LanguageCore

    bundle = Bundle.open(build_lite_bundle(lm=args.lm))
    section = bundle.section("language_core")
    t0 = time.perf_counter()
    rows = []
    with LanguageCore.from_file(bundle.path(section["gguf"][section["default"]]), n_ctx=1024, n_threads=args.threads) as core:
        for mode in INJECTION_MODES:
            rows.append(run(core, mode))
    print(f"lm={args.lm} cases={len(CASES)} threads={args.threads} wall={time.perf_counter() - t0:.0f}s")
    print("| mode | emotion acc | sentiment acc | mean | prompt positions | prefill ms (median) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['emotion_acc']:.3f} | {r['sentiment_acc']:.3f} | {r['mean_acc']:.3f} | "
              f"{r['prompt_positions']} | {r['prefill_ms_median']} |")
    best = max(rows, key=lambda r: r["mean_acc"])
    print(f"better: {best['mode']}")
    if args.json:
        args.json.write_text(json.dumps({"lm": args.lm, "cases": len(CASES), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
