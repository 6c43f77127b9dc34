"""Voiced spans -> Whisper windows: widen, merge, pack into <= 30 s, and map window times back.

The VAD's spans are widened by ``SPAN_PAD_S`` (its edges clip the first and last phonemes; Whisper
needs a little lead-in), merged where they overlap, and packed one after the other, ``GAP_S`` of
silence apart, into windows of at most 29.5 s of audio (a span longer than that is cut). A ``Piece``
remembers where each span sits in its window, so a timestamp Whisper gives in window time maps back
to the audio's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from emox_edge.speech import features

GAP_S = 0.1  # silence put between packed voiced spans
SPAN_PAD_S = 0.2  # voiced spans are widened by this much
MIN_SPAN_S = 0.1  # shorter spans are dropped


@dataclass(frozen=True)
class Piece:
    """A voiced span placed in a window: window time ``at`` corresponds to audio time ``start``."""

    at: float
    start: float
    end: float


def clean_spans(segments: Sequence[tuple[float, float]] | None, duration: float) -> list[tuple[float, float]]:
    """Sorted, widened, merged spans within [0, duration]; None means all of it."""
    if segments is None:
        return [(0.0, duration)] if duration >= MIN_SPAN_S else []
    spans: list[tuple[float, float]] = []
    for item in sorted((float(s), float(e)) for s, e in segments):
        if item[1] - item[0] < MIN_SPAN_S:
            continue
        start, end = max(0.0, item[0] - SPAN_PAD_S), min(duration, item[1] + SPAN_PAD_S)
        if end - start < MIN_SPAN_S:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def pack(spans: list[tuple[float, float]]) -> list[list[Piece]]:
    """Voiced spans -> windows of at most 30 s (spans longer than a window are cut)."""
    limit = features.CHUNK_S - 0.5
    windows: list[list[Piece]] = [[]]
    at = 0.0
    for start, end in spans:
        while end > start:
            room = limit - at
            if room < MIN_SPAN_S * 5:
                windows.append([])
                at, room = 0.0, limit
            take = min(end - start, room)
            windows[-1].append(Piece(at, start, start + take))
            at += take + GAP_S
            start += take
    return [w for w in windows if w]


def window_end(pieces: list[Piece]) -> float:
    """The window time where its last piece ends: the voiced length of the window, gaps included."""
    last = pieces[-1]
    return last.at + last.end - last.start


def to_audio_time(t: float, pieces: list[Piece]) -> float:
    """A window time -> the audio's time (inside the piece it falls in; gaps map to the piece's end)."""
    piece = pieces[0]
    for p in pieces:
        if p.at <= t:
            piece = p
    return min(piece.end, piece.start + max(0.0, t - piece.at))
