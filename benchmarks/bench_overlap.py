"""Overlap (issue 14 item 3): the next clip's perception while the language core answers the current one.

A live stream is a queue of clips; the live loop runs each clip's perception (faces, voice, the
encoders, the adapters) and then its answer (``emotion``, scored by likelihood, the live default) on
the same threads. This section runs the same queue of benchmark clips two ways on the shipped
Nano-EmoX bundle (Q4_K_M + int8):

- **sequential**, the runtime today: one analyzer on all T threads; perceive clip k, answer it, then
  clip k+1;
- **overlapped**, for each split p + l = T: two analyzers opened on the same bundle, one running the
  perception alone (``stages="perception"``, p threads: ONNX Runtime's intra-op threads, fixed when its
  sessions are created) and one the language core alone (``stages="language"``, l threads: llama.cpp's),
  so their threads together never outnumber T (llama.cpp collapses when its threads outnumber the free
  cores); clip k+1 is perceived in a thread while clip k is answered.

The two analyzers load disjoint parts of the bundle, so the overlapped process holds about what one
analyzer does. Measured over the clips after a warm-up clip: seconds per clip in steady state (the
loop's throughput: it keeps up with 4 s windows only below 4 s a clip) and each clip's latency from
the start of its perception to its answer, with the stages' own times under overlap. The lever pays
when ``throughput_gain`` (sequential seconds per clip over overlapped) is above 1 without the
latency growing.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from benchmarks import _report

TITLE = "Overlap: the next clip's perception during the current answer (thread budget split)"
TASK = "emotion"


def _options(threads: int, stages: str):
    from emox_edge.options import AnalyzerOptions

    return AnalyzerOptions(device="cpu", n_threads=threads, quant="q4_k_m", precision="int8", stages=stages)


def _splits(threads: int) -> list[tuple[int, int]]:
    """(perception, language) thread counts that add up to ``threads``: the even split, and both
    uneven neighbours when there are enough cores for them."""
    if threads < 2:
        return []
    half = threads // 2
    return sorted({(p, threads - p) for p in (half, half + 1, half - 1) if 1 <= p < threads})


def _clips(args: dict[str, Any]) -> list[Any]:
    from benchmarks._clips import load_clip

    return [load_clip(k, args["clips_dir"]) for k in range(args["n_clips"])]


def _sequential(analyzer, clips: list[Any], requests) -> dict[str, Any]:
    latencies, perceive, answer, labels = [], [], [], []
    start = time.perf_counter()
    for clip in clips:
        t0 = time.perf_counter()
        perceived = analyzer.perceive_clip(clip)
        t1 = time.perf_counter()
        labels.append(_label(analyzer.answer_clips([perceived], requests)[0]))
        t2 = time.perf_counter()
        perceive.append((t1 - t0) * 1e3)
        answer.append((t2 - t1) * 1e3)
        latencies.append((t2 - t0) * 1e3)
    wall = time.perf_counter() - start
    return _summary(wall, latencies, perceive, answer, labels)


def _overlapped(seer, speaker, clips: list[Any], requests) -> dict[str, Any]:
    """Perceive clip k+1 in a thread while clip k is answered; the answer waits for its clip's perception."""
    done: dict[int, Any] = {}
    started: dict[int, float] = {}
    spans: dict[int, float] = {}

    def perceive(k: int) -> None:
        started[k] = time.perf_counter()
        try:
            done[k] = seer.perceive_clip(clips[k])
        except BaseException as exc:  # re-raised by the answering thread
            done[k] = exc
        spans[k] = (time.perf_counter() - started[k]) * 1e3

    latencies, answer, labels = [], [], []
    start = time.perf_counter()
    worker = threading.Thread(target=perceive, args=(0,))
    worker.start()
    for k in range(len(clips)):
        worker.join()
        perceived = done.pop(k)
        if isinstance(perceived, BaseException):
            raise perceived
        if k + 1 < len(clips):
            worker = threading.Thread(target=perceive, args=(k + 1,))
            worker.start()
        t0 = time.perf_counter()
        labels.append(_label(speaker.answer_clips([perceived], requests)[0]))
        t1 = time.perf_counter()
        answer.append((t1 - t0) * 1e3)
        latencies.append((t1 - started[k]) * 1e3)
    wall = time.perf_counter() - start
    return _summary(wall, latencies, [spans[k] for k in range(len(clips))], answer, labels)


def _label(result: Any) -> str | None:
    if result.error:
        raise RuntimeError(f"clip {result.start:.1f}-{result.end:.1f} s: {result.error}")
    return result.tasks[TASK].label


def _summary(wall: float, latencies, perceive, answer, labels) -> dict[str, Any]:
    return {"s_per_clip": wall / len(labels), "latency_ms": statistics.median(latencies),
            "perceive_ms": statistics.median(perceive), "answer_ms": statistics.median(answer),
            "clips": len(labels), "labels": labels}


