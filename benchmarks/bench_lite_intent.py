"""Intent accuracy of the embedding classifier (all-MiniLM-L6-v2 + prototypes) on the lite evaluation set.

For every case with words and an expected intent, the transcript is embedded once and scored under each
rule of ``emox_edge.lite.intent_model.RULES``; accuracy is ``label_ok`` (the label is one of the
case's acceptable intents), as in bench_lite_quality.py. Also reports ms per sentence (median, one
sentence per run, ``--threads`` ONNX Runtime threads) and the time to embed the prototypes.

    nice -n 5 .venv/bin/python -m benchmarks.bench_lite_intent [--bundle DIR | --model X.onnx --vocab vocab.txt]
        [--threads 2] [--json out.json] [--errors]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from benchmarks._lite_eval import label_ok, load_eval
from emox_edge.lite.intent_model import RULES, IntentClassifier
from emox_edge.lite.tables import intent_labels

log = logging.getLogger("bench_lite_intent")


def _classifier(args) -> IntentClassifier:
    labels = intent_labels("mintrec")[0]
    if args.model:
        return IntentClassifier.from_files(args.model, args.vocab, args.prototypes, labels=labels, n_threads=args.threads)
    from emox_edge.bundle import Bundle
    from converters.lite.build import build_lite_bundle

    bundle = Bundle.open(args.bundle or build_lite_bundle(), verify="size")
    return IntentClassifier.from_bundle(bundle, labels=labels, n_threads=args.threads)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="a lite bundle directory (default: build/reuse the default one)")
    ap.add_argument("--model", help="the sentence encoder ONNX graph (instead of a bundle)")
    ap.add_argument("--vocab", help="its vocab.txt (with --model)")
    ap.add_argument("--prototypes", help="prototypes file (default: the packaged one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--errors", action="store_true", help="log the misclassified cases (default rule)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    clf = _classifier(args)
    load_s = time.perf_counter() - t0
    cases = [c for c in load_eval()["cases"] if c["transcript"].strip() and c["expected"].get("intent")]
    ms = []
    embeddings = []
    for case in cases:
        t = time.perf_counter()
        embeddings.append(clf.encoder.embed([case["transcript"]])[0])
        ms.append(1000 * (time.perf_counter() - t))
    import numpy as np

    emb = np.stack(embeddings)
    acc = {}
    for rule in RULES:
        best = clf.scores_of(emb, rule).argmax(1)
        hits = [label_ok(clf.labels[b], c["expected"]["intent"]) for b, c in zip(best, cases)]
        acc[rule] = round(sum(hits) / len(hits), 3)
        if args.errors and rule == clf.rule:
            for b, c, ok in zip(best, cases, hits):
                if not ok:
                    log.info("  %s: got %s, expected %s", c["id"], clf.labels[b], c["expected"]["intent"])
    result = {"n_cases": len(cases), "accuracy": acc, "rule": clf.rule,
              "ms_per_sentence_median": round(statistics.median(ms), 2), "ms_per_sentence_max": round(max(ms), 2),
              "load_s": round(load_s, 2), "threads": args.threads}
    log.info("%s", json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
