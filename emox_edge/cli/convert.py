"""``emox-edge convert {llm,encoders,bundle}``: thin dispatch into ``converters/`` (needs the [convert] extra).

Each converter package exposes ``register(subparsers)`` in ``converters.<name>.cli`` and must not
import torch at module level, so ``emox-edge --help`` stays fast and works without the extra.
"""

from __future__ import annotations

import importlib

_CONVERTERS = ("converters.llm.cli", "converters.encoders.cli", "converters.bundle_cli")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a Nano-EmoX checkpoint into GGUF / ONNX files and a bundle (needs emox-edge[convert])",
    )
    inner = parser.add_subparsers(dest="convert_command", metavar="WHAT")
    for name in _CONVERTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name in (name, name.rpartition(".")[0]):
                continue
            raise
        module.register(inner)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
