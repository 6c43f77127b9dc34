"""``resolve_source`` over every source type this machine provides, and every misuse."""

from __future__ import annotations

import functools
import http.server
import threading
import wave

import numpy as np
import pytest

from emox_edge.capture import (
    ArraySource,
    DirectorySource,
    FileSource,
    ImageSource,
    LiveSegmenter,
    Segmentation,
    StreamSource,
    fixed_windows,
    resolve_source,
)
from emox_edge.capture.segment import shape_spans
from emox_edge.errors import MediaError
from emox_edge.media import Clip
from emox_edge.preprocess import preprocess_clip, resample_sinc

WHOLE = Segmentation(mode="whole")


def _clips(source, **kwargs):
    with resolve_source(source, **kwargs) as src:
        return list(src.clips())


def _wav(path):
    with wave.open(str(path), "rb") as handle:
        raw = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32767.0
        return raw.reshape(-1, handle.getnchannels()).T, handle.getframerate()


def test_video_file_with_audio(media_dir):
    (clip,) = _clips(media_dir / "clip.mp4", segmentation=WHOLE)
    assert clip.frames.shape == (75, 240, 320, 3) and clip.model_frames.shape == (75, 224, 224, 3)
    assert np.all(np.diff(clip.frame_times) > 0) and clip.frame_times[0] == pytest.approx(0.0, abs=1e-6)
    assert clip.sample_rate == 16000 and clip.audio.dtype == np.float32
    channels, rate = _wav(media_dir / "speech44s.wav")
    assert clip.audio.size / 16000 == pytest.approx(channels.shape[1] / rate, abs=0.06)  # AAC priming aside
    assert clip.end == pytest.approx(3.0, abs=0.05)
    assert np.abs(clip.audio).max() > 0.05  # speech survived AAC + resampling
    inputs = preprocess_clip(clip)
    assert inputs.pixel_values.shape == (8, 3, 224, 224) and inputs.waveforms.shape == (8, 32000)


def test_stereo_44k_audio_is_downmixed_and_resampled(media_dir):
    (clip,) = _clips(media_dir / "speech44s.wav")
    channels, rate = _wav(media_dir / "speech44s.wav")
    assert rate == 44100 and channels.shape[0] == 2
    expected = resample_sinc(channels.mean(axis=0), 44100, 16000)  # the mean of the two channels
    assert clip.frames.shape[0] == 0 and clip.audio.shape == expected.shape
    np.testing.assert_allclose(clip.audio, expected, atol=1e-4)


def test_fixed_windows_cut_a_file_into_clips(media_dir):
    clips = _clips(media_dir / "clip.mp4", segmentation=Segmentation(window_s=1.0))
    assert [round(c.start, 2) for c in clips] == [0.0, 1.0, 2.0]
    assert sum(c.frames.shape[0] for c in clips) == 75
    for clip in clips:
        assert np.all((clip.frame_times >= clip.start) & (clip.frame_times < clip.end))
    assert clips[-1].end == pytest.approx(3.0, abs=0.05)


def test_image_file(media_dir):
    (clip,) = _clips(media_dir / "face.png")
    assert clip.frames.shape == (1, 512, 512, 3) and clip.audio.size == 0
    assert isinstance(resolve_source(media_dir / "face.png"), ImageSource)


