"""The lite bundle's live budget: all six tasks of a clip through the SDK, together vs one by one.

What a user of ``emox-edge run --task all`` gets per clip, per language core: the demo video's clips
(a real face and real speech) are perceived once, then answered

- ``together``: ``Analyzer.answer_clips`` (every task's prompt in one ``LanguageCore.run_batch``:
  the shared prefix decoded once, the answers decoded together, labels scored by likelihood);
- ``one by one``: each task alone (``BundleKind.answer``: one language-core call per task, the
  previous behaviour, still reusing the KV cache over the prefix of consecutive prompts);
- ``grammar labels``: together, closed-set labels decoded under a grammar instead of scored.

Reported: medians over the clips of the answering time (ms) per clip, of perception, and of both
(the live budget), and the answers' checks (no
empty reply, no tag, open-vocabulary words from the list). The live budget is a 4 s clip answered in
4 s. Same threads for every variant; the ISA and load are printed with the numbers.

    nice -n 5 .venv/bin/python -m benchmarks.bench_lite_live [--lm smollm2-135m,qwen2.5-1.5b] [--clips N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks._common import cpu_model, cpu_simd, load_average

SIX = ("emotion", "sentiment", "open_vocab_emotion", "intent", "reason", "empathize")


def _analyzer(lm: str, **options):
    from converters.lite.build import build_lite_bundle
    from emox_edge import Analyzer
    from emox_edge.options import AnalyzerOptions

    return Analyzer.from_bundle(build_lite_bundle(lm=lm), AnalyzerOptions(**options))


def _checks(results) -> dict[str, int]:
    bad = {"empty_reply": 0, "tag_in_answer": 0, "abstained": 0}
    for tasks in results:
        for task in tasks.values():
            if task.abstained:
                bad["abstained"] += 1
                continue
            if task.task == "empathize" and not (task.reply or "").strip():
                bad["empty_reply"] += 1
            text = task.reply if task.task == "empathize" else task.text
            if "<think>" in (text or "") or "</think>" in (text or ""):
                bad["tag_in_answer"] += 1
    return bad


def measure(lm: str, clips: int, threads: int | None) -> dict:
    from emox_edge.capture import Segmentation, resolve_source
    from emox_edge.demo import ensure_demo_clip

    out: dict = {"lm": lm}
    with _analyzer(lm, n_threads=threads) as analyzer:
        requests = analyzer.check_tasks(list(SIX))
        source = resolve_source(str(ensure_demo_clip()), segmentation=Segmentation(mode="fixed", window_s=4.0))
        try:
            media = list(source.clips())[:clips]
        finally:
            source.close()
        speech = analyzer.speech_stage()
        perceived = [analyzer.perceive_clip(c, speech=speech) for c in media]
        analyzer.answer_clips(perceived[:1], requests)  # warm-up: the core loads, caches fill
        together, alone, answers = [], [], []
        for item in perceived:  # each variant starts from an empty KV cache: both pay the clip's prefill
            analyzer.core.reset()
            t0 = time.perf_counter()
            result = analyzer.answer_clips([item], requests)[0]
            together.append((time.perf_counter() - t0) * 1e3)
            answers.append(result.tasks)
            analyzer.core.reset()
            t0 = time.perf_counter()
            for request in requests:
                turns = item.dialogue if request.task == "empathize" else item.history
                analyzer.bundle_kind.answer(request, item.evidence, turns)
            alone.append((time.perf_counter() - t0) * 1e3)
        out["together_ms"] = statistics.median(together)
        # the live budget: perception (faces, VAD, Whisper, prosody) + the six answers, per clip
        out["perceive_ms"] = statistics.median(p.timings["perceive_ms"] for p in perceived)
        out["clip_ms"] = statistics.median(p.timings["perceive_ms"] + t for p, t in zip(perceived, together))
        out["one_by_one_ms"] = statistics.median(alone)
        out["speedup_together"] = out["one_by_one_ms"] / out["together_ms"]
        out["checks"] = _checks(answers)
        out["answers"] = [{k: (t.reply if k == "empathize" else t.label or t.text) for k, t in a.items()}
                          for a in answers]
    with _analyzer(lm, n_threads=threads, label_decoding="grammar") as analyzer:
        requests = analyzer.check_tasks(list(SIX))
        speech = analyzer.speech_stage()
        perceived = [analyzer.perceive_clip(c, speech=speech) for c in media]
        analyzer.answer_clips(perceived[:1], requests)
        grammar, agree = [], 0
        for item, ref in zip(perceived, out["answers"]):
            analyzer.core.reset()
            t0 = time.perf_counter()
            result = analyzer.answer_clips([item], requests)[0]
            grammar.append((time.perf_counter() - t0) * 1e3)
            agree += result.tasks["intent"].label == ref["intent"]
        out["grammar_labels_ms"] = statistics.median(grammar)
        out["intent_agreement_likelihood_vs_grammar"] = agree / len(perceived)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_lite_live", description=__doc__.split("\n")[0])
    parser.add_argument("--lm", default="smollm2-135m", help="comma-separated lite language cores")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = {"machine": {"cpu": cpu_model(), "simd": cpu_simd(), "load_start": load_average()}, "runs": []}
    for lm in args.lm.split(","):
        run = measure(lm, args.clips, args.threads)
        report["runs"].append(run)
        print(f"{lm}: whole clip (perception {run['perceive_ms']:.0f} ms + six answers together) "
              f"{run['clip_ms']:.0f} ms per 4 s clip; six tasks together {run['together_ms']:.0f} ms/clip, one by one {run['one_by_one_ms']:.0f} "
              f"ms/clip ({run['speedup_together']:.2f}x), grammar labels {run['grammar_labels_ms']:.0f} ms/clip; "
              f"intent likelihood = grammar on {run['intent_agreement_likelihood_vs_grammar']:.0%}; "
              f"checks {run['checks']}", flush=True)
        for answers in run["answers"]:
            print("   ", json.dumps(answers)[:400])
    report["machine"]["load_end"] = load_average()
    print(f"machine: {report['machine']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
