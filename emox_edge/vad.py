"""Voice activity detection with Silero VAD (MIT; ``silero_vad.onnx`` from ``silero-vad==6.2.3``).

The graph takes 512 new samples at 16 kHz (256 at 8 kHz) preceded by the last 64 (32) samples of the
previous window, plus a recurrent state [2, 1, 128], and returns the probability that the window
holds speech. ``speech_probs`` runs it over a whole signal; ``speech_segments`` turns the
probabilities into (start_s, end_s) spans with hysteresis and minimum durations; ``step`` feeds a
live stream one window at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError

WINDOW = {16000: 512, 8000: 256}
CONTEXT = {16000: 64, 8000: 32}


@dataclass(frozen=True)
class VADOptions:
    """How probabilities become speech segments.

    Attributes:
        threshold: a window with probability >= threshold starts (or continues) speech.
        neg_threshold: speech ends after probabilities stay below this (default threshold - 0.15).
        min_speech_s: shorter speech spans are dropped.
        min_silence_s: silences shorter than this do not split a segment.
        pad_s: each segment is widened by this much on both sides (clipped to the signal).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_s: float = 0.25
    min_silence_s: float = 0.3
    pad_s: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise BadInputError(f"threshold must be in (0, 1), got {self.threshold}")
        for name in ("min_speech_s", "min_silence_s", "pad_s"):
            if getattr(self, name) < 0:
                raise BadInputError(f"{name} must be >= 0, got {getattr(self, name)}")


class SileroVAD:
    """Silero VAD on ONNX Runtime.

    Raises (on construction):
        FileNotFoundError: ``model_path`` does not exist.
    """

    def __init__(self, model_path: str | os.PathLike, *, sample_rate: int = 16000, n_threads: int | None = 1,
                 providers=None) -> None:
        from emox_edge.onnx_session import create_session

        if sample_rate not in WINDOW:
            raise BadInputError(f"sample_rate must be one of {sorted(WINDOW)}, got {sample_rate}")
        self.sample_rate = sample_rate
        self._session = create_session(model_path, providers=providers, n_threads=n_threads)
        self.reset()

    @property
    def window(self) -> int:
        """Samples per probability (32 ms)."""
        return WINDOW[self.sample_rate]

    def reset(self) -> None:
        """Forget the stream: clear the recurrent state and the context samples."""
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT[self.sample_rate], np.float32)

    def step(self, window: np.ndarray) -> float:
        """Probability of speech in the next ``self.window`` samples of a live stream."""
        window = np.asarray(window, np.float32).reshape(-1)
        if window.shape[0] != self.window:
            raise BadInputError(f"step() takes exactly {self.window} samples at {self.sample_rate} Hz, got {window.shape[0]}")
        if self._session is None:
            raise BadInputError("SileroVAD is closed")
        frame = np.concatenate([self._context, window])[None]
        out, self._state = self._session.run(
            None, {"input": frame, "state": self._state, "sr": np.array(self.sample_rate, np.int64)})
        self._context = window[-CONTEXT[self.sample_rate]:]
        return float(out[0, 0])

    def speech_probs(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each consecutive window of ``audio`` (mono float at ``sample_rate``).

        The last partial window is zero-padded. The stream state is reset before and after.
        """
        audio = _mono_float(audio)
        n = self.window
        padded = np.pad(audio, (0, (-len(audio)) % n))
        self.reset()
        try:
            return np.array([self.step(padded[i : i + n]) for i in range(0, len(padded), n)], np.float32)
        finally:
            self.reset()

    def speech_segments(self, audio: np.ndarray, sample_rate: int, options: VADOptions | None = None
                        ) -> list[tuple[float, float]]:
        """Speech spans of ``audio`` in seconds, as (start_s, end_s) pairs in time order.

        Audio at another rate than the model's is resampled linearly first.

        Raises:
            ValueError: ``sample_rate`` is not positive or ``audio`` is not 1-D.
        """
        if sample_rate <= 0:
            raise BadInputError(f"sample_rate must be positive, got {sample_rate}")
        audio = _mono_float(audio)
        duration = len(audio) / sample_rate
        if sample_rate != self.sample_rate:
            audio = resample_linear(audio, sample_rate, self.sample_rate)
        probs = self.speech_probs(audio)
        return segments_from_probs(probs, self.window / self.sample_rate, options or VADOptions(), duration)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "SileroVAD":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def segments_from_probs(probs: np.ndarray, hop_s: float, options: VADOptions, duration: float
                        ) -> list[tuple[float, float]]:
    """Hysteresis over per-window probabilities -> (start_s, end_s) segments."""
    neg = options.neg_threshold if options.neg_threshold is not None else max(options.threshold - 0.15, 0.01)
    spans: list[list[float]] = []
    start: float | None = None
    silence_since: float | None = None
    for i, p in enumerate(np.asarray(probs)):
        t = i * hop_s
        if start is None:
            if p >= options.threshold:
                start, silence_since = t, None
            continue
        if p >= neg:
            silence_since = None
            continue
        if silence_since is None:
            silence_since = t
        if t + hop_s - silence_since >= options.min_silence_s:
            spans.append([start, silence_since])
            start, silence_since = None, None
    if start is not None:
        spans.append([start, silence_since if silence_since is not None else len(probs) * hop_s])
    out = []
    for s, e in spans:
        if e - s < options.min_speech_s:
            continue
        out.append((max(0.0, s - options.pad_s), min(duration, e + options.pad_s)))
    merged: list[tuple[float, float]] = []
    for s, e in out:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def resample_linear(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for VAD and prosody; not for listening)."""
    if src_rate == dst_rate or len(audio) == 0:
        return np.asarray(audio, np.float32)
    n_out = int(round(len(audio) * dst_rate / src_rate))
    positions = np.arange(n_out) * (src_rate / dst_rate)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)


def _mono_float(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise InputTypeError(f"audio must be a numpy array of float samples, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise BadInputError(f"audio must be mono (1-D), got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)
