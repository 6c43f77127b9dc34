"""``encoders-report.json`` and its readable twin ``encoders-report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from emox_edge._io import write_json_atomic, write_text_atomic


def write_reports(json_path: Path, md_path: Path, report: Mapping[str, Any]) -> None:
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, render_markdown(report))


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        "# Encoder conversion report",
        "",
        f"Result: **{'passed' if report['passed'] else 'FAILED'}** in {report['seconds']} s, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB.",
        "",
        f"Thresholds (minimum cosine vs PyTorch): fp32 {report['settings']['thresholds']['fp32_cosine']}, "
        f"int8 {report['settings']['thresholds']['int8_cosine']}. Parity inputs: "
        f"{report['parity_inputs']['frames']}; {report['parity_inputs']['audio']}.",
        "",
        "| graph | precision | file | MB | min cosine | min cosine, in chunks | max abs error | ORT ms (one run) | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, per in report["graphs"].items():
        for precision, entry in per.items():
            outs = entry["outputs"].values()
            lines.append(
                f"| {name} | {precision} | {entry['file']} | {entry['bytes'] / 2**20:.1f} | "
                f"{min(o['cosine'] for o in outs):.6f} | {_chunked(entry.get('chunked'))} | "
                f"{max(o['max_abs_error'] for o in outs):.3g} | "
                f"{entry['ort_ms']:.0f} | {'yes' if entry['passed'] else 'NO'} |")
    rows = next((e["chunked"]["rows_per_run"] for per in report["graphs"].values() for e in per.values()
                 if "chunked" in e), None)
    if rows is not None:
        lines += ["", f"In chunks: the per-frame graphs run on {rows} frames at a time, outputs joined (the frames "
                  "axis is symbolic; the runtime encodes one frame per run). Fixed-shape graphs: -."]
    if report.get("chain"):
        lines += ["", "End to end (all four graphs in ONNX Runtime vs all in PyTorch):", "",
                  "| precision | output | cosine | max abs error |", "|---|---|---|---|"]
        for precision, outs in report["chain"].items():
            for output, m in outs.items():
                lines.append(f"| {precision} | {output} | {m['cosine']:.6f} | {m['max_abs_error']:.3g} |")
    lines += ["", "Checkpoint keys: " + ", ".join(f"{k}: {v}" for k, v in report["checkpoint_keys"].items()) + "."]
    lines += ["", f"Embedding width {report['adapters']['embedding_width']}; slots "
              + ", ".join(f"{k} {v}" for k, v in report["adapters"]["slots"].items()) + "."]
    if report["failures"]:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def _chunked(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    if not entry["outputs"]:
        return "failed to run"
    return f"{min(o['cosine'] for o in entry['outputs'].values()):.6f}"
