"""A whole clip, end to end: emox-edge variants against the PyTorch reference pipeline, side by side.

Per clip (8 frames + 8 audio windows + subtitle): preprocessing, every encoder, then two tasks on the
same encoder outputs, as ``Analyzer.analyze`` runs them on a Nano-EmoX bundle: a label task (``emotion``, MER
labels, up to 64 tokens) and a reply (``reason``) of exactly 64 tokens (end-of-generation banned and
no stop strings, on both sides, so the decode work is identical). Each repeat uses a different clip,
so no pipeline reuses a cached prompt across clips (within a clip the second task reuses the first's
prefix, as the pipeline does).

emox-edge variants: GGUF Q4_K_M / Q8_0 x ONNX int8 / fp32, greedy and unconstrained (the same
decoding as the reference), plus Q4_K_M + int8 with grammar-constrained labels (each task its own
``generate``) and the analyzer as shipped (below). Reference: the converters'
PyTorch encoders + transformers Qwen2 float32 through ``inputs_embeds``. Every pipeline runs in its
own child process: its peak RSS is its own (the Q4_K_M + int8 figure is the "fits an 8 GB Jetson"
number).

The *shipped* row is what a user gets from ``Analyzer`` with its default options (Q4_K_M + int8, face
detection on, closed-set labels scored by likelihood, all tasks of a clip in one batched language-core
call), timed through the SDK on each clip with the KV cache emptied first: the first token of a label
task is ``analyze_clip(clip, ["emotion"])`` (the label is known when it returns); the total is the
same clip's label task and a 64-token ``reason`` reply (end-of-generation banned, as on the reference
side) planned by the bundle kind and run in one batch, as ``analyze_clip`` runs them; six tasks is
``analyze_clip`` with all six tasks (replies capped at 64 tokens) over the one label task. A second
child compares the label of every closed-set task on the benchmark clips under likelihood scoring,
the label grammar and free decoding (``constrain=False``), on the same encoder outputs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

from benchmarks import _report

TITLE = "End to end, per clip: emox-edge vs the PyTorch reference"
LABEL_TASK = "emotion"
REPLY_TASK = "reason"
MAX_NEW = 64
EDGE_VARIANTS = (
    {"quant": "q4_k_m", "precision": "int8", "constrain": False},
    {"quant": "q8_0", "precision": "int8", "constrain": False},
    {"quant": "q4_k_m", "precision": "fp32", "constrain": False},
    {"quant": "q8_0", "precision": "fp32", "constrain": False},
    {"quant": "q4_k_m", "precision": "int8", "constrain": True},
)
# --quick keeps one variant per code path (both quants, both precisions, the label grammar).
QUICK_VARIANTS = (EDGE_VARIANTS[0], EDGE_VARIANTS[3], EDGE_VARIANTS[4])
SIX_TASKS = ("sentiment", "emotion", "intent", "open_vocab_emotion", "reason", "empathize")
LABEL_TASKS = ("sentiment", "emotion", "intent")
DECODINGS = ("likelihood", "grammar", "free")
PIPELINES = ("pytorch", "pytorch-bf16", *(  # what --e2e-pipelines can choose
    f"{v['quant']}-{v['precision']}" + ("-constrained" if v.get("constrain") else "") for v in EDGE_VARIANTS),
    "shipped", "labels")
JETSON_BUDGET_MIB = 8 * 1024
STAGE_KEYS = ("preprocess", "visual", "audio", "facial", "adapters", "label_prefill", "label_decode",
              "reply_prefill", "reply_decode", "first_token", "total")


def _variant_name(v: dict[str, Any]) -> str:
    name = f"{v['quant'].upper()} + {v['precision']}"
    return name + (" (constrained labels)" if v.get("constrain") else "")


def _clip_indices(repeats: int) -> list[int]:
    return list(range(repeats + 1))  # clip 0 warms up


def _median_timings(per_clip: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for t in per_clip for k in t})
    return {k: statistics.median([t[k] for t in per_clip if k in t]) for k in keys}


def unit_edge(args: dict[str, Any]) -> dict[str, Any]:
    if args.get("pipeline") == "shipped":
        return unit_shipped(args)
    if args.get("pipeline") == "labels":
        return unit_labels(args)
    return unit_variant(args)


def unit_variant(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from benchmarks._common import rss_mib
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions, FaceOptions
    from emox_edge.tasks import TaskRequest

    art = artifacts(args["mode"], args["root"])
    t0 = time.perf_counter()
    options = AnalyzerOptions(device="cpu", n_threads=args["threads"], quant=args["quant"], precision=args["precision"],
                              deterministic=True, max_new_tokens=MAX_NEW, constrain=args["constrain"],
                              faces=FaceOptions(enabled=False))
    analyzer = Analyzer.from_bundle(art.bundle, options)
    pipe = analyzer.bundle_kind
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    core = analyzer.core
    eog = {int(t): float("-inf") for t in core.eog_token_ids}
    stops = list(pipe.generation.get("stop_strings") or ["###"])
    per_clip, answers = [], []
    for index in _clip_indices(args["repeats"]):
        clip = load_clip(index, args["clips_dir"])
        start = time.perf_counter()
        embeds, enc = pipe.encode(clip)
        timings = {"preprocess": enc["preprocess_ms"], **{k.removeprefix("encoder_").removesuffix("_ms"): v
                                                             for k, v in enc.items() if k.startswith("encoder_")}}
        encode_ms = (time.perf_counter() - start) * 1e3
        label_q = pipe.book.question(TaskRequest.parse(LABEL_TASK), subtitle=clip.subtitle)
        seg = pipe.book.segments(label_q, subtitle=clip.subtitle, history=(), embeddings=embeds)
        grammar = pipe.book.grammar(label_q) if args["constrain"] else None
        label = core.generate(seg, grammar=grammar, max_new_tokens=MAX_NEW, temperature=0.0, stop=stops)
        reply_q = pipe.book.question(TaskRequest.parse(REPLY_TASK), subtitle=clip.subtitle)
        seg = pipe.book.segments(reply_q, subtitle=clip.subtitle, history=(), embeddings=embeds)
        reply = core.generate(seg, max_new_tokens=MAX_NEW, temperature=0.0, logit_bias=eog, stop=())
        total = (time.perf_counter() - start) * 1e3
        timings.update(label_prefill=label.prefill_ms, label_decode=label.decode_ms, reply_prefill=reply.prefill_ms,
                       reply_decode=reply.decode_ms, first_token=encode_ms + label.first_token_ms, total=total,
                       label_tokens=label.n_generated, reply_tokens=reply.n_generated, label_prompt=label.n_prompt,
                       reply_prompt=reply.n_prompt, reply_reused=reply.n_reused,
                       reply_tok_s=reply.decode_tokens_per_s)
        if index:
            per_clip.append(timings)
        answers.append({"clip": index, "label": pipe.book.parse(label_q, label.text).label, "label_text": label.text,
                        "reply_text": reply.text})
    analyzer.close()
    return {"load_ms": load_ms, "rss_after_load_mib": loaded, "timings": _median_timings(per_clip), "answers": answers}


def cold(analyzer: Any) -> None:
    """Forget what an earlier run of the same clip left to reuse: llama.cpp's KV prefix and the encoders'
    row cache (``emox_edge/encoders/row_cache.py``, which keeps rows by their input bytes). An analyzer
    of one half (``options.stages``) has only that half's part."""
    stages = analyzer.options.stages
    if stages != "perception":
        analyzer.core.reset()
    encoders = getattr(analyzer.bundle_kind, "encoders", None) if stages != "language" else None
    if encoders is not None:
        encoders.rows.clear()
        encoders.rows.hits = 0


