"""``emox-edge convert encoders``: flags come from ``EncoderConvertOptions`` (no torch import here)."""

from __future__ import annotations

import argparse
import sys

from converters._cli import add_option_flags, add_quiet_flag, quiet_logging
from converters.encoders.options import EncoderConvertOptions
from emox_edge.cli.flags import from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encoders",
        help="CLIP + HuBERT + FaceXFormer + a Nano-EmoX checkpoint -> ONNX graphs (fp32 + int8), parity-gated",
        description="Convert the perception half of Nano-EmoX into four ONNX graphs (visual, audio, facial, "
                    "adapters), each checked against the PyTorch reference on a real face and real speech.",
    )
    add_option_flags(parser, EncoderConvertOptions)
    add_quiet_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = from_args(EncoderConvertOptions, args)
    from converters.encoders.convert import convert_encoders
    from converters.encoders.parity import ParityError

    with quiet_logging(args):
        try:
            result = convert_encoders(options)
        except ParityError as exc:  # the gate did its job: not bad input, not a bug
            print(f"emox-edge: error: {exc}", file=sys.stderr)
            return 1
    for name, files in result.graphs.items():
        print(f"{name}: " + ", ".join(f"{p} {f}" for p, f in files.items()))
    print(f"report: {result.out / 'encoders-report.md'}")
    return 0
