"""ONNX Runtime sessions for the lite bundle's small graphs (face detector, FER, VAD)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from emox_edge.ort_options import session_options

log = logging.getLogger(__name__)


def make_session(path: str | os.PathLike, *, providers: Sequence[str] | None = None, n_threads: int | None = None):
    """Open an ``onnxruntime.InferenceSession`` on ``path``.

    Args:
        path: the ONNX file.
        providers: ONNX Runtime providers in order of preference (default CPU only); providers the
            installed ONNX Runtime lacks are dropped with a log line.
        n_threads: intra-op threads (None: ONNX Runtime's default).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    wanted = list(providers or ("CPUExecutionProvider",))
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    if len(chosen) != len(wanted):
        log.info("%s: providers %s not available, using %s", path.name, sorted(set(wanted) - available), chosen)
    return ort.InferenceSession(str(path), sess_options=session_options(n_threads), providers=chosen)
