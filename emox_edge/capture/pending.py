"""Decoded frames waiting for their clip while a file is decoded, with bounded memory.

``PendingFrames`` follows the current plan of spans (``Segmentation.planner``): it says which
decoded frames belong to a span not handed out yet, holds them, and hands each span's frames out
as arrays once no later frame can change the span. With ``max_frames`` (clips of a whole file) it
holds at most that many frames in two preallocated arrays, thinned in place to every 2nd, 4th, ...
frame as the file goes on (evenly spread; frames that would be dropped are never converted), so the
memory of a 60 s file is that of a 4 s one. Without it (fixed windows, VAD) every frame of a span is
kept, and stacking a span's frames releases each one as it is copied, so a clip is never held twice.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

Span = tuple[float, float]
Taken = tuple[np.ndarray, np.ndarray, np.ndarray]  # times [N], display frames [N,H,W,3], model frames


class PendingFrames:
    """The spans of the current plan not handed out yet, and their decoded frames."""

    def __init__(self, max_frames: int | None) -> None:
        self.max_frames = max_frames
        self.spans: list[Span] = []
        self.next = 0  # index in ``spans`` of the first span not handed out
        self.done_until = 0.0  # end of the last span handed out
        self._frames: list[tuple[float, np.ndarray | None, np.ndarray | None]] = []  # without max_frames
        self._times: list[float] = []  # with max_frames: the frames are in ``_slots``
        self._slots: tuple[np.ndarray, np.ndarray] | None = None
        self._stride, self._seen = 1, 0

    def set_plan(self, spans: list[Span]) -> None:
        """A new plan; the spans handed out so far are a prefix of it (see ``Segmentation.planner``)."""
        self.spans = spans
        self.next = next((i for i, s in enumerate(spans) if s[0] >= self.done_until - 1e-9), len(spans))

    def closed(self, t: float, margin: float) -> Iterator[Span]:
        """Spans that no later frame can change: they end at least ``margin`` before ``t``."""
        while self.next < len(self.spans) and self.spans[self.next][1] + margin <= t:
            self.next += 1
            yield self.spans[self.next - 1]

    def wants(self, t: float) -> bool:
        """Whether the frame at ``t`` belongs to a span not handed out yet and survives thinning."""
        j = self.next
        while j < len(self.spans) and self.spans[j][0] <= t and t >= self.spans[j][1]:
            j += 1
        if j >= len(self.spans) or not self.spans[j][0] <= t < self.spans[j][1]:
            return False
        if self.max_frames is None:
            return True
        self._seen += 1
        return (self._seen - 1) % self._stride == 0

    def add(self, t: float, display: np.ndarray, model: np.ndarray) -> None:
        if self.max_frames is None:
            self._frames.append((t, display, model))
            return
        if self._slots is None:  # np.empty: only the slots written become resident memory
            self._slots = (np.empty((self.max_frames + 1, *display.shape), display.dtype),
                           np.empty((self.max_frames + 1, *model.shape), model.dtype))
        n = len(self._times)
        self._slots[0][n], self._slots[1][n] = display, model
        self._times.append(t)
        if n + 1 > self.max_frames:  # keep every other frame, in place (slot i <- slot 2i)
            for slots in self._slots:
                for i in range(1, (n + 2) // 2):
                    slots[i] = slots[2 * i]
            self._times = self._times[::2]
            self._stride *= 2

    def take(self, span: Span) -> Taken | None:
        """The frames of ``span`` (None when it has none); frames before its end are let go."""
        start, end = span
        self.done_until = max(self.done_until, end)
        if self.max_frames is not None:
            keep = [i for i, t in enumerate(self._times) if start <= t < end]
            if not keep or self._slots is None:
                return None
            n = keep[-1] + 1  # whole-file clips: one span holds every frame, in order
            taken = (np.asarray(self._times[keep[0]:n], np.float64), self._slots[0][keep[0]:n],
                     self._slots[1][keep[0]:n])
            self._times, self._slots = [], None
            return taken
        chosen = [f for f in self._frames if start <= f[0] < end]
        self._frames = [f for f in self._frames if f[0] >= end]
        if not chosen:
            return None
        return np.asarray([f[0] for f in chosen], np.float64), _stack_releasing(chosen, 1), _stack_releasing(chosen, 2)


def _stack_releasing(bucket: list, field: int) -> np.ndarray:
    """``np.stack`` of ``bucket[i][field]`` that lets each frame go once copied."""
    first = bucket[0][field]
    out = np.empty((len(bucket), *first.shape), first.dtype)
    for i, item in enumerate(bucket):
        out[i] = item[field]
        bucket[i] = item[:field] + (None,) + item[field + 1:]
    return out
