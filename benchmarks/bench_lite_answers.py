"""The lite bundle's language answers as shipped: the SDK's own lite kind on the evaluation set.

``bench_lite_quality`` compares candidate cores on prompts of its own; this runs what a user gets:
each case of benchmarks/data/lite_eval.json becomes a perceived clip (its perception fused as the lite
bundle fuses it, its transcript as the words) and ``Analyzer.answer_clips`` answers intent,
open_vocab_emotion, reason and empathize in one batch, from an empty KV cache, greedy.

Scored per case: intent (a label a person accepts; cases with words), open-vocabulary hit (a word a
person accepts), the empathy rules of ``benchmarks._lite_eval.check_reply`` (non-empty, no tags,
short, no echo of the words or the prompt, acknowledges, avoids), and for ``reason`` the numbers it
states that are not among the clip's measured ones (invented cues). Times: answering ms per clip.

    nice -n 5 .venv/bin/python -m benchmarks.bench_lite_answers [--lm smollm2-135m] [--limit N]
        [--reason evidence|generated] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from typing import Any, Mapping

from benchmarks._common import cpu_model, cpu_simd, load_average
from benchmarks._lite_eval import REPLY_RULES, check_reply, label_ok, load_eval, perception_of

TASKS = ("intent", "open_vocab_emotion", "reason", "empathize")
_NUMBER = re.compile(r"[-+]?\d*\.\d+|\d+(?:\.\d+)?%")


def _measured_numbers(case: Mapping[str, Any], text_valence: float | None) -> set[str]:
    """The numbers a reason may cite: expression probabilities, voice arousal/valence, the fused emotion
    probabilities, valence and arousal, the words' valence."""
    p = case["perception"]
    values = list((p.get("expression") or {}).values())
    values += [v for k, v in (p.get("voice") or {}).items() if k in ("arousal", "valence")]
    fused = perception_of(case)
    if fused.expression is not None or fused.voice is not None:
        values += [*fused.emotion().values(), *fused.fused.values(), fused.valence, fused.arousal]
    if text_valence is not None:
        values.append(text_valence)
    out = set()
    for v in values:
        for text in (f"{v:.2f}", f"{v:+.2f}", f"{abs(v):.2f}", f"{v:.1f}", f"{round(100 * v)}%"):
            out.add(text.lstrip("0") if text.startswith("0.") else text)
            out.add(text)
    return out


def invented_numbers(reason: str, case: Mapping[str, Any], text_valence: float | None) -> list[str]:
    allowed = _measured_numbers(case, text_valence)
    return [n for n in _NUMBER.findall(reason) if n not in allowed and n.lstrip("+") not in allowed]


def _perceived(case: Mapping[str, Any]):
    from emox_edge.analyzer import PerceivedClip
    from emox_edge.kinds.base import Evidence

    p = perception_of(case)
    evidence = Evidence(perception=p.to_dict(), state=p, transcript=case["transcript"])
    return PerceivedClip(source=case["id"], start=0.0, end=4.0, frame_faces=(), timings={"perceive_ms": 0.0},
                         transcript=None, speech_segments=None, evidence=evidence, history=(), dialogue=())


def measure(lm: str, *, limit: int | None, reason: str | None, threads: int) -> dict[str, Any]:
    from converters.lite.build import build_lite_bundle
    from emox_edge import Analyzer
    from emox_edge.lite.text_sentiment import text_valence
    from emox_edge.options import AnalyzerOptions
    from emox_edge.tasks import TaskRequest

    data = load_eval()
    cases = data["cases"][:limit] if limit else data["cases"]
    requests = [TaskRequest(t, reason if t == "reason" else None) for t in TASKS]
    flags: dict[str, list[bool]] = {"intent": [], "open_vocab_hit": [], "empathy_pass": [], "reason_invents": []}
    rules: dict[str, list[bool]] = {k: [] for k in REPLY_RULES}
    times, rows = [], []
    with Analyzer.from_bundle(build_lite_bundle(lm=lm), AnalyzerOptions(n_threads=threads)) as analyzer:
        for case in cases:
            analyzer.core.reset()
            t0 = time.perf_counter()
            result = analyzer.answer_clips([_perceived(case)], requests)[0]
            times.append((time.perf_counter() - t0) * 1000.0)
            tasks, want, words = result.tasks, case["expected"], case["transcript"]
            if want.get("intent") and words.strip():
                flags["intent"].append(label_ok(tasks["intent"].label, want["intent"]))
            if want.get("open_vocab") and not tasks["open_vocab_emotion"].abstained:
                flags["open_vocab_hit"].append(any(w in want["open_vocab"] for w in tasks["open_vocab_emotion"].labels))
            if not tasks["reason"].abstained:
                invented = invented_numbers(tasks["reason"].text, case, text_valence(words))
                flags["reason_invents"].append(bool(invented))
            if want.get("reply"):
                check = check_reply(tasks["empathize"].reply or "", want["reply"], data["reply_sets"], words)
                flags["empathy_pass"].append(check.passed)
                for key in REPLY_RULES:
                    rules[key].append(getattr(check, key))
            rows.append({"id": case["id"], **{t: (r.reply if t == "empathize" else r.text) for t, r in tasks.items()}})
    rate = lambda v: round(sum(v) / len(v), 3) if v else None  # noqa: E731
    return {"lm": lm, "reason": reason or "default", "cases": len(cases), **{k: rate(v) for k, v in flags.items()},
            "n": {k: len(v) for k, v in flags.items()}, "empathy_rules": {k: rate(v) for k, v in rules.items()},
            "clip_ms_median": round(statistics.median(times)), "answers": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_lite_answers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--reason", choices=("evidence", "generated"), default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    ns = parser.parse_args(argv)
    load0 = load_average()
    result = measure(ns.lm, limit=ns.limit, reason=ns.reason, threads=ns.threads)
    result["machine"] = {"cpu": cpu_model(), "simd": cpu_simd(), "load_start": load0, "load_end": load_average(),
                         "threads": ns.threads}
    print(json.dumps({k: v for k, v in result.items() if k != "answers"}))
    for row in result["answers"][:5]:
        print("   ", json.dumps(row)[:400])
    if ns.json:
        from emox_edge._io import write_json_atomic

        write_json_atomic(ns.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
