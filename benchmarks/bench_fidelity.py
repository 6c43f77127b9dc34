"""Fidelity: does emox-edge give the answer the PyTorch model gives?

On N generated clips (different sentences, voices, framings; subtitle = the sentence), every label
task (sentiment, emotion, intent, open-vocabulary emotion) is answered greedily by the PyTorch
reference pipeline and by each emox-edge variant (GGUF Q4_K_M / Q8_0 x ONNX int8 / fp32, greedy,
unconstrained: the same decoding), both parsed by the same ``TaskBook``. Agreement = the fraction of
(clip, task) pairs whose label is equal (two unparseable answers count as equal).

Two decompositions: the language core alone (each GGUF fed the *reference's* encoder outputs), and
the default user setup (Q4_K_M + int8 with grammar-constrained labels, which always yields a valid
label, compared with the reference's label).

Language-core parity per quantization (top-1 agreement, KL, perplexity on fixed texts against
transformers float32) is the LLM converter's own report (``llm/llm-report.json``), reused as is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _report

TITLE = "Fidelity: emox-edge labels vs the PyTorch reference (greedy), and language-core parity"
TASKS = ("sentiment", "emotion", "intent", "open_vocab_emotion")
MAX_NEW = 32
VARIANTS = (
    {"quant": "q4_k_m", "precision": "int8"},
    {"quant": "q8_0", "precision": "int8"},
    {"quant": "q4_k_m", "precision": "fp32"},
    {"quant": "q8_0", "precision": "fp32"},
)
QUICK_VARIANTS = (VARIANTS[0], VARIANTS[3])


def unit_reference(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from benchmarks._reference import ReferencePipeline

    art = artifacts(args["mode"], args["root"])
    manifest = json.loads((art.bundle / "bundle.json").read_text(encoding="utf-8"))
    ref = ReferencePipeline(art, manifest, threads=args["threads"])
    answers, saved = [], {}
    for k in range(args["clips"]):
        clip = load_clip(k, args["clips_dir"])
        embeds, _ = ref.encode(clip)
        saved.update({f"{k}:{name}": value for name, value in embeds.items()})
        row = {"clip": k, "tasks": {}}
        for task in TASKS:
            result, gen = ref.answer(clip, task, embeds, max_new_tokens=MAX_NEW)
            row["tasks"][task] = {"label": result.label, "valid": result.valid, "text": gen.text,
                                  "n_generated": gen.n_generated}
        answers.append(row)
    path = Path(args["work"]) / "fidelity-reference-embeds.npz"
    np.savez(path, **saved)
    return {"answers": answers, "embeds": str(path)}


def unit_edge(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._clips import load_clip
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions, FaceOptions
    from emox_edge.tasks import TaskRequest

    art = artifacts(args["mode"], args["root"])
    options = AnalyzerOptions(device="cpu", n_threads=args["threads"], quant=args["quant"], precision=args["precision"],
                              deterministic=True, max_new_tokens=MAX_NEW, constrain=False,
                              faces=FaceOptions(enabled=False))
    analyzer = Analyzer.from_bundle(art.bundle, options)
    pipe, core = analyzer.bundle_kind, analyzer.core
    stops = list(pipe.generation.get("stop_strings") or ["###"])
    ref_embeds = np.load(args["reference_embeds"]) if args.get("reference_embeds") else None
    out: dict[str, list] = {"full": [], "llm_only": [], "constrained": []}
    for k in range(args["clips"]):
        clip = load_clip(k, args["clips_dir"])
        result = analyzer.analyze(clip, list(TASKS))
        out["full"].append({"clip": k, "tasks": {t: {"label": r.label, "valid": r.valid, "text": r.text}
                                                 for t, r in result.tasks.items()}})
        if args.get("constrained"):
            row = {"clip": k, "tasks": {}}
            embeds, _ = pipe.encode(clip)
            for task in TASKS:
                question = pipe.book.question(TaskRequest.parse(task), subtitle=clip.subtitle)
                segments = pipe.book.segments(question, subtitle=clip.subtitle, history=(), embeddings=embeds)
                gen = core.generate(segments, grammar=pipe.book.grammar(question), max_new_tokens=MAX_NEW,
                                         temperature=0.0, stop=stops)
                parsed = pipe.book.parse(question, gen.text)
                row["tasks"][task] = {"label": parsed.label, "valid": parsed.valid, "text": gen.text}
            out["constrained"].append(row)
        if ref_embeds is not None:
            embeds = {name.split(":", 1)[1]: ref_embeds[name] for name in ref_embeds.files if name.startswith(f"{k}:")}
            row = {"clip": k, "tasks": {}}
            for task in TASKS:
                question = pipe.book.question(TaskRequest.parse(task), subtitle=clip.subtitle)
                segments = pipe.book.segments(question, subtitle=clip.subtitle, history=(), embeddings=embeds)
                gen = core.generate(segments, max_new_tokens=MAX_NEW, temperature=0.0, stop=stops)
                parsed = pipe.book.parse(question, gen.text)
                row["tasks"][task] = {"label": parsed.label, "valid": parsed.valid, "text": gen.text}
            out["llm_only"].append(row)
    analyzer.close()
    return {k: v for k, v in out.items() if v}


def agreement(reference: list[dict], edge: list[dict]) -> dict[str, Any]:
    """Per task: fraction of clips whose labels are equal, and how many labels each side could parse."""
    ref_by_clip = {row["clip"]: row["tasks"] for row in reference}
    out: dict[str, Any] = {}
    for task in TASKS:
        pairs = [(ref_by_clip[row["clip"]][task]["label"], row["tasks"][task]["label"]) for row in edge
                 if row["clip"] in ref_by_clip and task in row["tasks"] and task in ref_by_clip[row["clip"]]]
        if not pairs:
            continue
        out[task] = {"agreement": sum(a == b for a, b in pairs) / len(pairs), "n": len(pairs),
                     "reference_parsed": sum(a is not None for a, _ in pairs),
                     "edge_parsed": sum(b is not None for _, b in pairs)}
    if out:
        total = sum(v["n"] for v in out.values())
        out["all"] = {"agreement": sum(v["agreement"] * v["n"] for v in out.values()) / total, "n": total}
    return out


def parity_table(art) -> list[dict[str, Any]]:
    path = art.llm_dir / "llm-report.json"
    if not path.is_file():
        return []
    report = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for entry in report.get("types", []):
        m = entry.get("metrics", {})
        rows.append({"type": entry.get("type"), "top1": m.get("top1"), "mean_kl": m.get("mean_kl"),
                     "max_abs_dlogit": m.get("max_abs_dlogit"), "ppl_change": m.get("ppl_change"),
                     "n_positions": m.get("n_positions"), "size_bytes": entry.get("size_bytes")})
    return rows


def run(ctx) -> dict[str, Any]:
    base = {"clips": ctx.clips, "clips_dir": str(ctx.clips_dir)}
    problems: list[str] = []
    parity = parity_table(ctx.art)
    try:
        ref = ctx.child("fidelity_reference", base, tag="fidelity-pytorch")
    except RuntimeError as exc:
        return {"status": "failed", "reason": f"PyTorch reference: {exc}", "parity": parity,
                "metrics": _parity_metrics(parity), "partial": bool(parity)}
    edges: dict[str, Any] = {}
    for v in (VARIANTS if ctx.mode == "full" else QUICK_VARIANTS):
        key = f"{v['quant']}-{v['precision']}"
        default = key == "q4_k_m-int8"
        extra = {**base, **v, "constrained": default}
        if v["precision"] == "int8":  # the language core alone, once per GGUF
            extra["reference_embeds"] = ref["embeds"]
        try:
            edges[key] = ctx.child("fidelity_edge", extra, tag=f"fidelity-{key}")
        except RuntimeError as exc:
            problems.append(f"{key}: {exc}")
    metrics: dict[str, Any] = _parity_metrics(parity)
    higher = [f"parity.{t}.top1" for t in metrics.get("parity", {})]
    tables: dict[str, Any] = {}
    for key, res in edges.items():
        tables[key] = agreement(ref["answers"], res["full"])
        if res.get("llm_only"):
            tables[f"{key.split('-')[0]} (language core only)"] = agreement(ref["answers"], res["llm_only"])
        if res.get("constrained"):
            tables[f"{key} constrained"] = agreement(ref["answers"], res["constrained"])
    for name, table in tables.items():
        metrics[f"agreement.{name}"] = {task: v["agreement"] for task, v in table.items()}
        higher += [f"agreement.{name}.{task}" for task in table]
    section = {"metrics": _nest(metrics), "higher_is_better": higher, "tables": tables, "parity": parity,
               "reference_answers": ref["answers"], "edge_answers": {k: v.get("full") for k, v in edges.items()},
               "clips": ctx.clips}
    if problems:
        section.update(status="partial", partial=True, reason="; ".join(problems))
    return section


def _parity_metrics(parity: list[dict[str, Any]]) -> dict[str, Any]:
    return {"parity": {row["type"]: {k: row[k] for k in ("top1", "mean_kl", "ppl_change") if row.get(k) is not None}
                       for row in parity}} if parity else {}


def _nest(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        head, _, tail = key.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[key] = value
    return out


def render(section: dict[str, Any]) -> str:
    parts = []
    tables = section.get("tables", {})
    if tables:
        rows = []
        for name, table in tables.items():
            rows.append([name] + [_cell(table.get(t)) for t in (*TASKS, "all")])
        parts.append(f"Label agreement with the PyTorch reference on {section.get('clips')} generated clips "
                     f"(greedy, up to {MAX_NEW} tokens; `edge parsed/reference parsed` of n in brackets):\n\n"
                     + _report.table(["emox-edge", *TASKS, "all"], rows))
        if any(name.endswith("constrained") for name in tables):
            parts.append("The *constrained* row forces the trained answer format (\"The character's sentiment state "
                         "is {label}.\") with a label grammar, as `emox-edge run` does by default; the reference runs "
                         "free. The stand-in language core was never trained on Nano-EmoX's formats (it answers "
                         "\"1. **Complain**: ...\"), so forcing the format changes which label it continues with: "
                         "that row measures the format mismatch of an untrained model, not conversion error "
                         "(to re-measure once a Nano-EmoX checkpoint, trained on these formats, is published).")
    parity = section.get("parity") or []
    if parity:
        rows = [[p["type"], _report.pct(p.get("top1")), f"{p['mean_kl']:.2e}" if p.get("mean_kl") is not None else None,
                 f"{p['max_abs_dlogit']:.3g}" if p.get("max_abs_dlogit") is not None else None,
                 f"{100 * p['ppl_change']:+.2f} %" if p.get("ppl_change") is not None else None,
                 p.get("n_positions"), _report.mib((p.get("size_bytes") or 0) / 2**20)] for p in parity]
        parts.append("Language-core parity against transformers float32 (the LLM converter's report, "
                     "`llm/llm-report.json`; position 0 excluded):\n\n"
                     + _report.table(["GGUF", "top-1 agreement", "mean KL", "max abs Δlogit", "perplexity change",
                                      "positions", "size"], parity and rows))
    return "\n\n".join(parts)


def _cell(entry: dict[str, Any] | None) -> str | None:
    if not entry:
        return None
    text = f"{100 * entry['agreement']:.0f} %"
    if "edge_parsed" in entry:
        text += f" ({entry['edge_parsed']}/{entry['reference_parsed']} of {entry['n']})"
    return text
