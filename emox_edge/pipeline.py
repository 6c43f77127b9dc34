"""``Pipeline.from_bundle``: open any bundle kind; ``stream``: analyse a source clip after clip.

    from emox_edge.pipeline import Pipeline
    from emox_edge.options import PipelineOptions

    with Pipeline.from_bundle("bundle/", PipelineOptions(deterministic=True)) as analyzer:
        for result in Pipeline.stream(analyzer, "talk.mp4", ["emotion", "sentiment"]):
            print(result.line())

Bundle kinds: "nano-emox" -> ``emox_edge.nanoemox.NanoEmoxPipeline``; "lite" ->
``emox_edge.lite.pipeline.LitePipeline`` (imported lazily).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Iterator, Sequence

from emox_edge.bundle.manifest import Bundle, BundleError
from emox_edge.capture import Segmentation, Source, resolve_source
from emox_edge.options import ClipAnalyzer, PipelineOptions
from emox_edge.results import ClipResult
from emox_edge.tasks import TaskRequest, parse_tasks

log = logging.getLogger(__name__)

KINDS = ("nano-emox", "lite")


class Pipeline:
    """Factory and live loop shared by every bundle kind."""

    @staticmethod
    def from_bundle(path: "str | os.PathLike | Bundle", options: PipelineOptions | None = None) -> ClipAnalyzer:
        """Open the bundle at ``path`` and return its analyzer.

        Raises:
            FileNotFoundError: no bundle there.
            BundleError (a ValueError): corrupt bundle, or a kind other than nano-emox / lite.
        """
        options = options or PipelineOptions()
        bundle = path if isinstance(path, Bundle) else Bundle.open(path)
        if bundle.kind == "nano-emox":
            from emox_edge.nanoemox import NanoEmoxPipeline

            return NanoEmoxPipeline(bundle, options)
        if bundle.kind == "lite":
            from emox_edge.lite.pipeline import LitePipeline

            return LitePipeline.from_bundle(bundle, options)
        raise BundleError(f"{bundle.root}: bundle kind {bundle.kind!r} is not one of {', '.join(KINDS)}")

    @staticmethod
    def stream(
        analyzer: ClipAnalyzer,
        source: Any,
        tasks: Sequence[str | TaskRequest],
        *,
        history: Sequence[str] = (),
        segmentation: Segmentation | None = None,
        max_clips: int | None = None,
        callback: Callable[[ClipResult], Any] | None = None,
        source_options: dict[str, Any] | None = None,
        subtitle: str = "",
    ) -> Iterator[ClipResult]:
        """Yield one ``ClipResult`` per clip of ``source`` (anything ``resolve_source`` accepts).

        A clip whose analysis fails is logged and yields a ``ClipResult`` with ``error`` set; the loop
        goes on. ``callback`` (if given) is called with every result before it is yielded. The source
        is closed when the generator ends or is closed (Ctrl-C included). ``subtitle`` is given to
        clips that carry none (live sources have no transcript).

        Raises:
            ValueError: unknown task; ``max_clips`` < 1.
            TypeError / FileNotFoundError / ConnectionError: from ``resolve_source``.
        """
        for _, result in Pipeline.stream_clips(analyzer, source, tasks, history=history, segmentation=segmentation,
                                                max_clips=max_clips, callback=callback, source_options=source_options,
                                                subtitle=subtitle):
            yield result

    @staticmethod
    def stream_clips(
        analyzer: ClipAnalyzer,
        source: Any,
        tasks: Sequence[str | TaskRequest],
        *,
        history: Sequence[str] = (),
        segmentation: Segmentation | None = None,
        max_clips: int | None = None,
        callback: Callable[[ClipResult], Any] | None = None,
        source_options: dict[str, Any] | None = None,
        subtitle: str = "",
    ) -> Iterator[tuple[Any, ClipResult]]:
        """Like ``stream`` but yields ``(clip, result)`` pairs (for overlays and saved video)."""
        check = getattr(analyzer, "check_tasks", None)
        requests = check(tasks) if callable(check) else parse_tasks(tasks)  # bad variants fail before any clip
        if max_clips is not None and max_clips < 1:
            raise ValueError(f"max_clips must be >= 1, got {max_clips}")
        src: Source = resolve_source(source, segmentation=segmentation, **(source_options or {}))
        name = _name(analyzer)
        count = 0
        try:
            clips = src.clips()
            while max_clips is None or count < max_clips:
                t0 = time.perf_counter()
                try:
                    clip = next(clips)
                except StopIteration:
                    break
                capture_ms = (time.perf_counter() - t0) * 1000.0
                if subtitle and not clip.subtitle:
                    clip = dataclasses.replace(clip, subtitle=subtitle)
                try:
                    result = _with_capture(analyzer.analyze(clip, requests, history=history), capture_ms)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # the live loop survives one bad clip
                    log.error("clip %.1f-%.1f s of %s failed: %s: %s", clip.start, clip.end, clip.source,
                              type(exc).__name__, exc)
                    result = ClipResult(source=clip.source, start=clip.start, end=clip.end, bundle=name, tasks={},
                                        timings={"capture": capture_ms}, error=f"{type(exc).__name__}: {exc}")
                count += 1
                if callback is not None:
                    callback(result)
                yield clip, result
        finally:
            stats = src.stats()
            if stats:
                log.info("source %s: %s", src.name, ", ".join(f"{k}={v}" for k, v in stats.items()))
            src.close()


stream = Pipeline.stream
from_bundle = Pipeline.from_bundle


def _with_capture(result: ClipResult, capture_ms: float) -> ClipResult:
    timings = {"capture": capture_ms, **dict(result.timings)}
    return dataclasses.replace(result, timings=timings)


def _name(analyzer: Any) -> str:
    name = getattr(analyzer, "name", None)
    if isinstance(name, str):
        return name
    bundle = getattr(analyzer, "bundle", None)
    return f"{bundle.kind}:{bundle.name}" if isinstance(bundle, Bundle) else type(analyzer).__name__