def _shipped_options(args: dict[str, Any], **changes: Any):
    """The analyzer's default options, on this run's threads, replies capped at 64 tokens."""
    from emox_edge.options import AnalyzerOptions

    return AnalyzerOptions(device="cpu", n_threads=args["threads"], quant="q4_k_m", precision="int8",
                           max_new_tokens=MAX_NEW, **changes)


def _exact_length(step: Any, eog: dict[int, float]) -> Any:
    """The kind's plan of a reply, made to decode exactly ``MAX_NEW`` tokens (no end, no stop string)."""
    from emox_edge.kinds.plans import Ask

    if not isinstance(step, Ask) or len(step.requests) != 1:
        raise RuntimeError(f"the bundle kind planned {REPLY_TASK!r} as {type(step).__name__}, not one request")
    req = step.requests[0]
    return Ask([replace(req, max_new_tokens=MAX_NEW, stop=(), logit_bias={**dict(req.logit_bias or {}), **eog})],
               step.finish)


def _encoder_timings(timings: dict[str, float]) -> dict[str, float]:
    out = {k.removeprefix("encoder_").removesuffix("_ms"): v for k, v in timings.items() if k.startswith("encoder_")}
    return {**out, **{k.removesuffix("_ms"): timings[k] for k in ("preprocess_ms", "faces_ms") if k in timings}}


