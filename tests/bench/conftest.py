"""One quick benchmark run (tiny models, every section, in-process) shared by the smoke tests.

The tiny benchmark models are built once by the real converters and cached (default
``$EMOX_EDGE_HOME/bench/quick``; ``EMOX_BENCH_MODELS`` overrides), so a second session only measures.
"""

from __future__ import annotations

import os
from pathlib import Path

import sys

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ lives at the checkout's root, outside the installed package
    sys.path.insert(0, str(REPO))


def quick_args(results: Path, *extra: str) -> list[str]:
    args = ["--quick", "--inline", "--repeats", "1", "--clips", "1", "--live-frames", "150", "--threads", "1",
            "--results", str(results), "--markdown", str(results / "benchmarks.md")]
    if os.environ.get("EMOX_BENCH_MODELS"):
        args += ["--models", os.environ["EMOX_BENCH_MODELS"]]
    return args + list(extra)


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    from benchmarks import run

    results = tmp_path_factory.mktemp("bench-quick")
    ns = run.parse_args(quick_args(results))
    ns.command_line = "python -m benchmarks " + " ".join(quick_args(results))
    return run.run(ns, progress=lambda message: None)
