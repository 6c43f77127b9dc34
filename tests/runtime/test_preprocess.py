"""Preprocessing parity with Nano-EmoX training (spec §2), against references written from the spec."""

from __future__ import annotations

import math
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from emox_edge.media import Clip
from emox_edge.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    PreprocessConfig,
    audio_windows,
    downmix,
    preprocess_clip,
    resample_sinc,
    sample_indices,
    select_frames,
)


# ----------------------------------------------------------------------------- references from the spec
def ref_indices(vlen: int) -> list[int]:
    if vlen < 8:
        return list(range(vlen)) + [vlen - 1] * (8 - vlen)
    return list(np.arange(0, vlen, vlen / 8).astype(int))


def ref_windows(audio: np.ndarray) -> np.ndarray:
    if audio.size < 32000:
        audio = np.concatenate([audio, np.zeros(32000 - audio.size)])
    duration = Fraction(audio.size, 16000)
    out = []
    for k in range(8):
        start = Fraction(k) * max(duration - 2, Fraction(0)) / 8
        s = math.floor(start * 16000)
        out.append(audio[s : s + 32000])
    x = np.stack(out).astype(np.float64)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def ref_resample(x: np.ndarray, orig_rate: int, new_rate: int, lpw: int = 6, rolloff: float = 0.99) -> np.ndarray:
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    base = min(orig, new) * rolloff
    n = np.arange(x.size)
    out = np.zeros(math.ceil(new * x.size / orig))
    for m in range(out.size):
        t = (n / orig - m / new) * base
        inside = np.abs(t) <= lpw
        tt = t[inside]
        sinc = np.where(tt == 0, 1.0, np.sin(np.pi * tt) / np.where(tt == 0, 1.0, np.pi * tt))
        out[m] = np.sum(x[inside] * sinc * np.cos(np.pi * tt / (2 * lpw)) ** 2) * base / orig
    return out


# ----------------------------------------------------------------------------- frames
@pytest.mark.parametrize("vlen", list(range(1, 40)) + [75, 100, 101, 257, 1000])
def test_frame_indices_match_the_spec(vlen):
    assert sample_indices(vlen) == ref_indices(vlen)


def test_frame_indices_misuse():
    assert sample_indices(0) == []
    with pytest.raises(ValueError, match="vlen"):
        sample_indices(-1)


def test_clip_normalisation_and_raw_frames():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    clip = Clip(frames=frames, frame_times=np.arange(5) / 25, audio=np.zeros(0, np.float32))
    inputs = preprocess_clip(clip)
    chosen = frames[ref_indices(5)]
    expected = ((chosen / 255.0 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)).transpose(0, 3, 1, 2)
    assert inputs.pixel_values.shape == (8, 3, 224, 224) and inputs.pixel_values.dtype == np.float32
    np.testing.assert_allclose(inputs.pixel_values, expected, atol=2e-6)
    np.testing.assert_array_equal(inputs.face_frames, chosen.transpose(0, 3, 1, 2).astype(np.float32))
    assert inputs.face_frames.max() > 200  # raw 0..255, not normalised


def test_frames_are_stretched_to_224_without_keeping_the_aspect():
    frame = np.zeros((100, 400, 3), np.uint8)
    frame[:, :200] = 255  # left half white
    out = select_frames(frame[None], None, n_frames=8, size=224)
    assert out.shape == (8, 224, 224, 3)
    assert out[0, :, :100].min() > 240 and out[0, :, 124:].max() < 15  # stretched, not cropped or padded


def test_decoder_resized_frames_are_used_when_present():
    frames = np.zeros((3, 50, 60, 3), np.uint8)
    model = np.full((3, 224, 224, 3), 7, np.uint8)
    clip = Clip(frames=frames, frame_times=np.arange(3.0), audio=np.zeros(0, np.float32), model_frames=model)
    assert np.all(preprocess_clip(clip).face_frames == 7)


def test_no_frames_gives_black_frames():
    clip = Clip(frames=np.zeros((0, 1, 1, 3), np.uint8), frame_times=np.zeros(0), audio=np.ones(16000, np.float32) * 0.1)
    inputs = preprocess_clip(clip)
    assert np.all(inputs.face_frames == 0)


