"""A camera read by a daemon thread: the newest frame, a bounded history for clips, drop counts.

OpenCV's ``VideoCapture`` is opened in the constructor (a camera that cannot be opened raises
``ConnectionError`` naming its index). The thread reads continuously so the driver's queue never
builds up latency. Frames larger than ``max_side`` on their long side are downscaled in the thread
(OpenCV "area", aspect kept, as the file decoder does), before they are kept: a 1280x720 frame is
held as 640x360, a quarter of the memory. Frames older than ``history_s``, or before the time given
to ``release_before`` (no future clip can use them), are let go; those no clip took are counted as
dropped. When the camera stops delivering (unplugged, driver reset) the thread logs it, releases the
device and reopens it with exponential back-off until it is back or ``close()`` is called.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from emox_edge.capture.decode import display_size
from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)

_FAILS_BEFORE_RECONNECT = 5


def _default_factory(index: int):
    """``cv2.VideoCapture(index)`` with OpenCV's backend chatter (8 warning lines for a missing
    camera) kept out of the terminal: ``CameraReader`` reports a camera that will not open itself."""
    import cv2

    from emox_edge.capture.quiet import quiet_native

    with quiet_native():
        return cv2.VideoCapture(index)


class CameraReader:
    """Read camera ``index`` in a daemon thread.

    Args:
        index: the OpenCV camera index.
        capture_factory: ``index -> cv2.VideoCapture``-like object (``read()``, ``isOpened()``,
            ``release()``, ``set()``); default ``cv2.VideoCapture``. Tests pass a reader of a file.
        width, height, fps: requested capture settings (None: the driver's default).
        history_s: seconds of frames kept for clip assembly (``LiveSource`` sizes it from the
            segmentation; settable while running).
        max_side: frames whose long side is larger are downscaled to it in the reader thread
            (None: kept as captured).
        clock: time source (seconds), shared with the microphone so both line up.
        retry_initial_s, retry_max_s: back-off between reconnection attempts.

    Raises:
        ValueError: ``history_s`` is not a positive number of seconds, or ``max_side`` < 32.
        ConnectionError: the camera cannot be opened.
    """

    def __init__(
        self,
        index: int,
        *,
        capture_factory: Callable[[int], Any] | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        history_s: float = 30.0,
        max_side: int | None = 640,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 8.0,
    ) -> None:
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 32):
            raise BadInputError(f"max_side must be None or an integer >= 32 pixels, got {max_side!r}")
        self.index = int(index)
        self._factory = capture_factory or _default_factory
        self._settings = (width, height, fps)
        self.history_s = history_s
        self.max_side = max_side
        self._clock = clock
        self._retry = (retry_initial_s, retry_max_s)
        self._lock = threading.Lock()
        self._history: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._latest: tuple[float, np.ndarray] | None = None
        self._taken_until = -1.0
        self._keep_from = -float("inf")  # frames before this are let go (``release_before``)
        self._stop = threading.Event()
        self.frames_read = 0
        self.dropped = 0
        self.peak_held = 0  # most frames the history held at once
        self.reconnects = 0
        self.connected = False
        self._cap = self._open()
        if self._cap is None:
            raise ConnectionError(
                f"camera {self.index} could not be opened (no such device, in use, or no permission); "
                "list cameras with `emox-edge doctor` or pass --source FILE"
            )
        self.connected = True
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.index}", daemon=True)
        self._thread.start()

    def _open(self):
        import cv2

        cap = self._factory(self.index)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        width, height, fps = self._settings
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    def _run(self) -> None:
        import cv2

        fails = 0
        while not self._stop.is_set():
            ok, frame = self._cap.read() if self._cap is not None else (False, None)
            if not ok or frame is None:
                fails += 1
                if fails >= _FAILS_BEFORE_RECONNECT:
                    self._reconnect()
                    fails = 0
                else:
                    time.sleep(0.01)
                continue
            fails = 0
            now = self._clock()
            size = display_size(frame.shape[1], frame.shape[0], self.max_side)
            if size != (frame.shape[1], frame.shape[0]):  # downscale first: the colour conversion is then cheaper
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            del frame  # the driver's buffer: not kept past this frame
            with self._lock:
                self.frames_read += 1
                self._latest = (now, rgb)
                self._history.append((now, rgb))
                self._evict(now)
                self.peak_held = max(self.peak_held, len(self._history))

    def _evict(self, now: float) -> None:
        """Let frames older than the history or before ``release_before``'s time go (lock held)."""
        limit = max(now - self.history_s, self._keep_from)
        while self._history and self._history[0][0] < limit:
            t, _ = self._history.popleft()
            if t > self._taken_until:
                self.dropped += 1

    def _reconnect(self) -> None:
        self.connected = False
        log.warning("camera %d stopped delivering frames; reconnecting", self.index)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        delay, limit = self._retry
        while not self._stop.is_set():
            self._stop.wait(delay)
            if self._stop.is_set():
                return
            cap = self._open()
            if cap is not None:
                self._cap = cap
                self.connected = True
                self.reconnects += 1
                log.warning("camera %d is back", self.index)
                return
            log.warning("camera %d still unavailable; next try in %.1f s", self.index, min(delay * 2, limit))
            delay = min(delay * 2, limit)

    @property
    def history_s(self) -> float:
        return self._history_s

    @history_s.setter
    def history_s(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
            raise BadInputError(f"history_s must be a positive number of seconds, got {seconds!r}")
        self._history_s = float(seconds)

    @property
    def held(self) -> int:
        """Frames the history holds now."""
        with self._lock:
            return len(self._history)

    def release_before(self, t: float) -> None:
        """Let every frame before clock time ``t`` go now, and those captured later as they age past it
        (a live source calls this with the time before which no future clip can start)."""
        with self._lock:
            self._keep_from = max(self._keep_from, t)
            self._evict(self._history[-1][0] if self._history else t)

    def latest(self) -> tuple[float, np.ndarray] | None:
        """The newest ``(time, rgb)`` frame, or None before the first."""
        with self._lock:
            return self._latest

    def held_between(self, start: float, end: float) -> list[tuple[float, np.ndarray]]:
        """The held ``(time, rgb)`` frames with ``start <= time < end`` (as ``take`` chooses them), oldest
        first, without marking them taken."""
        with self._lock:
            return [(t, f) for t, f in self._history if start <= t < end]

    def take(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Frames with ``start <= t < end`` as (uint8 [N,H,W,3], times [N]); marks them taken."""
        with self._lock:
            chosen = [(t, f) for t, f in self._history if start <= t < end]
            self._taken_until = max(self._taken_until, end)
        if not chosen:
            return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0)
        shapes = {f.shape for _, f in chosen}
        if len(shapes) > 1:  # resolution changed after a reconnect: keep the latest shape
            last = chosen[-1][1].shape
            chosen = [(t, f) for t, f in chosen if f.shape == last]
        return np.stack([f for _, f in chosen]), np.asarray([t for t, _ in chosen], np.float64)

    def close(self) -> None:
        """Stop the thread and release the device (idempotent)."""
        self._stop.set()
        if getattr(self, "_thread", None) is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.connected = False

    def __enter__(self) -> "CameraReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
