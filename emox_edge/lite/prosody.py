"""Prosodic features of speech in numpy (pitch, energy, speaking rate and their variability), and a
heuristic arousal/valence estimate from them.

No trained speech-emotion model ships in any registry package (see docs/lite-bundle.md), so the lite
bundle's voice channel is a documented heuristic: louder, faster, more melodic speech reads as higher
arousal; wide, lively pitch reads as more positive, flat slow speech as more negative. It cannot tell
happy from angry speech by itself; the face channel carries most of the valence.

Pitch: YIN (de Cheveigné & Kawahara, 2002) on 40 ms frames every 10 ms, 60-400 Hz. Energy: RMS in dB
re full scale. Speaking rate: peaks of the smoothed voiced energy envelope (syllable nuclei) per
second of active (non-silent) audio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError

FRAME_S = 0.040
HOP_S = 0.010
FMIN, FMAX = 60.0, 400.0
YIN_THRESHOLD = 0.25  # permissive: synthetic and noisy voices dip less than clean speech
YIN_BLOCK = 500  # hops (5 s of audio) per FFT block
SILENCE_DB = -50.0

# Reference values for the heuristic (typical conversational speech, dB re full scale at a normal
# recording level). Each feature becomes a z-like score (value - centre) / spread.
_REF = {
    "energy_db": (-26.0, 8.0),
    "pitch_st_std": (2.5, 1.5),
    "rate": (4.0, 1.5),
    "energy_db_std": (6.0, 3.0),
}


@dataclass(frozen=True)
class ProsodyFeatures:
    """Prosody of one stretch of audio.

    Attributes:
        duration_s: length of the audio.
        voiced_fraction: share of frames with a pitch.
        pitch_hz_median, pitch_st_std, pitch_st_range: median F0, its standard deviation and 5-95%
            range in semitones (0 when nothing is voiced).
        energy_db_mean, energy_db_std: RMS level of the non-silent frames in dBFS and its spread.
        speaking_rate: syllable-like energy peaks per second of active (non-silent) audio.
    """

    duration_s: float
    voiced_fraction: float
    pitch_hz_median: float
    pitch_st_std: float
    pitch_st_range: float
    energy_db_mean: float
    energy_db_std: float
    speaking_rate: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class VoiceAffect:
    """Heuristic arousal and valence in [-1, 1] with words for them, and how much speech backed them."""

    arousal: float
    valence: float
    arousal_label: str
    valence_label: str
    confidence: float

    def to_dict(self) -> dict[str, float | str]:
        return {"arousal": round(self.arousal, 3), "valence": round(self.valence, 3),
                "arousal_label": self.arousal_label, "valence_label": self.valence_label,
                "confidence": round(self.confidence, 3)}


def _frames(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """A strided view of ``audio`` (padded to one frame when shorter): frame ``i`` starts at ``i * hop``."""
    if len(audio) < size:
        audio = np.pad(audio, (0, size - len(audio)))
    count = 1 + (len(audio) - size) // hop
    return np.lib.stride_tricks.sliding_window_view(audio, size)[::hop][:count]


def _blocks(frames: np.ndarray):
    """``frames`` in blocks of ``YIN_BLOCK`` hops, each as float64 (a copy of the block only): whatever
    the audio's length, no whole-length frame matrix or float64 copy of it is made."""
    for a in range(0, len(frames), YIN_BLOCK):
        yield a, frames[a:a + YIN_BLOCK].astype(np.float64)


