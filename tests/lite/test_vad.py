"""Silero VAD: espeak-ng speech vs silence, segments, streaming, misuse."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.vad import SileroVAD, VADOptions, resample_linear, segments_from_probs


@pytest.fixture(scope="module")
def vad(lite_bundle):
    with SileroVAD(lite_bundle.path(lite_bundle.section("graphs")["vad"]["file"])) as model:
        yield model


def _with_silence(speech: np.ndarray, pad_s: float = 1.5) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 0.002, int(pad_s * 16000)).astype(np.float32)
    return np.concatenate([noise, speech, noise])


def test_speech_and_silence_are_separated(vad, speech16k):
    probs = vad.speech_probs(_with_silence(speech16k))
    hop = vad.window / 16000
    lead = int(1.5 / hop)
    silence = np.concatenate([probs[: lead - 3], probs[-lead + 3:]])
    speech = probs[lead + 3 : -lead - 3]
    assert silence.max() < 0.3, silence.max()
    assert np.median(speech) > 0.6 and np.mean(speech > 0.5) > 0.6


def test_segments_cover_the_speech(vad, speech16k):
    audio = _with_silence(speech16k)
    duration = len(speech16k) / 16000
    segments = vad.speech_segments(audio, 16000)
    assert segments, "no speech found"
    assert all(0 <= s < e <= len(audio) / 16000 for s, e in segments)
    assert abs(segments[0][0] - 1.5) < 0.3 and abs(segments[-1][1] - (1.5 + duration)) < 0.4
    covered = sum(e - s for s, e in segments)
    assert covered > 0.7 * duration
    assert vad.speech_segments(np.zeros(32000, np.float32), 16000) == []


def test_other_sample_rates_are_resampled(vad, speech16k):
    audio = _with_silence(speech16k)
    at_44k = resample_linear(audio, 16000, 44100)
    a = vad.speech_segments(audio, 16000)
    b = vad.speech_segments(at_44k, 44100)
    assert len(a) == len(b) and abs(a[0][0] - b[0][0]) < 0.1


def test_streaming_matches_the_batch(vad, speech16k):
    audio = speech16k[: vad.window * 20]
    batch = vad.speech_probs(audio)
    vad.reset()
    live = [vad.step(audio[i : i + vad.window]) for i in range(0, len(audio), vad.window)]
    vad.reset()
    np.testing.assert_allclose(batch, live, atol=1e-6)


def test_hysteresis_and_minimum_durations():
    probs = np.array([0, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0, 0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0], np.float32)
    spans = segments_from_probs(probs, 0.1, VADOptions(min_speech_s=0.15, min_silence_s=0.3, pad_s=0.0), 1.8)
    assert spans == [(pytest.approx(0.1), pytest.approx(0.7))]  # the 0.2 dip is bridged, the lone blip dropped


def test_vad_misuse(vad, lite_bundle, tmp_path):
    with pytest.raises(ValueError, match="exactly 512"):
        vad.step(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="mono"):
        vad.speech_segments(np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(TypeError, match="numpy array"):
        vad.speech_segments([0.0] * 1600, 16000)
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        vad.speech_segments(np.zeros(1600, np.float32), 0)
    with pytest.raises(ValueError, match=r"one of \[8000, 16000\]"):
        SileroVAD(lite_bundle.path(lite_bundle.section("graphs")["vad"]["file"]), sample_rate=22050)
    with pytest.raises(FileNotFoundError):
        SileroVAD(tmp_path / "none.onnx")
    with pytest.raises(ValueError, match="threshold"):
        VADOptions(threshold=0)
    with pytest.raises(ValueError, match="min_speech_s"):
        VADOptions(min_speech_s=-1)
