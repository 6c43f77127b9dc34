"""What the converters' sub-commands share: flags derived from options dataclasses, and ``--quiet``.

The flags come from ``emox_edge.cli.flags`` like the runtime's (fields marked ``metadata["required"]``
are required on the command line). A sub-command's ``--quiet``
stores into ``convert_quiet``, never into ``quiet``: a sub-parser's defaults overwrite the values of
the main parser's flags of the same dest, which used to lose ``emox-edge -q convert encoders``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Iterator

from emox_edge.cli.flags import add_flags

QUIET_DEST = "convert_quiet"


def add_option_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """``add_flags(parser, cls)``: one flag per field of the converter's options dataclass."""
    add_flags(parser, cls, skip=skip)


def add_quiet_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", dest=QUIET_DEST, action="store_true",
                        help="show only warnings, errors and the result (the same as emox-edge -q).")


def is_quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, QUIET_DEST, False) or getattr(args, "quiet", False))


@contextlib.contextmanager
def quiet_logging(args: argparse.Namespace) -> Iterator[None]:
    """Raise the root logger to WARNING for the command when it was asked to be quiet (bars follow it)."""
    root = logging.getLogger()
    before = root.level
    if is_quiet(args) and root.getEffectiveLevel() < logging.WARNING:
        root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(before)
