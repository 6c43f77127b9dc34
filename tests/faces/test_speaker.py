"""choose_speaker: the face whose mouth moves while speech is heard, else the largest; None without faces.

Faces are generated with CenterFace's 5 landmarks (eyes, nose tip, mouth corners); a speaking mouth
lowers its corners by up to 4% and narrows them by up to 2% of the face size, a random amount each
frame (a score of ~0.07, what CenterFace gave for a 0-15% jaw drop on a real face); every landmark
jitters by 0.3 px, which gives the still-face variance CenterFace showed (see speaker.JITTER_PX).
"""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.faces.speaker import (choose_speaker, largest_track, mouth_geometry, speaker_decision,
                                     speaker_scores)
from emox_edge.faces.tracker import FaceTracker
from emox_edge.results import Face


def make_face(x, y, size, *, opening=0.0, rng=None, jitter_px=0.3, track_id=None, landmarks=True) -> Face:
    """A face box at (x, y) with landmarks; ``opening`` in [0, 1] lowers and narrows the mouth corners."""
    rel = np.array([[0.30, 0.40], [0.70, 0.40], [0.50, 0.58],
                    [0.35 + 0.02 * opening, 0.75 + 0.04 * opening], [0.65 - 0.02 * opening, 0.75 + 0.04 * opening]])
    pts = rel * size + np.array([x, y])
    if rng is not None:
        pts = pts + rng.normal(0, jitter_px, pts.shape)
    points = tuple((float(px), float(py)) for px, py in pts) if landmarks else ()
    return Face(box=(x, y, x + size, y + size), score=0.9, landmarks=points, track_id=track_id)


def scene(*, speaker_size=80, listener_size=140, speech=((1.0, 3.0),), speaker_talks=True, listener_talks="never",
          fps=3, duration=4.0, seed=0, landmarks=True, jitter_px=0.3):
    """(frame_faces, speech) of a 2-person clip; track 1 = the speaker on the left, 2 = the listener."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in np.arange(0, duration, 1 / fps):
        speaking = any(s <= t <= e for s, e in speech)
        mouth_1 = rng.uniform(0, 1) if (speaking and speaker_talks) else 0.0
        listener_moves = listener_talks == "always" or (listener_talks == "silence" and not speaking)
        mouth_2 = rng.uniform(0, 1) if listener_moves else 0.0
        faces = (make_face(60 + 10 * t, 100, speaker_size, opening=mouth_1, rng=rng, track_id=1, landmarks=landmarks,
                           jitter_px=jitter_px),
                 make_face(360, 80, listener_size, opening=mouth_2, rng=rng, track_id=2, landmarks=landmarks,
                           jitter_px=jitter_px))
        frames.append((float(t), faces))
    return frames, list(speech)


def test_speaker_is_the_moving_mouth_not_the_largest_face():
    frames, speech = scene(speaker_size=110, listener_size=160, fps=4, speech=((0.5, 3.5),))
    assert largest_track(frames) == 2
    decision = speaker_decision(frames, speech)
    assert decision["track_id"] == 1 and decision["by"] == "mouth"
    assert decision["scores"][1] > 0.04 > decision["scores"][2]
    assert choose_speaker(frames, speech) == 1


def _rate(want: int, seeds: int = 60, **kwargs) -> float:
    hits = [choose_speaker(*scene(fps=fps, seed=seed, **kwargs)) == want
            for fps in (2, 3, 4) for seed in range(seeds)]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("kwargs, want, at_least", [
    (dict(speech=((1.0, 3.0),)), 1, 0.75),                              # speech over half the clip
    (dict(speech=((0.0, 4.0),)), 1, 0.90),                              # speech throughout
    (dict(speaker_size=60, speech=((1.0, 3.0),)), 1, 0.65),            # a 60 px speaker
    (dict(listener_talks="silence", speech=((1.0, 3.0),)), 1, 0.80),   # the listener chews in silence
    (dict(listener_talks="always", speech=((1.0, 3.0),)), 1, 0.50),    # ... or all along
    (dict(speaker_talks=False), 2, 0.80),                               # no mouth moves: the largest
    (dict(speaker_talks=False, speech=((0.0, 4.0),)), 2, 0.80),
], ids=["half", "throughout", "small", "chew-silence", "chew-always", "mute", "mute-throughout"])
def test_rates_over_simulated_clips(kwargs, want, at_least):
    """180 clips (60 seeds x 2, 3 and 4 frames/s), 80 px speaker, 140 px listener, CenterFace-like jitter."""
    assert _rate(want, **kwargs) >= at_least


def test_a_mouth_that_always_moves_is_discounted():
    """The listener's mouth moves all the time (chewing): its silent frames set its noise level."""
    frames, speech = scene(listener_talks="always", speech=((0.5, 3.0),), fps=4, duration=8.0, speaker_size=110)
    scores = speaker_scores(frames, speech)
    assert scores[1] > 0.04 and scores[2] < 0.04
    assert choose_speaker(frames, speech) == 1


