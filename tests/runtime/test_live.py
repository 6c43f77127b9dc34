"""Live capture: the camera thread, the microphone ring buffer, live clips, device loss and recovery.

The machine has no camera: ``cv2.VideoCapture(index)`` is replaced at the OS edge by a real
``cv2.VideoCapture`` over a generated video, paced to 25 fps (``conftest.PacedCapture``). The
microphone runs through real PortAudio on a PulseAudio null sink when one can be created.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

from emox_edge.capture import LiveSource, Segmentation, resolve_source
from emox_edge.capture.camera import CameraReader
from emox_edge.capture.microphone import AudioRing, MicrophoneReader


def _wait(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# ----------------------------------------------------------------------------- camera
def test_camera_thread_keeps_newest_frame_and_history(paced_capture):
    with CameraReader(0, capture_factory=paced_capture) as cam:
        assert _wait(lambda: cam.frames_read >= 20)
        t, frame = cam.latest()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        frames, times = cam.take(0.0, t + 1.0)
        assert frames.shape[0] >= 20 and np.all(np.diff(times) > 0)
        assert cam._thread.daemon
    assert not cam._thread.is_alive() and not cam.connected
    assert paced_capture.made[0]._cap.isOpened() is False  # released


def test_camera_counts_frames_dropped_from_a_short_history(paced_capture):
    with CameraReader(0, capture_factory=paced_capture, history_s=0.2) as cam:
        assert _wait(lambda: cam.dropped >= 5)
    assert cam.dropped <= cam.frames_read


def test_camera_that_disappears_is_reopened(paced_capture, caplog):
    def factory(index):
        # first capture dies after 10 frames; the reopened one works
        return paced_capture(index, fail_after=10 if not paced_capture.made else None)

    with CameraReader(0, capture_factory=factory, retry_initial_s=0.05) as cam:
        assert _wait(lambda: cam.reconnects >= 1 and cam.frames_read >= 20, timeout=8)
        assert cam.connected
    assert "stopped delivering" in caplog.text and "is back" in caplog.text


def test_camera_retries_with_backoff_while_gone(paced_capture, caplog):
    opened = []

    def factory(index):
        if not opened:
            opened.append(1)
            return paced_capture(index, fail_after=3)

        class Gone:
            def isOpened(self):
                return False

            def release(self):
                pass

        return Gone()

    cam = CameraReader(0, capture_factory=factory, retry_initial_s=0.02, retry_max_s=0.05)
    try:
        assert _wait(lambda: caplog.text.count("still unavailable") >= 2)
        assert not cam.connected and cam._thread.is_alive()  # reported and retried, not a crash
    finally:
        cam.close()


def test_unopenable_camera_names_the_index():
    with pytest.raises(ConnectionError, match="camera 42"):
        CameraReader(42)


def test_live_camera_source_yields_clips(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.6), camera_factory=paced_capture)
    assert isinstance(source, LiveSource) and source.live
    clips = []
    for clip in source.clips():
        clips.append(clip)
        if len(clips) == 2:
            break
    source.close()
    assert all(8 <= c.frames.shape[0] <= 20 for c in clips)  # ~0.6 s at 25 fps
    assert clips[1].start == pytest.approx(clips[0].end)
    assert np.all((clips[0].frame_times >= clips[0].start) & (clips[0].frame_times < clips[0].end))
    assert source.stats()["frames_read"] >= 25 and not source.camera.connected


def test_slow_consumer_gets_the_newest_clip(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.3), camera_factory=paced_capture)
    clips = source.clips()
    first = next(clips)
    time.sleep(1.0)  # analysis slower than real time
    second = next(clips)
    source.close()
    assert source.stats()["skipped_clips"] >= 2
    assert second.start >= first.end + 0.6


# ----------------------------------------------------------------------------- microphone
def test_audio_ring_wraps_and_counts_overwritten_samples():
    ring = AudioRing(10)
    ring.write(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(ring.read(2, 6), [2, 3, 4, 5])
    ring.write(np.arange(6, 14, dtype=np.float32))  # 14 written, capacity 10: samples 0..3 gone, all read
    assert ring.written == 14 and ring.overwritten == 0
    np.testing.assert_array_equal(ring.read(4, 14), np.arange(4, 14))
    np.testing.assert_array_equal(ring.read(0, 4), [0, 0, 0, 0])  # no longer held: zeros
    ring.write(np.full(25, 7.0, np.float32))  # 25 more, unread: 15 of them lost
    assert ring.written == 39 and ring.overwritten == 15
    np.testing.assert_array_equal(ring.read(29, 39), np.full(10, 7.0))
    with pytest.raises(ValueError, match="capacity"):
        AudioRing(0)


class FakeStream:
    """OS-edge stand-in for ``sounddevice.InputStream``: a thread calling the callback every 100 ms."""

    instances: list = []

    def __init__(self, *, device, channels, dtype, samplerate, blocksize, callback, die_after=None, overflow=False):
        assert channels == 1 and dtype == "float32" and samplerate == 16000
        self.callback, self.blocksize = callback, blocksize
        self.die_after, self.overflow = die_after, overflow
        self.active = False
        self._stop = threading.Event()
        FakeStream.instances.append(self)

    def start(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        status = type("Status", (), {"input_overflow": self.overflow, "__bool__": lambda s: self.overflow})()
        while not self._stop.is_set():
            if self.die_after is not None and n >= self.die_after:
                return  # device unplugged: no more callbacks
            self.callback(np.full((self.blocksize, 1), 0.25, np.float32), self.blocksize, None, status)
            n += 1
            time.sleep(self.blocksize / 16000)

    def stop(self):
        self._stop.set()
        self.active = False

    def close(self):
        self._stop.set()


def test_microphone_reads_blocks_into_the_ring():
    mic = MicrophoneReader(stream_factory=FakeStream)
    try:
        assert mic.blocksize == 1600
        assert _wait(lambda: mic.blocks >= 3)
        assert mic.ring.written == 1600 * mic.blocks or mic.ring.written >= 4800
        assert np.allclose(mic.audio(0.0, 0.2), 0.25)
    finally:
        mic.close()
    assert FakeStream.instances[-1]._stop.is_set()


def test_microphone_counts_overflows():
    mic = MicrophoneReader(stream_factory=lambda **kw: FakeStream(**kw, overflow=True))
    try:
        assert _wait(lambda: mic.overflows >= 2)
    finally:
        mic.close()


def test_microphone_that_stalls_is_reopened(caplog):
    made = []

    def factory(**kw):
        stream = FakeStream(**kw, die_after=3 if not made else None)
        made.append(stream)
        return stream

    mic = MicrophoneReader(stream_factory=factory)
    try:
        assert _wait(lambda: mic.blocks >= 3)
        time.sleep(0.3)
        assert _wait(lambda: mic.check(stall_s=0.2) and mic.reconnects == 1)
        assert "stopped delivering audio" in caplog.text
    finally:
        mic.close()


def test_microphone_that_cannot_open_names_the_device():
    def factory(**kw):
        raise ValueError("No input device matching 'nope'")

    with pytest.raises(ConnectionError, match="microphone nope"):
        MicrophoneReader("nope", stream_factory=factory)


def test_missing_sounddevice_gives_an_install_hint(monkeypatch):
    import sys

    from emox_edge.capture import microphone

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(ImportError, match="libportaudio2"):
        microphone.import_sounddevice()


# ----------------------------------------------------------------------------- real PortAudio device
def test_real_portaudio_microphone_records_played_speech(pulse_source, media_dir):
    mic = MicrophoneReader(None)
    try:
        time.sleep(0.3)
        subprocess.run(["paplay", f"--device={pulse_source}", str(media_dir / "speech16.wav")], check=True, timeout=20)
        time.sleep(0.3)
        audio = mic.audio(0.0, mic.seconds)
    finally:
        mic.close()
    assert audio.size >= 16000 * 3
    assert np.abs(audio).max() > 0.05  # the speech went through PortAudio


def test_live_camera_and_microphone_clips(pulse_source, media_dir, paced_capture):
    source = resolve_source(0, mic=True, segmentation=Segmentation(window_s=1.0), camera_factory=paced_capture)
    player = subprocess.Popen(["paplay", f"--device={pulse_source}", str(media_dir / "speech16.wav")])
    try:
        clips = []
        for clip in source.clips():
            clips.append(clip)
            if len(clips) == 3:
                break
    finally:
        source.close()
        player.wait(timeout=20)
    assert all(c.frames.shape[0] > 10 for c in clips)
    assert all(abs(c.audio.size - 16000) <= 1 for c in clips)
    assert max(np.abs(c.audio).max() for c in clips) > 0.05
    assert source.name == "camera:0+mic:default"


def test_microphone_only_source_yields_audio_clips():
    source = resolve_source(None, mic=True, segmentation=Segmentation(window_s=0.5), mic_factory=FakeStream)
    try:
        clip = next(source.clips())
    finally:
        source.close()
    assert source.name == "mic:default" and clip.frames.shape[0] == 0
    assert clip.audio.size == 8000 and np.allclose(clip.audio[-4000:], 0.25)


class SlowStream(FakeStream):
    """A microphone whose blocks come 30 % slower than real time (a loaded machine, a lagging driver)."""

    def _run(self):
        while not self._stop.is_set():
            self.callback(np.full((self.blocksize, 1), 0.25, np.float32), self.blocksize, None, None)
            time.sleep(1.3 * self.blocksize / 16000)


def test_a_clip_waits_for_the_microphones_last_block():
    source = resolve_source(None, mic=True, segmentation=Segmentation(window_s=0.5), mic_factory=SlowStream)
    try:
        clip = next(source.clips())
    finally:
        source.close()
    assert clip.audio.size == 8000
    assert np.allclose(clip.audio, 0.25)  # no zeros where the mic was merely late
