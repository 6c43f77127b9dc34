"""Issue 14 item 1's int8 levers beside the shipped dynamic int8, per encoder graph (part of ``stages``).

Variants (``converters/encoders/int8_variants.py``): ``static`` (calibrated, per-channel weights,
QOperator) and ``fused`` (ONNX Runtime's transformer fusions, then dynamic int8 with QAttention).
They are built once from the bundle's fp32 graphs into ``levers/`` beside the benchmark models,
calibrated on benchmark clips other than the measured one, and rebuilt when the fp32 file changes.
One child then runs, graph by graph, the shipped int8 and both variants on the stages clip, one
frame or audio window per run as the runtime does, in rounds whose order rotates; medians. Cosines
compare each variant's outputs with PyTorch's on that clip. A variant pays when it passes the
parity gate (cosine >= 0.99) and runs at least 5 % faster than the shipped int8 (this VM's speed
moves by a few per cent between rounds of one child).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _report
from converters.encoders.parity import Thresholds
from emox_edge.encoders import FRAMES_PER_RUN, per_frame

GRAPHS = ("visual", "audio", "facial")
LABEL = {"visual": "CLIP ViT-L/14", "audio": "HuBERT-Large", "facial": "FaceXFormer"}
ROWS = ("int8", "static", "fused")  # the shipped dynamic int8 first
VARIANTS = ROWS[1:]
GATE = Thresholds().int8_cosine  # the converter's int8 parity gate
PAYS_ABOVE = 1.05  # speed-up over the shipped int8 that counts as a gain, not noise
CALIBRATION_CLIPS = (1, 2)  # the stages clip is clip 0


def _feeds(clip: int, clips_dir: str) -> dict[str, np.ndarray]:
    from benchmarks._clips import load_clip
    from emox_edge.preprocess import preprocess_clip

    p = preprocess_clip(load_clip(clip, clips_dir))
    return {"pixel_values": p.pixel_values, "frames": p.face_frames, "waveforms": p.waveforms}


def _graph(bundle, name: str) -> tuple[dict, Path, int]:
    """The manifest entry, the fp32 file and the rows per run (the runtime's ``FRAMES_PER_RUN`` for a
    per-frame graph, else all)."""
    spec = bundle.require(f"graphs.{name}")
    step = FRAMES_PER_RUN if per_frame(spec["inputs"]) else int(spec["inputs"][0]["shape"][0])
    return spec, bundle.root / spec["fp32"], step


def _rows(spec: dict, feeds: dict[str, np.ndarray], step: int):
    names = [io["name"] for io in spec["inputs"]]
    return [{k: feeds[k][i:i + step] for k in names} for i in range(0, len(feeds[names[0]]), step)]


def unit_build(args: dict[str, Any]) -> dict[str, Any]:
    """Build (or find cached) the variants of every graph; returns their settings."""
    from benchmarks._artifacts import artifacts
    from converters.encoders.int8_variants import MODEL_TYPES, fuse_and_quantize, quantize_int8_static
    from emox_edge._io import write_json_atomic
    from emox_edge.bundle.manifest import Bundle

    art = artifacts(args["mode"], args["root"])
    bundle = Bundle.open(art.bundle)
    out = Path(args["levers_dir"])
    out.mkdir(parents=True, exist_ok=True)
    calibration = [_feeds(k, args["clips_dir"]) for k in CALIBRATION_CLIPS]
    built: dict[str, dict[str, Any]] = {}
    for name in GRAPHS:
        spec, fp32, step = _graph(bundle, name)
        source = {"file": str(fp32), "bytes": fp32.stat().st_size, "mtime_ns": fp32.stat().st_mtime_ns}
        for variant in VARIANTS:
            dst, stamp = out / f"{name}.int8-{variant}.onnx", out / f"{name}.int8-{variant}.json"
            cached = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() and dst.is_file() else None
            if cached and cached.get("source") == source:
                built.setdefault(name, {})[variant] = {**cached["settings"], "cached": True}
                continue
            start = time.perf_counter()
            if variant == "static":
                rows = [r for feeds in calibration for r in _rows(spec, feeds, step)]
                settings = quantize_int8_static(fp32, dst, rows)
            else:
                settings = fuse_and_quantize(fp32, dst, model_type=MODEL_TYPES[name])
            settings["build_s"] = round(time.perf_counter() - start, 1)
            write_json_atomic(stamp, {"source": source, "settings": settings})
            built.setdefault(name, {})[variant] = settings
    return {"built": built}


def unit_time(args: dict[str, Any]) -> dict[str, Any]:
    """Time the shipped int8 and the variants on clip 0, graph by graph; cosines against PyTorch."""
    from benchmarks._artifacts import artifacts
    from benchmarks._common import cosine
    from emox_edge.bundle.manifest import Bundle
    from emox_edge.encoders import run_in_rows
    from emox_edge.onnx_session import create_session

    art = artifacts(args["mode"], args["root"])
    bundle = Bundle.open(art.bundle)
    out = Path(args["levers_dir"])
    feeds = _feeds(0, args["clips_dir"])
    torch_out = np.load(args["torch_outputs"])
    ms: dict[str, dict[str, float]] = {}
    cos: dict[str, dict[str, float]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for name in GRAPHS:
        spec, _fp32, step = _graph(bundle, name)
        files = {"int8": bundle.root / spec["int8"], "static": out / f"{name}.int8-static.onnx",
                 "fused": out / f"{name}.int8-fused.onnx"}
        sessions = {row: create_session(path, device="cpu", n_threads=args["threads"]) for row, path in files.items()}
        outputs = [io["name"] for io in spec["outputs"]]
        feed = {io["name"]: np.ascontiguousarray(feeds[io["name"]], np.float32) for io in spec["inputs"]}
        samples: dict[str, list[float]] = {row: [] for row in ROWS}
        for row in ROWS:  # warm-up, and the outputs compared
            values = run_in_rows(sessions[row], outputs, feed, step)
            cos.setdefault(name, {})[row] = min(cosine(v, torch_out[o]) for o, v in zip(outputs, values)
                                                if o in torch_out.files)
        for r in range(args["repeats"]):
            for row in ROWS[r % len(ROWS):] + ROWS[:r % len(ROWS)]:
                start = time.perf_counter()
                run_in_rows(sessions[row], outputs, feed, step)
                samples[row].append((time.perf_counter() - start) * 1000.0)
        ms[name] = {row: statistics.median(v) for row, v in samples.items()}
        sizes[name] = {row: path.stat().st_size for row, path in files.items()}
        del sessions
    return {"ms": ms, "cosine_vs_torch": cos, "file_bytes": sizes}


def measure(ctx, torch_outputs: str) -> dict[str, Any]:
    """Build and time the levers; returns the stages section's ``levers`` part (metrics + details)."""
    args = {"levers_dir": str(ctx.art.root / "levers"), "torch_outputs": torch_outputs}
    built = ctx.child("stages_levers_build", args, tag="stages-levers-build")
    timed = ctx.child("stages_levers_time", args, tag="stages-levers")
    metrics: dict[str, Any] = {"ms": timed["ms"], "cosine_vs_torch": timed["cosine_vs_torch"],
                               "speedup_vs_int8": {name: {v: row_ms["int8"] / row_ms[v] for v in VARIANTS}
                                                   for name, row_ms in timed["ms"].items()}}
    return {"metrics": metrics, "built": built["built"], "file_bytes": timed["file_bytes"]}


