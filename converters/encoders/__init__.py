"""Nano-EmoX encoders -> ONNX: reference modules, export, int8, parity gate, manifest part.

Public API (imported lazily so that ``converters.encoders.cli`` stays torch-free)::

    from converters.encoders import EncoderConvertOptions, convert_encoders
"""

from __future__ import annotations

__all__ = ["EncoderConvertOptions", "EncoderConversion", "convert_encoders"]


def __getattr__(name: str):
    if name in __all__:
        from converters.encoders import convert

        return getattr(convert, name)
    raise AttributeError(name)
