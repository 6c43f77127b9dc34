"""``emox-edge convert llm``: the language-core converter's command line (no torch at import time)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator

_THRESHOLD_FLAGS = (
    ("--min-top1", "min_top1", "lowest top-1 agreement with torch (0..1)"),
    ("--max-kl", "max_kl", "highest mean KL divergence from torch (nats)"),
    ("--max-ppl-change", "max_ppl_change", "largest relative perplexity change (0.02 or 2%%)"),
    ("--max-dlogit", "max_abs_dlogit", "largest absolute logit difference"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "llm",
        help="Qwen2 base + Nano-EmoX LoRA checkpoint -> parity-gated GGUF files (F16/Q8_0/Q4_K_M)",
        description=(
            "Merge the Nano-EmoX LoRA into the base Qwen2.5 model in float32, write GGUF files llama.cpp "
            "runs, measure each against the merged PyTorch model (top-1, KL, perplexity) and keep only "
            "the types that meet their thresholds. Writes llm-<type>.gguf, llm-report.json and llm-report.md."
        ),
    )
    parser.add_argument("--base", required=True, type=Path, metavar="DIR",
                        help="Hugging Face Qwen2 directory (config.json, tokenizer.json, *.safetensors)")
    parser.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="Nano-EmoX training checkpoint (.pth or .safetensors) holding the LoRA weights")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--quant", default="f16,q8_0,q4_k_m", metavar="TYPES",
                        help="comma list of GGUF types: f32, f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0 "
                             "(default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a checkpoint that needs arbitrary unpickling (only from a source you trust)")
    parser.add_argument("--lora-r", type=int, metavar="R", help="LoRA rank, when the checkpoint config lacks it")
    parser.add_argument("--lora-alpha", type=float, metavar="A", help="LoRA alpha, when the checkpoint config lacks it")
    parser.add_argument("--threads", type=int, metavar="N", help="llama.cpp threads for the parity runs")
    parser.add_argument("--quiet", dest="llm_quiet", action="store_true", help="only warnings, errors and the result")
    group = parser.add_argument_group(
        "parity thresholds", "TYPE=VALUE pairs, comma separated (e.g. q4_k_m=0.9,q8_0=0.97); 'none' disables "
        "one; unnamed types keep the documented defaults (docs/llm-converter.md)")
    for flag, dest, text in _THRESHOLD_FLAGS:
        group.add_argument(flag, dest=dest, metavar="TYPE=VALUE", action="append", default=[], help=text)
    parser.set_defaults(func=run)


def _parse_value(flag: str, text: str) -> float | None:
    text = text.strip().lower()
    if text == "none":
        return None
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise ValueError(f"{flag}: {text!r} is not a number (expected e.g. 0.95, 2% or none)") from exc


def thresholds_from_args(args: argparse.Namespace, quant: tuple[str, ...]) -> dict:
    """Per-type ``Thresholds`` overrides from the threshold flags (defaults filled in)."""
    from converters.llm.parity import thresholds_for

    out: dict = {}
    for flag, dest, _ in _THRESHOLD_FLAGS:
        for chunk in getattr(args, dest, []) or []:
            for item in filter(None, (p.strip() for p in chunk.split(","))):
                qtype, sep, value = item.partition("=")
                qtype = qtype.strip().lower()
                if not sep or not qtype:
                    raise ValueError(f"{flag}: {item!r} is not TYPE=VALUE (e.g. q4_k_m=0.9)")
                if qtype not in quant:
                    raise ValueError(f"{flag}: type {qtype!r} is not in --quant ({', '.join(quant)})")
                current = out.get(qtype) or thresholds_for(qtype)
                out[qtype] = replace(current, **{dest: _parse_value(flag, value)})
    return out


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("converters", "emox_edge")]
    before = [lg.level for lg in loggers]
    if enabled:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before):
            lg.setLevel(level)


def run(args: argparse.Namespace) -> int:
    from converters.llm.convert import LLMConvertOptions, ParityGateError, convert_llm, parse_quant_list

    quiet = bool(getattr(args, "llm_quiet", False) or getattr(args, "quiet", False))
    quant = parse_quant_list(args.quant)
    options = LLMConvertOptions(
        base=args.base, out=args.out, checkpoint=args.checkpoint, quant=quant, force=args.force,
        trust_checkpoint=args.trust_checkpoint, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        thresholds=thresholds_from_args(args, quant), n_threads=args.threads, progress=not quiet,
    )
    with _quiet(quiet):
        try:
            result = convert_llm(options)
        except ParityGateError as exc:
            _print_summary(exc.result, sys.stderr)
            print(f"emox-edge: error: {exc}", file=sys.stderr)
            return 1
    _print_summary(result, sys.stdout)
    return 0


def _print_summary(result, stream) -> None:
    for t in result.types:
        m = t.metrics
        status = str(t.path) if t.passed else "FAILED (not written): " + "; ".join(t.failures)
        print(f"{t.qtype:7s} top-1 {100 * m.top1:6.2f}%  KL {m.mean_kl:.2e}  ppl {100 * m.ppl_change:+.2f}%  "
              f"{t.size_bytes / 2**20:8.1f} MiB  {status}", file=stream)
    print(f"report: {result.report_md}", file=stream)