def verdicts(metrics: dict[str, Any]) -> dict[str, dict[str, str]]:
    """"pays" / "slower" / "fails the gate" per graph and variant, from the measured metrics."""
    out: dict[str, dict[str, str]] = {}
    for name, speeds in metrics["speedup_vs_int8"].items():
        for variant, speed in speeds.items():
            passes = metrics["cosine_vs_torch"][name][variant] >= GATE
            out.setdefault(name, {})[variant] = ("fails the gate" if not passes else "pays" if speed >= PAYS_ABOVE
                                                 else "no gain" if speed >= 1.0 else "slower")
    return out


def render(levers: dict[str, Any]) -> str:
    m = levers.get("metrics", {})
    verdict = verdicts(m) if m.get("speedup_vs_int8") else {}
    rows = []
    for name in GRAPHS:
        if name not in m.get("ms", {}):
            continue
        ms, cos, speed = m["ms"][name], m["cosine_vs_torch"][name], m["speedup_vs_int8"][name]
        built = levers.get("built", {}).get(name, {})
        fused = ", ".join(f"{op} {n}" for op, n in (built.get("fused", {}).get("fused_ops") or {}).items()) or "none"
        rows.append([LABEL[name], f"{_report.ms(ms['int8'])} ({cos['int8']:.5f})"]
                    + [f"{_report.ms(ms[v])}, {_report.ratio(speed[v])} ({cos[v]:.5f}): {verdict[name][v]}"
                       for v in VARIANTS] + [fused])
    text = _report.table(["graph", "shipped dynamic int8 (cos vs PyTorch)", "static int8, QOperator, per-channel",
                          "ORT fusions + dynamic int8", "fused ops found"], rows)
    return ("Issue 14 item 1, the int8 levers (one frame or window per run, as the runtime runs them; speed-up "
            f"vs the shipped int8; a lever pays when it is at least {PAYS_ABOVE:.2f}x as fast and keeps cosine "
            f">= {GATE}):\n\n" + text)
