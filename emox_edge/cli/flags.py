"""CLI flags derived from options dataclasses, so the CLI and the API cannot drift apart.

``add_flags(parser, Options)`` adds one flag per field (``n_threads`` -> ``--n-threads``; a nested
dataclass field ``faces`` contributes its own fields as ``--faces-...`` unless a field names its flag in
``metadata["flag"]``); booleans get ``--x/--no-x``; ``metadata["choices"]`` and ``["metavar"]`` are
honoured; the help text is the field's entry in the class docstring's ``Attributes:`` block, joined
into plain sentences. ``from_args(Options, args)`` builds the dataclass back from the parsed flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """``{field: help}`` from the ``Attributes:`` block of ``cls``'s docstring (continuation lines joined)."""
    doc = cls.__doc__ or ""
    out: dict[str, str] = {}
    current: str | None = None
    in_block = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_block = True
            continue
        if not in_block or not stripped:
            current = None if not stripped else current
            continue
        match = re.match(r"^([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*):\s*(.*)$", stripped)
        if match and len(line) - len(line.lstrip()) <= 8:
            for name in match.group(1).split(", "):
                out[name] = match.group(2)
            current = match.group(1)
        elif current is not None:
            for name in current.split(", "):
                out[name] += " " + stripped
    # plain sentences: no reStructuredText markup; "%" escaped for argparse's help formatting
    return {name: re.sub(r"``?([^`]+)``?", r"\1", text).strip().replace("%", "%%") for name, text in out.items()}


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, *, prefix: str = "", title: str | None = None,
              skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of the dataclass ``cls`` (recursing into nested dataclass fields)."""
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            add_flags(parser, kind, prefix=f"{prefix}{field.name}_", title=f"{field.name} options")
            continue
        meta = field.metadata
        flag = meta.get("flag") or "--" + f"{prefix}{field.name}".replace("_", "-")
        dest = _dest(prefix, field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        help_text = docs.get(field.name, "")
        if kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        kwargs: dict[str, Any] = {"dest": dest, "type": _base_type(kind), "default": default,
                                  "help": help_text + ("" if default is None else f" (default: {default})")}
        if "choices" in meta:
            kwargs["choices"] = tuple(meta["choices"])
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if meta.get("required"):
            kwargs["required"] = True
        group.add_argument(flag, **kwargs)


def from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", **overrides: Any):
    """Build ``cls`` from the flags ``add_flags`` added (absent flags keep the field defaults)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            values[field.name] = from_args(kind, args, prefix=f"{prefix}{field.name}_")
        elif hasattr(args, _dest(prefix, field.name)):
            values[field.name] = getattr(args, _dest(prefix, field.name))
    values.update(overrides)
    return cls(**values)


def _base_type(kind) -> type:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:
        return args[0]
    return kind if kind in (int, float, str) else str
