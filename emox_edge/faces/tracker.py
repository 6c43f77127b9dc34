"""A simple IoU tracker: gives each face a ``track_id`` that persists across frames."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from emox_edge.faces._boxes import iou_matrix
from emox_edge.results import Face


@dataclass
class _Track:
    track_id: int
    box: tuple[float, float, float, float]
    missed: int = 0
    hits: int = 1


@dataclass
class FaceTracker:
    """Greedy IoU matching of detections to tracks, frame after frame.

    Attributes:
        iou_threshold: a detection continues a track when their boxes overlap at least this much.
        max_missed: frames a track survives without a matching detection before it is dropped.
    """

    iou_threshold: float = 0.3
    max_missed: int = 10
    _tracks: list[_Track] = field(default_factory=list, repr=False)
    _next_id: int = field(default=1, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {self.max_missed}")

    def update(self, faces: list[Face]) -> list[Face]:
        """Assign track ids to the faces of the next frame (returns new ``Face`` records, same order)."""
        ids: list[int | None] = [None] * len(faces)
        if faces and self._tracks:
            overlaps = iou_matrix(np.array([f.box for f in faces]), np.array([t.box for t in self._tracks]))
            pairs = sorted(((overlaps[i, j], i, j) for i in range(len(faces)) for j in range(len(self._tracks))),
                           reverse=True)
            used_faces: set[int] = set()
            used_tracks: set[int] = set()
            for value, i, j in pairs:
                if value < self.iou_threshold:
                    break
                if i in used_faces or j in used_tracks:
                    continue
                used_faces.add(i)
                used_tracks.add(j)
                ids[i] = self._tracks[j].track_id
        by_id = {t.track_id: t for t in self._tracks}
        seen: set[int] = set()
        for i, face in enumerate(faces):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
                by_id[ids[i]] = _Track(ids[i], face.box)
            else:
                track = by_id[ids[i]]
                track.box, track.missed, track.hits = face.box, 0, track.hits + 1
            seen.add(ids[i])
        for track in by_id.values():
            if track.track_id not in seen:
                track.missed += 1
        self._tracks = [t for t in by_id.values() if t.missed <= self.max_missed]
        return [dataclasses.replace(face, track_id=ids[i]) for i, face in enumerate(faces)]

    def reset(self) -> None:
        self._tracks = []
        self._next_id = 1