def test_no_mouth_movement_falls_back_to_the_largest_face():
    frames, speech = scene(speaker_talks=False, speaker_size=110, fps=4)
    decision = speaker_decision(frames, speech)
    assert decision["track_id"] == 2 and decision["by"] == "size"


def test_no_speech_falls_back_to_the_largest_face():
    frames, _ = scene()
    assert speaker_decision(frames, [])["track_id"] == 2
    assert speaker_decision(frames, [])["scores"] == {}


def test_haar_faces_without_landmarks_fall_back_to_the_largest_face():
    frames, speech = scene(landmarks=False)
    assert choose_speaker(frames, speech) == 2


def test_no_face_is_none():
    assert choose_speaker([], [(0.0, 1.0)]) is None
    assert choose_speaker([(0.0, ()), (0.5, ())], [(0.0, 1.0)]) is None
    assert speaker_decision([], [])["by"] is None


def test_a_face_seen_throughout_beats_a_brief_larger_one():
    frames = [(t, (make_face(0, 0, 100, track_id=1),)) for t in (0.0, 0.5, 1.0, 1.5)]
    frames[-1] = (1.5, frames[-1][1] + (make_face(300, 0, 150, track_id=2),))
    assert largest_track(frames) == 1


def test_with_the_tracker_on_moving_faces():
    """Detections without ids -> FaceTracker (frame times) -> choose_speaker picks the talking person's id.

    Two 4 s clips at 3 frames/s, two people walking 50 px/s toward each other (they cross), the smaller
    one talking in the second clip; 10 random scenes.
    """
    found = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        tracker = FaceTracker()
        frames, talker_ids = [], set()
        for t in np.arange(0, 8, 1 / 3):
            opening = rng.uniform(0, 1) if 4.5 <= t <= 7.5 else 0.0
            talker = make_face(60 + 50 * t, 120, 100, opening=opening, rng=rng)
            other = make_face(520 - 50 * t, 100, 120, rng=rng)
            tracked = tracker.update([other, talker], float(t))
            talker_ids.add(tracked[1].track_id)
            frames.append((float(t), tuple(tracked)))
        assert len(talker_ids) == 1
        found += choose_speaker(frames, [(4.5, 7.5)]) == talker_ids.pop()
    assert found >= 8


def test_mouth_geometry_ignores_scale_position_and_nodding():
    base = make_face(0, 0, 100)
    big = make_face(250, 40, 300)
    assert mouth_geometry(base.landmarks) == pytest.approx(mouth_geometry(big.landmarks))
    nodded = tuple((x, 0.8 * y) for x, y in base.landmarks)  # pitch: vertical foreshortening
    assert mouth_geometry(nodded)[0] == pytest.approx(mouth_geometry(base.landmarks)[0], rel=0.05)
    opened = make_face(0, 0, 100, opening=1.0)
    drop, width = mouth_geometry(opened.landmarks)
    assert drop > mouth_geometry(base.landmarks)[0] + 0.2 and width < mouth_geometry(base.landmarks)[1]
    assert mouth_geometry(()) is None
    assert mouth_geometry(((0, 0),) * 5) is None


def test_speaker_misuse():
    with pytest.raises(ValueError, match="track_id"):
        choose_speaker([(0.0, (make_face(0, 0, 50),))], [])
    with pytest.raises(TypeError, match="time, faces"):
        choose_speaker([make_face(0, 0, 50, track_id=1)], [])
    with pytest.raises(TypeError, match="Face records"):
        choose_speaker([(0.0, ((0, 0, 5, 5),))], [])
    with pytest.raises(ValueError, match="ends before it starts"):
        choose_speaker([], [(2.0, 1.0)])
    with pytest.raises(ValueError, match="min_motion"):
        choose_speaker([], [], min_motion=-1)
    with pytest.raises(ValueError, match="margin"):
        choose_speaker([], [], margin=0.5)
