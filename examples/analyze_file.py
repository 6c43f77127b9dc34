"""Analyse one video file from Python and print every task's answer as JSON.

    python examples/analyze_file.py talk.mp4 --subtitle "I can't believe it!"     # the default bundle
    python examples/analyze_file.py talk.mp4 --bundle path/to/bundle
"""

from __future__ import annotations

import argparse
import json

import emox_edge

TASKS = ["sentiment", "emotion", "open_vocab_emotion", "intent", "reason"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--subtitle", default="", help="what is said in the clip")
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    with emox_edge.load(args.bundle, max_new_tokens=64, n_threads=args.n_threads) as analyzer:
        result = analyzer.analyze(args.file, TASKS, subtitle=args.subtitle)  # the whole file as one clip
    print(json.dumps({name: {"label": t.label, "labels": list(t.labels), "valid": t.valid, "text": t.text}
                      for name, t in result.tasks.items()}, indent=2))
    print(f"faces: {len(result.faces)}; took {result.timings['total_ms'] / 1000:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
