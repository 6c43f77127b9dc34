"""Quantize a GGUF file through llama.cpp's own ``llama_model_quantize`` (no external binary).

K-quant types need rows divisible by 256; llama.cpp falls back to a compatible type (and logs it)
for tensors that are not, so tiny test models still quantize.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from emox_edge._io import atomic_path
from emox_edge.devices import physical_cores
from emox_edge.llm import _native

logger = logging.getLogger(__name__)

QTYPES = tuple(_native.QUANT_FTYPES)


def quantize_gguf(src: str | os.PathLike, dst: str | os.PathLike, qtype: str) -> Path:
    """Write ``dst``, the ``qtype`` quantization of the GGUF ``src`` (atomically).

    Args:
        src: an F32/F16 GGUF (e.g. from ``write_qwen2_gguf``).
        dst: output path; must differ from ``src``.
        qtype: one of ``QTYPES`` ("q8_0", "q4_k_m", "q4_0", "q5_k_m", "q6_k", "f16").

    Raises:
        ValueError: unknown ``qtype``, ``src`` is not a GGUF or is damaged (``BundleError``), or ``dst``
            is ``src``.
        FileNotFoundError: ``src`` does not exist.
        RuntimeError: llama.cpp reported a failure.
    """
    key = str(qtype).lower()
    if key not in _native.QUANT_FTYPES:
        raise ValueError(f"qtype must be one of {', '.join(QTYPES)}; got {qtype!r}")
    src = _native.check_gguf(src)
    dst = Path(dst)
    if dst.resolve() == src.resolve():
        raise ValueError(f"dst must differ from src; both are {src}")
    with atomic_path(dst) as tmp:
        _native.quantize_file(src, tmp, _native.QUANT_FTYPES[key], physical_cores())
    logger.info("quantized %s -> %s (%s)", src, dst, key)
    return dst
