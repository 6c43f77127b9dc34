"""Flags shared by ``run``, ``analyze`` and ``serve``: the analyzer options (derived from
``AnalyzerOptions`` by ``emox_edge.cli.flags``), the bundle and the tasks."""

from __future__ import annotations

import argparse
import logging

from emox_edge.cli.flags import add_flags, from_args
from emox_edge.options import AnalyzerOptions

log = logging.getLogger("emox_edge.cli")


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``AnalyzerOptions`` field (``n_threads`` -> ``--n-threads``, ``faces.model`` -> ``--face-model``)."""
    add_flags(parser, AnalyzerOptions, title="analyzer options")


def options_from_args(args: argparse.Namespace) -> AnalyzerOptions:
    """``AnalyzerOptions`` from the parsed flags (checked: a bad value is a BadInputError naming it)."""
    return from_args(AnalyzerOptions, args)


def add_bundle_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", metavar="DIR", help="bundle directory (default: the lite bundle, built on first use)")


def add_task_flag(parser: argparse.ArgumentParser, *, default: list[str]) -> None:
    from emox_edge.results import TASKS

    parser.add_argument(
        "--task", dest="tasks", action="append", metavar="TASK[:VARIANT]",
        help=f"task to answer, repeatable or comma separated: {', '.join(TASKS)}, or all; variants e.g. "
             f"emotion:meld, intent:mintrec2, sentiment:valence, reason:evidence (default: {','.join(default)})",
    )
    parser.set_defaults(default_tasks=default)


def tasks_from_args(args: argparse.Namespace) -> list[str]:
    """The task specs given (or the command's default), split on commas and parsed once to fail early."""
    from emox_edge.tasks import parse_tasks

    raw = args.tasks or args.default_tasks
    specs = [s for item in raw for s in item.split(",") if s.strip()]
    parse_tasks(specs)  # BadInputError naming the unknown task, before anything is opened
    return specs


def open_bundle(args: argparse.Namespace):
    """The ``Bundle`` of ``--bundle``, or the default lite bundle (built on first use)."""
    from emox_edge.bundle import Bundle
    from emox_edge.default_bundle import default_bundle_path

    if args.bundle is None:
        log.info("no --bundle given: using the default lite bundle")
        return Bundle.open(default_bundle_path())
    return Bundle.open(args.bundle)


def open_analyzer(args: argparse.Namespace, options: AnalyzerOptions, bundle=None):
    """The analyzer of ``bundle`` (opened from ``--bundle`` or the default lite bundle when None)."""
    from emox_edge.analyzer import Analyzer

    return Analyzer.from_bundle(bundle or open_bundle(args), options)
