"""Where results go: a JSONL log flushed per result, an annotated video, a preview window.

Files are written under a temporary name beside the target and renamed onto it by ``close()`` (also
on Ctrl-C, so an interrupted run keeps everything analysed so far); ``abort()`` removes them instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emox_edge.results import ClipResult

log = logging.getLogger(__name__)


class _AtomicFile:
    def __init__(self, final: str | os.PathLike, suffix: str = "") -> None:
        self.final = Path(final)
        if self.final.is_dir():
            raise IsADirectoryError(f"output {self.final} is a directory, expected a file path")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=f".part{suffix}", dir=self.final.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        os.chmod(self.tmp, 0o644)

    def commit(self) -> None:
        if self.tmp.exists():
            os.replace(self.tmp, self.final)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


class JsonlWriter:
    """One JSON object per line per ``ClipResult``, flushed after each write."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._file = _AtomicFile(path)
        self._handle = open(self._file.tmp, "w", encoding="utf-8")
        self.count = 0

    @property
    def path(self) -> Path:
        return self._file.final

    def write(self, result: ClipResult) -> None:
        self._handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.count += 1

    def close(self) -> None:
        """Close and move the file onto its final name (idempotent)."""
        if not self._handle.closed:
            self._handle.close()
            self._file.commit()

    def abort(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self._file.discard()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSaver:
    """Annotated RGB frames into a video file (``.mp4``: mp4v, ``.avi``: MJPG), renamed when closed.

    Raises (on the first frame):
        ValueError: OpenCV cannot write this format.
    """

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0) -> None:
        self.final = Path(path)
        suffix = self.final.suffix.lower()
        if suffix not in self.FOURCC:
            raise ValueError(f"--save {self.final}: unsupported video suffix {suffix!r}; use one of {', '.join(self.FOURCC)}")
        self._file = _AtomicFile(path, suffix=suffix)
        self.fps = fps
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        import cv2

        h, w = frame_rgb.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC[self.final.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._file.tmp), fourcc, float(self.fps), self._size)
            if not self._writer.isOpened():
                raise ValueError(f"OpenCV cannot write {self.final} (codec {self.FOURCC[self.final.suffix.lower()]})")
        if (w, h) != self._size:
            frame_rgb = cv2.resize(frame_rgb, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it onto its final name (nothing is written without frames)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._file.commit()
        else:
            self._file.discard()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._file.discard()


def display_available() -> bool:
    """Whether a preview window can be opened (a display and an OpenCV build with a GUI backend)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import cv2

        info = cv2.getBuildInformation()
    except Exception:
        return False
    gui = info.split("GUI:", 1)[1].split("\n", 2)[0] if "GUI:" in info else ""
    return "NONE" not in gui.upper()


class Display:
    """A preview window (``--show``); headless machines log once and show nothing."""

    def __init__(self, title: str = "emox-edge") -> None:
        self.title = title
        self.enabled = display_available()
        if not self.enabled:
            log.warning("--show: no display available; running headless")

    def show(self, frame_rgb: np.ndarray) -> bool:
        """Show a frame; returns False when the user pressed q or Esc."""
        if not self.enabled:
            return True
        import cv2

        try:
            cv2.imshow(self.title, cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            log.warning("--show disabled: %s", exc)
            self.enabled = False
            return True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.enabled:
            import cv2

            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass


def clip_frames_for_output(clip: Any) -> list[np.ndarray]:
    """The frames of a clip to write to an annotated video (all of them; one for stills)."""
    frames = getattr(clip, "frames", None)
    if frames is None or frames.shape[0] == 0:
        return []
    return [frames[i] for i in range(frames.shape[0])]
