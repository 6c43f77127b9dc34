"""Live capture memory: frames downscaled in the camera thread, a history sized from the segmentation,
frames no clip can use let go at once, and no clip held by the source once handed out.

The camera is replaced at the OS edge: ``VirtualCamera`` hands out BGR frames as fast as they are
read and moves a virtual clock by one frame period per frame, so what the history holds is exact, not
timed; ``paced_capture`` (conftest) is a real ``cv2.VideoCapture`` over a generated video at 25 fps.
"""

from __future__ import annotations

import threading
import time
import weakref

import cv2
import numpy as np
import pytest

from emox_edge.capture import LiveSegmenter, LiveSource, Segmentation, resolve_source
from emox_edge.capture.camera import CameraReader


class VirtualCamera:
    """A ``cv2.VideoCapture`` stand-in: ``total`` distinct BGR frames of ``size``, each moving ``clock``
    on by ``1 / fps``; after them it delivers nothing (as an unplugged camera)."""

    def __init__(self, size: tuple[int, int], *, fps: float = 30.0, total: int = 300) -> None:
        self.width, self.height = size
        self.period, self.total = 1.0 / fps, total
        self.now = 0.0
        self.served = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def frame(self, k: int) -> np.ndarray:
        y, x = np.mgrid[0:self.height, 0:self.width]
        bgr = np.empty((self.height, self.width, 3), np.uint8)
        bgr[..., 0] = (x * 255 // self.width + k) % 256
        bgr[..., 1] = y * 255 // self.height
        bgr[..., 2] = (x + y + 7 * k) % 251
        return bgr

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 API
        return True

    def set(self, *_) -> bool:
        return True

    def release(self) -> None:
        pass

    def read(self):
        if self.served >= self.total:
            self.done.set()
            time.sleep(0.01)
            return False, None
        frame = self.frame(self.served)
        with self._lock:
            self.now += self.period
            self.served += 1
        return True, frame


def _run(camera: VirtualCamera, **options) -> CameraReader:
    reader = CameraReader(0, capture_factory=lambda index: camera, clock=camera.clock, **options)
    try:
        assert camera.done.wait(30), "the virtual camera was not read to its end"
        assert reader.frames_read == camera.total
    finally:
        reader.close()
    return reader


# ----------------------------------------------------------------------------- camera thread
def test_camera_downscales_frames_in_its_thread():
    camera = VirtualCamera((1280, 720), total=3)
    reader = CameraReader(0, capture_factory=lambda index: camera, clock=camera.clock)
    try:
        assert camera.done.wait(30)
        frames, times = reader.take(-1.0, 10.0)
        _, latest = reader.latest()
    finally:
        reader.close()
    assert frames.shape == (3, 360, 640, 3) and latest.shape == (360, 640, 3) and reader.max_side == 640
    expected = cv2.cvtColor(cv2.resize(camera.frame(2), (640, 360), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(frames[2], expected)  # RGB, area-downscaled, aspect kept
    np.testing.assert_allclose(times, [1 / 30, 2 / 30, 3 / 30])


@pytest.mark.parametrize("max_side, shape", [(None, (720, 1280, 3)), (1280, (720, 1280, 3)), (320, (180, 320, 3))])
def test_camera_max_side_none_keeps_frames_as_captured(max_side, shape):
    camera = VirtualCamera((1280, 720), total=2)
    reader = CameraReader(0, capture_factory=lambda index: camera, clock=camera.clock, max_side=max_side)
    try:
        assert camera.done.wait(30)
        frames, _ = reader.take(-1.0, 10.0)
    finally:
        reader.close()
    assert frames.shape[1:] == shape
    if max_side is None:
        np.testing.assert_array_equal(frames[1], cv2.cvtColor(camera.frame(1), cv2.COLOR_BGR2RGB))


def test_camera_history_holds_at_most_its_seconds_and_counts_the_rest():
    camera = VirtualCamera((64, 48), fps=30.0, total=300)  # 10 s of virtual time
    reader = _run(camera, history_s=2.0)
    assert reader.peak_held <= 61  # 2 s at 30 fps, and the frame just read
    assert reader.held <= 61
    assert reader.dropped == reader.frames_read - reader.held  # nothing was taken: every frame let go counts


def test_release_before_lets_frames_go_at_once():
    camera = VirtualCamera((64, 48), fps=30.0, total=90)  # 3 s
    reader = CameraReader(0, capture_factory=lambda index: camera, clock=camera.clock, history_s=60.0)
    try:
        assert camera.done.wait(30)
        frames, times = reader.take(0.51, 1.01)  # frames 16..30 (frame k at k/30 s)
        assert reader.held == 90 and reader.dropped == 0
        reader.release_before(2.01)
        left, left_times = reader.take(-1.0, 10.0)
    finally:
        reader.close()
    assert frames.shape[0] == 15 and np.all((times >= 0.51) & (times < 1.01))
    assert left.shape[0] == 30 and left_times.min() >= 2.01  # frames 61..90 are left
    assert reader.dropped == 30  # frames 31..60: after the last taken and never taken; 1..15 were skipped


@pytest.mark.parametrize("options, message", [
    ({"history_s": 0}, "history_s"), ({"history_s": float("inf")}, "history_s"), ({"history_s": True}, "history_s"),
    ({"max_side": 16}, "max_side"), ({"max_side": 640.0}, "max_side"),
])
def test_camera_refuses_bad_memory_settings(options, message):
    camera = VirtualCamera((64, 48), total=1)
    with pytest.raises(ValueError, match=message):
        CameraReader(0, capture_factory=lambda index: camera, clock=camera.clock, **options)


# ----------------------------------------------------------------------------- history size
@pytest.mark.parametrize("segmentation, seconds", [
    (Segmentation(window_s=4.0), 9.0),
    (Segmentation(window_s=1.5), 4.0),
    (Segmentation(mode="whole", max_clip_s=6.0), 13.0),
    (Segmentation(mode="vad", window_s=4.0, max_clip_s=12.0, pad_s=0.2, vad=object()), 2 * (12.0 + 0.4 + 0.5) + 1.0),
    (Segmentation(mode="vad", window_s=20.0, max_clip_s=5.0, pad_s=0.0, vad=object()), 41.0),
])
def test_live_history_is_sized_from_the_segmentation(segmentation, seconds):
    assert LiveSegmenter(segmentation).history_s() == pytest.approx(seconds)


def test_newest_fixed_window_starts_within_the_history():
    """Whenever a poll comes, the newest closed window it returns lies within ``history_s`` of it."""
    seg = Segmentation(window_s=4.0)
    history = LiveSegmenter(seg).history_s()
    for first in (0.3, 4.0, 7.9, 11.99):
        for late in (0.0, 3.7, 9.0, 25.3):  # the consumer came back this much later
            segmenter = LiveSegmenter(seg)
            segmenter.poll(first, None)
            now = first + late
            spans = segmenter.poll(now, None)
            if spans:
                assert now - spans[-1][0] <= history - segmenter.SLACK_S
                assert segmenter.cursor == spans[-1][1]


def test_live_source_sizes_the_camera_and_keeps_explicit_settings(paced_capture):
    with resolve_source(0, segmentation=Segmentation(window_s=0.5), camera_factory=paced_capture) as source:
        assert source.camera.history_s == pytest.approx(2.0) and source.camera.max_side == 640
        assert source.stats()["camera_history_s"] == pytest.approx(2.0)
    with resolve_source(0, segmentation=Segmentation(window_s=0.5), camera_factory=paced_capture, max_side=None) as source:
        assert source.camera.max_side is None
    with LiveSource(camera=0, mic=None, segmentation=Segmentation(window_s=0.5), history_s=30.0, max_side=320,
                    camera_factory=paced_capture) as source:
        assert source.camera.history_s == 30.0 and source.camera.max_side == 320


# ----------------------------------------------------------------------------- the live loop
def test_slow_consumer_keeps_whole_clips_and_a_bounded_history(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.4), camera_factory=paced_capture)
    try:
        clips = source.clips()
        first = next(clips)
        time.sleep(1.5)  # analysis slower than real time: several windows close meanwhile
        second = next(clips)
        held_limit = int(source.camera.history_s * 25) + 2  # 25 fps: what the history may hold
        peak = source.camera.peak_held
    finally:
        source.close()
    assert second.start >= first.end + 0.8 and source.stats()["skipped_clips"] >= 2
    assert second.frames.shape[0] >= 8  # the newest window is whole (0.4 s at 25 fps: ~10 frames)
    assert peak <= held_limit


def test_live_source_holds_no_clip_while_the_next_one_fills(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.3), camera_factory=paced_capture)
    try:
        clips = source.clips()
        first = next(clips)
        gone = weakref.ref(first.frames)
        del first  # the consumer is done with the first clip
        alive_at_take = []
        take = source.camera.take

        def spying_take(start, end):
            alive_at_take.append(gone() is not None)
            return take(start, end)

        source.camera.take = spying_take
        second = next(clips)
    finally:
        source.close()
    assert alive_at_take == [False]  # released before the next clip was assembled
    assert second.frames.shape[0] > 0


def test_live_source_lets_frames_before_the_cursor_go(paced_capture):
    source = resolve_source(0, segmentation=Segmentation(window_s=0.4), camera_factory=paced_capture)
    try:
        clip = next(source.clips())
        frames, times = source.camera.take(-1e9, 1e9)
    finally:
        source.close()
    assert times.size == 0 or times.min() >= source.t0 + clip.end  # only frames after the clip are left
