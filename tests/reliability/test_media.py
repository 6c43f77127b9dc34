"""Damaged, mislabelled and empty media: skipped packets are counted, clips come from decoded media,
nothing decodable is bad input, and one bad file of a directory never stops the others (issue 17)."""

from __future__ import annotations

import logging
import shutil
import struct
import sys

import numpy as np
import pytest

from emox_edge.capture import DirectorySource, Segmentation, resolve_source
from emox_edge.capture.decode import probe
from emox_edge.errors import BadInputError, MediaError

from .conftest import make_video, tone, write_wav

WHOLE = Segmentation(mode="whole")


def _clips(source, **kwargs):
    with resolve_source(source, **kwargs) as src:
        return list(src.clips()), src.stats()


def _damage_one_audio_packet(path, *, at_s: float = 6.0) -> None:
    """Overwrite 64 bytes of the audio packet playing at ``at_s`` with garbage that AAC cannot decode."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packet = next(p for p in container.demux(stream) if p.pts is not None and float(p.pts * p.time_base) >= at_s)
        pos, size = packet.pos, packet.size
    assert size >= 64
    with open(path, "r+b") as handle:
        handle.seek(pos)
        handle.write(b"\xff\xf1" + bytes(range(7, 69)))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    path = make_video(tmp_path_factory.mktemp("damaged") / "talk.mp4", 12.0)
    _damage_one_audio_packet(path)
    return path


def test_an_undecodable_audio_packet_is_skipped_and_counted(damaged, caplog):
    with caplog.at_level(logging.WARNING, logger="emox_edge.capture"):
        clips, stats = _clips(damaged, segmentation=Segmentation(window_s=4.0))
    assert [(c.start, round(c.end, 1)) for c in clips] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    assert sum(c.frames.shape[0] for c in clips) == 300  # every frame
    assert stats["audio_packets_skipped"] >= 1 and 0 < stats["audio_seconds_lost"] < 0.2
    audio = np.concatenate([c.audio for c in clips])
    assert abs(audio.size - 12 * 16000) < 1024  # the lost packet became silence: sound stays in sync
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "talk.mp4" in warnings[0].getMessage()
    assert "undecodable audio packet" in warnings[0].getMessage()


def _claim_two_hours(path) -> None:
    """Patch the Matroska segment's Duration element (ID 0x4489, an 8-byte float in ms) to 7,200 s."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "the muxer writes a Duration element"
    data[at + 3:at + 11] = struct.pack(">d", 7200e3)
    path.write_bytes(bytes(data))


def test_clips_come_from_decoded_media_not_the_claimed_duration(tmp_path):
    liar = make_video(tmp_path / "liar.mkv", 2.0)
    _claim_two_hours(liar)
    assert probe(liar).duration == 7200.0 and liar.stat().st_size < 100_000  # 2 h claimed by a small file
    clips, _ = _clips(liar, segmentation=Segmentation(window_s=1.0))
    assert [c.start for c in clips] == [0.0, 1.0] and clips[-1].end < 2.2
    assert sum(c.frames.shape[0] for c in clips) == 50
    (whole,), _ = _clips(liar, segmentation=WHOLE)
    assert whole.end < 2.2


def test_nothing_decodable_is_bad_input(media, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("Dear diary, today I was happy.\n" * 20)
    with pytest.raises(MediaError, match=r"notes.txt: a text file, not media.*expected a video or audio file"):
        _clips(text)
    with pytest.raises(MediaError, match=r"empty.wav: no decodable video frame and no audio sample"):
        _clips(media / "empty.wav")
    renamed = tmp_path / "notes.mp4"
    shutil.copy(text, renamed)
    with pytest.raises(MediaError, match="notes.mp4"):
        _clips(renamed)


def test_a_directory_goes_on_after_a_bad_file(media, tmp_path, caplog):
    shutil.copy(media / "tone.wav", tmp_path / "a_good.wav")
    shutil.copy(media / "garbage.mp4", tmp_path / "b_corrupt.mp4")
    shutil.copy(media / "empty.wav", tmp_path / "c_empty.wav")
    shutil.copy(media / "short.mp4", tmp_path / "d_good.mp4")
    (tmp_path / "e_text.png").write_text("not a picture")
    source = resolve_source(tmp_path, segmentation=WHOLE)
    assert isinstance(source, DirectorySource)
    with caplog.at_level(logging.WARNING):
        clips = list(source)
    names = [(c.source.rsplit("/", 1)[-1], c.error is None) for c in clips]
    assert names == [("a_good.wav", True), ("b_corrupt.mp4", False), ("c_empty.wav", False),
                     ("d_good.mp4", True), ("e_text.png", False)]
    assert "corrupt or unsupported media file" in clips[1].error and "no audio sample" in clips[2].error
    assert clips[3].frames.shape[0] == 50
    assert source.stats()["files_failed"] == 3 and source.stats()["files"] == 5
    assert caplog.text.count("skipped") == 3


def test_a_file_name_too_long_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match=r"source path too long: .*\(304 characters in one name"):
        resolve_source(tmp_path / ("x" * 300 + ".mp4"))


