"""Keeping native libraries quiet on paths where we report the problem ourselves.

OpenCV logs through its own logger (``[ WARN:0@0.01] global cap_v4l.cpp ...`` when a camera index
does not exist: 8 lines for ``--camera 57``), and libpng/libjpeg print straight to the process's
stderr (``libpng error: Read Error``). ``quiet_native()`` sets OpenCV's log level to silent and points
file descriptor 2 at a temporary file while its block runs; what was printed is logged at DEBUG
under this module's logger (``-v`` shows it), so the user sees our one line instead.

Only one block captures at a time (a lock); a block entered while another thread captures
silences OpenCV's log only. Python's own ``sys.stderr`` is flushed before and after. File
descriptors belong to the process: what any thread writes to stderr during a block (one image
decode, one camera open: milliseconds) goes to the same DEBUG record, so keep blocks short.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from typing import Iterator

log = logging.getLogger(__name__)

_capture_lock = threading.Lock()


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's log level set to silent for the block (restored after)."""
    import cv2

    try:
        previous = cv2.getLogLevel()
        cv2.setLogLevel(0)  # cv::utils::logging::LOG_LEVEL_SILENT
    except AttributeError:  # an OpenCV build without the logging API
        yield
        return
    try:
        yield
    finally:
        cv2.setLogLevel(previous)


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 during the block; log it at DEBUG."""
    if not _capture_lock.acquire(blocking=False):
        yield
        return
    try:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable stderr (embedded interpreter, closed fd)
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace").strip()
                if text:
                    log.debug("native library output: %s", text)
    finally:
        _capture_lock.release()


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """``quiet_opencv()`` and ``native_stderr_to_log()`` together."""
    with quiet_opencv(), native_stderr_to_log():
        yield