def unit_overlap(args: dict[str, Any]) -> dict[str, Any]:
    """The sequential pass on all threads, then one overlapped pass per thread split (same clips)."""
    from benchmarks._artifacts import artifacts
    from benchmarks.bench_e2e import cold
    from emox_edge.analyzer import Analyzer

    art = artifacts(args["mode"], args["root"])
    threads = args["threads"]
    clips = _clips(args)
    warm, timed = clips[:1], clips[1:]
    out: dict[str, Any] = {"threads": threads, "task": TASK}
    with Analyzer.from_bundle(art.bundle, _options(threads, "all")) as analyzer:
        requests = analyzer.check_tasks([TASK])
        _sequential(analyzer, warm, requests)
        cold(analyzer)
        out["sequential"] = _sequential(analyzer, timed, requests)
    out["overlapped"] = {}
    for p, l in _splits(threads):
        with Analyzer.from_bundle(art.bundle, _options(p, "perception")) as seer, \
                Analyzer.from_bundle(art.bundle, _options(l, "language")) as speaker:
            _overlapped(seer, speaker, warm, requests)
            cold(seer)
            cold(speaker)
            out["overlapped"][f"{p}+{l}"] = _overlapped(seer, speaker, timed, requests)
    return out


def run(ctx) -> dict[str, Any]:
    threads = max(ctx.threads, 2) if ctx.mode == "quick" else ctx.threads  # quick: the code path, 1+1 at least
    if threads < 2:
        return {"status": "not run", "reason": f"{threads} thread: nothing to split"}
    n_clips = max(ctx.repeats + 2, 3)  # a warm-up clip, then at least two in the queue
    res = ctx.child("overlap", {"n_clips": n_clips, "threads": threads}, tag="overlap")
    seq = res["sequential"]
    metrics: dict[str, Any] = {"sequential_s_per_clip": seq["s_per_clip"], "sequential_latency_ms": seq["latency_ms"]}
    best = None
    for split, r in res["overlapped"].items():
        gain = seq["s_per_clip"] / r["s_per_clip"]
        same = sum(a == b for a, b in zip(r["labels"], seq["labels"])) / len(seq["labels"])
        metrics[f"split_{split}"] = {"s_per_clip": r["s_per_clip"], "latency_ms": r["latency_ms"],
                                     "throughput_gain": gain, "latency_ratio": r["latency_ms"] / seq["latency_ms"],
                                     "same_labels": same}
        if best is None or gain > metrics[f"split_{best}"]["throughput_gain"]:
            best = split
    if best is not None:
        metrics["throughput_gain"] = metrics[f"split_{best}"]["throughput_gain"]
        metrics["latency_ratio"] = metrics[f"split_{best}"]["latency_ratio"]
    higher = ["throughput_gain", *(f"split_{s}.{k}" for s in res["overlapped"] for k in ("throughput_gain",
                                                                                           "same_labels"))]
    return {"metrics": metrics, "higher_is_better": higher, "result": res, "best_split": best,
            "pays": bool(best is not None and metrics["throughput_gain"] > 1.0 and metrics["latency_ratio"] <= 1.0)}


def render(section: dict[str, Any]) -> str:
    if section.get("status") != _report.STATUS_OK:
        return f"Not measured: {section.get('reason')}"
    res = section["result"]
    seq = res["sequential"]
    rows = [["sequential (today)", f"{res['threads']} + {res['threads']} (in turn)", _report.ms(seq["s_per_clip"] * 1e3),
             _report.ms(seq["latency_ms"]), _report.ms(seq["perceive_ms"]), _report.ms(seq["answer_ms"]), "1", "1",
             None]]
    for split, r in res["overlapped"].items():
        m = section["metrics"][f"split_{split}"]
        rows.append([f"overlapped {split}", split.replace("+", " + "), _report.ms(r["s_per_clip"] * 1e3),
                     _report.ms(r["latency_ms"]), _report.ms(r["perceive_ms"]), _report.ms(r["answer_ms"]),
                     f"{m['throughput_gain']:.2f}", f"{m['latency_ratio']:.2f}", _report.pct(m["same_labels"])])
    text = _report.table(["pipeline", "threads: perception + language", "seconds per clip", "latency per clip",
                          "perception", "answer", "throughput gain", "latency ratio", "same labels"], rows)
    verdict = "pays" if section.get("pays") else "does not pay on this host: the runtime keeps the sequential loop"
    return text + (f"\n\n{seq['clips']} benchmark clips in a queue after a warm-up clip, `{res['task']}` on each "
                   f"(Q4_K_M + int8, label by likelihood); medians. Latency runs from the start of a clip's "
                   f"perception to its answer; same labels: the overlapped pass's labels equal to the "
                   f"sequential pass's on the same clips. Overlap {verdict}.")