def test_whole_clips_keep_a_bounded_number_of_evenly_spread_frames(tmp_path):
    path = make_video(tmp_path / "long.mp4", 30.0, size=(128, 96))
    (clip,), _ = _clips(path, segmentation=WHOLE)
    assert 48 <= clip.frames.shape[0] <= 96 and clip.model_frames.shape[0] == clip.frames.shape[0]
    steps = np.diff(clip.frame_times)
    assert np.allclose(steps, steps[0]) and clip.frame_times[0] == 0.0 and clip.frame_times[-1] > 29.0
    assert clip.end == pytest.approx(30.0, abs=0.05) and clip.audio.size == pytest.approx(30 * 16000, abs=1024)
    (short,), _ = _clips(path, segmentation=Segmentation(mode="whole", max_frames=1000))
    assert short.frames.shape[0] == 750  # the cap is an option


def test_audio_only_and_silent_files_still_work(media, tmp_path):
    (clip,), _ = _clips(media / "tone.wav", segmentation=WHOLE)
    assert clip.audio.size == 32000 and clip.frames.shape[0] == 0
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (clip,), _ = _clips(silent, segmentation=WHOLE)
    assert clip.audio.size == 16000 and not clip.audio.any()  # silence is content, unlike no samples
    video_only = make_video(tmp_path / "mute.mp4", 1.0, audio_rate=None)
    (clip,), _ = _clips(video_only, segmentation=WHOLE)
    assert clip.frames.shape[0] == 25 and clip.audio.size == 0 and clip.end == pytest.approx(1.0)
    assert tone(1.0).dtype == np.float32


_PEAK = """
import json, sys
from emox_edge.capture import Segmentation, resolve_source
with resolve_source(sys.argv[1], segmentation=Segmentation(mode="whole")) as source:
    (clip,) = list(source.clips())
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"frames": int(clip.frames.shape[0]), "peak": peak}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status (Linux)")
def test_a_long_file_read_whole_takes_the_memory_of_a_short_one(tmp_path):
    import json
    import os
    import subprocess

    peaks = {}
    for seconds in (4, 40):
        path = make_video(tmp_path / f"v{seconds}.mp4", seconds, size=(480, 270))
        out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert out.returncode == 0, out.stderr
        peaks[seconds] = json.loads(out.stdout)
    # VmHWM: this process's peak (ru_maxrss would carry the parent's over fork + exec)
    assert peaks[40]["peak"] <= 1.10 * peaks[4]["peak"], peaks  # before: 10x the 4 s file's peak at 60 s


def test_streaming_resampler_equals_resampling_at_once():
    from emox_edge.preprocess.resample import SincResampler, resample_sinc

    rng = np.random.default_rng(3)
    for rate in (44100, 48000, 22050, 8000, 16000):
        signal = rng.standard_normal(rate * 2 + 123).astype(np.float32)
        resampler, parts, at = SincResampler(rate, 16000), [], 0
        while at < signal.size:
            step = int(rng.integers(1, 6000))
            parts.append(resampler.push(signal[at:at + step]))
            at += step
        parts.append(resampler.flush())
        np.testing.assert_array_equal(np.concatenate(parts), resample_sinc(signal, rate, 16000))
