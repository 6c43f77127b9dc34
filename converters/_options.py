"""Shared checks of the converters' options dataclasses (torch-free, imported by the CLIs at start-up).

A field that the caller must give carries ``metadata={"required": True}`` and a default of None (so
the command line can derive its flags from the dataclass); ``check_required`` then refuses an
options object that lacks it, naming the flag as well as the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from emox_edge.errors import BadInputError


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of an options field (``metadata["flag"]`` or ``--field-name``)."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def check_required(options: object, what: str) -> None:
    """Raise ``BadInputError`` naming every required field of ``options`` that is None."""
    missing = [f for f in dataclasses.fields(options) if f.metadata.get("required")
               and getattr(options, f.name) is None]
    if missing:
        names = ", ".join(f"{f.name} ({flag_of(f)})" for f in missing)
        raise BadInputError(f"{what} needs {names}")


def paths_as_path(options: object, *names: str) -> None:
    """Turn the str values of the named fields of a frozen dataclass into ``Path`` objects."""
    for name in names:
        value = getattr(options, name)
        if value is not None and not isinstance(value, Path):
            object.__setattr__(options, name, Path(value))