def test_model_frames_shape_is_checked():
    with pytest.raises(ValueError, match="model_frames"):
        Clip(frames=np.zeros((2, 8, 8, 3), np.uint8), frame_times=np.zeros(2), audio=np.zeros(0, np.float32),
             model_frames=np.zeros((3, 224, 224, 3), np.uint8))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed (apt-get install -y ffmpeg)")
def test_decoded_frames_match_decords_ffmpeg_graph(media_dir):
    """decord = FFmpeg ``scale=224:224`` (bilinear in FFmpeg 4) -> rgb24; our decoder resizes the same way."""
    from emox_edge.capture import Segmentation, resolve_source

    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(media_dir / "face.mp4"), "-vf",
                          "scale=224:224:flags=bilinear,format=rgb24", "-f", "rawvideo", "-"],
                         check=True, capture_output=True).stdout
    reference = np.frombuffer(raw, np.uint8).reshape(-1, 224, 224, 3).astype(np.float32)
    with resolve_source(media_dir / "face.mp4", segmentation=Segmentation(mode="whole")) as source:
        (clip,) = list(source)
    assert clip.model_frames.shape == reference.shape
    diff = np.abs(clip.model_frames.astype(np.float32) - reference)
    assert diff.mean() < 1.0, diff.mean()


# ----------------------------------------------------------------------------- audio
@pytest.mark.parametrize("seconds", [0.0, 0.3, 1.99, 2.0, 2.5, 3.7, 7.123, 20.0, 33.3])
def test_audio_windows_match_the_spec(seconds):
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.1, int(round(seconds * 16000))).astype(np.float32)
    got = audio_windows(audio)
    assert got.shape == (8, 32000) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref_windows(audio.astype(np.float64)), atol=2e-5)


def test_short_audio_windows_are_identical_and_zero_padded():
    audio = np.ones(8000, np.float32)
    raw = audio_windows(audio, normalize=False)
    assert all(np.array_equal(raw[0], raw[k]) for k in range(8))
    assert raw[0, :8000].min() == 1.0 and raw[0, 8000:].max() == 0.0


def test_silent_audio_normalises_to_zeros():
    got = audio_windows(np.zeros(40000, np.float32))
    assert np.all(got == 0.0)


def test_audio_must_be_mono():
    with pytest.raises(ValueError, match="mono"):
        audio_windows(np.zeros((2, 100), np.float32))


def test_clip_audio_at_the_wrong_rate_is_refused():
    clip = Clip(frames=np.zeros((0, 1, 1, 3), np.uint8), frame_times=np.zeros(0), audio=np.zeros(100, np.float32),
                sample_rate=8000)
    with pytest.raises(ValueError, match="16000 Hz"):
        preprocess_clip(clip)


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000)])
def test_resampler_matches_the_windowed_sinc_definition(rates):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.3, 1500)
    got = resample_sinc(x, *rates)
    want = ref_resample(x, *rates)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_resampler_keeps_a_tone_and_removes_aliases():
    sr = 44100
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 12000 * t)  # 12 kHz is above the new Nyquist
    y = resample_sinc(x, sr, 16000)
    ty = np.arange(y.size) / 16000
    err = np.abs(y - np.sin(2 * np.pi * 1000 * ty))[500:-500]
    assert err.max() < 0.01


def test_resampler_misuse():
    with pytest.raises(ValueError, match="positive integers"):
        resample_sinc(np.zeros(10), 0, 16000)
    with pytest.raises(ValueError, match="mono"):
        resample_sinc(np.zeros((2, 10)), 44100, 16000)


def test_downmix_rule():
    left, right, third = np.full(4, 1.0), np.full(4, 0.5), np.full(4, -1.0)
    np.testing.assert_allclose(downmix(np.stack([left, right])), 0.75)
    np.testing.assert_allclose(downmix(np.stack([left, right, third])), 1.0)  # >2 channels: channel 0
    np.testing.assert_allclose(downmix(left[None]), 1.0)


def test_config_from_manifest_section():
    from emox_edge.tasks import packaged_spec

    config = PreprocessConfig.from_manifest(packaged_spec()["preprocess"])
    assert config == PreprocessConfig()
    with pytest.raises(ValueError, match="square"):
        PreprocessConfig.from_manifest({"frames": {"height": 224, "width": 256}})
