"""The Ray Serve deployments: ``Perception`` replicas (one clip at a time) and ``Language`` replicas
(the language core, answering batches of clips from many streams with ``@serve.batch``).

Importing this module imports Ray (``pip install 'emox-edge[ray]'``); ``emox_edge.scaleout.cluster``
does, when asked to scale out. The ingress composes the two (``emox_edge.scaleout.remote``): a
session's window goes to a perception replica, which decodes its JPEG frames itself (the ingress
ships the compressed frames), runs ``Analyzer.perceive_clip`` (faces, voice activity, speech
recognition, the bundle's encoders or lite perception) and hands back a ``PerceivedClip`` with the
session's face tracker; the ``PerceivedClip`` then goes to a language replica, whose batch of clips
from any streams is answered by one ``Analyzer.answer_clips`` call (one batched llama.cpp decode).

Each replica opens only its half of the analyzer (``AnalyzerOptions.stages``): a perception replica
never loads the language core, a language replica never loads the face, voice, speech models or
the encoders; see docs/scale-out.md ("What to expect per node").
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import os
import tempfile
import threading
import time
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


def open_analyzer(bundle: str, options: Any, expected_digest: str | None, role: str):
    """The replica's analyzer, on this node's copy of the bundle.

    Raises:
        FileNotFoundError: no bundle at ``bundle`` on this node.
        BundleError: this node's bundle is not the one the ingress saw (``expected_digest``).
    """
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
    # each replica loads only its half: perception never loads the language core, language never
    # loads the face, voice and speech models or the encoders
    options = dataclasses.replace(options, stages=role)
    analyzer = Analyzer.from_bundle(bundle, options)
    log.info("%s replica on %s: %s, %d threads", role, _node(), analyzer.name, analyzer.n_threads)
    return analyzer


@serve.deployment(name="perception", max_ongoing_requests=1, health_check_period_s=10, graceful_shutdown_timeout_s=30)
class Perception:
    """Faces, voice, words and the bundle's perception of one clip at a time (an analyzer is not
    thread-safe). Constructed by Ray Serve on whichever node has room; raises as ``open_analyzer``."""

    def __init__(self, bundle: str, options: Any, expected_digest: str | None = None) -> None:
        self._analyzer = open_analyzer(bundle, options, expected_digest, "perception")
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return self._analyzer.info()

    def perceive_window(self, window: Any, config: Any, source: str, max_frames: int, tracker: Any):
        """A session's window: ``((PerceivedClip | None, bad frame times, frames, ms) | None, tracker)``.

        None when none of its frames decoded and it has no audio (as ``serve.jobs.analyse_window``);
        a ``PerceivedClip`` of None when, besides, some frames were corrupt.
        """
        from emox_edge.serve import jobs

        clip, bad = jobs.build_clip(window, config, source=source, max_frames=max_frames)
        if clip.frames.shape[0] == 0 and not clip.audio.any():
            return ((None, bad, 0, 0.0) if bad else None), tracker
        t0 = time.perf_counter()
        with self._lock:
            perceived = self._analyzer.perceive_clip(clip, history=config.history, tracker=tracker)
        ms = (time.perf_counter() - t0) * 1000.0
        # the last frame is for plot() and save(); a session's result message never carries it
        return (dataclasses.replace(perceived, frame=None), bad, int(clip.frames.shape[0]), ms), tracker

    def detect_faces_jpeg(self, data: bytes, t: float, tracker: Any):
        """A session's faces message for one JPEG frame: ``(message | None, tracker)``."""
        from emox_edge.serve import jobs

        with self._lock:
            message = jobs.detect_faces(self._analyzer, data, t=t, tracker=tracker)
        return message, tracker

    def perceive(self, item: Any, history: Any, subtitle: str, tracker: Any):
        """A ``Clip`` or an image array, as ``Analyzer.analyze`` takes it: ``(items, tracker)``, each item
        a ``PerceivedClip`` or a ``ClipResult`` with its ``error``."""
        with self._lock:
            return perceive_item(self._analyzer, item, history=history, subtitle=subtitle, tracker=tracker), tracker

    def perceive_file(self, name: str, data: bytes, subtitle: str):
        """An uploaded file (its bytes): its clips' items, as ``perceive``.

        The file is written to a temporary path named like the ingress's uploads (``emox-upload-*``), so
        the server's error messages show the uploaded file's name, never a path of this node.
        """
        suffix = Path(name).suffix[:16] if Path(name).suffix.isascii() else ""
        handle, path = tempfile.mkstemp(prefix="emox-upload-", suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            with self._lock:
                return perceive_item(self._analyzer, path, history=(), subtitle=subtitle, tracker=None)
        finally:
            Path(path).unlink(missing_ok=True)

    def check_health(self) -> None:
        """Ray Serve's health check: a closed analyzer is an unhealthy replica (it is replaced)."""
        _check_open(self._analyzer)

    def __del__(self) -> None:
        _close(self)


@serve.deployment(name="language", health_check_period_s=10, graceful_shutdown_timeout_s=30)
class Language:
    """The language core: clips perceived anywhere, answered in batches of up to ``batch_size`` (from
    any streams) by one ``Analyzer.answer_clips`` call each. Raises on construction as ``open_analyzer``."""

    def __init__(self, bundle: str, options: Any, expected_digest: str | None = None, batch_size: int = 8,
                 batch_wait_ms: float = 10.0) -> None:
        self._analyzer = open_analyzer(bundle, options, expected_digest, "language")
        self._answer_batch.set_max_batch_size(batch_size)
        self._answer_batch.set_batch_wait_timeout_s(batch_wait_ms / 1000.0)
        self.batches: list[int] = []  # the size of each batch answered (recent ones)

    def info(self) -> dict[str, Any]:
        return {**self._analyzer.info(), "batch_sizes": list(self.batches)}

    async def answer(self, perceived: Any, tasks: Any):
        """The tasks of one perceived clip: ``(ClipResult, ms of its batch)``.

        Raises:
            BadInputError: an unknown task or variant (checked before the clip joins a batch).
        """
        requests = self._analyzer.check_tasks(tasks)
        return await self._answer_batch((perceived, requests))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _answer_batch(self, items: list[tuple[Any, list[Any]]]) -> list[tuple[Any, float]]:
        # the language core runs in a thread, so the replica's event loop keeps taking requests (the
        # next batch fills meanwhile) and answering Ray Serve's health checks
        t0 = time.perf_counter()
        results = await asyncio.to_thread(self._analyzer.answer_clips, [p for p, _ in items], [r for _, r in items])
        ms = (time.perf_counter() - t0) * 1000.0
        self.batches = [*self.batches[-99:], len(items)]
        return [(result, ms) for result in results]

    def check_health(self) -> None:
        _check_open(self._analyzer)

    def __del__(self) -> None:
        _close(self)


def perceive_item(analyzer: Any, item: Any, *, history: Any, subtitle: str, tracker: Any) -> list[Any]:
    """``Analyzer.analyze``'s first half on a ``Clip``, an image array or a file: one ``PerceivedClip``
    per clip (a file is one clip), or a ``ClipResult`` with ``error`` for a clip that failed.

    Raises:
        BadInputError / InputTypeError / FileNotFoundError / MediaError: as ``Analyzer.analyze``.
    """
    from emox_edge.capture import Segmentation, resolve_source
    from emox_edge.media import Clip

    if isinstance(item, Clip):
        clip = item if item.subtitle or not subtitle else dataclasses.replace(item, subtitle=subtitle)
        if clip.error:
            return [_failed(analyzer, clip, clip.error, {})]
        return [analyzer.perceive_clip(clip, history=history, tracker=tracker)]
    src = resolve_source(item, segmentation=Segmentation(mode="whole"))
    speech, out = analyzer.speech_stage(), []
    try:
        clips = src.clips()
        while True:
            t0 = time.perf_counter()
            clip = next(clips, None)
            if clip is None:
                return out
            timings = {"capture_ms": (time.perf_counter() - t0) * 1000.0}
            if subtitle and not clip.subtitle:
                clip = dataclasses.replace(clip, subtitle=subtitle)
            try:
                if clip.error:
                    out.append(_failed(analyzer, clip, clip.error, timings))
                    continue
                perceived = analyzer.perceive_clip(clip, history=history, speech=speech)
                out.append(dataclasses.replace(perceived, timings={**timings, **perceived.timings}))
            except Exception as exc:  # a bad clip fails alone, as in Analyzer.iter_clips
                log.error("clip %.1f-%.1f s of %s failed: %s: %s", clip.start, clip.end, clip.source,
                          type(exc).__name__, exc)
                out.append(_failed(analyzer, clip, f"{type(exc).__name__}: {exc}", timings))
    finally:
        src.close()


def _failed(analyzer: Any, clip: Any, error: str, timings: dict[str, float]):
    from emox_edge.results import ClipResult

    return ClipResult(source=clip.source, start=clip.start, end=clip.end, bundle=analyzer.name, tasks={},
                      timings=timings, error=error)


def _check_open(analyzer: Any) -> None:
    if analyzer.bundle_kind is None:
        raise RuntimeError("the analyzer of this replica is closed")


def _close(replica: Any) -> None:
    analyzer = getattr(replica, "_analyzer", None)
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
