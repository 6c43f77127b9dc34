"""``FaceTracker``: one ``track_id`` per person, stable across the sampled frames of a clip and across clips.

The pipelines analyse only a few frames per clip (2-4 per second), so a face walking at 50 px/s moves
12-25 px between two analysed frames: for a 40 px face that is an IoU of 0.2-0.5 with its previous
box, and a plain IoU tracker (the previous version of this module) handed out a new id per frame.
This tracker instead

1. predicts each track's box at the new frame time with a constant-velocity model: the velocity is
   the least-squares slope of the track's centres over its last ``velocity_window`` seconds (updates
   without frame times), so detector jitter between two close frames (the last frame of a clip and
   the first of the next are ~70 ms apart) does not swing it; the prediction stops after
   ``max_coast_s`` so a lost track does not fly away;
2. gates detection/track pairs: a pair may match when the detection's centre lies within
   ``gate`` x face size of the predicted centre (the radius grows while the track is unseen) and
   their sizes differ by less than ``max_scale_change``, or whenever their IoU reaches ``iou_threshold``;
3. assigns detections to tracks by minimum total cost (centre distance / face size + size change)
   with the Hungarian algorithm (``linear_assignment`` below, O(n^3), exact; n is the number of faces
   in a frame, 1-10), so crossing faces are resolved jointly, not greedily;
4. keeps unmatched tracks alive for ``max_age_s`` seconds (or ``max_missed`` updates without frame
   times), so a face hidden for a frame, or the gap between two clips, keeps its id.

Why not a field tracker: ByteTrack via ``supervision`` (0.31.2, MIT) needs scipy, matplotlib, pillow,
pyyaml and requests in the runtime path, drops detections until a track is confirmed (we need an id on
every face of every frame) and its Kalman filter is tuned for 25-30 fps video; scipy is not a
dependency of emox-edge, hence the 40-line assignment below. The motions this tracker is meant for
(50 px/s at 2-4 frames/s, 2-5 faces crossing, gaps between clips, a real face through OpenCV's Haar
detector) are tests in tests/faces/. Measured on the simulated scenes of tests/faces/test_tracker.py
(detector jitter 1.5 px, 5% misses, overlapping faces merged by NMS): one id per person in 20/20
runs of a 40 px face at 2 and 3 frames/s (the IoU tracker: 0/20), and in 240/240 runs of 2-5
crossing faces at 3 frames/s (the IoU tracker: 21/240); 716/720 over 2-4 frames/s, the 4 misses
being a single frame where two faces merged into one detection exactly where both were predicted.

Limits: no appearance model, so two people who swap places while both are hidden, or a person who
leaves and returns after ``max_age_s``, get new ids; an abrupt reversal of direction while the face
is hidden can swap ids of two faces that are also crossing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emox_edge.faces._boxes import iou_matrix
from emox_edge.results import Face

log = logging.getLogger(__name__)

_INFEASIBLE = 1e9
_HISTORY = 8


def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows to columns (Hungarian algorithm, shortest augmenting paths).

    Every row is matched when rows <= columns (else every column); returns sorted (row, column)
    pairs. Same optimum as ``scipy.optimize.linear_sum_assignment``, without needing scipy.

    Raises:
        ValueError: ``cost`` is not a finite 2-D matrix.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or not np.all(np.isfinite(cost)):
        raise ValueError(f"cost must be a finite 2-D matrix; got shape {cost.shape}")
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        return []
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: row (1-based) holding column j; column 0 is virtual
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


def _centre_size(box: Sequence[float]) -> tuple[float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(math.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0)), 1.0)


@dataclass
class _Track:
    track_id: int
    box: tuple[float, float, float, float]
    t: float  # time of the last matched detection
    velocity: tuple[float, float] = (0.0, 0.0)
    missed: int = 0
    hits: int = 1
    history: deque = field(default_factory=lambda: deque(maxlen=_HISTORY))  # (t, cx, cy) of matches

    def predicted_box(self, t: float, max_coast: float) -> tuple[float, float, float, float]:
        dt = min(max(t - self.t, 0.0), max_coast)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return x1 + dx, y1 + dy, x2 + dx, y2 + dy


@dataclass
class FaceTracker:
    """Constant-velocity tracking of faces across sampled frames, with optimal (Hungarian) matching.

    Attributes:
        iou_threshold: a detection overlapping a track's predicted box at least this much may
            always continue it (whatever its distance).
        max_missed: updates a track survives without a detection, when no frame times are given.
        max_age_s: seconds a track survives without a detection, when frame times are given.
        gate: largest centre distance from the prediction, in face sizes (geometric mean of width
            and height), for a match; it grows by half for each update the track was missed.
        max_scale_change: largest size ratio between a track and a detection that may continue it.
        velocity_window: the velocity is fitted to the track's centres of the last this many
            seconds (updates without frame times).
        max_coast_s: the prediction of a track unseen for longer than this stops moving (seconds, or
            updates without frame times).

    Raises (on construction):
        ValueError: an attribute is out of range.
    """

    iou_threshold: float = 0.3
    max_missed: int = 10
    max_age_s: float = 3.0
    gate: float = 1.0
    max_scale_change: float = 1.6
    velocity_window: float = 1.5
    max_coast_s: float = 2.0
    _tracks: list[_Track] = field(default_factory=list, repr=False)
    _next_id: int = field(default=1, repr=False)
    _clock: float | None = field(default=None, repr=False)
    _timed: bool | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {self.max_missed}")
        for name in ("max_age_s", "gate", "max_coast_s", "velocity_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.max_scale_change > 1.0:
            raise ValueError(f"max_scale_change must be > 1, got {self.max_scale_change}")

    @property
    def active_ids(self) -> tuple[int, ...]:
        """Ids of the tracks currently kept (seen recently enough to be continued)."""
        return tuple(t.track_id for t in self._tracks)

    def update(self, faces: Sequence[Face], t: float | None = None) -> list[Face]:
        """Assign track ids to the faces of the next analysed frame.

        Args:
            faces: the frame's detections (any order).
            t: the frame's time in seconds from the stream's start (``Clip.frame_times``), so that
                velocities are per second and gaps between clips count as time. Pass it for every
                frame or for none. A time earlier than the previous one starts a new stream: the
                tracks are dropped (ids are never reused) and the event is logged.

        Returns:
            New ``Face`` records with ``track_id`` set, in the order of ``faces``.

        Raises:
            TypeError: an element of ``faces`` is not a ``Face``.
            ValueError: ``t`` is given after frames without it (or the reverse), or is not finite.
        """
        faces = list(faces)
        for face in faces:
            if not isinstance(face, Face):
                raise TypeError(f"update() takes emox_edge.results.Face records, got {type(face).__name__}")
        now = self._advance(t)
        self._tracks = [track for track in self._tracks if not self._expired(track, now)]
        ids = self._match(faces, now)
        by_id = {track.track_id: track for track in self._tracks}
        for i, face in enumerate(faces):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
                track = by_id[ids[i]] = _Track(ids[i], tuple(map(float, face.box)), now)
                track.history.append((now, *_centre_size(face.box)[:2]))
            else:
                self._refresh(by_id[ids[i]], face, now)
        seen = set(ids)
        for track in by_id.values():
            if track.track_id not in seen:
                track.missed += 1
        self._tracks = [track for track in by_id.values() if not self._expired(track, now)]
        return [dataclasses.replace(face, track_id=ids[i]) for i, face in enumerate(faces)]

    @property
    def clock(self) -> float | None:
        """The latest frame time given to ``update`` (the update count for untimed frames); None before any."""
        return self._clock

    def new_id(self) -> int:
        """An id no track has had and none will get, for a face labelled outside ``update`` (e.g. on a
        frame older than ``clock``, which ``update`` would take for a new stream)."""
        self._next_id += 1
        return self._next_id - 1

    def reset(self) -> None:
        """Forget every track and the clock; ids start again at 1."""
        self._tracks = []
        self._next_id = 1
        self._clock = None
        self._timed = None

    # ------------------------------------------------------------------------------ internals
    def _advance(self, t: float | None) -> float:
        timed = t is not None
        if self._timed is not None and timed != self._timed:
            fed = "timed" if self._timed else "untimed"
            raise ValueError("FaceTracker.update: give the frame time t for every frame or for none "
                             f"(this tracker was fed {fed} frames; reset() to switch)")
        self._timed = timed
        if not timed:
            self._clock = (self._clock or 0.0) + 1.0
            return self._clock
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"FaceTracker.update: t must be a finite time in seconds, got {t}")
        if self._clock is not None and t < self._clock:
            log.info("frame time went back from %.3f s to %.3f s: a new stream, %d track(s) dropped",
                     self._clock, t, len(self._tracks))
            self._tracks = []
        self._clock = t
        return t

    def _expired(self, track: _Track, now: float) -> bool:
        if self._timed:
            return now - track.t > self.max_age_s
        return track.missed > self.max_missed

    def _match(self, faces: list[Face], now: float) -> list[int | None]:
        ids: list[int | None] = [None] * len(faces)
        if not faces or not self._tracks:
            return ids
        coast = self.max_coast_s
        predicted = np.array([track.predicted_box(now, coast) for track in self._tracks])
        boxes = np.array([face.box for face in faces], dtype=np.float64)
        overlaps = iou_matrix(boxes, predicted)
        cost = np.full((len(faces), len(self._tracks)), _INFEASIBLE)
        for j, track in enumerate(self._tracks):
            px, py, psize = _centre_size(predicted[j])
            radius = self.gate * (1.0 + 0.5 * track.missed)
            for i, face in enumerate(faces):
                cx, cy, size = _centre_size(face.box)
                distance = math.hypot(cx - px, cy - py) / max(psize, size)
                scale = abs(math.log(size / psize))
                near = distance <= radius and scale <= math.log(self.max_scale_change)
                if near or overlaps[i, j] >= self.iou_threshold:
                    cost[i, j] = distance + scale
        for i, j in linear_assignment(cost):
            if cost[i, j] < _INFEASIBLE:
                ids[i] = self._tracks[j].track_id
        return ids

    def _refresh(self, track: _Track, face: Face, now: float) -> None:
        cx, cy, _ = _centre_size(face.box)
        track.history.append((now, cx, cy))
        recent = np.array([h for h in track.history if h[0] >= now - self.velocity_window])
        if len(recent) >= 2:
            dt = recent[:, 0] - recent[:, 0].mean()
            spread = float(dt @ dt)
            # a fit over less than a tenth of the window is mostly jitter: keep the old velocity
            if spread > len(recent) * (0.05 * self.velocity_window) ** 2:
                track.velocity = (float(dt @ recent[:, 1]) / spread, float(dt @ recent[:, 2]) / spread)
        track.box, track.t = tuple(map(float, face.box)), now
        track.missed, track.hits = 0, track.hits + 1
