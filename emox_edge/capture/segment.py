"""Cutting a source's timeline into clips: fixed windows, voice activity, or the whole source.

A voice-activity detector is anything with ``speech_segments(audio, sr) -> list[(start_s, end_s)]``
(``emox_edge.vad.SileroVAD`` when the lite bundle's VAD is installed). ``Segmentation.spans`` cuts a
complete signal (files); ``LiveSegmenter`` cuts a growing one (camera, microphone, streams) and only
returns spans that are closed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)

MODES = ("fixed", "vad", "whole")
WHOLE_MAX_FRAMES = 96  # frames kept of a "whole" clip of a file (see Segmentation.max_frames)


class SpeechDetector(Protocol):
    def speech_segments(self, audio: np.ndarray, sr: int) -> list[tuple[float, float]]: ...


def vad_from_bundle(bundle) -> SpeechDetector | None:
    """The Silero VAD a bundle carries (manifest ``graphs.vad.file``, lite bundles), else None."""
    graphs = bundle.manifest.get("graphs", {}) if bundle is not None else {}
    entry = graphs.get("vad") if isinstance(graphs, dict) else None
    if not entry or "file" not in entry:
        return None
    from emox_edge.vad import SileroVAD

    return SileroVAD(bundle.path(entry["file"]), n_threads=1)


def default_vad() -> SpeechDetector:
    """The Silero VAD of a default lite bundle already built under ``emox_edge.home()`` (nothing is
    downloaded here).

    Raises:
        FileNotFoundError: no built lite bundle carries a VAD model (the message says how to get one).
    """
    from emox_edge.bundle.manifest import Bundle
    from emox_edge.errors import BundleError
    from emox_edge.home import home

    for manifest in sorted((home() / "bundles").glob("lite-*/bundle.json")):
        try:
            vad = vad_from_bundle(Bundle.open(manifest.parent))
        except (FileNotFoundError, BundleError):
            continue
        if vad is not None:
            return vad
    raise FileNotFoundError("voice-activity segmentation needs a Silero VAD: this bundle has none and no lite bundle "
                            "is built yet (run `emox-edge bundle build lite` once, or use fixed windows: --window)")


@dataclass(frozen=True)
class Segmentation:
    """How a source is cut into clips.

    Attributes:
        mode: "fixed" (windows of ``window_s``), "vad" (utterances found by ``vad``; fixed windows
            where it finds none) or "whole" (one clip per source, e.g. ``emox-edge analyze``).
        window_s: length of a fixed window in seconds.
        min_clip_s: shorter utterances are dropped; a trailing fixed window shorter than this is
            merged into the previous one.
        max_clip_s: longer utterances are split.
        pad_s: seconds added before and after each utterance.
        vad: the speech detector for mode "vad" (None: ``default_vad()`` on first use).
        max_frames: mode "whole" only: most frames a clip of a file keeps, evenly spread over it
            (a longer file keeps every 2nd, 4th, ... frame), so memory does not grow with the
            file's length. The model samples 8 frames and the face stage a few more; 96 keeps
            every frame of files up to 3.8 s at 25 fps. Fixed and VAD clips keep every frame.
    """

    mode: str = "fixed"
    window_s: float = 4.0
    min_clip_s: float = 0.5
    max_clip_s: float = 12.0
    pad_s: float = 0.2
    vad: SpeechDetector | None = field(default=None, compare=False)
    max_frames: int = WHOLE_MAX_FRAMES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadInputError(f"segmentation mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise BadInputError(f"window_s must be a positive number of seconds, got {self.window_s!r}")
        if self.max_clip_s < self.min_clip_s or self.min_clip_s < 0:
            raise BadInputError(f"need 0 <= min_clip_s <= max_clip_s, got {self.min_clip_s}, {self.max_clip_s}")
        if isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int) or self.max_frames < 2:
            raise BadInputError(f"max_frames must be an integer >= 2, got {self.max_frames!r}")

    def detector(self) -> SpeechDetector:
        if self.vad is None:
            object.__setattr__(self, "vad", default_vad())
        return self.vad

    def spans(self, audio: np.ndarray, sr: int, duration: float) -> list[tuple[float, float]]:
        """Spans of a complete source of ``duration`` seconds whose audio is ``audio`` (may be empty)."""
        return self.planner(audio, sr)(duration)

    def planner(self, audio: np.ndarray, sr: int) -> Callable[[float], list[tuple[float, float]]]:
        """``duration -> spans`` over ``audio`` for a source whose length is learnt while decoding.

        The speech detector runs once, on the first call that needs it. For a larger duration the
        spans that end at least ``min_clip_s`` before the smaller one are unchanged, so a decoder
        can hand out those clips before it knows where the media ends.
        """
        raw: list[tuple[float, float]] | None = None
        told = False

        def plan(duration: float) -> list[tuple[float, float]]:
            nonlocal raw, told
            duration = max(float(duration), audio.size / sr if sr else 0.0)
            if self.mode == "whole" or duration <= 0:
                return [(0.0, duration)]
            if self.mode == "vad" and audio.size:
                if raw is None:
                    raw = list(self.detector().speech_segments(audio, sr))
                spans = shape_spans(raw, duration=duration, pad_s=self.pad_s, min_s=self.min_clip_s,
                                    max_s=self.max_clip_s)
                if spans:
                    return spans
                if not told:
                    told = True
                    log.info("no speech found; cutting fixed windows of %.1f s instead", self.window_s)
            return fixed_windows(duration, self.window_s, self.min_clip_s)

        return plan


def fixed_windows(duration: float, window_s: float, min_s: float = 0.5) -> list[tuple[float, float]]:
    """Consecutive windows covering ``[0, duration)``; a short tail joins the previous window."""
    if duration <= 0:
        return []
    spans = []
    start = 0.0
    while start < duration - 1e-9:
        spans.append((start, min(start + window_s, duration)))
        start += window_s
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_s:
        tail = spans.pop()
        spans[-1] = (spans[-1][0], tail[1])
    return spans


def shape_spans(
    raw: Sequence[tuple[float, float]], *, duration: float, pad_s: float, min_s: float, max_s: float
) -> list[tuple[float, float]]:
    """Pad, merge overlapping, drop short and split long speech spans."""
    padded = sorted((max(0.0, s - pad_s), min(duration, e + pad_s)) for s, e in raw if e > s)
    merged: list[list[float]] = []
    for s, e in padded:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[tuple[float, float]] = []
    for s, e in merged:
        if e - s < min_s:
            continue
        pieces = max(1, math.ceil((e - s) / max_s))
        step = (e - s) / pieces
        out.extend((s + i * step, s + (i + 1) * step) for i in range(pieces))
    return out


class LiveSegmenter:
    """Closed spans of a growing timeline.

    ``poll(now, audio_since)`` is called with the current time (seconds since the source started)
    and a function returning the 16 kHz audio from a given second up to now (None without audio).
    It returns the spans that ended since the last call (oldest first).
    """

    HANGOVER_S = 0.5  # silence after speech before an utterance counts as finished
    SLACK_S = 1.0  # between a poll and the frames being taken (a loaded machine)

    def __init__(self, segmentation: Segmentation, *, sample_rate: int = 16000) -> None:
        self.segmentation = segmentation
        self.sample_rate = sample_rate
        self._cursor = 0.0  # everything before this is segmented

    @property
    def cursor(self) -> float:
        """Everything before this time is segmented: no span returned later starts before it."""
        return self._cursor

    def history_s(self) -> float:
        """Seconds of capture a live source must keep so that the newest span closed at a poll is
        still whole, however late the poll comes (the consumer was busy analysing).

        Fixed windows (``window_s``; "whole": ``max_clip_s``): the newest closed window ended less
        than one window before the poll, so it started less than two windows before it. Voice
        activity: an utterance of up to ``max_clip_s`` (+ padding) is returned once its hangover has
        passed, at the first poll after that; frames since ``cursor`` cover it whenever the polls
        come, and this bound (two utterances) only caps a consumer slower than ``max_clip_s``.
        """
        seg = self.segmentation
        window = seg.max_clip_s if seg.mode == "whole" else seg.window_s  # "vad" without audio: fixed windows
        need = 2 * window
        if seg.mode == "vad":
            need = max(need, 2 * (seg.max_clip_s + 2 * seg.pad_s + self.HANGOVER_S))
        return need + self.SLACK_S

    def poll(self, now: float, audio_since: Callable[[float], np.ndarray] | None) -> list[tuple[float, float]]:
        seg = self.segmentation
        if seg.mode == "vad" and audio_since is not None:
            return self._poll_vad(now, audio_since)
        window = seg.max_clip_s if seg.mode == "whole" else seg.window_s
        spans = []
        while now - self._cursor >= window:
            spans.append((self._cursor, self._cursor + window))
            self._cursor += window
        return spans

    def flush(self, now: float) -> list[tuple[float, float]]:
        """The open span at the end of a finite source (if long enough)."""
        if now - self._cursor >= max(self.segmentation.min_clip_s, 1e-3):
            span = (self._cursor, now)
            self._cursor = now
            return [span]
        return []

    def _poll_vad(self, now: float, audio_since: Callable[[float], np.ndarray]) -> list[tuple[float, float]]:
        seg = self.segmentation
        audio = audio_since(self._cursor)
        if audio.size < self.sample_rate // 2:
            return []
        base = self._cursor
        horizon = audio.size / self.sample_rate
        raw = seg.detector().speech_segments(audio, self.sample_rate)
        spans: list[tuple[float, float]] = []
        for s, e in raw:
            if e <= horizon - self.HANGOVER_S:  # closed utterance
                spans.extend(shape_spans([(s, e)], duration=horizon, pad_s=seg.pad_s, min_s=seg.min_clip_s, max_s=seg.max_clip_s))
                self._cursor = base + min(e + seg.pad_s, horizon)
            elif horizon - s >= seg.max_clip_s:  # still talking: cut at max length
                spans.append((s, s + seg.max_clip_s))
                self._cursor = base + s + seg.max_clip_s
                break
            else:
                break
        if not raw and horizon > seg.max_clip_s:
            self._cursor = base + horizon - 1.0  # nothing said: keep only a short tail
        return [(base + s, base + e) for s, e in spans]