def unit_shipped(args: dict[str, Any]) -> dict[str, Any]:
    """The analyzer as shipped: first token of a label task, label + 64-token reply, six tasks over one."""
    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from benchmarks._common import rss_mib
    from emox_edge.analyzer import Analyzer
    from emox_edge.kinds.plans import run_plans

    art = artifacts(args["mode"], args["root"])
    t0 = time.perf_counter()
    analyzer = Analyzer.from_bundle(art.bundle, _shipped_options(args))
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    core, kind = analyzer.core, analyzer.bundle_kind
    one, six = analyzer.check_tasks([LABEL_TASK]), analyzer.check_tasks(list(SIX_TASKS))
    label_req, reply_req = analyzer.check_tasks([LABEL_TASK, REPLY_TASK])
    eog = {int(t): float("-inf") for t in core.eog_token_ids}
    per_clip, answers, rss = [], [], {"after_label": 0.0, "after_reply": 0.0, "after_six": 0.0}
    for index in _clip_indices(args["repeats"]):
        clip = load_clip(index, args["clips_dir"])
        cold(analyzer)  # the same clip is analysed three times: nothing may be reused from the last run
        start = time.perf_counter()
        first = analyzer.analyze_clip(clip, one)
        first_ms = (time.perf_counter() - start) * 1e3
        rss["after_label"] = max(rss["after_label"], rss_mib())
        cold(analyzer)
        start = time.perf_counter()
        perceived = analyzer.perceive_clip(clip)
        label, reply = run_plans(lambda: core, [kind.plan(label_req, perceived.evidence, ()),
                                                _exact_length(kind.plan(reply_req, perceived.evidence, ()), eog)])
        total_ms = (time.perf_counter() - start) * 1e3
        rss["after_reply"] = max(rss["after_reply"], rss_mib())
        cold(analyzer)
        start = time.perf_counter()
        all_six = analyzer.analyze_clip(clip, six)
        six_ms = (time.perf_counter() - start) * 1e3
        rss["after_six"] = max(rss["after_six"], rss_mib())
        if kind.encoders.rows.hits:
            raise RuntimeError(f"clip {index}: the encoders found {kind.encoders.rows.hits} rows of an earlier run")
        for result in (first, all_six):
            if result.error:
                raise RuntimeError(f"clip {index}: {result.error}")
        ft = first.timings
        decode_s = reply.timings.get("decode_ms", 0.0) / 1e3
        timings = {**_encoder_timings(ft), "perceive": ft["perceive_ms"], "label_answer": ft.get("answer_ms", 0.0),
                   "label_prefill": first.tasks[LABEL_TASK].timings.get("prefill_ms"), "first_token": first_ms,
                   "total": total_ms, "reply_perceive": perceived.timings["perceive_ms"],
                   "reply_prefill": reply.timings.get("prefill_ms"), "reply_decode": reply.timings.get("decode_ms"),
                   "reply_tokens": reply.timings.get("n_generated"), "label_prompt": label.timings.get("n_prompt"),
                   "reply_tok_s": reply.timings.get("n_generated", 0) / decode_s if decode_s else 0.0,
                   "six_tasks": six_ms, "six_perceive": all_six.timings["perceive_ms"],
                   "six_answer": all_six.timings.get("answer_ms", 0.0), "six_over_one": six_ms / first_ms}
        if index:
            per_clip.append({k: float(v) for k, v in timings.items() if isinstance(v, (int, float))})
        answers.append({"clip": index, "label": first.tasks[LABEL_TASK].label, "reply_text": reply.text,
                        "six": {k: {"label": r.label, "text": r.text, "tokens": r.timings.get("n_generated")}
                                for k, r in all_six.tasks.items()}})
    analyzer.close()
    return {"load_ms": load_ms, "rss_after_load_mib": loaded, "rss_mib": rss, "timings": _median_timings(per_clip),
            "six_over_one_per_clip": [t["six_over_one"] for t in per_clip], "answers": answers}


