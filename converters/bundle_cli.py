"""``emox-edge convert bundle``: language core + encoders -> one verified nano-emox bundle (torch-free).

The flags come from ``converters.bundle.BundleOptions``.
"""

from __future__ import annotations

import argparse

from converters._cli import add_option_flags, add_quiet_flag, quiet_logging
from converters.bundle import BundleOptions
from emox_edge.cli.flags import from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="assemble 'convert llm' and 'convert encoders' outputs into one verified nano-emox bundle",
        description="Copy (or hard-link) the GGUF files and ONNX graphs into one directory and write its "
                    "bundle.json with the Nano-EmoX prompts, label sets, preprocessing and generation settings.",
    )
    add_option_flags(parser, BundleOptions)
    add_quiet_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from converters.bundle import assemble_bundle

    options = from_args(BundleOptions, args)
    with quiet_logging(args):
        out = assemble_bundle(options)
    print(f"bundle: {out}")
    return 0
