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
    "emox_edge.cli.serve",
)
# The library's own errors (bad input, bad bundle, missing device or dependency) and the OS's (no such
# file, permission, connection ...): one line, exit 2. Anything else is a bug in emox-edge: exit 1.
EXIT_BAD_INPUT = 2
EXIT_BUG = 1


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
    args, extra = parser.parse_known_args(argv)
    if extra:  # only `bench` passes flags through, to the benchmark suite's own parser
        if getattr(args, "command", None) != "bench":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.suite_args = [*args.suite_args, *extra]
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from emox_edge.errors import EmoxEdgeError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        terminated = type(exc).__name__ == "Terminated"
        print(f"emox-edge: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except (EmoxEdgeError, OSError) as exc:  # OSError covers FileNotFoundError, PermissionError, ConnectionError
        if args.verbose:
            raise
        print(f"emox-edge: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if args.verbose:
            raise
        print(f"emox-edge: internal error (a bug in emox-edge, please report it): {type(exc).__name__}: "
              f"{_one_line(exc)}; run with -v to see the traceback", file=sys.stderr)
        return EXIT_BUG


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