def unit_labels(args: dict[str, Any]) -> dict[str, Any]:
    """Every closed-set label of the benchmark clips under likelihood, grammar and free decoding.

    Each clip is perceived once; its three label tasks are then answered under each decoding on the
    same encoder outputs (the options are switched on the one loaded analyzer: the bundle kind reads
    them when it plans a task; a check below makes sure each decoding really ran).
    """
    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from emox_edge.analyzer import Analyzer

    art = artifacts(args["mode"], args["root"])
    analyzer = Analyzer.from_bundle(art.bundle, _shipped_options(args))
    base = analyzer.options
    options = {"likelihood": replace(base, label_decoding="likelihood"),
               "grammar": replace(base, label_decoding="grammar"), "free": replace(base, constrain=False)}
    requests = analyzer.check_tasks(list(LABEL_TASKS))
    labels: dict[str, list[dict[str, Any]]] = {name: [] for name in DECODINGS}
    answer_ms: dict[str, list[float]] = {name: [] for name in DECODINGS}
    try:
        for index in range(int(args["clips"])):
            perceived = analyzer.perceive_clip(load_clip(index, args["clips_dir"]))
            for name in DECODINGS:
                analyzer.options = options[name]
                analyzer.core.reset()
                start = time.perf_counter()
                result = analyzer.answer_clips([perceived], requests)[0]
                answer_ms[name].append((time.perf_counter() - start) * 1e3)
                if result.error:
                    raise RuntimeError(f"clip {index}, {name} decoding: {result.error}")
                scored = ["label_probability" in r.timings for r in result.tasks.values()]
                if any(scored) != (name == "likelihood"):
                    raise RuntimeError(f"{name} decoding did not run as asked (scored by likelihood: {scored})")
                labels[name].append({task: result.tasks[task].label for task in LABEL_TASKS})
    finally:
        analyzer.options = base
        analyzer.close()
    return {"labels": labels, "answer_ms": {k: statistics.median(v) for k, v in answer_ms.items() if v},
            "clips": int(args["clips"])}


