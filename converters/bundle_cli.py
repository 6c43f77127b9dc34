"""``emox-edge convert bundle``: language core + encoders -> one verified nano-emox bundle (torch-free)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="assemble 'convert llm' and 'convert encoders' outputs into one verified nano-emox bundle",
        description="Copy (or hard-link) the GGUF files and ONNX graphs into one directory and write its "
                    "bundle.json with the Nano-EmoX prompts, label sets, preprocessing and generation settings.",
    )
    parser.add_argument("--llm", type=Path, required=True, help="output directory of 'emox-edge convert llm'")
    parser.add_argument("--encoders", type=Path, required=True, help="output directory of 'emox-edge convert encoders'")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    parser.add_argument("--name", default="nano-emox", help="bundle name recorded in the manifest")
    parser.add_argument("--default-quant", default=None, metavar="TYPE",
                        help="GGUF type the runtime loads by default (default: q4_k_m, else q8_0, else f16)")
    parser.add_argument("--force", action="store_true", help="replace a bundle in a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    from converters.bundle import BundleOptions, assemble_bundle

    out = assemble_bundle(BundleOptions(llm=args.llm, encoders=args.encoders, out=args.out, name=args.name,
                                        default_quant=args.default_quant, force=args.force))
    print(f"bundle: {out}")
    return 0
