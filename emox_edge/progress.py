"""Progress bars for long work (bundle builds, downloads, conversions), quiet where nobody watches.

A bar is drawn (with tqdm, on stderr) only when stderr is a terminal and the root logger lets INFO
through: ``emox-edge -q`` (root level WARNING), output piped into a file or a CI log, and the test
suite therefore see no bars, while log records still follow the logger levels. While a bar is
drawn, log records of the root logger's console handlers are written through tqdm so they do not
tear the bar.

    from emox_edge.progress import progress, progress_bytes

    for name in progress(names, desc="fetch", unit="file"):
        ...
    with progress_bytes(size, "download model") as bar:
        bar.update(len(block))
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, Iterable

_redirect: list[contextlib.AbstractContextManager] = []  # the log redirection while any bar is drawn
_open_bars = 0


def bars_enabled() -> bool:
    """Whether a bar would be drawn now: stderr is a terminal and the root logger shows INFO."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        tty = False
    return tty and logging.getLogger().getEffectiveLevel() <= logging.INFO


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, leave: bool = True, **kwargs: Any):
    """A tqdm bar over ``iterable`` (or one updated by hand), disabled where nobody watches.

    Args:
        iterable: what to iterate over; None for a bar moved with ``update(n)``.
        total: the expected number of items (taken from ``len(iterable)`` when it has one).
        desc: what is being done, shown before the bar.
        unit: the name of one item ("step", "file", "B", ...).
        enabled: False disables the bar whatever the terminal (an API caller's ``progress=False``).
        leave: keep the finished bar on screen; pass False for a bar inside another bar.
        **kwargs: passed to tqdm (e.g. ``unit_scale``).

    A disabled bar still iterates, and ``update``, ``set_postfix_str``, ``close`` and ``with`` do nothing.
    """
    disable = not (enabled and bars_enabled())
    bar = _bar_class()(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=sys.stderr,
               dynamic_ncols=True, **kwargs)
    if not disable:
        bar._counted = True
        _hold_redirect()
    return bar


def progress_bytes(total: int | None, desc: str, **kwargs: Any):
    """A bar counting bytes (shown as kB/MB/GB with a rate): call ``update(len(block))``."""
    return progress(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, **kwargs)


@functools.lru_cache(maxsize=None)
def _bar_class() -> type:
    from tqdm import tqdm

    class _Bar(tqdm):
        """tqdm that lets go of the log redirection when it closes."""

        _counted = False

        def close(self) -> None:
            super().close()
            if self._counted:
                self._counted = False
                _release_redirect()

    return _Bar


def _hold_redirect() -> None:
    global _open_bars
    _open_bars += 1
    if _open_bars == 1:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()
        redirect.__enter__()
        _redirect.append(redirect)


def _release_redirect() -> None:
    global _open_bars
    _open_bars = max(0, _open_bars - 1)
    if _open_bars == 0 and _redirect:
        _redirect.pop().__exit__(None, None, None)
