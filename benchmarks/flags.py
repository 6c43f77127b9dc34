"""The benchmark suite's flags, shared by ``python -m benchmarks`` and ``emox-edge bench``."""

from __future__ import annotations

import argparse

from benchmarks.bench_e2e import PIPELINES

SECTIONS = ("stages", "llm", "e2e", "fidelity", "live", "overlap", "serve", "memory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's flags, shared by ``emox-edge bench`` and ``python -m benchmarks`` (benchmarks/run.py)."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny models: runs every code path in about a minute")
    size.add_argument("--full", action="store_true", help="true Nano-EmoX sizes, real language-core weights (default)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections ({', '.join(SECTIONS)})")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], metavar="SECTION", help="sections to leave out")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, metavar="ROW", default=None,
                        help=f"e2e rows to run (default all): {', '.join(PIPELINES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 3 full, 2 quick)")
    parser.add_argument("--clips", type=int, default=None, help="generated clips for the fidelity section (default 8 full, 2 quick)")
    parser.add_argument("--live-frames", type=int, default=None,
                        help="frames of the live memory-growth run (default 10000 full, 300 quick)")
    parser.add_argument("--threads", type=int, default=None, help="threads for llama.cpp / ONNX Runtime (default: physical cores)")
    parser.add_argument("--models", default=None, help="where the benchmark models are built and cached "
                        "(default $EMOX_EDGE_HOME/bench/<size>)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached benchmark models")
    parser.add_argument("--results", default=None, help="folder of latest.json (default: benchmarks/results for a "
                        "complete full run, else out/bench-<mode>)")
    parser.add_argument("--baseline", default=None, help="report to compare against (default: benchmarks/results/latest.json "
                        "for full runs, the replaced latest.json for quick ones)")
    parser.add_argument("--threshold", type=float, default=0.15, help="relative change flagged as a regression (default 0.15)")
    parser.add_argument("--markdown", default=None, help="markdown output (default: docs/benchmarks.md for a complete "
                        "full run, else next to the JSON)")
    parser.add_argument("--child-timeout", type=float, default=3600.0, help="seconds before a measurement child is killed")
    parser.add_argument("--inline", action="store_true", help="run every measurement in this process (fast smoke "
                        "runs; peak RSS is then not per pipeline). Only with --quick")
