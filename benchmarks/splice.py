"""Replace sections of a published full report with the same sections from a later partial run.

    python -m benchmarks.splice out/bench-full/latest.json --sections stages --note "why"

A section measured while the machine was busy can be re-measured alone (``python -m benchmarks --full
--only stages``) and spliced into ``benchmarks/results/latest.json``; the note and the partial run's
date are recorded in the report, and ``docs/benchmarks.md`` is rendered again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks._artifacts import REPO
from benchmarks.run import collect_metrics, write_markdown


def splice(report: dict, partial: dict, sections: list[str], note: str) -> dict:
    """``report`` with ``sections`` taken from ``partial`` (same mode and threads), the metrics recomputed.

    Raises:
        ValueError: the runs differ in mode or threads, or ``partial`` lacks a section.
    """
    if report.get("mode") != partial.get("mode"):
        raise ValueError(f"cannot splice a {partial.get('mode')} run into a {report.get('mode')} report")
    if report["settings"].get("threads") != partial["settings"].get("threads"):
        raise ValueError("cannot splice runs made with different thread counts")
    missing = [s for s in sections if s not in partial.get("sections", {})]
    if missing:
        raise ValueError(f"the partial run has no section {', '.join(missing)}")
    out = dict(report)
    out["sections"] = {**report["sections"], **{s: partial["sections"][s] for s in sections}}
    when = partial.get("machine", {}).get("date")
    out["notes"] = [*report.get("notes", []), f"{', '.join(sections)} re-measured {when} "
                    f"(`{partial.get('command')}`): {note}"]
    out["metrics"], out["higher_is_better"] = collect_metrics(out["sections"])
    return out


def main(argv: list[str] | None = None) -> None:
    from emox_edge._io import write_json_atomic

    parser = argparse.ArgumentParser(prog="python -m benchmarks.splice", description=__doc__.split("\n\n")[0])
    parser.add_argument("partial", type=Path, help="latest.json of the partial run")
    parser.add_argument("--sections", nargs="+", required=True)
    parser.add_argument("--note", required=True, help="why the section was re-measured")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    ns = parser.parse_args(argv)
    report = json.loads(ns.report.read_text(encoding="utf-8"))
    partial = json.loads(ns.partial.read_text(encoding="utf-8"))
    out = splice(report, partial, ns.sections, ns.note)
    write_json_atomic(ns.report, out)
    write_markdown(out, ns.markdown)
    print(f"wrote {ns.report} and {ns.markdown}")


if __name__ == "__main__":
    main()
