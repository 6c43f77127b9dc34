"""FaceTracker: stable ids for moving faces sampled 2-4 times per second, crossing faces, gaps between clips.

The synthetic scenes simulate what the face stage sees: a few frames per 4 s clip (first and last
included), detector jitter of a few pixels, misses, and overlapping faces merged into one detection
(non-maximum suppression keeps only the higher-scoring box).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emox_edge.faces._boxes import iou_matrix
from emox_edge.faces.tracker import FaceTracker, linear_assignment
from emox_edge.results import Face

CLIP_S = 4.0


def clip_times(n_clips: int, fps: float, clip_s: float = CLIP_S) -> list[float]:
    """Frame times of ``n_clips`` consecutive clips, ``fps`` analysed frames per second in each."""
    per_clip = max(2, int(round(fps * clip_s)))
    times: list[float] = []
    for k in range(n_clips):
        times.extend(float(t) for t in np.linspace(k * clip_s, (k + 1) * clip_s - 1 / 15, per_clip))
    return times


def simulate(people, times, *, rng, jitter=1.5, miss=0.0, nms_iou=0.3, frame=(640, 480)):
    """Per frame: [(person index, Face)] detections of people moving at constant velocity.

    ``people``: (x0, y0, vx, vy, size) with the centre at t=0, velocity in px/s, box side in px.
    """
    out = []
    for t in times:
        boxes, owners = [], []
        for k, (x0, y0, vx, vy, size) in enumerate(people):
            cx, cy = x0 + vx * t + rng.normal(0, jitter), y0 + vy * t + rng.normal(0, jitter)
            s = size * (1 + rng.normal(0, 0.03))
            if not (0 <= cx <= frame[0] and 0 <= cy <= frame[1]) or rng.random() < miss:
                continue
            boxes.append((cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2))
            owners.append(k)
        scores = rng.uniform(0.6, 0.99, len(boxes))
        keep: list[int] = []
        for i in np.argsort(-scores):
            if all(iou_matrix(np.array([boxes[i]]), np.array([boxes[j]]))[0, 0] <= nms_iou for j in keep):
                keep.append(int(i))
        out.append([(owners[i], Face(box=boxes[i], score=float(scores[i]))) for i in keep])
    return out


def run_tracker(tracker, detections, times, *, timed=True):
    """Feed the frames (shuffled within each frame) and return {person: [track ids]}."""
    ids: dict[int, list[int]] = {}
    rng = np.random.default_rng(0)
    for t, frame in zip(times, detections):
        order = rng.permutation(len(frame))
        frame = [frame[i] for i in order]
        tracked = tracker.update([face for _, face in frame], t if timed else None)
        for (person, _), face in zip(frame, tracked):
            ids.setdefault(person, []).append(face.track_id)
    return ids


def assert_one_id_per_person(ids: dict[int, list[int]]) -> None:
    per_person = {person: set(seen) for person, seen in ids.items()}
    for person, seen in per_person.items():
        assert len(seen) == 1, f"person {person} got ids {ids[person]}"
    all_ids = [next(iter(s)) for s in per_person.values()]
    assert len(all_ids) == len(set(all_ids)), f"two people share an id: {per_person}"


@pytest.mark.parametrize("fps", [2, 3, 4])
@pytest.mark.parametrize("size", [40, 60, 110])
def test_face_moving_50px_per_s_keeps_one_id_across_clips(fps, size):
    times = clip_times(3, fps)
    rng = np.random.default_rng(fps * 100 + size)
    people = [(40.0, 200.0, 50.0, 8.0, size)]  # 50 px/s to the right for 12 s, drifting down a little
    ids = run_tracker(FaceTracker(), simulate(people, times, rng=rng, frame=(720, 480)), times)
    assert_one_id_per_person(ids)
    assert len(ids[0]) == len(times)


def test_iou_only_matching_loses_that_face():
    """The same motion with matching by IoU alone (the previous tracker) hands out new ids: the test has teeth."""
    times = clip_times(2, 2)
    detections = simulate([(60.0, 240.0, 50.0, 0.0, 40)], times, rng=np.random.default_rng(1))
    ids = run_tracker(FaceTracker(gate=1e-6, max_scale_change=1.0001), detections, times)
    assert len(set(ids[0])) > 2


def test_untimed_frames_track_per_update():
    times = clip_times(2, 3)
    detections = simulate([(60.0, 200.0, 50.0, 0.0, 45)], times, rng=np.random.default_rng(2))
    assert_one_id_per_person(run_tracker(FaceTracker(), detections, times, timed=False))


def _crossing_people(n: int, rng) -> list[tuple[float, float, float, float, float]]:
    """``n`` faces on two rows 15-30 px apart, half walking right and half left, so that they cross."""
    people = []
    for k in range(n):
        right = k % 2 == 0
        speed = rng.uniform(40, 70)
        x0 = rng.uniform(40, 160) if right else rng.uniform(480, 600)
        y0 = 200 + (k // 2) * 90 + (0 if right else rng.uniform(15, 30))
        people.append((x0, y0, speed if right else -speed, rng.uniform(-5, 5), rng.uniform(55, 80)))
    return people


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_crossing_faces_keep_their_ids(n, seed):
    rng = np.random.default_rng(1000 * n + seed)
    people = _crossing_people(n, rng)
    times = clip_times(2, 3)
    detections = simulate(people, times, rng=rng, miss=0.05)
    merged = sum(len(frame) < sum(1 for _ in people) for frame in detections)
    ids = run_tracker(FaceTracker(), detections, times)
    assert_one_id_per_person(ids)
    if n == 2 and seed == 0:
        assert merged > 0, "the scene should include frames where the crossing faces merge"


def test_hidden_face_keeps_its_id_within_max_age():
    tracker = FaceTracker(max_age_s=3.0)
    first = tracker.update([Face(box=(100, 100, 160, 160), score=0.9)], 0.0)[0].track_id
    assert tracker.update([Face(box=(125, 100, 185, 160), score=0.9)], 0.5)[0].track_id == first
    tracker.update([], 1.0)
    tracker.update([], 1.5)  # hidden for a second (e.g. the gap between clips)
    again = tracker.update([Face(box=(200, 100, 260, 160), score=0.9)], 2.0)[0]
    assert again.track_id == first
    gone = tracker.update([Face(box=(200, 100, 260, 160), score=0.9)], 6.0)[0]
    assert gone.track_id != first  # unseen for 4 s > max_age_s


def test_time_going_back_starts_a_new_stream():
    tracker = FaceTracker()
    a = tracker.update([Face(box=(0, 0, 50, 50), score=0.9)], 5.0)[0].track_id
    b = tracker.update([Face(box=(0, 0, 50, 50), score=0.9)], 0.0)[0].track_id
    assert b != a and tracker.active_ids == (b,)
    # the same time again (a photo analysed twice) is not going back
    assert tracker.update([Face(box=(1, 0, 51, 50), score=0.9)], 0.0)[0].track_id == b


def test_reset_restarts_ids():
    tracker = FaceTracker()
    tracker.update([Face(box=(0, 0, 50, 50), score=0.9)], 0.0)
    tracker.reset()
    assert tracker.update([Face(box=(300, 0, 350, 50), score=0.9)])[0].track_id == 1


def test_tracker_misuse():
    tracker = FaceTracker()
    tracker.update([], 0.0)
    with pytest.raises(ValueError, match="every frame or for none"):
        tracker.update([])
    with pytest.raises(ValueError, match="finite"):
        tracker.update([], float("nan"))
    with pytest.raises(TypeError, match="Face records"):
        tracker.update([(0, 0, 10, 10)], 1.0)
    for bad in (dict(gate=0), dict(max_age_s=-1), dict(max_scale_change=1.0), dict(velocity_window=0),
                dict(iou_threshold=1.5), dict(max_missed=-1), dict(max_coast_s=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FaceTracker(**bad)


def _brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    return min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 5), (5, 2), (6, 6), (4, 7)])
def test_linear_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.uniform(0, 10, shape).round(1)  # rounding makes ties
        pairs = linear_assignment(cost)
        assert len(pairs) == min(shape)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        assert sum(cost[i, j] for i, j in pairs) == pytest.approx(_brute_force(cost))


def test_linear_assignment_edge_cases():
    assert linear_assignment(np.zeros((0, 3))) == []
    with pytest.raises(ValueError, match="finite 2-D"):
        linear_assignment(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="finite 2-D"):
        linear_assignment(np.array([1.0, 2.0]))
