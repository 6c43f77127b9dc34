"""The Ray Serve deployment: ``Analysis`` replicas, each one whole ``Analyzer`` on the bundle.

Importing this module imports Ray (``pip install 'emox-edge[ray]'``); ``emox_edge.scaleout.cluster``
does, when asked to scale out. The replica runs the same job functions as the single-process server
(``emox_edge.serve.jobs``): it decodes a window's JPEG frames itself (the ingress ships the compressed
frames, less than a tenth of the decoded ones), analyses the clip, and hands back the result with the
session's face tracker, whose state the ingress keeps between clips.

One request at a time per replica (``max_ongoing_requests=1``): an analyzer is not thread-safe, and a
replica that is busy leaves the next clip to a free one. Batching several sessions' questions into
one llama.cpp decode (``@serve.batch`` on a language-core deployment) is not done; see
docs/scale-out.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ray import serve

log = logging.getLogger(__name__)


def manifest_digest(bundle: "str | os.PathLike") -> str | None:
    """sha256 of the bundle's manifest (``bundle.json``; it lists every file's sha256), None if unreadable."""
    from emox_edge.bundle import MANIFEST_NAME

    try:
        return hashlib.sha256((Path(bundle) / MANIFEST_NAME).read_bytes()).hexdigest()
    except OSError:
        return None


@serve.deployment(name="analysis", max_ongoing_requests=1, health_check_period_s=10, graceful_shutdown_timeout_s=30)
class Analysis:
    """One analyzer in a Ray worker process. Constructed by Ray Serve on whichever node has room.

    Raises (on construction, reported by ``cluster.start``):
        FileNotFoundError: no bundle at ``bundle`` on this node.
        BundleError: this node's bundle is not the one the ingress saw (``expected_digest``).
    """

    def __init__(self, bundle: str, options: Any, expected_digest: str | None = None) -> None:
        from emox_edge.analyzer import Analyzer
        from emox_edge.errors import BundleError

        if expected_digest is not None:
            digest = manifest_digest(bundle)
            if digest is None:
                raise FileNotFoundError(f"{bundle}: no bundle on node {_node()}; every node needs the bundle at the "
                                        "same path (docs/scale-out.md)")
            if digest != expected_digest:
                raise BundleError(f"{bundle}: the bundle on node {_node()} is not the one the ingress has (its "
                                  "bundle.json differs); copy the same bundle to every node")
        if options.n_threads is None:  # the CPUs Ray reserved for this replica, not the whole node's
            options = dataclasses.replace(options, n_threads=max(1, math.ceil(_reserved_cpus())))
        self._analyzer = Analyzer.from_bundle(bundle, options)
        self._lock = threading.Lock()
        log.info("analysis replica on %s: %s, %d threads", _node(), self._analyzer.name, self._analyzer.n_threads)

    # ------------------------------------------------------------------ what the ingress calls
    def info(self) -> dict[str, Any]:
        return self._analyzer.info()

    def analyse_window(self, window: Any, config: Any, source: str, max_frames: int, tracker: Any):
        """A session's clip: ``(ClipOutcome | None, tracker)`` (see ``emox_edge.serve.jobs``)."""
        from emox_edge.serve import jobs

        with self._lock:
            outcome = jobs.analyse_window(self._analyzer, window, config, source=source, max_frames=max_frames,
                                          tracker=tracker)
        return outcome, tracker

    def detect_faces_jpeg(self, data: bytes, t: float, tracker: Any):
        """A session's faces message for one JPEG frame: ``(message | None, tracker)``."""
        from emox_edge.serve import jobs

        with self._lock:
            message = jobs.detect_faces(self._analyzer, data, t=t, tracker=tracker)
        return message, tracker

    def analyze(self, item: Any, tasks: Any, history: Any, subtitle: str, tracker: Any):
        """``Analyzer.analyze`` on a ``Clip`` or an image array: ``(ClipResult, tracker)``."""
        with self._lock:
            result = self._analyzer.analyze(item, tasks, history=history, subtitle=subtitle, tracker=tracker)
        return result, tracker

    def analyze_file(self, name: str, data: bytes, tasks: Any, subtitle: str):
        """An uploaded file (its bytes): the ``ClipResult`` dict, or a list of them for several clips.

        The file is written to a temporary path named like the ingress's uploads (``emox-upload-*``), so
        the server's error messages show the uploaded file's name, never a path of this node.
        """
        suffix = Path(name).suffix[:16] if Path(name).suffix.isascii() else ""
        handle, path = tempfile.mkstemp(prefix="emox-upload-", suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            with self._lock:
                result = self._analyzer.analyze(path, tasks, subtitle=subtitle)
        finally:
            Path(path).unlink(missing_ok=True)
        return [r.to_dict() for r in result] if isinstance(result, list) else result.to_dict()

    def check_health(self) -> None:
        """Ray Serve's health check: a closed analyzer is an unhealthy replica (it is replaced)."""
        if self._analyzer.bundle_kind is None:
            raise RuntimeError("the analyzer of this replica is closed")

    def __del__(self) -> None:
        analyzer = getattr(self, "_analyzer", None)
        if analyzer is not None:
            analyzer.close()


def _reserved_cpus() -> float:
    """CPUs Ray reserved for this worker (1 when Ray does not say)."""
    import ray

    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # an older Ray without assigned resources
        cpus = None
    return float(cpus) if cpus else 1.0


def _node() -> str:
    import ray

    try:
        return ray.util.get_node_ip_address()
    except Exception:
        return "?"
