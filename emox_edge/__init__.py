"""emox-edge: on-device multimodal emotion AI (Nano-EmoX) through llama.cpp and ONNX Runtime.

Heavy parts load on first use: ``from emox_edge import Pipeline, LanguageCore`` imports only what
is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from emox_edge._version import __version__

_LAZY = {
    "LanguageCore": "emox_edge.llm",
    "Pipeline": "emox_edge.pipeline",
    "PipelineOptions": "emox_edge.options",
    "Bundle": "emox_edge.bundle",
    "Clip": "emox_edge.media",
    "ClipResult": "emox_edge.results",
    "TaskResult": "emox_edge.results",
    "Face": "emox_edge.results",
    "resolve_source": "emox_edge.capture",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emox_edge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
