"""Prosody features and the heuristic voice affect."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.lite.prosody import estimate_affect, prosody_features, yin_pitch


def test_yin_finds_the_pitch_of_a_tone():
    t = np.arange(16000) / 16000
    for f0 in (110.0, 200.0, 310.0):
        pitch, _ = yin_pitch((0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000)
        voiced = pitch[pitch > 0]
        assert len(voiced) > 0.9 * len(pitch)
        assert abs(np.median(voiced) - f0) < 0.02 * f0


def test_yin_in_blocks_equals_yin_at_once(monkeypatch):
    """Long audio is processed in blocks of hops (flat memory); the pitch track is the same."""
    import emox_edge.lite.prosody as prosody

    t = np.arange(16000 * 7) / 16000
    tone = (0.3 * np.sin(2 * np.pi * (150 + 30 * np.sin(t)) * t)).astype(np.float32)
    blocked = yin_pitch(tone, 16000)
    assert len(blocked[0]) > prosody.YIN_BLOCK > 0  # more than one block
    monkeypatch.setattr(prosody, "YIN_BLOCK", 10**9)
    whole = yin_pitch(tone, 16000)
    np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-9)
    np.testing.assert_allclose(blocked[1], whole[1], rtol=1e-9)


def test_energy_in_blocks_equals_energy_at_once(monkeypatch):
    """The energy track is computed in blocks of hops too (no whole-length frame matrix); same values."""
    import emox_edge.lite.prosody as prosody

    noise = np.random.default_rng(3).normal(0, 0.1, 16000 * 7).astype(np.float32)
    blocked = prosody.frame_energy_db(noise, 16000)
    assert len(blocked) > prosody.YIN_BLOCK
    monkeypatch.setattr(prosody, "YIN_BLOCK", 10**9)
    np.testing.assert_array_equal(blocked, prosody.frame_energy_db(noise, 16000))


@pytest.mark.parametrize("n", [640, 906, 1000, 1300])
def test_audio_of_a_few_hops_gives_features(n):
    """40-80 ms of speech (a VAD span's tail) has fewer hops than the 5-tap smoothing: no IndexError."""
    t = np.arange(n) / 16000
    features = prosody_features((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    assert features.duration_s == n / 16000 and features.speaking_rate >= 0


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    assert prosody_features(noise, 16000).voiced_fraction < 0.1
    silent = prosody_features(np.zeros(16000, np.float32), 16000)
    assert estimate_affect(silent).arousal_label == "no speech"
    assert estimate_affect(silent).confidence == 0.0


def test_arousal_follows_loudness_rate_and_pitch(say):
    text = "I cannot believe we finally won the championship, this is the best day of my life."
    calm = say(text, "-s", "110", "-p", "20", "-a", "40")
    lively = say(text, "-s", "240", "-p", "80", "-a", "200")
    f_calm, f_lively = prosody_features(calm, 16000), prosody_features(lively, 16000)
    assert f_lively.energy_db_mean > f_calm.energy_db_mean + 6
    assert f_lively.pitch_hz_median > f_calm.pitch_hz_median * 1.3
    assert f_lively.duration_s < f_calm.duration_s
    a_calm, a_lively = estimate_affect(f_calm), estimate_affect(f_lively)
    assert a_lively.arousal > a_calm.arousal + 0.5
    assert a_calm.arousal_label == "low arousal" and a_lively.arousal_label == "high arousal"
    assert -1 <= a_calm.valence <= 1 and a_calm.confidence > 0.5


def test_prosody_misuse():
    with pytest.raises(TypeError, match="numpy array"):
        prosody_features([0.0] * 100, 16000)
    with pytest.raises(ValueError, match="mono"):
        prosody_features(np.zeros((2, 100), np.float32), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        prosody_features(np.zeros(100, np.float32), 0)
    short = prosody_features(np.zeros(10, np.float32), 16000)
    assert short.voiced_fraction == 0.0
