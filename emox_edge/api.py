"""The one-line API: ``load``, ``analyze`` and ``stream`` at the package top.

    import emox_edge

    print(emox_edge.analyze("photo.jpg").line())              # the default bundle, built on first use
    for result in emox_edge.stream(0, ["emotion", "empathize"]):  # camera 0
        print(result.line())
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Iterator, Sequence

from emox_edge.errors import BadInputError
from emox_edge.options import AnalyzerOptions

log = logging.getLogger(__name__)


def options_from(**fields: Any) -> AnalyzerOptions:
    """``AnalyzerOptions`` from keyword arguments (its field names).

    Raises:
        BadInputError: an unknown option name (the message lists the valid ones) or a bad value.
    """
    names = [f.name for f in dataclasses.fields(AnalyzerOptions)]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise BadInputError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(names)}")
    return AnalyzerOptions(**fields)


def load(bundle: "str | os.PathLike | None" = None, *, options: AnalyzerOptions | None = None, **fields: Any):
    """Open a bundle and return its ``Analyzer`` (close it, or use it in a ``with`` block).

    Args:
        bundle: a bundle directory; None: the default lite bundle (built on first use).
        options: an ``AnalyzerOptions``; or give its fields as keywords (``device="cpu"``, ``n_threads=2``).
    """
    from emox_edge.analyzer import Analyzer

    if options is not None and fields:
        raise BadInputError("give either options=AnalyzerOptions(...) or option keywords, not both")
    return Analyzer.from_bundle(bundle, options or options_from(**fields))


def analyze(item: Any, tasks: "Sequence[str] | str" = ("emotion",), *, bundle: "str | os.PathLike | None" = None,
            subtitle: str = "", history: Sequence[str] = (), **fields: Any):
    """Answer ``tasks`` on one file, image array or ``Clip`` (a directory: a list of results), then free
    the models. For many calls, ``load()`` once and call ``analyzer.analyze``."""
    with load(bundle, **fields) as analyzer:
        return analyzer.analyze(item, tasks, subtitle=subtitle, history=history)


def stream(source: Any, tasks: "Sequence[str] | str" = ("emotion",), *, bundle: "str | os.PathLike | None" = None,
           window_s: float = 4.0, vad: bool = False, max_clips: int | None = None, subtitle: str = "",
           history: Sequence[str] = (), callback: Any = None, **fields: Any) -> Iterator[Any]:
    """Yield a ``ClipResult`` per clip of ``source`` (a camera index, file, directory, URL, arrays); the
    models are freed when the generator ends or is closed."""
    with load(bundle, **fields) as analyzer:
        yield from analyzer.stream(source, tasks, window_s=window_s, vad=vad, max_clips=max_clips,
                                   subtitle=subtitle, history=history, callback=callback)
