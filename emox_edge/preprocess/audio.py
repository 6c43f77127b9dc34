"""Nano-EmoX audio windows (spec §2.3): 8 windows of 2 s over the clip, jointly z-normalised.

The clip's 16 kHz mono audio is zero-padded at the end to at least 2 s. With ``n`` samples, window k
starts at second ``k * max(D - 2, 0) / 8`` (``D = n / 16000``; pytorchvideo's constant-clips sampler
with exact fractions), i.e. at sample ``floor(k * max(n - 32000, 0) / 8)`` in exact integer
arithmetic, and holds 32000 samples. HuBERT's feature extractor then normalised the 8 windows as one
sequence: ``(x - mean) / sqrt(var + 1e-7)`` over all of them together.
"""

from __future__ import annotations

import numpy as np

from emox_edge.errors import BadInputError

SAMPLE_RATE = 16000


def window_starts(n_samples: int, *, n_windows: int = 8, window: int = 2 * SAMPLE_RATE) -> list[int]:
    """Start sample of each window for a (padded) signal of ``n_samples``."""
    span = max(n_samples - window, 0)
    return [(k * span) // n_windows for k in range(n_windows)]


def audio_windows(
    audio: np.ndarray,
    *,
    n_windows: int = 8,
    window: int = 2 * SAMPLE_RATE,
    normalize: bool = True,
    eps: float = 1e-7,
) -> np.ndarray:
    """``[n_windows, window]`` float32 windows of 16 kHz mono ``audio`` (see the module doc).

    Raises:
        ValueError: ``audio`` is not 1-D.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise BadInputError(f"audio must be mono [S], got shape {audio.shape}")
    if audio.size < window:
        audio = np.concatenate([audio, np.zeros(window - audio.size, np.float32)])
    out = np.stack([audio[s : s + window] for s in window_starts(audio.size, n_windows=n_windows, window=window)])
    if normalize:
        out = joint_normalize(out, eps=eps)
    return out


def joint_normalize(windows: np.ndarray, *, eps: float = 1e-7) -> np.ndarray:
    """Zero mean, unit variance over every sample of every window together."""
    x = windows.astype(np.float64)
    return ((x - x.mean()) / np.sqrt(x.var() + eps)).astype(np.float32)
