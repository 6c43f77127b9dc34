"""A clip's perception reuses the faces overlay's detections (``SeenFaces``), with the tiny bundle's real
face detector (its records compared whole: boxes, landmarks, expressions when a bundle has them, ids)
and the session's real tracker: no mocks."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.client import jpeg
from emox_edge.faces import FaceTracker
from emox_edge.serve import jobs
from emox_edge.serve.protocol import SessionConfig
from emox_edge.serve.windows import Window


def _window(stream_media, start: float, end: float) -> Window:
    frames, times, audio = stream_media
    keep = [(float(t), jpeg(f)) for f, t in zip(frames, times) if start <= t < end]
    pcm = (audio[int(start * 16000): int(end * 16000)] * 32767).astype(np.int16)
    return Window(start, end, keep, pcm)


def _config(serve_analyzer) -> SessionConfig:
    return SessionConfig(tasks=("emotion",), window_s=2.0)


def _overlay(serve_analyzer, stream_media, tracker, seen, every: int, until: float):
    """The faces overlay as a session runs it: every ``every``-th frame up to ``until``, in time order."""
    frames, times, _ = stream_media
    messages = []
    for k in range(0, len(times), every):
        if times[k] < until:
            messages.append(jobs.detect_faces(serve_analyzer, jpeg(frames[k]), t=float(times[k]), tracker=tracker,
                                              seen=seen))
    return messages


def _perceive(serve_analyzer, stream_media, tracker, seen, start=0.0, end=2.0):
    window = _window(stream_media, start, end)
    out = jobs.perceive_window(serve_analyzer, window, _config(serve_analyzer), source="test", max_frames=16,
                               tracker=tracker, seen=seen)
    return out.item.perceived


def test_a_clip_takes_the_overlays_faces_for_the_frames_it_covers(serve_analyzer, stream_media):
    tracker, seen = FaceTracker(), jobs.SeenFaces()
    _overlay(serve_analyzer, stream_media, tracker, seen, every=3, until=2.0)  # 4 per s as the default faces_fps
    overlay = {t: faces for t, faces in seen.around(0.0, 2.0, (320, 240))}
    assert any(overlay.values()), "the overlay found the face"
    ids_before = tracker.active_ids
    n = len(_perceive(serve_analyzer, stream_media, FaceTracker(), None).frame_faces)  # the frames it samples
    perceived = _perceive(serve_analyzer, stream_media, tracker, seen)
    timings = perceived.timings
    assert len(perceived.frame_faces) == n >= 4
    # overlay frames 0.3 s apart cover every sampled frame (each within half a sampling interval)
    assert timings["faces_reused"] == n and timings["faces_detected"] == 0
    reused = [(t, faces) for t, faces in perceived.frame_faces if t in overlay]
    assert len(reused) == timings["faces_reused"]
    for t, faces in reused:  # the overlay's own records: boxes, landmarks, expressions, ids
        assert faces == overlay[t]
    ids = {f.track_id for _, faces in perceived.frame_faces for f in faces}
    assert ids and ids <= set(ids_before), "the clip's faces carry the overlay's track ids"
    assert tracker.active_ids == ids_before, "perceiving the clip did not reset the session's tracker"


def test_a_clip_without_overlay_frames_detects_its_own(serve_analyzer, stream_media):
    tracker, seen = FaceTracker(), jobs.SeenFaces()
    perceived = _perceive(serve_analyzer, stream_media, tracker, seen)
    n = len(perceived.frame_faces)
    assert n >= 4 and perceived.timings["faces_reused"] == 0 and perceived.timings["faces_detected"] == n
    faces = [f for _, found in perceived.frame_faces for f in found]
    assert faces and all(f.track_id is not None for f in faces)
    # the same clip perceived without a SeenFaces detects the same faces (no reuse counters then)
    alone = _perceive(serve_analyzer, stream_media, FaceTracker(), None)
    assert "faces_reused" not in alone.timings
    assert [(t, [f.box for f in found]) for t, found in alone.frame_faces] == \
        [(t, [f.box for f in found]) for t, found in perceived.frame_faces]


def test_frames_older_than_the_overlay_keep_its_ids(serve_analyzer, stream_media):
    """The overlay ran ahead (a frame after the clip's end) and covers none of the clip's frames: they
    are detected, take the overlay's id, and the tracker's tracks survive (no "new stream")."""
    frames, times, _ = stream_media
    tracker, seen = FaceTracker(), jobs.SeenFaces()
    message = jobs.detect_faces(serve_analyzer, jpeg(frames[21]), t=float(times[21]), tracker=tracker, seen=seen)
    assert message["faces"]
    overlay_ids = set(tracker.active_ids)
    perceived = _perceive(serve_analyzer, stream_media, tracker, seen)
    n = len(perceived.frame_faces)
    assert n >= 4 and perceived.timings["faces_reused"] == 0 and perceived.timings["faces_detected"] == n
    ids = {f.track_id for _, found in perceived.frame_faces for f in found}
    assert overlay_ids & ids, "the clip's main face continues the overlay's track"
    assert set(tracker.active_ids) == overlay_ids and tracker.clock == pytest.approx(2.1)


def test_overlay_frames_of_another_size_are_not_reused(serve_analyzer, stream_media):
    tracker, seen = FaceTracker(), jobs.SeenFaces()
    _overlay(serve_analyzer, stream_media, tracker, seen, every=3, until=2.0)
    assert seen.around(0.0, 2.0, (640, 480)) == []
    assert len(seen.around(0.0, 2.0, (320, 240))) == 7


def test_a_served_stream_reuses_the_overlay(start_server, stream_media):
    """Through the real server: clips report how many sampled frames came from the faces overlay."""
    from emox_edge.client import Client

    server = start_server(faces_fps=4.0, queue_clips=4)
    frames, times, audio = stream_media
    with Client(server.url).stream(["emotion", "sentiment"], window_s=1.0) as session:
        session.feed(frames, times, audio, speed=1.0)
        session.end()
        results = list(session.results(timeout=120))
    assert len(results) == 3 and all(r["error"] is None for r in results)
    timings = [r["timings"] for r in results]
    assert all(t["faces_reused"] + t["faces_detected"] == len(r["frame_faces"]) >= 4 for t, r in zip(timings, results))
    assert sum(t["faces_reused"] for t in timings) > 0, timings
