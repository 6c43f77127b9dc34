"""Whisper's input: the 80-bin log-mel spectrogram of 30 s of 16 kHz audio, in numpy.

The same computation as OpenAI Whisper's ``log_mel_spectrogram`` (and faster-whisper's
``FeatureExtractor``): 25 ms Hann windows every 10 ms (n_fft 400, hop 160, reflect-padded), power
spectrum, Slaney mel filter bank, log10 floored at 1e-10 and at (max - 8), then (x + 4) / 4. A window
shorter than 30 s is padded with zeros *before* the transform, as Whisper was trained.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
CHUNK_S = 30
CHUNK_SAMPLES = CHUNK_S * SAMPLE_RATE  # 480,000
N_FRAMES = CHUNK_SAMPLES // HOP  # 3,000
FRAME_S = HOP / SAMPLE_RATE  # 10 ms per mel frame; Whisper's timestamps step by 2 frames (20 ms)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80, *, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, shape [n_mels, n_fft // 2 + 1] (librosa's ``mel``)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / logstep

    mels = np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2)
    freqs = f_sp * mels
    log_part = mels >= min_log_mel
    freqs[log_part] = min_log_hz * np.exp(logstep * (mels[log_part] - min_log_mel))
    ramps = freqs[:, None] - fft_freqs[None, :]
    fdiff = np.diff(freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic, as torch.hann_window


def log_mel(audio: np.ndarray, *, n_mels: int = 80, n_frames: int = N_FRAMES) -> np.ndarray:
    """Log-mel features of at most 30 s of 16 kHz mono audio, shape [n_mels, n_frames], float32.

    ``n_frames`` (10 ms each) defaults to Whisper's full 30 s window; fewer frames give a shorter
    encoder context (the audio must fit in it).

    Raises:
        ValueError: ``audio`` is not 1-D or does not fit in ``n_frames`` (at most 30 s).
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {audio.shape}")
    if not 0 < n_frames <= N_FRAMES or n_frames % 2:
        raise ValueError(f"n_frames must be even and in (0, {N_FRAMES}], got {n_frames}")
    if len(audio) > n_frames * HOP:
        raise ValueError(f"{n_frames} frames hold at most {n_frames * HOP} samples ({n_frames * FRAME_S:g} s), "
                         f"got {len(audio)}")
    padded = np.zeros(n_frames * HOP, np.float32)
    padded[: len(audio)] = audio
    padded = np.pad(padded, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # [n_frames, 201]
    mel = mel_filters(n_mels) @ power.T.astype(np.float32)
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` at ``rate`` Hz -> float32 at 16 kHz.

    Downsampling first low-passes at 7.6 kHz (a Hamming-windowed sinc of ~2 ms), so what lies above
    Whisper's 8 kHz band does not fold back into it; then linear interpolation.
    """
    audio = np.asarray(audio, np.float32)
    if rate == SAMPLE_RATE or len(audio) == 0:
        return audio
    if rate > SAMPLE_RATE:
        half = int(rate * 0.001)
        n = np.arange(-half, half + 1)
        cutoff = 7600.0 / rate
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(len(n))
        audio = np.convolve(audio, (taps / taps.sum()).astype(np.float32), mode="same")
    n_out = int(round(len(audio) * SAMPLE_RATE / rate))
    positions = np.arange(n_out) * (rate / SAMPLE_RATE)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)
