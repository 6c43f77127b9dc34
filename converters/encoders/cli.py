"""``emox-edge convert encoders``: flags come from ``EncoderConvertOptions`` (no torch import here)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encoders",
        help="CLIP + HuBERT + FaceXFormer + a Nano-EmoX checkpoint -> ONNX graphs (fp32 + int8), parity-gated",
        description="Convert the perception half of Nano-EmoX into four ONNX graphs (visual, audio, facial, "
                    "adapters), each checked against the PyTorch reference on a real face and real speech.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="Nano-EmoX training checkpoint (.pth)")
    parser.add_argument("--clip", type=Path, required=True, help="openai/clip-vit-large-patch14 directory (HF layout)")
    parser.add_argument("--hubert", type=Path, required=True, help="TencentGameMate/chinese-hubert-large directory (HF layout)")
    parser.add_argument("--facexformer", type=Path, required=True, help="FaceXFormer model.pt (key state_dict_backbone)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (must be empty unless --force)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="also write dynamic-int8 graphs (default: yes)")
    parser.add_argument("--per-channel", action="store_true", help="per-channel int8 weight scales")
    parser.add_argument("--force", action="store_true", help="overwrite encoder outputs in a non-empty --out")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow checkpoints that need full unpickling (can run code: trusted files only)")
    parser.add_argument("--fp32-cosine", type=float, default=0.9999, metavar="X",
                        help="minimum cosine vs PyTorch for fp32 graphs (default 0.9999)")
    parser.add_argument("--int8-cosine", type=float, default=0.99, metavar="X",
                        help="minimum cosine vs PyTorch for int8 graphs (default 0.99)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    from converters.encoders.convert import EncoderConvertOptions, convert_encoders

    options = EncoderConvertOptions(
        checkpoint=args.checkpoint, clip=args.clip, hubert=args.hubert, facexformer=args.facexformer,
        out=args.out, int8=args.int8, force=args.force, trust_checkpoint=args.trust_checkpoint,
        fp32_cosine=args.fp32_cosine, int8_cosine=args.int8_cosine, per_channel=args.per_channel,
    )
    result = convert_encoders(options)
    for name, files in result.graphs.items():
        print(f"{name}: " + ", ".join(f"{p} {f}" for p, f in files.items()))
    print(f"report: {result.out / 'encoders-report.md'}")
    return 0