def label_agreement(labels: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Fractions of (clip, task) pairs on which two decodings chose the same label; invalid free answers."""
    out: dict[str, Any] = {}
    for i, a in enumerate(DECODINGS):
        for b in DECODINGS[i + 1:]:
            pairs = [(x[t], y[t]) for x, y in zip(labels[a], labels[b]) for t in LABEL_TASKS]
            same = sum(p == q and p is not None for p, q in pairs)
            out[f"{a}_vs_{b}"] = same / len(pairs) if pairs else None
    out["free_invalid"] = sum(row[t] is None for row in labels.get("free", []) for t in LABEL_TASKS)
    out["pairs"] = sum(len(LABEL_TASKS) for _ in labels.get(DECODINGS[0], []))
    out["free_invalid_fraction"] = out["free_invalid"] / out["pairs"] if out["pairs"] else None
    return out


def unit_reference(args: dict[str, Any]) -> dict[str, Any]:
    import json

    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from benchmarks._common import rss_mib
    from benchmarks._reference import ReferencePipeline

    art = artifacts(args["mode"], args["root"])
    manifest = json.loads((art.bundle / "bundle.json").read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    ref = ReferencePipeline(art, manifest, threads=args["threads"], llm_dtype=args.get("llm_dtype", "float32"))
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    per_clip, answers = [], []
    for index in _clip_indices(args["repeats"]):
        clip = load_clip(index, args["clips_dir"])
        start = time.perf_counter()
        embeds, timings = ref.encode(clip)
        encode_ms = (time.perf_counter() - start) * 1e3
        label, lgen = ref.answer(clip, LABEL_TASK, embeds, max_new_tokens=MAX_NEW)
        _, rgen = ref.answer(clip, REPLY_TASK, embeds, max_new_tokens=MAX_NEW, ban_eog=True)
        total = (time.perf_counter() - start) * 1e3
        timings = dict(timings)
        timings.update(label_prefill=lgen.prefill_ms, label_decode=lgen.decode_ms, reply_prefill=rgen.prefill_ms,
                       reply_decode=rgen.decode_ms, first_token=encode_ms + lgen.first_token_ms, total=total,
                       label_tokens=lgen.n_generated, reply_tokens=rgen.n_generated, label_prompt=lgen.n_prompt,
                       reply_prompt=rgen.n_prompt, reply_tok_s=rgen.decode_tokens_per_s)
        if index:
            per_clip.append(timings)
        answers.append({"clip": index, "label": label.label, "label_text": lgen.text, "reply_text": rgen.text})
    return {"load_ms": load_ms, "rss_after_load_mib": loaded, "timings": _median_timings(per_clip), "answers": answers}


def _wanted(ctx, key: str) -> bool:
    chosen = getattr(ctx, "pipelines", None)
    return not chosen or key in chosen


def run(ctx) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    problems: list[str] = []
    jobs: list[tuple[str, str, dict[str, Any], str]] = [("pytorch", "reference_clip", {}, "PyTorch reference")]
    if ctx.mode == "full":  # what a PyTorch user would try first to save memory: a bf16 language core
        jobs.append(("pytorch-bf16", "reference_clip", {"llm_dtype": "bfloat16"}, "PyTorch with a bf16 language core"))
    for variant in (EDGE_VARIANTS if ctx.mode == "full" else QUICK_VARIANTS):
        key = f"{variant['quant']}-{variant['precision']}" + ("-constrained" if variant.get("constrain") else "")
        jobs.append((key, "edge_clip", variant, _variant_name(variant)))
    jobs.append(("shipped", "edge_clip", {"pipeline": "shipped"}, "emox-edge as shipped"))
    for key, unit, args, name in jobs:
        if not _wanted(ctx, key):
            continue
        try:
            rows[key] = ctx.child(unit, args, tag=f"e2e-{key}")
            if unit == "edge_clip" and "quant" in args:
                rows[key]["variant"] = args
        except RuntimeError as exc:
            problems.append(f"{name}: {exc}")
    labels = None
    if _wanted(ctx, "labels"):
        try:
            labels = ctx.child("edge_clip", {"pipeline": "labels", "clips": ctx.clips}, tag="e2e-labels")
            labels["agreement"] = label_agreement(labels["labels"])
        except RuntimeError as exc:
            problems.append(f"label agreement between decodings: {exc}")
    if not rows and labels is None:
        return {"status": "failed", "reason": "; ".join(problems)}
    metrics: dict[str, Any] = {}
    higher: list[str] = []
    ref = rows.get("pytorch")
    for key, res in rows.items():
        t = res["timings"]
        entry = {"total_ms": t.get("total"), "first_token_ms": t.get("first_token"),
                 "peak_rss_mib": res["child"]["peak_rss_mib"], "load_ms": res.get("load_ms"),
                 "reply_tok_s": t.get("reply_tok_s")}
        higher.append(f"{key}.reply_tok_s")
        if ref and not key.startswith("pytorch"):
            rt = ref["timings"]
            entry["speedup_total"] = rt["total"] / t["total"] if t.get("total") else None
            entry["speedup_first_token"] = rt["first_token"] / t["first_token"] if t.get("first_token") else None
            entry["rss_ratio"] = res["child"]["peak_rss_mib"] / ref["child"]["peak_rss_mib"]
            higher += [f"{key}.speedup_total", f"{key}.speedup_first_token"]
        metrics[key] = {k: v for k, v in entry.items() if v is not None}
    shipped = rows.get("shipped")
    if shipped:
        ratios = shipped.get("six_over_one_per_clip") or []
        if ratios:
            metrics["six_tasks_over_one"] = statistics.median(ratios)
        metrics["shipped"]["six_tasks_ms"] = shipped["timings"].get("six_tasks")
    if labels is not None:
        agree = labels["agreement"]
        metrics["label_agreement"] = {k: v for k, v in agree.items() if "_vs_" in k or k == "free_invalid_fraction"}
        metrics["label_answer_ms"] = labels.get("answer_ms", {})
        higher += [f"label_agreement.{k}" for k in agree if "_vs_" in k]
    default = rows.get("shipped") or rows.get("q4_k_m-int8-constrained") or rows.get("q4_k_m-int8")
    section = {"metrics": metrics, "higher_is_better": higher, "rows": {k: _strip(v) for k, v in rows.items()},
               "footprint": footprint(ctx.art),
               "jetson": {"budget_mib": JETSON_BUDGET_MIB,
                          "peak_rss_mib": default["child"]["peak_rss_mib"] if default else None}}
    if labels is not None:
        section["labels"] = _strip(labels)
    if problems:
        section.update(status="partial", partial=True, reason="; ".join(problems))
    return section


def footprint(art) -> dict[str, Any]:
    """Bytes on disk: the PyTorch model files a user needs vs the bundle's files per variant."""
    def size(path) -> int:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0

    def weights(path) -> int:
        return sum(p.stat().st_size for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))

    out: dict[str, Any] = {"pytorch": {"language core (fp32 safetensors)": weights(art.qwen_hf),
                                       "CLIP + HuBERT (fp32 safetensors)": weights(art.clip) + weights(art.hubert),
                                       "FaceXFormer model.pt": size(art.facexformer),
                                       "Nano-EmoX checkpoint": size(art.checkpoint)}}
    bundle: dict[str, int] = {}
    for path in art.bundle.rglob("*"):
        if path.suffix == ".gguf":
            bundle[f"GGUF {path.stem.split('-')[-1]}"] = path.stat().st_size
        elif path.suffix == ".onnx":
            kind = "int8" if ".int8" in path.name else "fp32"
            bundle[f"ONNX {kind}"] = bundle.get(f"ONNX {kind}", 0) + path.stat().st_size + sum(
                q.stat().st_size for q in path.parent.glob(path.name + ".*") if q.is_file())
    out["bundle"] = bundle
    return out


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("unit",)}


