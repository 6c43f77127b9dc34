"""Cut a session's frames and audio into clips on the client's timestamps.

Fixed windows: ``[start, start + window_s)``, one after the other (the first may be longer or shorter:
``first_s``, see ``spread_first_window``). A window closes when every kind of media the session sends
(frames, audio) has passed its end, or when one kind is ``GRACE_S`` past it (the other stalled). VAD (``vad=True``): a simple energy rule on the audio; a clip ends in the
middle of the first pause (``PAUSE_S`` below ``SILENCE_RMS``) after at least ``MIN_UTTERANCE_S``, or
at ``window_s`` at the latest; a clip without a single voiced 20 ms frame is skipped and counted.
Sessions without audio get fixed windows either way.

Media older than the window being filled is dropped and counted (``late``); the buffer is bounded in
bytes, the oldest media going first (``dropped``). Frames stay JPEG bytes here: only the few a clip
analyses are decoded, by the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emox_edge.serve.protocol import KIND_JPEG, SAMPLE_RATE, Media, ProtocolError

GRACE_S = 0.5
AUDIO_JITTER_S = 0.05
VAD_FRAME_S = 0.02
PAUSE_S = 0.4
MIN_UTTERANCE_S = 1.0
SILENCE_RMS = 0.01  # -40 dBFS


@dataclass
class Window:
    """One clip's media: JPEG frames with their times, and audio laid out on ``[start, end)``."""

    start: float
    end: float
    frames: list[tuple[float, bytes]]
    audio: np.ndarray  # int16, round((end - start) * 16000) samples; gaps are silence

    @property
    def empty(self) -> bool:
        return not self.frames and not self.audio.any()


@dataclass
class Counters:
    frames_received: int = 0
    frames_late: int = 0
    frames_dropped: int = 0
    audio_received_s: float = 0.0
    audio_late_s: float = 0.0
    audio_dropped_s: float = 0.0
    clips_silent: int = 0


