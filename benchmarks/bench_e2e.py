"""A whole clip, end to end: emox-edge variants against the PyTorch reference pipeline, side by side.

Per clip (8 frames + 8 audio windows + subtitle): preprocessing, every encoder, then two tasks on the
same encoder outputs, as ``Analyzer.analyze`` runs them on a Nano-EmoX bundle: a label task (``emotion``, MER
labels, up to 64 tokens) and a reply (``reason``) of exactly 64 tokens (end-of-generation banned and
no stop strings, on both sides, so the decode work is identical). Each repeat uses a different clip,
so no pipeline reuses a cached prompt across clips (within a clip the second task reuses the first's
prefix, as the pipeline does).

emox-edge variants: GGUF Q4_K_M / Q8_0 x ONNX int8 / fp32, greedy and unconstrained (the same
decoding as the reference), plus the default user setup (Q4_K_M + int8, grammar-constrained labels)
and ``analyze()`` exactly as shipped (face detection on, natural stops). Reference: the converters'
PyTorch encoders + transformers Qwen2 float32 through ``inputs_embeds``. Every pipeline runs in its
own child process: its peak RSS is its own (the Q4_K_M + int8 figure is the "fits an 8 GB Jetson"
number).
"""

from __future__ import annotations

import statistics
import time
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
    {"quant": "q4_k_m", "precision": "int8", "constrain": True, "shipped": True},
)
# --quick keeps one variant per code path (both quants, both precisions, constrained + shipped analyze()).
QUICK_VARIANTS = (EDGE_VARIANTS[0], EDGE_VARIANTS[3], EDGE_VARIANTS[4])
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
                              faces=FaceOptions(enabled=bool(args.get("shipped"))))
    analyzer = Analyzer.from_bundle(art.bundle, options)
    pipe = analyzer.bundle_kind
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    core = analyzer.core
    eog = {int(t): float("-inf") for t in core.eog_token_ids}
    stops = list(pipe.generation.get("stop_strings") or ["###"])
    per_clip, answers, shipped = [], [], []
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
        if args.get("shipped") and index:
            t1 = time.perf_counter()
            result = analyzer.analyze(clip, [LABEL_TASK, REPLY_TASK])
            shipped.append({"total": (time.perf_counter() - t1) * 1e3, **{f"{k}": v for k, v in result.timings.items()},
                            "tokens": {k: r.timings.get("n_generated") for k, r in result.tasks.items()}})
    analyzer.close()
    out = {"load_ms": load_ms, "rss_after_load_mib": loaded, "timings": _median_timings(per_clip), "answers": answers}
    if shipped:
        out["shipped"] = _median_timings([{k: v for k, v in s.items() if isinstance(v, (int, float))} for s in shipped])
        out["shipped_tokens"] = [s["tokens"] for s in shipped]
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


def run(ctx) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    problems: list[str] = []
    try:
        rows["pytorch"] = ctx.child("reference_clip", {}, tag="e2e-pytorch")
    except RuntimeError as exc:
        problems.append(f"PyTorch reference: {exc}")
    if ctx.mode == "full":  # what a PyTorch user would try first to save memory: a bf16 language core
        try:
            rows["pytorch-bf16"] = ctx.child("reference_clip", {"llm_dtype": "bfloat16"}, tag="e2e-pytorch-bf16")
        except RuntimeError as exc:
            problems.append(f"PyTorch with a bf16 language core: {exc}")
    for variant in (EDGE_VARIANTS if ctx.mode == "full" else QUICK_VARIANTS):
        key = f"{variant['quant']}-{variant['precision']}" + ("-constrained" if variant.get("constrain") else "")
        try:
            rows[key] = ctx.child("edge_clip", variant, tag=f"e2e-{key}")
            rows[key]["variant"] = variant
        except RuntimeError as exc:
            problems.append(f"{_variant_name(variant)}: {exc}")
    if not rows:
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
        if res.get("shipped"):
            entry["shipped_total_ms"] = res["shipped"].get("total")
        metrics[key] = {k: v for k, v in entry.items() if v is not None}
    default = rows.get("q4_k_m-int8-constrained") or rows.get("q4_k_m-int8")
    section = {"metrics": metrics, "higher_is_better": higher, "rows": {k: _strip(v) for k, v in rows.items()},
               "footprint": footprint(ctx.art),
               "jetson": {"budget_mib": JETSON_BUDGET_MIB,
                          "peak_rss_mib": default["child"]["peak_rss_mib"] if default else None}}
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
        name = {"pytorch": "PyTorch fp32 reference", "pytorch-bf16": "PyTorch, bf16 language core"}.get(key) \
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
    shipped = [(k, r) for k, r in rows.items() if r.get("shipped")]
    for key, res in shipped:
        text += (f"\n\n`analyze(clip, ['{LABEL_TASK}', '{REPLY_TASK}'])` as shipped ({_variant_name(res['variant'])}, "
                 f"face detection on, natural stops): {_report.ms(res['shipped'].get('total'))} per clip; "
                 f"tokens generated per task: {res.get('shipped_tokens')}.")
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