def render(section: dict[str, Any]) -> str:
    rows = section.get("rows", {})
    ref = rows.get("pytorch")
    lines = []
    for key, res in rows.items():
        t = res["timings"]
        name = {"pytorch": "PyTorch fp32 reference", "pytorch-bf16": "PyTorch, bf16 language core",
                "shipped": "emox-edge as shipped (Q4_K_M + int8, likelihood labels, batched tasks)"}.get(key) \
            or "emox-edge " + _variant_name(res["variant"])
        speed = first = rss_ratio = None
        if ref and key != "pytorch":
            speed = ref["timings"]["total"] / t["total"]
            first = ref["timings"]["first_token"] / t["first_token"]
            rss_ratio = res["child"]["peak_rss_mib"] / ref["child"]["peak_rss_mib"]
        enc = sum(t.get(k, 0.0) for k in ("preprocess", "visual", "audio", "facial", "adapters"))
        lines.append([name, _report.ms(t.get("first_token")), _report.ms(t.get("total")), _report.ratio(speed),
                      _report.ratio(first), _report.ms(enc), _report.ms(t.get("label_prefill")),
                      f"{t.get('reply_tok_s', 0):.1f}", _report.mib(res["child"]["peak_rss_mib"]),
                      _report.ratio(rss_ratio), _report.ms(res.get("load_ms"))])
    text = _report.table(["pipeline", "first token", "clip total", "speed-up (total)", "speed-up (first token)",
                          "encoders", "label prefill", "reply tok/s", "peak RSS", "RSS ratio", "load"], lines)
    text += _render_shipped(section)
    jet = section.get("jetson") or {}
    if jet.get("peak_rss_mib"):
        fits = "fits" if jet["peak_rss_mib"] < jet["budget_mib"] * 0.75 else "does not comfortably fit"
        text += (f"\n\nPeak RSS of the full Q4_K_M + int8 bundle loaded and running: "
                 f"{_report.mib(jet['peak_rss_mib'])}; an 8 GB Jetson shares its 8 GiB between CPU and GPU and "
                 f"leaves about 6 GiB to applications, so it {fits}.")
    fp = section.get("footprint") or {}
    if fp.get("pytorch") and fp.get("bundle"):
        torch_total = sum(fp["pytorch"].values())
        b = fp["bundle"]
        default = b.get("GGUF q4_k_m", 0) + b.get("ONNX int8", 0)
        text += ("\n\nOn disk: the PyTorch pipeline needs " + ", ".join(
            f"{k} {_report.mib(v / 2**20)}" for k, v in fp["pytorch"].items()) + f" = {_report.mib(torch_total / 2**20)}; "
            "the bundle holds " + ", ".join(f"{k} {_report.mib(v / 2**20)}" for k, v in sorted(b.items())) +
            f"; the default Q4_K_M + int8 pair is {_report.mib(default / 2**20)}"
            + (f" ({torch_total / default:.1f}× smaller)." if default else "."))
    if ref:
        t = ref["timings"]
        text += (f"\n\nPer clip: prompts of {int(t.get('label_prompt', 0))} (label) and {int(t.get('reply_prompt', 0))} "
                 f"(reply) positions, 69 of them injected encoder rows; the reply is {int(t.get('reply_tokens', 0))} tokens. "
                 "Medians over the timed clips (one warm-up clip first).")
    return text