@dataclass
class Windower:
    """Turns a session's media into ``Window``s; see the module docstring for the rules."""

    window_s: float
    vad: bool = False
    max_buffer_bytes: int = 64 * 2**20
    counters: Counters = field(default_factory=Counters)
    first_s: float | None = None  # the first fixed window's length (None: window_s)

    def __post_init__(self) -> None:
        self.start: float | None = None
        self._frames: list[tuple[float, bytes]] = []
        self._audio: list[Media] = []
        self._bytes = 0
        self._last_frame: float | None = None
        self._last_audio_end: float | None = None
        self._marks: dict[int, float] = {}  # kind -> the latest media end seen

    def add(self, media: Media) -> list[Window]:
        """Take one frame or audio chunk; returns the windows it completed (usually none).

        Raises:
            ProtocolError: a frame not later than the previous frame, an audio chunk that starts
                before the previous one ended.
        """
        if media.kind == KIND_JPEG:
            if self._last_frame is not None and media.t <= self._last_frame:
                raise ProtocolError(f"frame time {media.t:.3f} s is not after the previous frame's "
                                    f"({self._last_frame:.3f} s); timestamps must increase")
            self._last_frame = media.t
            self.counters.frames_received += 1
        else:
            if self._last_audio_end is not None and media.t < self._last_audio_end - AUDIO_JITTER_S:
                raise ProtocolError(f"audio chunk at {media.t:.3f} s starts before the previous chunk ended "
                                    f"({self._last_audio_end:.3f} s); timestamps must increase")
            self._last_audio_end = media.end
            self.counters.audio_received_s += media.end - media.t
        self._marks[media.kind] = max(self._marks.get(media.kind, media.end), media.end)
        if self.start is not None and media.end <= self.start:
            self._count_lost(media, late=True)
            return []
        if media.kind == KIND_JPEG:
            self._frames.append((media.t, media.payload))
        else:
            self._audio.append(media)
        self._bytes += len(media.payload)
        self._bound()
        if self.start is None:
            self.start = media.t
        return self._close_ready()

    def flush(self) -> list[Window]:
        """Every buffered medium in windows (the last one shorter), for the end of the input."""
        out = []
        while self._frames or self._audio:
            self._skip_gap()
            assert self.start is not None
            data_end = max([t + 1e-3 for t, _ in self._frames] + [m.end for m in self._audio])
            end = self._vad_cut(final=True) if self._use_vad else None
            end = min(end or self.start + self._length, data_end)
            out += self._emit(max(end, self.start + 1e-3))
        return out

    @property
    def _length(self) -> float:
        return self.first_s or self.window_s

    @property
    def _use_vad(self) -> bool:
        return self.vad and any(kind != KIND_JPEG for kind in self._marks)

    def _count_lost(self, media: Media, *, late: bool) -> None:
        c = self.counters
        if media.kind == KIND_JPEG:
            if late:
                c.frames_late += 1
            else:
                c.frames_dropped += 1
        else:
            seconds = media.end - media.t
            if late:
                c.audio_late_s += seconds
            else:
                c.audio_dropped_s += seconds

    def _bound(self) -> None:
        while self._bytes > self.max_buffer_bytes:
            first_frame = self._frames[0][0] if self._frames else float("inf")
            first_audio = self._audio[0].t if self._audio else float("inf")
            if first_frame <= first_audio:
                t, payload = self._frames.pop(0)
                lost = Media(KIND_JPEG, t, payload)
            else:
                lost = self._audio.pop(0)
            self._bytes -= len(lost.payload)
            self._count_lost(lost, late=False)

    def _skip_gap(self) -> None:
        """After a pause in the input, start the next window at the next medium, not in the gap."""
        earliest = min([t for t, _ in self._frames] + [m.t for m in self._audio], default=None)
        if earliest is not None and (self.start is None or earliest >= self.start + self.window_s):
            self.start = earliest

    def _close_ready(self) -> list[Window]:
        out = []
        while self._frames or self._audio:
            self._skip_gap()
            end = self._vad_cut() if self._use_vad else self.start + self._length
            if end is None or not self._passed(end):
                break
            out += self._emit(end)
        return out

    def _passed(self, end: float) -> bool:
        marks = self._marks.values()
        return all(mark >= end for mark in marks) or max(marks) >= end + GRACE_S

    def _emit(self, end: float) -> list[Window]:
        start = self.start
        frames = [(t, p) for t, p in self._frames if t < end]
        self._frames = [(t, p) for t, p in self._frames if t >= end]
        audio = self._audio_span(start, end)
        kept = [m for m in self._audio if m.end > end]
        self._bytes -= sum(len(p) for _, p in frames) + sum(len(m.payload) for m in self._audio if m.end <= end)
        self._audio = kept
        self.start = end
        self.first_s = None
        window = Window(start, end, frames, audio)
        if self._use_vad and not _voiced(audio).any():
            self.counters.clips_silent += 1
            return []
        return [] if window.empty else [window]

    def _audio_span(self, start: float, end: float) -> np.ndarray:
        out = np.zeros(max(int(round((end - start) * SAMPLE_RATE)), 0), np.int16)
        for media in self._audio:
            samples = media.samples
            offset = int(round((media.t - start) * SAMPLE_RATE))
            lo, hi = max(offset, 0), min(offset + samples.size, out.size)
            if hi > lo:
                out[lo:hi] = samples[lo - offset:hi - offset]
        return out

    def _vad_cut(self, *, final: bool = False) -> float | None:
        """Where the clip starting at ``self.start`` ends under the energy rule (None: not known yet)."""
        start = self.start
        audio_end = self._marks.get(next(k for k in self._marks if k != KIND_JPEG), start)
        voiced = _voiced(self._audio_span(start, max(audio_end, start)))
        pause = int(round(PAUSE_S / VAD_FRAME_S))
        first = int(round(MIN_UTTERANCE_S / VAD_FRAME_S))
        if voiced.any():
            run = 0
            for i in range(int(np.argmax(voiced)), voiced.size):
                run = 0 if voiced[i] else run + 1
                if run >= pause and i + 1 - pause >= first:
                    return start + (i + 1 - pause // 2) * VAD_FRAME_S
        if audio_end >= start + self.window_s:
            return start + self.window_s
        return audio_end if final else None


def _voiced(audio: np.ndarray) -> np.ndarray:
    """Per 20 ms frame of int16 ``audio``: whether its RMS is above ``SILENCE_RMS``."""
    n = int(VAD_FRAME_S * SAMPLE_RATE)
    frames = audio[: audio.size // n * n].astype(np.float32).reshape(-1, n) / 32768.0
    return np.sqrt(np.mean(frames * frames, axis=1)) > SILENCE_RMS if frames.size else np.zeros(0, bool)


def spread_first_window(now: float, window_s: float, peers: list[tuple[float, float]], steps: int = 20) -> float:
    """The first window's length for a new fixed-window session, so that its clips close away from
    those of the sessions already running: each peer is ``(window_s, phase)``, the moment (on this
    server's clock, modulo its window) its clips close. Among lengths from half a window to one and a
    half, the one whose close is farthest from every peer with the same window length (the nearest to
    ``window_s`` on a tie). Clients that start together (a rig of cameras, a benchmark) would otherwise
    have all their clips close at the same instant and queue for the workers; independent clients are
    spread already and lose nothing. No peer with this window length: ``window_s``."""
    phases = [phase for w, phase in peers if abs(w - window_s) < 1e-6]
    if not phases:
        return window_s

    def distance(length: float) -> float:
        at = (now + length) % window_s
        return min(min(abs(at - p), window_s - abs(at - p)) for p in phases)

    lengths = [window_s * (0.5 + i / steps) for i in range(steps + 1)]
    return max(lengths, key=lambda length: (round(distance(length), 6), -abs(length - window_s)))
