"""``llm-report.json`` / ``llm-report.md``: what quantization cost, per GGUF type."""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from emox_edge._io import write_json_atomic, write_text_atomic
from emox_edge._version import __version__

REPORT_FORMAT = "emox-edge/llm-report"
REPORT_VERSION = 1


def build_report(
    *,
    base: Path,
    hf_config: Mapping[str, Any],
    checkpoint: Mapping[str, Any] | None,
    reference: Any,
    types: Sequence[Any],
    stages: Mapping[str, float],
    source_type: str,
) -> dict[str, Any]:
    """The JSON-ready report (see docs/llm-converter.md for the fields)."""
    import torch
    import transformers

    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "converter": f"emox-edge {__version__}",
        "host": {"machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
                 "transformers": transformers.__version__},
        "base": {
            "path": str(base),
            "model_type": hf_config.get("model_type"),
            "layers": hf_config.get("num_hidden_layers"),
            "hidden_size": hf_config.get("hidden_size"),
            "vocab_size": hf_config.get("vocab_size"),
            "context_length": hf_config.get("max_position_embeddings"),
            "rope_theta": hf_config.get("rope_theta"),
            "tied_embeddings": bool(hf_config.get("tie_word_embeddings", False)),
        },
        "checkpoint": dict(checkpoint) if checkpoint else None,
        "reference": {
            "framework": "transformers (torch, float32, merged LoRA)",
            "dtype": reference.meta.get("dtype"),
            "prompts": len(reference.prompts),
            "prompt_tokens": [len(p) for p in reference.prompts],
            "perplexity_text_tokens": len(reference.text),
            "perplexity": reference.ppl,
            "skipped_positions": "position 0 of every sequence",
        },
        "gguf_source_type": source_type,
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "types": [
            {
                "type": t.qtype,
                "passed": t.passed,
                "file": t.path.name if t.path else None,
                "size_bytes": t.size_bytes,
                "convert_s": round(t.convert_s, 3),
                "parity_s": round(t.parity_s, 3),
                "tokenizer_probes_matched": t.tokenizer_probes,
                "metrics": t.metrics.to_dict(),
                "thresholds": {k: v for k, v in vars(t.thresholds).items() if v is not None},
                "failures": list(t.failures),
            }
            for t in types
        ],
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    """A human-readable version of the report."""
    base = report["base"]
    ref = report["reference"]
    ckpt = report.get("checkpoint")
    lines = [
        "# Language-core conversion report",
        "",
        f"- created {report['created']} by {report['converter']}",
        f"- base: `{base['path']}` ({base['model_type']}, {base['layers']} layers, hidden {base['hidden_size']}, "
        f"vocab {base['vocab_size']}, context {base['context_length']})",
    ]
    if ckpt:
        lines.append(
            f"- LoRA: `{ckpt['path']}`, {ckpt['lora_pairs']} pairs, r={ckpt['lora_r']}, alpha={ckpt['lora_alpha']:g} "
            f"(scale {ckpt['lora_scale']:g}, from {ckpt['lora_settings_from']}), merged in float32"
        )
    else:
        lines.append("- LoRA: none (base converted as is)")
    lines += [
        f"- reference: {ref['framework']}; {ref['prompts']} prompts + a {ref['perplexity_text_tokens']}-token text "
        f"(perplexity {ref['perplexity']:.4f}); {ref['skipped_positions']} excluded",
        "",
        "| type | result | top-1 | mean KL | max abs dlogit | perplexity (change) | size | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in report["types"]:
        m = t["metrics"]
        lines.append(
            f"| {t['type']} | {'pass' if t['passed'] else 'FAIL'} | {100 * m['top1']:.2f}% | {m['mean_kl']:.3g} | "
            f"{m['max_abs_dlogit']:.3g} | {m['ppl']:.4f} ({100 * m['ppl_change']:+.3f}%) | "
            f"{t['size_bytes'] / 2**20:.1f} MiB | {t['convert_s']:.1f} s |"
        )
    failures = [t for t in report["types"] if not t["passed"]]
    if failures:
        lines += ["", "## Failed (no GGUF written)", ""]
        lines += [f"- {t['type']}: {'; '.join(t['failures'])}" for t in failures]
    lines += ["", "Thresholds:", ""]
    for t in report["types"]:
        marks = ", ".join(f"{k}={v:g}" for k, v in t["thresholds"].items()) or "none"
        lines.append(f"- {t['type']}: {marks}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in report["stages_s"].items())
    lines += ["", f"Stages (s): {stages}", ""]
    return "\n".join(lines)


def write_reports(out: Path, report: Mapping[str, Any], *, json_name: str, md_name: str) -> tuple[Path, Path]:
    """Write both files atomically into ``out``."""
    json_path = write_json_atomic(out / json_name, report)
    md_path = write_text_atomic(out / md_name, render_markdown(report))
    return json_path, md_path
