"""The one ONNX Runtime session factory: every graph of every bundle kind opens through ``create_session``.

``create_session(path, device=..., n_threads=...)`` resolves the device (``emox_edge.devices``), keeps
the providers ONNX Runtime really has (a missing one is logged once at WARNING with what was asked and
what is used) and turns a file ONNX Runtime cannot load into a ``BundleError`` naming it.

Two session settings differ from ONNX Runtime's defaults. Measured on the full-size bundle (Q4_K_M + int8,
2 threads, one clip encoded then the language core run; 3 runs with the defaults interleaved with
3 runs with these settings, medians, ranges in brackets):

- ``session.intra_op.allow_spinning = 0``: idle ONNX Runtime workers otherwise spin and take
  cycles from llama.cpp's threads. Encoders 8.8 s (7.9-9.1) -> 7.5 s (7.5-8.2), the next prefill
  3.7 s (3.3-3.8) -> 3.3 s (3.3-3.4), decoding 17.2 tok/s (16.7-18.6) -> 22.3 (18.9-22.5).
- one CPU arena for every session (``session.use_env_allocators``): each session's own arena keeps
  its peak activations for good, so the four encoders can hold the sum of their peaks; shared,
  they hold the largest. Peak RSS 4.56 GiB (3.66-4.56) -> 3.59 GiB (3.58-3.61).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from emox_edge.devices import ResolvedDevice, resolve_device, warn_once
from emox_edge.errors import BundleError

log = logging.getLogger(__name__)

_shared_arena: bool | None = None


def session_options(n_threads: int | None = None):
    """``onnxruntime.SessionOptions``: sequential, all graph optimizations, no spinning, shared arena.

    ``n_threads`` sets the intra-op threads (inter-op stays 1); None keeps ONNX Runtime's default.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if n_threads:
        so.intra_op_num_threads = int(n_threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _register_shared_arena():
        so.add_session_config_entry("session.use_env_allocators", "1")
    return so


def _register_shared_arena() -> bool:
    """Register one CPU arena with ONNX Runtime's environment (once per process)."""
    global _shared_arena
    if _shared_arena is None:
        import onnxruntime as ort

        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _shared_arena = True
        except Exception as exc:  # e.g. the host application registered one already: use it
            _shared_arena = "already" in str(exc).lower()
            log.info("shared ONNX Runtime CPU arena: %s (%s)", "using the one registered" if _shared_arena
                     else "not available, one arena per session", exc)
    return _shared_arena


def create_session(path: str | os.PathLike, *, device: "ResolvedDevice | str" = "cpu", n_threads: int | None = None,
                   providers: Sequence[str] | None = None):
    """Open ``path`` as an ``onnxruntime.InferenceSession`` beside llama.cpp (see ``session_options``).

    Args:
        path: the ONNX file.
        device: a ``ResolvedDevice`` or a device request ("auto" | "cpu" | "cuda" | "metal").
        n_threads: intra-op threads (None: ONNX Runtime's default).
        providers: explicit providers in order of preference (overrides ``device``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BundleError: ONNX Runtime cannot load the file (not an ONNX graph, truncated, garbage).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    resolved = resolve_device(device) if isinstance(device, str) else device
    wanted = list(providers or resolved.ort_providers)
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    if chosen != wanted:
        warn_once(f"ONNX Runtime providers {', '.join(p for p in wanted if p not in available)} asked for "
                  f"(device {resolved.requested!r}) are not available: using {', '.join(chosen)}")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(n_threads), providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        if type(exc).__module__.startswith("onnxruntime"):
            raise BundleError(f"{path}: ONNX Runtime cannot load this graph (corrupt or not ONNX): "
                              f"{str(exc).splitlines()[0][:200]}") from exc
        raise
