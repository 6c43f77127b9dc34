"""A microphone read in ~100 ms blocks into a ring buffer (PortAudio through sounddevice).

``sounddevice`` is imported lazily with an install hint (it needs the PortAudio library:
``apt-get install libportaudio2`` on Debian/Ubuntu). Blocks arrive in PortAudio's callback thread as
``InputStream(channels=1, dtype="float32", samplerate=16000)``; overflows reported by PortAudio and
unread samples overwritten in the ring are counted. A stream that stops delivering (device
unplugged) is reopened with back-off by ``check()``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)

SOUNDDEVICE_HINT = (
    "the microphone needs the 'sounddevice' package and the PortAudio library: "
    "pip install sounddevice; apt-get install libportaudio2 (Debian/Ubuntu)"
)


def import_sounddevice():
    """Return the ``sounddevice`` module or raise ImportError with the install hint."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise ImportError(f"{SOUNDDEVICE_HINT} ({exc})") from exc
    return sounddevice


class AudioRing:
    """A float32 ring buffer addressed by absolute sample numbers."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise BadInputError(f"ring capacity must be positive, got {capacity}")
        self._buf = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self.written = 0  # total samples ever written
        self.read_until = 0  # absolute sample up to which a consumer has read
        self.overwritten = 0  # unread samples lost to wrap-around
        self._lock = threading.Lock()

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        with self._lock:
            total = block.size
            if total > self.capacity:
                block = block[-self.capacity :]
            start = (self.written + total - block.size) % self.capacity
            first = min(block.size, self.capacity - start)
            self._buf[start : start + first] = block[:first]
            self._buf[: block.size - first] = block[first:]
            self.written += total
            oldest = self.written - self.capacity
            if oldest > self.read_until:
                self.overwritten += oldest - self.read_until
                self.read_until = oldest

    def read(self, start: int, end: int, *, mark: bool = True) -> np.ndarray:
        """Samples ``[start, end)`` (absolute); parts no longer (or not yet) held are zeros."""
        out = np.zeros(max(end - start, 0), np.float32)
        with self._lock:
            lo, hi = max(start, self.written - self.capacity, 0), min(end, self.written)
            for pos in range(lo, hi, self.capacity):
                stop = min(hi, pos + self.capacity)
                idx = np.arange(pos, stop) % self.capacity
                out[pos - start : stop - start] = self._buf[idx]
            if mark:
                self.read_until = max(self.read_until, min(end, self.written))
        return out


class MicrophoneReader:
    """Capture 16 kHz mono float32 from a PortAudio input device.

    Args:
        device: sounddevice device (index or name substring; None: the default input).
        sample_rate, block_s: stream rate and block length (~100 ms).
        buffer_s: ring buffer length in seconds.
        stream_factory: ``(**kwargs) -> InputStream``-like (tests); default ``sounddevice.InputStream``.
        clock: time source shared with the camera.

    Raises:
        ImportError: sounddevice / PortAudio missing (with the install hint).
        ConnectionError: the device cannot be opened (names the device).
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = 16000,
        block_s: float = 0.1,
        buffer_s: float = 60.0,
        stream_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.sample_rate = int(sample_rate)
        self.blocksize = max(int(round(block_s * sample_rate)), 1)
        self.ring = AudioRing(int(buffer_s * sample_rate))
        self._clock = clock
        self._factory = stream_factory
        self.overflows = 0
        self.reconnects = 0
        self.blocks = 0
        self._last_block = clock()
        self._retry_at = 0.0
        self._retry_delay = 0.5
        self._stream = None
        self.t0: float | None = None  # clock time of sample 0
        self._stream = self._open()

    def _open(self):
        factory = self._factory
        if factory is None:
            factory = import_sounddevice().InputStream
        try:
            stream = factory(
                device=self.device,
                channels=1,
                dtype="float32",
                samplerate=self.sample_rate,
                blocksize=self.blocksize,
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:  # sounddevice.PortAudioError, ValueError for unknown devices
            raise ConnectionError(
                f"microphone {self.device if self.device is not None else '(default)'} could not be opened: {exc}"
            ) from exc
        self._last_block = self._clock()
        return stream

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        now = self._clock()
        if self.t0 is None:
            self.t0 = now - frames / self.sample_rate
        self.ring.write(indata[:, 0] if np.ndim(indata) == 2 else indata)
        self.blocks += 1
        self._last_block = now

    @property
    def seconds(self) -> float:
        """Seconds of audio captured so far."""
        return self.ring.written / self.sample_rate

    def audio(self, start_s: float, end_s: float, *, mark: bool = True) -> np.ndarray:
        """Audio between two times on the shared clock's source timeline (see ``LiveSource``)."""
        sr = self.sample_rate
        return self.ring.read(int(round(start_s * sr)), int(round(end_s * sr)), mark=mark)

    def check(self, *, stall_s: float = 2.0) -> bool:
        """Reopen the stream when it stopped delivering for ``stall_s``; True while healthy."""
        now = self._clock()
        active = self._stream is not None and getattr(self._stream, "active", True)
        if active and now - self._last_block < stall_s:
            return True
        if now < self._retry_at:
            return False
        log.warning("microphone %s stopped delivering audio; reopening", self.device)
        self._close_stream()
        try:
            self._stream = self._open()
            self.reconnects += 1
            self._retry_delay = 0.5
            return True
        except ConnectionError as exc:
            log.warning("%s; next try in %.1f s", exc, self._retry_delay)
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, 8.0)
            return False

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as exc:  # a vanished device may refuse to close cleanly
                log.debug("closing microphone stream: %s", exc)
            self._stream = None

    def close(self) -> None:
        """Stop and release the device (idempotent)."""
        self._close_stream()

    def __enter__(self) -> "MicrophoneReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
