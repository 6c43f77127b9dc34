"""CLI flags derived from ``PipelineOptions`` fields, so the CLI and the API cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from emox_edge.devices import DEVICES
from emox_edge.options import PipelineOptions

_CHOICES = {"device": DEVICES, "precision": ("int8", "fp32")}
_SKIP = {"extra"}


def _field_help(name: str) -> str:
    doc = PipelineOptions.__doc__ or ""
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{name}:"):
            return stripped.split(":", 1)[1].strip()
    return ""


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per ``PipelineOptions`` field (``n_threads`` -> ``--n-threads``)."""
    group = parser.add_argument_group("pipeline options")
    hints = typing.get_type_hints(PipelineOptions)
    for field in dataclasses.fields(PipelineOptions):
        if field.name in _SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = _field_help(field.name)
        kind = hints[field.name]
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
            continue
        base = _base_type(kind)
        kwargs = {"type": base, "default": field.default, "help": help_text + f" (default: {field.default})"}
        if field.name in _CHOICES:
            kwargs["choices"] = _CHOICES[field.name]
        group.add_argument(flag, **kwargs)


def _base_type(kind) -> type:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:
        return args[0]
    return kind if kind in (int, float, str) else str


def options_from_args(args: argparse.Namespace, **extra) -> PipelineOptions:
    """Build ``PipelineOptions`` from parsed flags (plus ``extra`` for the ``extra`` mapping)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PipelineOptions)
              if f.name not in _SKIP and hasattr(args, f.name)}
    return PipelineOptions(**values, extra=dict(extra))


def add_bundle_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", metavar="DIR", help="bundle directory (default: the lite bundle, built on first use)")


def add_task_flag(parser: argparse.ArgumentParser, *, default: list[str]) -> None:
    from emox_edge.results import TASKS

    parser.add_argument(
        "--task", dest="tasks", action="append", metavar="TASK[:VARIANT]",
        help=f"task to answer, repeatable or comma separated: {', '.join(TASKS)}; variants e.g. "
             f"emotion:meld, intent:mintrec2, sentiment:valence (default: {','.join(default)})",
    )
    parser.set_defaults(default_tasks=default)


def tasks_from_args(args: argparse.Namespace) -> list[str]:
    from emox_edge.tasks import parse_tasks

    raw = args.tasks or args.default_tasks
    specs = [s for item in raw for s in item.split(",") if s.strip()]
    parse_tasks(specs)  # validate early: ValueError lists the tasks
    return specs


def open_analyzer(args: argparse.Namespace, options: PipelineOptions):
    """The analyzer of ``--bundle`` or of the default lite bundle."""
    import logging

    from emox_edge.pipeline import Pipeline

    bundle = args.bundle
    if bundle is None:
        try:
            from converters.lite.default import ensure_default_bundle
        except ImportError as exc:
            raise FileNotFoundError("no --bundle given and the default lite bundle is not available in this install") from exc
        bundle = ensure_default_bundle()
        logging.getLogger("emox_edge.cli").info("no --bundle given: using the default lite bundle %s", bundle)
    return Pipeline.from_bundle(bundle, options)
