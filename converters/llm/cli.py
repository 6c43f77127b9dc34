"""``emox-edge convert llm``: the language-core converter's command line (no torch at import time).

The flags come from ``LLMConvertOptions``; the four threshold flags come from the fields of
``Thresholds`` and take TYPE=VALUE pairs, since each GGUF type has its own marks.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import replace

from converters._cli import add_option_flags, add_quiet_flag, quiet_logging
from converters._options import flag_of
from converters.llm.options import LLMConvertOptions, Thresholds, parse_quant_list
from emox_edge.cli.flags import field_docs, from_args
from emox_edge.errors import BadInputError


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
    add_option_flags(parser, LLMConvertOptions, skip=("thresholds",))
    add_quiet_flag(parser)
    add_threshold_flags(parser)
    parser.set_defaults(func=run)


def add_threshold_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``Thresholds`` field, each taking comma-separated TYPE=VALUE pairs (repeatable)."""
    group = parser.add_argument_group(
        "parity thresholds", "TYPE=VALUE pairs, comma separated (e.g. q4_k_m=0.9,q8_0=0.97); 'none' disables "
        "one; unnamed types keep the documented defaults (docs/llm-converter.md)")
    docs = field_docs(Thresholds)
    for field in dataclasses.fields(Thresholds):
        group.add_argument(flag_of(field), dest=field.name, metavar="TYPE=VALUE", action="append", default=[],
                           help=docs[field.name].replace("%", "%%"))


def _parse_value(flag: str, text: str) -> float | None:
    text = text.strip().lower()
    if text == "none":
        return None
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise BadInputError(f"{flag}: {text!r} is not a number (expected e.g. 0.95, 2% or none)") from exc


def thresholds_from_args(args: argparse.Namespace, quant: tuple[str, ...]) -> dict:
    """Per-type ``Thresholds`` overrides from the threshold flags (defaults filled in)."""
    from converters.llm.parity import thresholds_for

    out: dict = {}
    for field in dataclasses.fields(Thresholds):
        flag = flag_of(field)
        for chunk in getattr(args, field.name, []) or []:
            for item in filter(None, (p.strip() for p in chunk.split(","))):
                qtype, sep, value = item.partition("=")
                qtype = qtype.strip().lower()
                if not sep or not qtype:
                    raise BadInputError(f"{flag}: {item!r} is not TYPE=VALUE (e.g. q4_k_m=0.9)")
                if qtype not in quant:
                    raise BadInputError(f"{flag}: type {qtype!r} is not in --quant ({', '.join(quant)})")
                current = out.get(qtype) or thresholds_for(qtype)
                out[qtype] = replace(current, **{field.name: _parse_value(flag, value)})
    return out


def run(args: argparse.Namespace) -> int:
    from converters.llm.convert import ParityGateError, convert_llm

    quant = parse_quant_list(args.quant)
    options = from_args(LLMConvertOptions, args, quant=quant, thresholds=thresholds_from_args(args, quant))
    with quiet_logging(args):
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
