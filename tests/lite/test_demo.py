"""The demo clip: made from shipped assets with runtime dependencies only."""

from __future__ import annotations

import av
import numpy as np

from emox_edge.demo import WIDTH, HEIGHT, ensure_demo_clip, load_demo_speech, load_face_image


def test_assets_load():
    face = load_face_image()
    assert face.shape == (256, 256, 3) and face.dtype == np.uint8
    speech, rate = load_demo_speech()
    assert rate == 16000 and 5.0 < len(speech) / rate < 12.0
    assert np.abs(speech).max() > 0.1


def test_demo_clip_has_video_and_audio(demo_clip_file):
    with av.open(str(demo_clip_file)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (WIDTH, HEIGHT)
        assert audio.codec_context.sample_rate == 16000
        frames = sum(1 for _ in container.decode(video=0))
    speech, rate = load_demo_speech()
    assert abs(frames / 15 - (len(speech) / rate + 1.0)) < 0.2


def test_demo_clip_is_reused(demo_clip_file):
    before = demo_clip_file.stat().st_mtime_ns
    assert ensure_demo_clip(demo_clip_file) == demo_clip_file
    assert demo_clip_file.stat().st_mtime_ns == before
