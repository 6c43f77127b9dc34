"""Encoding a live clip's frames while it is captured: the picks are evenly spread in time, known as soon
as their frame arrives, and the encoders' row cache gives exactly what running the clip would give.

The camera is the one fake (``conftest.PacedCapture``: a real ``cv2.VideoCapture`` over a generated video,
paced to 25 fps); the encoders are the tiny bundle's real ONNX graphs.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from emox_edge.capture import Segmentation, resolve_source
from emox_edge.preprocess import pick_instants, sample_indices, time_picks


def test_time_picks_take_the_first_frame_at_or_after_each_instant():
    steady = np.arange(120) / 30.0  # 4 s at a steady 30 fps: the frames the training sampler takes
    assert time_picks(steady, 0.0, 4.0) == sample_indices(120)
    jittered = np.array([0.0, 0.9, 1.1, 2.6, 3.9])
    assert time_picks(jittered, 0.0, 4.0, 4) == [0, 2, 3, 4]  # instants 0, 1, 2, 3
    assert time_picks(np.array([0.0, 0.2]), 0.0, 4.0, 4) == [0, 1, 1, 1]  # a stalled camera: the last frame
    assert time_picks(np.zeros(0), 0.0, 4.0) == []
    np.testing.assert_allclose(pick_instants(2.0, 4.0, 4), [2.0, 2.5, 3.0, 3.5])


def test_frames_handed_ahead_are_the_frames_the_closed_clip_samples(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.8), camera_factory=paced_capture)
    handed: list[np.ndarray] = []
    assert source.encode_ahead(lambda frames: handed.extend(f.copy() for f in frames), 4)
    clips = source.clips()
    clip = next(clips)
    source.close()
    assert clip.even_in_time
    picks = time_picks(clip.frame_times, clip.start, clip.end, 4)
    assert len(handed) == len(set(picks)) == 4 == source.stats()["frames_encoded_ahead"]
    for frame, index in zip(handed, picks):
        np.testing.assert_array_equal(frame, clip.frames[index])


def test_a_consumer_back_late_joins_the_clip_being_captured(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.3), camera_factory=paced_capture)
    handed: list[float] = []
    source.encode_ahead(lambda frames: handed.append(time.monotonic()), 2)
    clips = source.clips()
    first = next(clips)
    time.sleep(1.0)  # analysis slower than real time: three windows close meanwhile
    back = time.monotonic() - source.t0
    second = next(clips)
    source.close()
    assert source.stats()["skipped_clips"] >= 2
    assert second.start <= back < second.end  # the window open when the consumer came back
    assert second.start >= first.end + 0.6


def test_streaming_needs_fixed_windows_and_a_camera(paced_capture):
    vad = resolve_source(0, segmentation=Segmentation(mode="vad", vad=object()), camera_factory=paced_capture)
    assert not vad.encode_ahead(lambda frames: None, 8)
    vad.close()


def _suite(bundle_dir):
    from emox_edge.bundle import Bundle
    from emox_edge.encoders import EncoderSuite

    return EncoderSuite(Bundle.open(bundle_dir), device="cpu", precision="int8", n_threads=1)


def _analyzer(bundle_dir, **options):
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions

    return Analyzer.from_bundle(bundle_dir, AnalyzerOptions(device="cpu", n_threads=1, **options))


def test_rows_encoded_ahead_are_not_run_again_and_match_a_fresh_run(tiny_bundle):
    from emox_edge.media import Clip
    from emox_edge.preprocess import preprocess_clip

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 120, 160, 3), dtype=np.uint8)
    clip = Clip(frames=frames, frame_times=np.arange(30) / 25.0 + 0.013 * rng.random(30), audio=np.zeros(0, np.float32),
                start=0.0, end=1.2, even_in_time=True)
    inputs = preprocess_clip(clip)
    fresh, _ = _suite(tiny_bundle).run(
        {"pixel_values": inputs.pixel_values, "frames": inputs.face_frames, "waveforms": inputs.waveforms})

    with _analyzer(tiny_bundle, stages="perception") as analyzer:
        kind = analyzer.bundle_kind
        suite = kind.encoders
        assert kind.ahead_frames() == 8
        picked = [clip.frames[i] for i in time_picks(clip.frame_times, clip.start, clip.end)]
        assert sum(kind.encode_ahead([f]) for f in picked[:5]) == 10  # five frames, a visual and a facial row each
        got, _ = kind.encode(clip)
        # at close: the 3 frames left, twice, and one of the 8 identical silent audio windows
        assert suite.rows_run == 10 + 3 * 2 + 1
    for name in ("frame_embeds", "face_embeds", "audio_embeds", "fusion_embeds"):
        np.testing.assert_array_equal(got[name], fresh[name])


def test_the_live_loop_encodes_ahead_and_finds_the_rows(tiny_bundle, paced_capture, monkeypatch):
    with _analyzer(tiny_bundle) as analyzer:
        kind = analyzer.bundle_kind
        handed = []
        encode = kind.encode_ahead
        monkeypatch.setattr(kind, "encode_ahead", lambda frames: handed.append(len(frames)) or encode(frames))
        results = [r for _, r in analyzer.iter_clips(0, ["emotion"], window_s=1.0, max_clips=2,
                                                      source_options={"camera_factory": paced_capture})]
        hits = kind.encoders.rows.hits
    assert len(results) == 2 and all(r.error is None and r.tasks["emotion"].label for r in results)
    assert handed and set(handed) == {1}
    assert hits > 1  # silent audio finds one row in the second clip; the rest are frames encoded ahead


def test_silent_audio_windows_run_once_across_clips(tiny_bundle):
    suite = _suite(tiny_bundle)
    zeros = {"waveforms": np.zeros((8, 32000), np.float32)}
    audio = next(g for g in suite.graphs if g.name == "audio")
    feed = {io["name"]: zeros[io["name"]] for io in audio.inputs}
    first = suite._run_graph(audio, feed)
    again = suite._run_graph(audio, feed)
    assert suite.rows_run == 1
    for a, b in zip(first, again):
        assert a.shape[0] == 8
        np.testing.assert_array_equal(a, b)
