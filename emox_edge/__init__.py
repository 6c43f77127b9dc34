"""emox-edge: on-device multimodal emotion AI (Nano-EmoX) through llama.cpp and ONNX Runtime.

    import emox_edge

    result = emox_edge.analyze("photo.jpg", ["emotion", "sentiment"])   # the default bundle
    with emox_edge.load("my-bundle", device="auto") as analyzer:
        for result in analyzer.stream(0, ["emotion", "empathize"]):      # camera 0
            print(result.line())

Heavy parts load on first use: ``import emox_edge`` imports none of llama.cpp, ONNX Runtime or OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

from emox_edge._version import __version__

_LAZY = {
    "load": "emox_edge.api",
    "analyze": "emox_edge.api",
    "stream": "emox_edge.api",
    "Analyzer": "emox_edge.analyzer",
    "AnalyzerOptions": "emox_edge.options",
    "FaceOptions": "emox_edge.options",
    "LiteOptions": "emox_edge.options",
    "LanguageCore": "emox_edge.llm",
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
