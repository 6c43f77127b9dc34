"""Analyse one video file from Python and print every task's answer as JSON.

    python examples/analyze_file.py talk.mp4 --bundle path/to/bundle --subtitle "I can't believe it!"
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from emox_edge.capture import Segmentation, resolve_source
from emox_edge.options import PipelineOptions
from emox_edge.pipeline import Pipeline

TASKS = ["sentiment", "emotion", "open_vocab_emotion", "intent", "reason"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--subtitle", default="", help="what is said in the clip")
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    with resolve_source(args.file, segmentation=Segmentation(mode="whole")) as source:
        clip = next(iter(source))  # the whole file as one clip
    clip = dataclasses.replace(clip, subtitle=args.subtitle)

    options = PipelineOptions(deterministic=True, max_new_tokens=64, n_threads=args.n_threads)
    with Pipeline.from_bundle(args.bundle, options) as analyzer:
        result = analyzer.analyze(clip, TASKS)
    print(json.dumps({name: {"label": t.label, "labels": list(t.labels), "valid": t.valid, "text": t.text}
                      for name, t in result.tasks.items()}, indent=2))
    print(f"faces: {len(result.faces)}; took {result.timings['total'] / 1000:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
