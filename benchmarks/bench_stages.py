"""Encoder stages on one clip: PyTorch fp32 (the reference modules) vs ONNX Runtime fp32 vs int8.

Stages: CLIP ViT-L/14 on 8 frames (``visual``), HuBERT-Large on 8 windows of 2 s (``audio``),
FaceXFormer on 8 frames (``facial``), and the adapters (Q-Formers, fusion, facial head,
projections). ONNX Runtime runs through the runtime's own ``EncoderSuite`` on the bundle's graphs,
one child process per precision (so each has its own peak RSS). Cosines compare each stage's
outputs with PyTorch's on the same clip; the ONNX adapters are fed by their own precision's
encoders (the chain a user runs), so their cosine includes the encoders' error. Issue 14's int8
levers (static int8, ORT transformer fusions) are measured beside the shipped int8 here too
(``bench_int8_levers``).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _report, bench_int8_levers

TITLE = "Encoder stages: PyTorch fp32 vs ONNX Runtime fp32 vs int8 (one clip)"
STAGES = ("visual", "audio", "facial", "adapters")
STAGE_LABEL = {"visual": "CLIP ViT-L/14, 8 frames", "audio": "HuBERT-Large, 8 × 2 s", "facial": "FaceXFormer, 8 frames",
               "adapters": "adapters (Q-Formers, fusion, projections)"}
OUTPUTS = {"visual": ("visual_main", "visual_multi"), "audio": ("audio_main", "audio_multi"),
           "facial": ("face_features",), "adapters": ("audio_embeds", "frame_embeds", "face_embeds", "fusion_embeds")}


def _clip_inputs(args: dict[str, Any]):
    from benchmarks._clips import load_clip
    from emox_edge.preprocess import preprocess_clip

    return preprocess_clip(load_clip(0, args["clips_dir"]))


def _save(path: Path, arrays: dict[str, np.ndarray]) -> str:
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    return str(path)


def unit_torch(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._common import median_ms, rss_mib
    from benchmarks._reference import TorchEncoders, torch

    torch.set_num_threads(args["threads"])
    art = artifacts(args["mode"], args["root"])
    encoders = TorchEncoders(art)
    loaded = rss_mib()
    inputs = _clip_inputs(args)
    feats: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    for stage in STAGES:
        arg = feats if stage == "adapters" else inputs
        out = encoders.stage(stage, arg)
        times[stage], _ = median_ms(lambda: encoders.stage(stage, arg), repeats=args["repeats"], warmup=0)
        if stage == "adapters":
            feats.update(out)
        elif stage == "facial":
            feats["face_features"] = out
        else:
            feats[f"{stage}_main"], feats[f"{stage}_multi"] = out
    path = _save(Path(args["work"]) / "stages-torch.npz", feats)
    return {"ms": times, "rss_after_load_mib": loaded, "outputs": path}


def unit_onnx(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._common import rss_mib
    from emox_edge.bundle.manifest import Bundle
    from emox_edge.encoders import EncoderSuite

    art = artifacts(args["mode"], args["root"])
    precision = args["precision"]
    suite = EncoderSuite(Bundle.open(art.bundle), device="cpu", precision=precision, n_threads=args["threads"])
    loaded = rss_mib()
    inputs = _clip_inputs(args)
    tensors = {"pixel_values": inputs.pixel_values, "frames": inputs.face_frames, "waveforms": inputs.waveforms,
               "face_frames": inputs.face_frames}
    values, _ = suite.run(tensors)  # warm-up
    samples: dict[str, list[float]] = {}
    for _ in range(args["repeats"]):
        suite.rows.clear()  # every row runs again: none is taken from the row cache (same clip each time)
        values, timings = suite.run(tensors)
        for name, ms in timings.items():
            samples.setdefault(name, []).append(ms)
    keep = {name: values[name] for outs in OUTPUTS.values() for name in outs if name in values}
    path = _save(Path(args["work"]) / f"stages-onnx-{precision}.npz", keep)
    files = {g.name: g.file for g in suite.graphs}
    sizes = {g.name: (art.bundle / g.file).stat().st_size for g in suite.graphs}
    return {"ms": {k: statistics.median(v) for k, v in samples.items()}, "rss_after_load_mib": loaded,
            "outputs": path, "files": files, "file_bytes": sizes}


def _cosines(a_path: str, b_path: str) -> dict[str, float]:
    from benchmarks._common import cosine

    a, b = np.load(a_path), np.load(b_path)
    return {name: cosine(a[name], b[name]) for name in a.files if name in b.files}


def run(ctx) -> dict[str, Any]:
    results: dict[str, Any] = {}
    problems = []
    for tag, unit, extra in (("torch", "stages_torch", {}), ("fp32", "stages_onnx", {"precision": "fp32"}),
                             ("int8", "stages_onnx", {"precision": "int8"})):
        try:
            results[tag] = ctx.child(unit, extra, tag=f"stages-{tag}")
        except RuntimeError as exc:
            problems.append(f"{tag}: {exc}")
    if not results:
        return {"status": "failed", "reason": "; ".join(problems)}
    cos = {}
    if "torch" in results:
        for tag in ("fp32", "int8"):
            if tag in results:
                cos[f"{tag}_vs_torch"] = _cosines(results[tag]["outputs"], results["torch"]["outputs"])
    if "fp32" in results and "int8" in results:
        cos["int8_vs_fp32"] = _cosines(results["int8"]["outputs"], results["fp32"]["outputs"])
    metrics: dict[str, Any] = {}
    for tag, res in results.items():
        metrics[f"{tag}_ms"] = dict(res["ms"])
        metrics[f"{tag}_peak_rss_mib"] = res["child"]["peak_rss_mib"]
    for name, table in cos.items():
        metrics[f"cosine_{name}"] = {k: round(v, 6) for k, v in table.items()}
    if "fp32" in results and "int8" in results:
        metrics["int8_speedup"] = {s: results["fp32"]["ms"][s] / results["int8"]["ms"][s]
                                   for s in STAGES if s in results["fp32"]["ms"] and s in results["int8"]["ms"]}
    if "torch" in results and "int8" in results:
        metrics["int8_vs_torch_speedup"] = {s: results["torch"]["ms"][s] / results["int8"]["ms"][s]
                                            for s in STAGES if s in results["int8"]["ms"]}
    higher = [f"{k}.{s}" for k in ("int8_speedup", "int8_vs_torch_speedup") for s in STAGES]
    higher += [f"cosine_{n}.{o}" for n, t in cos.items() for o in t]
    section = {"metrics": metrics, "higher_is_better": higher,
               "files": results.get("int8", results.get("fp32", {})).get("files"),
               "file_bytes": {t: results[t].get("file_bytes") for t in ("fp32", "int8") if t in results},
               "rss_after_load_mib": {t: r.get("rss_after_load_mib") for t, r in results.items()}}
    if "torch" in results and "int8" in results:
        try:
            levers = bench_int8_levers.measure(ctx, results["torch"]["outputs"])
        except RuntimeError as exc:
            problems.append(f"int8 levers: {exc}")
        else:
            section["levers"] = {k: v for k, v in levers.items() if k != "metrics"}
            metrics["levers"] = levers["metrics"]
            higher += [f"levers.{k}.{g}.{v}" for k in ("speedup_vs_int8", "cosine_vs_torch")
                       for g, t in levers["metrics"][k].items() for v in t]
    if problems:
        section.update(status="partial", partial=True, reason="; ".join(problems))
    return section


def render(section: dict[str, Any]) -> str:
    m = section.get("metrics", {})
    torch_ms, fp32_ms, int8_ms = m.get("torch_ms", {}), m.get("fp32_ms", {}), m.get("int8_ms", {})
    c_fp32 = m.get("cosine_fp32_vs_torch", {})
    c_int8 = m.get("cosine_int8_vs_fp32", {})
    c_int8_t = m.get("cosine_int8_vs_torch", {})
    sizes = section.get("file_bytes") or {}
    rows = []
    for stage in STAGES:
        outs = OUTPUTS[stage]
        first = outs[0]

        def worst(table: dict[str, float]) -> float | None:
            vals = [table[o] for o in outs if o in table]
            return min(vals) if vals else None

        speed = (fp32_ms.get(stage) / int8_ms[stage]) if stage in int8_ms and stage in fp32_ms else None
        rows.append([STAGE_LABEL[stage], _report.ms(torch_ms.get(stage)), _report.ms(fp32_ms.get(stage)),
                     _report.ms(int8_ms.get(stage)), _report.ratio(speed),
                     _report.ratio(torch_ms[stage] / int8_ms[stage]) if stage in torch_ms and stage in int8_ms else None,
                     _fmt_cos(worst(c_fp32)), _fmt_cos(worst(c_int8)), _fmt_cos(worst(c_int8_t)),
                     _size(sizes.get("fp32", {}) or {}, stage), _size(sizes.get("int8", {}) or {}, stage)])
        del first
    text = _report.table(["stage", "PyTorch fp32", "ORT fp32", "ORT int8", "int8 speed-up vs ORT fp32",
                          "int8 speed-up vs PyTorch", "cos ORT fp32 vs PyTorch", "cos int8 vs fp32",
                          "cos int8 vs PyTorch", "fp32 file", "int8 file"], rows)
    peaks = [f"{tag} {_report.mib(m.get(f'{tag}_peak_rss_mib'))}" for tag in ("torch", "fp32", "int8")
             if m.get(f"{tag}_peak_rss_mib") is not None]
    text += ("\n\nCosine: the lowest over a stage's outputs (main and multi-scale features; the four embedding "
             "sets for the adapters), flattened. Peak RSS of each child (all four stages loaded): " + ", ".join(peaks) + ".")
    if section.get("levers"):
        text += "\n\n" + bench_int8_levers.render({**section["levers"], "metrics": m.get("levers", {})})
    return text


def _fmt_cos(value: float | None) -> str | None:
    return None if value is None else f"{value:.5f}"


def _size(sizes: dict[str, int], stage: str) -> str | None:
    return _report.mib(sizes[stage] / 2**20) if stage in sizes else None
