"""Where results go: a JSONL log flushed per result, an annotated video, a preview window.

Outputs are written under a temporary name beside the target (``.NAME.XXXX.part``) and renamed onto
it by ``close()``, also on Ctrl-C, so an interrupted run keeps everything analysed so far; ``abort()``
removes them instead. A run that produced nothing never replaces an existing file: ``close()`` keeps a
JSONL file only when it holds at least one result (or error records, when no file was there before),
and a video only when it holds at least one frame. ``check_outputs_not_inputs`` refuses an output
that would overwrite one of the run's inputs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from emox_edge._io import AtomicFile
from emox_edge.errors import BadInputError
from emox_edge.output_video import VideoSaver
from emox_edge.results import ClipResult

__all__ = ["Display", "JsonlWriter", "VideoSaver", "check_outputs_not_inputs", "clip_frames_for_output",
           "display_available"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def _local_path(value: Any) -> Path | None:
    """``value`` as an existing local path, or None for cameras, URLs, arrays and missing paths."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        return None
    text = os.fspath(value)
    if not text or "://" in text or text.strip().isdigit():
        return None
    path = Path(text).expanduser()
    try:
        return path if path.exists() else None
    except OSError:  # a name too long for the file system: no input of that name exists
        return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs_not_inputs(outputs: Iterable[PathLike | None], inputs: Iterable[Any]) -> None:
    """Refuse outputs that would overwrite an input, lie inside an input directory, or repeat.

    Args:
        outputs: the paths the run will write (``None`` entries are ignored).
        inputs: what the run reads: paths of files or directories (cameras, URLs, arrays and paths
            that do not exist are ignored).

    Raises:
        BadInputError: an output is an input (same path, symlink or hard link), lies inside an input
            directory, or two outputs are the same file. The message names both paths.
    """
    sources = [p for p in (_local_path(x) for x in inputs) if p is not None]
    seen: list[Path] = []
    for out in outputs:
        if out is None:
            continue
        target = Path(out).expanduser()
        for other in seen:
            if _same(target, other):
                raise BadInputError(f"output {target} is given twice (also as {other}); give each output its own path")
        seen.append(target)
        resolved = target.resolve()
        for source in sources:
            if source.is_dir():
                root = source.resolve()
                if resolved == root or root in resolved.parents:
                    raise BadInputError(f"output {target} is inside the input directory {source}: it would be "
                                        "written among the inputs; choose a path outside that directory")
            elif _same(target, source):
                raise BadInputError(f"output {target} is the input {source}: refusing to overwrite an input; "
                                    "choose another output path")


class JsonlWriter:
    """One JSON object per line per ``ClipResult`` (or error record), flushed after each write.

    ``count`` is the number of results written, ``errors`` the number of error records.
    """

    def __init__(self, path: PathLike) -> None:
        self._file = AtomicFile(path)
        self._handle = open(self._file.tmp, "w", encoding="utf-8")
        self.count = 0
        self.errors = 0
        self._committed: bool | None = None  # None while open

    @property
    def path(self) -> Path:
        return self._file.final

    @property
    def closed(self) -> bool:
        return self._committed is not None

    def write(self, result: ClipResult) -> None:
        """Append one result. Raises ``ValueError`` once closed or aborted."""
        self._line(result.to_dict(), error=False)

    def write_error(self, source: str, error: str) -> None:
        """Append ``{"source": source, "error": error}``: a unit of the input that could not be analysed."""
        self._line({"source": str(source), "error": str(error)}, error=True)

    def _line(self, record: dict[str, Any], *, error: bool) -> None:
        if self.closed:
            raise BadInputError(f"JSONL output {self.path} is already closed")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        # Counted before the flush: once a line can be seen in the file, ``close`` keeps it, even when a
        # signal (SIGTERM raises in the main thread) lands during the fsync, which is slow on a busy disk.
        if error:
            self.errors += 1
        else:
            self.count += 1
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self, commit: bool | None = None) -> bool:
        """Close; move the file onto its final name when it is worth keeping (idempotent).

        Args:
            commit: None (default): keep the file when it holds at least one result, or error records
                and no file of that name existed; True: also keep an empty file, but still never over
                an existing one; False: discard it, as ``abort()``.

        Returns:
            Whether the target now holds this run's output.
        """
        if self._committed is not None:
            return self._committed
        self._handle.close()
        exists = self.path.exists()
        keep = commit is not False and (self.count > 0 or (not exists and (self.errors > 0 or commit is True)))
        if keep:
            self._file.commit()
        else:
            self._file.discard()
            if exists and commit is not False:
                log.warning("%s left unchanged: this run wrote no results to it%s", self.path,
                            f" ({self.errors} error record(s) dropped)" if self.errors else "")
        self._committed = keep
        return keep

    def abort(self) -> None:
        """Close and remove the temporary file; the target is left as it was (idempotent)."""
        self.close(commit=False)

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