def test_directory_of_files(media_dir, tmp_path):
    import shutil

    for name in ("face.png", "short.mp4", "hello.wav"):
        shutil.copy(media_dir / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    source = resolve_source(tmp_path, segmentation=WHOLE)
    assert isinstance(source, DirectorySource)
    clips = list(source)
    assert [c.source.rsplit("/", 1)[-1] for c in clips] == ["face.png", "hello.wav", "short.mp4"]


def test_empty_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no media files"):
        resolve_source(tmp_path)


def test_http_stream(media_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.ts"
        source = resolve_source(url, segmentation=Segmentation(window_s=1.5))
        assert isinstance(source, StreamSource) and source.live
        with source:
            clips = list(source)
    finally:
        server.shutdown()
    assert len(clips) >= 2
    assert sum(c.frames.shape[0] for c in clips) == 75
    assert all(c.audio.size > 0 for c in clips)


def test_unreachable_stream_is_a_connection_error():
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        resolve_source("rtsp://127.0.0.1:9/none")


def test_arrays_in_memory():
    frames = np.zeros((10, 32, 48, 3), np.uint8)
    audio = np.zeros(8000, np.float32)
    clip = Clip(frames=frames, frame_times=np.arange(10) / 25, audio=audio)
    assert _clips(clip) == [clip]
    assert len(_clips([clip, clip])) == 2
    (image,) = _clips(frames[0])
    assert image.frames.shape == (1, 32, 48, 3)
    (video,) = _clips(frames, fps=10)
    assert video.frame_times[-1] == pytest.approx(0.9)
    (sound,) = _clips(np.zeros(44100, np.float32), sample_rate=44100)
    assert sound.audio.size == 16000 and sound.frames.shape[0] == 0
    (both,) = _clips((frames, audio))
    assert both.frames.shape[0] == 10 and both.audio.size == 8000
    assert isinstance(resolve_source(clip), ArraySource)


@pytest.mark.parametrize("bad", [3.5, {"a": 1}, True, b"bytes", object()])
def test_unsupported_sources_list_the_accepted_forms(bad):
    with pytest.raises(TypeError, match="camera index .* stream URL .* Clip"):
        resolve_source(bad)


def test_no_source_without_mic_is_a_type_error():
    with pytest.raises(TypeError, match="no source given"):
        resolve_source(None)


def test_bad_arrays_are_type_errors():
    with pytest.raises(TypeError, match="uint8"):
        resolve_source(np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(TypeError, match="float samples"):
        resolve_source(np.zeros(100, np.int16))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        resolve_source(tmp_path / "missing.mp4")


def test_corrupt_container(media_dir):
    with pytest.raises(ValueError, match="corrupt.mp4"):
        resolve_source(media_dir / "corrupt.mp4")


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        _clips(tmp_path / "broken.png")


def test_zero_length_audio(media_dir):
    # a WAV with no samples holds nothing to analyse: bad input, never an empty clip (issue 17)
    with pytest.raises(MediaError, match="empty.wav: no decodable video frame and no audio sample"):
        _clips(media_dir / "empty.wav")
    clip = Clip(frames=np.zeros((0, 1, 1, 3), np.uint8), frame_times=np.zeros(0), audio=np.zeros(0, np.float32))
    inputs = preprocess_clip(clip)  # an empty clip made in memory still preprocesses to silence
    assert np.all(inputs.waveforms == 0.0)


def test_silent_audio(media_dir):
    (clip,) = _clips(media_dir / "silence.wav", segmentation=WHOLE)
    assert clip.audio.size == 32000 and not np.any(clip.audio)


def test_clip_shorter_than_two_seconds(media_dir):
    (clip,) = _clips(media_dir / "short.mp4", segmentation=WHOLE)
    assert clip.end < 2.0 and clip.frames.shape[0] == 25
    windows = preprocess_clip(clip).waveforms
    assert all(np.array_equal(windows[0], windows[k]) for k in range(8))


def test_camera_that_does_not_exist():
    with pytest.raises(ConnectionError, match="camera 97"):
        resolve_source(97)
    with pytest.raises(ConnectionError, match="camera 98"):
        resolve_source("98")


def test_mic_with_a_file_is_refused(media_dir):
    with pytest.raises(ValueError, match="microphone"):
        resolve_source(media_dir / "clip.mp4", mic=True)


def test_file_source_type(media_dir):
    assert isinstance(resolve_source(media_dir / "clip.mp4"), FileSource)


# ----------------------------------------------------------------------------- segmentation
class EnergyVAD:
    """A speech detector by frame energy (the VAD interface; the real one is emox_edge.vad.SileroVAD)."""

    def speech_segments(self, audio, sr):
        hop = sr // 50
        energy = np.array([np.abs(audio[i : i + hop]).mean() for i in range(0, audio.size - hop + 1, hop)])
        active = energy > 0.01
        spans, start = [], None
        for i, on in enumerate(list(active) + [False]):
            if on and start is None:
                start = i
            if not on and start is not None:
                spans.append((start * hop / sr, i * hop / sr))
                start = None
        return spans


def test_vad_segmentation_finds_the_utterance(media_dir):
    clips = _clips(media_dir / "speech16.wav", segmentation=Segmentation(mode="vad", vad=EnergyVAD(), pad_s=0.1))
    assert 1 <= len(clips) <= 3
    assert clips[0].start < 0.5 and clips[-1].end < 3.5  # the padded silence at the end is no utterance


def test_vad_falls_back_to_fixed_windows_on_silence(media_dir):
    clips = _clips(media_dir / "silence.wav", segmentation=Segmentation(mode="vad", vad=EnergyVAD(), window_s=1.0))
    assert [(c.start, c.end) for c in clips] == [(0.0, 1.0), (1.0, 2.0)]


def test_segmentation_misuse():
    with pytest.raises(ValueError, match="fixed, vad, whole"):
        Segmentation(mode="sentences")
    with pytest.raises(ValueError, match="window_s"):
        Segmentation(window_s=0)


def test_fixed_windows_and_span_shaping():
    assert fixed_windows(10.0, 4.0) == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    assert fixed_windows(8.3, 4.0) == [(0.0, 4.0), (4.0, 8.3)]
    assert shape_spans([(1.0, 1.1), (2.0, 9.0)], duration=10, pad_s=0.0, min_s=0.5, max_s=4.0) == [(2.0, 5.5), (5.5, 9.0)]


def test_live_segmenter_fixed_and_vad():
    fixed = LiveSegmenter(Segmentation(window_s=2.0))
    assert fixed.poll(1.0, None) == [] and fixed.poll(4.5, None) == [(0.0, 2.0), (2.0, 4.0)]
    assert fixed.flush(4.5) == [(4.0, 4.5)]  # the open tail of a finite source (>= min_clip_s)
    assert LiveSegmenter(Segmentation()).flush(0.2) == []  # shorter than min_clip_s
    sr = 16000
    speech = np.zeros(sr * 4, np.float32)
    speech[sr // 2 : 2 * sr] = 0.3
    vad = LiveSegmenter(Segmentation(mode="vad", vad=EnergyVAD(), pad_s=0.0))
    assert vad.poll(1.0, lambda s: speech[int(s * sr) : sr]) == []  # still talking
    spans = vad.poll(4.0, lambda s: speech[int(s * sr) :])
    assert len(spans) == 1 and spans[0][0] == pytest.approx(0.5, abs=0.05) and spans[0][1] == pytest.approx(2.0, abs=0.05)
