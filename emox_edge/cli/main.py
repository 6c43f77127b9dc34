"""Entry point of ``emox-edge``: sub-commands register themselves from their own modules.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func=run`` where ``run(args) -> int``. Modules are imported here only when named in
``_COMMANDS``; heavy imports (llama.cpp, ONNX Runtime, torch) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from emox_edge._version import __version__

# (module, is optional): a missing optional module (work in progress) is skipped, not fatal.
_COMMANDS = (
    "emox_edge.cli.doctor",
    "emox_edge.cli.run",
    "emox_edge.cli.analyze",
    "emox_edge.cli.info",
    "emox_edge.cli.bundle",
    "emox_edge.cli.convert",
    "emox_edge.cli.bench",
)
# Bad input from the user: exit 2. Everything else that is expected: exit 1.
_BAD_INPUT = (FileNotFoundError, FileExistsError, ValueError, TypeError, IsADirectoryError, NotADirectoryError)
_EXPECTED = (ConnectionError, RuntimeError, OSError, ImportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emox-edge",
        description="On-device multimodal emotion AI (Nano-EmoX) through llama.cpp and ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"emox-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("emox-edge: interrupted", file=sys.stderr)
        return 130
    except _BAD_INPUT as exc:
        return _fail(args, exc, 2)
    except _EXPECTED as exc:
        return _fail(args, exc, 1)


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    if args.verbose:
        raise exc
    print(f"emox-edge: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