def yin_pitch(audio: np.ndarray, sample_rate: int, *, fmin: float = FMIN, fmax: float = FMAX,
              threshold: float = YIN_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """F0 per 10 ms hop in Hz (0 where unvoiced) and the YIN aperiodicity of each frame."""
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = int(sample_rate / fmin)
    width = int(FRAME_S * sample_rate)
    frames = _frames(np.asarray(audio), width + tau_max, int(HOP_S * sample_rate))
    n_fft = 1 << int(math.ceil(math.log2(2 * (width + tau_max))))
    f0 = np.zeros(len(frames))
    aperiodicity = np.ones(len(frames))
    for a, block in _blocks(frames):  # the FFT arrays are (hops x n_fft): memory stays flat
        for i, row in enumerate(_cmnd(block, width, tau_max, n_fft), start=a):
            f0[i], aperiodicity[i] = _yin_dip(row, tau_min, tau_max, threshold, sample_rate)
    return f0, aperiodicity


def _yin_dip(row: np.ndarray, tau_min: int, tau_max: int, threshold: float, sample_rate: int) -> tuple[float, float]:
    """(F0, aperiodicity) of one frame's CMND ``row``: the first dip under ``threshold``, refined by a
    parabola; (0, 1) when there is none (unvoiced)."""
    segment = row[tau_min : tau_max + 1]
    below = np.nonzero(segment < threshold)[0]
    if not below.size:
        return 0.0, 1.0
    t = below[0]
    while t + 1 < segment.size and segment[t + 1] < segment[t]:
        t += 1
    tau = t + tau_min
    if 1 <= tau < tau_max:
        a, b, c = row[tau - 1], row[tau], row[tau + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if abs(denom) > 1e-12 else 0.0
    else:
        shift = 0.0
    return sample_rate / (tau + shift), float(row[tau])


def _cmnd(frames: np.ndarray, width: int, tau_max: int, n_fft: int) -> np.ndarray:
    """YIN's cumulative mean normalised difference of each frame, for lags 0..tau_max."""
    spec_full = np.fft.rfft(frames, n_fft)
    spec_head = np.fft.rfft(frames[:, :width], n_fft)
    corr = np.fft.irfft(np.conj(spec_head) * spec_full, n_fft)[:, : tau_max + 1]  # r(tau)
    sq = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    taus = np.arange(tau_max + 1)
    energy_head = sq[:, width][:, None]
    energy_shift = sq[:, taus + width] - sq[:, taus]
    diff = np.maximum(energy_head + energy_shift - 2 * corr, 0.0)
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-12)
    return cmnd


def frame_energy_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level per 10 ms hop (40 ms frames) in dB re full scale."""
    frames = _frames(np.asarray(audio), int(FRAME_S * sample_rate), int(HOP_S * sample_rate))
    power = np.empty(len(frames))
    for a, block in _blocks(frames):
        power[a:a + len(block)] = np.mean(block**2, axis=1)
    return 10 * np.log10(power + 1e-12)


def _count_peaks(envelope: np.ndarray, mask: np.ndarray, *, min_gap: int, prominence_db: float) -> int:
    peaks = 0
    last = -min_gap
    for i in range(1, len(envelope) - 1):
        if not mask[i] or envelope[i] < envelope[i - 1] or envelope[i] < envelope[i + 1] or i - last < min_gap:
            continue
        left = envelope[max(0, i - min_gap * 2) : i].min(initial=envelope[i])
        right = envelope[i + 1 : i + 1 + min_gap * 2].min(initial=envelope[i])
        if envelope[i] - max(left, right) >= prominence_db:
            peaks += 1
            last = i
    return peaks


def prosody_features(audio: np.ndarray, sample_rate: int) -> ProsodyFeatures:
    """Prosodic features of mono float audio in [-1, 1].

    Raises:
        TypeError: ``audio`` is not a numpy array.
        ValueError: ``audio`` is not 1-D or ``sample_rate`` is not positive.
    """
    if not isinstance(audio, np.ndarray):
        raise InputTypeError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise BadInputError(f"audio must be mono (1-D), got shape {audio.shape}")
    if sample_rate <= 0:
        raise BadInputError(f"sample_rate must be positive, got {sample_rate}")
    duration = len(audio) / sample_rate
    if len(audio) < int(FRAME_S * sample_rate):
        return ProsodyFeatures(duration, 0.0, 0.0, 0.0, 0.0, SILENCE_DB, 0.0, 0.0)
    f0, _ = yin_pitch(audio, sample_rate)
    energy = frame_energy_db(audio, sample_rate)[: len(f0)]
    f0 = f0[: len(energy)]
    loud = energy > max(SILENCE_DB, energy.max() - 35.0)
    voiced = (f0 > 0) & loud
    if voiced.sum() >= 3:
        semitones = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
        pitch_median = float(np.median(f0[voiced]))
        st_std = float(np.std(semitones))
        st_range = float(np.percentile(semitones, 95) - np.percentile(semitones, 5))
    else:
        pitch_median = st_std = st_range = 0.0
    energy_active = energy[loud] if loud.any() else energy
    # at most len(energy) taps: "same" returns max(len(a), len(v)) values (audio of 40-100 ms has 1-4 hops)
    smooth = np.convolve(energy, np.ones(min(5, len(energy))) / 5, mode="same")
    peaks = _count_peaks(smooth, voiced | loud, min_gap=int(0.12 / HOP_S), prominence_db=3.0)
    active_seconds = max(loud.sum() * HOP_S, 1e-6)
    return ProsodyFeatures(
        duration_s=duration,
        voiced_fraction=float(voiced.mean()),
        pitch_hz_median=pitch_median,
        pitch_st_std=st_std,
        pitch_st_range=st_range,
        energy_db_mean=float(energy_active.mean()),
        energy_db_std=float(energy_active.std()),
        speaking_rate=float(peaks / active_seconds) if voiced.any() else 0.0,
    )


def _z(name: str, value: float) -> float:
    centre, spread = _REF[name]
    return float(np.clip((value - centre) / spread, -3.0, 3.0))


def estimate_affect(features: ProsodyFeatures) -> VoiceAffect:
    """Heuristic arousal/valence from prosody (see the module docstring; not a trained model).

    arousal = tanh(0.5 z(level) + 0.3 z(pitch spread) + 0.3 z(rate) + 0.2 z(level spread))
    valence = tanh(0.45 z(pitch spread) + 0.25 z(rate) - 0.3 max(z(level) - 1, 0))
    confidence grows with the voiced share of the audio (0 when nothing is voiced).
    """
    voiced = features.voiced_fraction
    if voiced <= 0.0 or features.pitch_hz_median <= 0.0:
        return VoiceAffect(0.0, 0.0, "no speech", "no speech", 0.0)
    z_level = _z("energy_db", features.energy_db_mean)
    z_pitch = _z("pitch_st_std", features.pitch_st_std)
    z_rate = _z("rate", features.speaking_rate)
    z_spread = _z("energy_db_std", features.energy_db_std)
    arousal = math.tanh(0.5 * z_level + 0.3 * z_pitch + 0.3 * z_rate + 0.2 * z_spread)
    valence = math.tanh(0.45 * z_pitch + 0.25 * z_rate - 0.3 * max(z_level - 1.0, 0.0))
    confidence = float(min(1.0, voiced / 0.4) * min(1.0, features.duration_s / 1.5))
    return VoiceAffect(arousal, valence, _level_word(arousal, "arousal"), _tone_word(valence), confidence)


def _level_word(value: float, what: str) -> str:
    return f"high {what}" if value > 0.33 else f"low {what}" if value < -0.33 else f"medium {what}"


def _tone_word(value: float) -> str:
    return "positive tone" if value > 0.33 else "negative tone" if value < -0.33 else "neutral tone"
