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
        "bench", add_help=False,
        help="measure speed, memory and fidelity against PyTorch and plain llama.cpp (needs a source checkout)",
        description="Run the emox-edge benchmark suite and write a markdown table and a JSON report. "
        "--quick uses tiny models (about a minute); --full the true Nano-EmoX sizes (about an hour). "
        "Every flag after `bench` goes to the suite (`emox-edge bench --help` lists them).",
    )
    parser.add_argument("suite_args", nargs="*", help=argparse.SUPPRESS)  # flags reach it through main
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checkout = find_checkout()
    if checkout is None:
        raise FileNotFoundError(f"no benchmarks/ folder found next to {Path(__file__).resolve().parents[2]}: {CLONE_HINT}")
    suite = _suite(checkout)
    ns = suite.parse_args(list(args.suite_args), prog="emox-edge bench")
    ns.command_line = shlex.join(["emox-edge", *sys.argv[1:]])
    report = suite.run(ns)
    print(Path(report["paths"]["markdown"]).read_text(encoding="utf-8"))
    failed = [name for name, section in report["sections"].items() if section.get("status") != "ok"]
    return 1 if failed and len(failed) == len(report["sections"]) else 0
