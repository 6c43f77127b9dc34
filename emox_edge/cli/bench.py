"""``emox-edge bench``: run the benchmark suite (``benchmarks/`` of a source checkout).

The suite is not installed with the package (it builds multi-GB models with the converters and
compares against PyTorch), so this command looks for it next to the installed ``emox_edge`` package
(an editable install from a clone) or in ``$EMOX_EDGE_CHECKOUT``, and says how to get one otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from pathlib import Path

ENV_CHECKOUT = "EMOX_EDGE_CHECKOUT"
CLONE_HINT = ("the benchmarks live in the source repository: clone it, run `bash scripts/install.sh --dev` there "
              f"and run `.venv/bin/emox-edge bench` from it (or set {ENV_CHECKOUT} to the clone)")


SECTIONS = ("stages", "llm", "e2e", "fidelity", "live")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's flags, shared by ``emox-edge bench`` and ``python -m benchmarks`` (benchmarks/run.py)."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny models: runs every code path in about a minute")
    size.add_argument("--full", action="store_true", help="true Nano-EmoX sizes, real language-core weights (default)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections ({', '.join(SECTIONS)})")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], metavar="SECTION", help="sections to leave out")
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


def find_checkout() -> Path | None:
    """The source checkout holding ``benchmarks/run.py``, or None."""
    candidates = []
    if os.environ.get(ENV_CHECKOUT):
        candidates.append(Path(os.environ[ENV_CHECKOUT]).expanduser())
    import emox_edge

    candidates.append(Path(emox_edge.__file__).resolve().parents[1])
    for root in candidates:
        if (root / "benchmarks" / "run.py").is_file() and (root / "benchmarks" / "__init__.py").is_file():
            return root.resolve()
    return None


def _suite(checkout: Path):
    """Import ``benchmarks.run`` from ``checkout`` (and nowhere else)."""
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    module = importlib.import_module("benchmarks.run")
    if Path(module.__file__).resolve().parents[1] != checkout:
        raise ImportError(f"a different 'benchmarks' package is on the path ({module.__file__}); expected {checkout}")
    return module


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure speed, memory and fidelity against PyTorch and plain llama.cpp (needs a source checkout)",
        description="Run the emox-edge benchmark suite and write a markdown table and a JSON report. "
        "--quick uses tiny models (about a minute); --full the true Nano-EmoX sizes (about an hour).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checkout = find_checkout()
    if checkout is None:
        raise FileNotFoundError(f"no benchmarks/ folder found next to {Path(__file__).resolve().parents[2]}: {CLONE_HINT}")
    suite = _suite(checkout)
    args.command_line = shlex.join(["emox-edge", *sys.argv[1:]])
    report = suite.run(args)
    print(Path(report["paths"]["markdown"]).read_text(encoding="utf-8"))
    failed = [name for name, section in report["sections"].items() if section.get("status") != "ok"]
    return 1 if failed and len(failed) == len(report["sections"]) else 0