def _render_shipped(section: dict[str, Any]) -> str:
    """The shipped row's breakdown, six tasks over one, and label agreement between decodings."""
    text = ""
    res = section.get("rows", {}).get("shipped")
    if res:
        t = res["timings"]
        enc = sum(t.get(k, 0.0) for k in ("preprocess", "visual", "audio", "facial", "adapters"))
        text += (f"\n\nAs shipped (`Analyzer` defaults: face detection on, likelihood labels, tasks batched): "
                 f"the label of `{LABEL_TASK}` alone comes back after {_report.ms(t.get('first_token'))} "
                 f"(perception {_report.ms(t.get('perceive'))}: faces {_report.ms(t.get('faces'))}, encoders and "
                 f"adapters {_report.ms(enc)}; scoring the labels {_report.ms(t.get('label_answer'))}); the label with a "
                 f"{int(t.get('reply_tokens') or 0)}-token `{REPLY_TASK}` in one batch takes {_report.ms(t.get('total'))}. "
                 f"All six tasks ({', '.join(SIX_TASKS)}; replies capped at {MAX_NEW} tokens) take "
                 f"{_report.ms(t.get('six_tasks'))} (answers {_report.ms(t.get('six_answer'))}), "
                 f"{section['metrics'].get('six_tasks_over_one', 0):.2f}× one label task (median of per-clip ratios). "
                 f"RSS after load {_report.mib(res.get('rss_after_load_mib'))}, highest after one label "
                 f"{_report.mib(res.get('rss_mib', {}).get('after_label'))}, after label + reply "
                 f"{_report.mib(res.get('rss_mib', {}).get('after_reply'))}, after six tasks "
                 f"{_report.mib(res.get('rss_mib', {}).get('after_six'))}.")
    labels = section.get("labels")
    if labels:
        a = labels["agreement"]
        ms = labels.get("answer_ms", {})
        text += (f"\n\nClosed-set labels ({', '.join(LABEL_TASKS)}) of {labels.get('clips')} benchmark clips "
                 f"({a.get('pairs')} answers per decoding), same encoder outputs, three decodings:\n\n"
                 + _report.table(["decoding", "3 label tasks (answer time)", "= likelihood", "= grammar", "= free"],
                                 [[name, _report.ms(ms.get(name)), *_agree_cells(name, a)] for name in DECODINGS])
                 + f"\n\nFree decoding gave {a.get('free_invalid')} answer(s) that are not a valid label "
                 "(counted as disagreements).")
    return text


def _agree_cells(name: str, agreement: dict[str, Any]) -> list[str | None]:
    cells = []
    for other in DECODINGS:
        if other == name:
            cells.append("–")
            continue
        key = f"{name}_vs_{other}" if f"{name}_vs_{other}" in agreement else f"{other}_vs_{name}"
        cells.append(_report.pct(agreement.get(key)))
    return cells
