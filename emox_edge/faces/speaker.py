"""Which tracked face is speaking: the one whose mouth moves while speech is heard, else the largest.

CenterFace gives 5 landmarks per face (eyes, nose tip, mouth corners), no lips, so the mouth opening
is read from the geometry of the mouth corners relative to the nose and eyes:

- ``drop``: distance nose tip -> midpoint of the mouth corners, divided by the distance midpoint of
  the eyes -> nose tip. Opening the jaw lowers the corners; nodding foreshortens both distances about
  equally, so the ratio mostly ignores head pitch and the face's size.
- ``width``: distance between the mouth corners divided by the distance between the eyes. Rounded
  vowels narrow the mouth, smiles widen it; turning the head shrinks both about equally.

A speaking mouth makes these vary from frame to frame; so does landmark jitter. A track's score is
the standard deviation its mouth geometry shows during speech beyond the noise:
``sqrt(max(v_speech - v_noise, 0))``, ``v`` being the summed sample variances of ``drop`` and ``width``.
``v_noise`` is the detector's jitter ``(JITTER_PX / face size)**2``, or the variance over the track's
own frames outside speech when it has at least 3 and that is larger (a listener who chews or laughs
all along). JITTER_PX = 3.5 was measured with CenterFace (the lite bundle's detector) on the shipped
face photo at 43-134 px with sub-pixel shifts and pixel noise: a still face's variance was
(2.7-3.7 px / size)**2; pulling the region below the nose down by 0-15% of the face (a crude jaw
drop) gave scores of ~0.075 on faces of 68-134 px and none on a 43 px face.

The speaker is the best-scoring track when its score reaches ``min_motion`` (0.04) and is ``margin``
(1.5) times the runner-up's; otherwise the largest face (mean box area over all analysed frames, a
frame where the track is absent counting as 0, so a face seen throughout beats a brief larger one).
On simulated 4 s clips (an 80 px speaker beside a still 140 px listener, CenterFace-like jitter,
2-4 frames/s, 180 clips each; tests/faces/test_speaker.py) this found the speaker in 82% of clips
with speech over half the clip and 97% with speech throughout, and kept the fallback in 86% of
clips where no mouth moved. Scores from more frames (a longer window) are more reliable.

Limits (why the fallback exists):
- 2-4 analysed frames per second undersample syllables (4-6 per second): the score says that the
  mouth moved between frames during speech, not that it moved in time with the audio;
- the 5 landmarks are a weak proxy for the lips: a jaw drop shows, lip movement without one does
  not; on faces under ~60 px the jitter swamps it, and on profile faces the ratios are unreliable;
- a listener who laughs, chews or mouths along while another person speaks also scores; a speaker
  off camera (voice-over, a phone) makes the face with the most mouth movement the "speaker";
- Haar faces (no landmarks) can only be ranked by size.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from emox_edge.results import Face

FrameFaces = tuple[float, Sequence[Face]]

DEFAULT_MIN_MOTION = 0.04
DEFAULT_MARGIN = 1.5
DEFAULT_PAD_S = 0.1
JITTER_PX = 3.5
MIN_BASELINE_FRAMES = 3


def mouth_geometry(landmarks: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """(drop, width) of one face's 5 landmarks (see the module docstring); None without 5 usable points.

    Order: left eye, right eye, nose tip, left mouth corner, right mouth corner (CenterFace's).
    """
    if len(landmarks) != 5:
        return None
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = (tuple(map(float, p)) for p in landmarks)
    eye_mid = ((lex + rex) / 2.0, (ley + rey) / 2.0)
    mouth_mid = ((mlx + mrx) / 2.0, (mly + mry) / 2.0)
    eye_dist = math.hypot(rex - lex, rey - ley)
    nose_up = math.hypot(nx - eye_mid[0], ny - eye_mid[1])
    if eye_dist < 1e-6 or nose_up < 1e-6:
        return None
    drop = math.hypot(mouth_mid[0] - nx, mouth_mid[1] - ny) / nose_up
    width = math.hypot(mrx - mlx, mry - mly) / eye_dist
    return drop, width


def _in_speech(t: float, segments: Sequence[tuple[float, float]], pad: float) -> bool:
    return any(start - pad <= t <= end + pad for start, end in segments)


def _variance(samples: list[tuple[float, float]]) -> float:
    arr = np.asarray(samples, dtype=np.float64)
    return float(arr.var(axis=0, ddof=1).sum())


def _face_size(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return max(float(np.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0))), 1.0)


def _check(frame_faces, speech_segments) -> tuple[list[tuple[float, tuple[Face, ...]]], list[tuple[float, float]]]:
    frames = []
    for item in frame_faces:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"frame_faces holds (time, faces) pairs; got {item!r}")
        t, faces = item
        faces = tuple(faces)
        for face in faces:
            if not isinstance(face, Face):
                raise TypeError(f"frame_faces holds emox_edge.results.Face records; got {type(face).__name__}")
            if face.track_id is None:
                raise ValueError("a face has no track_id; run the faces through FaceTracker.update first")
        frames.append((float(t), faces))
    segments = []
    for seg in speech_segments:
        start, end = (float(v) for v in seg)
        if end < start:
            raise ValueError(f"speech segment ({start}, {end}) ends before it starts")
        segments.append((start, end))
    return frames, segments


def speaker_scores(frame_faces: Sequence[FrameFaces], speech_segments: Sequence[tuple[float, float]], *,
                   pad_s: float = DEFAULT_PAD_S) -> dict[int, float]:
    """Mouth-movement score of each track with at least 2 landmark frames inside speech.

    ``pad_s`` widens each speech segment on both sides (VAD boundaries are approximate).

    Raises:
        TypeError / ValueError: see ``choose_speaker``.
    """
    frames, segments = _check(frame_faces, speech_segments)
    during: dict[int, list[tuple[float, float]]] = {}
    outside: dict[int, list[tuple[float, float]]] = {}
    sizes: dict[int, list[float]] = {}
    for t, faces in frames:
        target = during if _in_speech(t, segments, pad_s) else outside
        for face in faces:
            geometry = mouth_geometry(face.landmarks)
            if geometry is not None:
                target.setdefault(face.track_id, []).append(geometry)
                sizes.setdefault(face.track_id, []).append(_face_size(face))
    scores = {}
    for track_id, samples in during.items():
        if len(samples) < 2:
            continue
        baseline = outside.get(track_id, [])
        noise = (JITTER_PX / float(np.median(sizes[track_id]))) ** 2
        if len(baseline) >= MIN_BASELINE_FRAMES:
            noise = max(noise, _variance(baseline))
        scores[track_id] = float(np.sqrt(max(_variance(samples) - noise, 0.0)))
    return scores


def largest_track(frame_faces: Sequence[FrameFaces]) -> int | None:
    """The track with the largest mean box area over all frames (absent = 0); None when no face."""
    frames, _ = _check(frame_faces, ())
    totals: dict[int, float] = {}
    for _, faces in frames:
        for face in faces:
            x1, y1, x2, y2 = face.box
            totals[face.track_id] = totals.get(face.track_id, 0.0) + max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    if not totals:
        return None
    return max(totals, key=lambda k: (totals[k], -k))


def choose_speaker(frame_faces: Sequence[FrameFaces], speech_segments: Sequence[tuple[float, float]], *,
                   min_motion: float = DEFAULT_MIN_MOTION, margin: float = DEFAULT_MARGIN,
                   pad_s: float = DEFAULT_PAD_S) -> int | None:
    """The track id of the person speaking in a clip.

    Args:
        frame_faces: (frame time in seconds, tracked faces of that frame) for each analysed frame.
        speech_segments: (start, end) seconds where speech was heard, on the same clock.
        min_motion: smallest mouth-movement score that counts as speaking.
        margin: the best score must be at least this many times the runner-up's.
        pad_s: seconds added to both ends of each speech segment.

    Returns:
        The speaking track's id; else the largest face's id (no speech, no landmarks, no clear
        mouth movement); None when no frame holds a face.

    Raises:
        TypeError: ``frame_faces`` is not a sequence of (time, faces) pairs of ``Face`` records.
        ValueError: a face has no ``track_id``, or a speech segment ends before it starts.
    """
    return speaker_decision(frame_faces, speech_segments, min_motion=min_motion, margin=margin,
                            pad_s=pad_s)["track_id"]


def speaker_decision(frame_faces: Sequence[FrameFaces], speech_segments: Sequence[tuple[float, float]], *,
                     min_motion: float = DEFAULT_MIN_MOTION, margin: float = DEFAULT_MARGIN,
                     pad_s: float = DEFAULT_PAD_S) -> Mapping[str, object]:
    """``choose_speaker`` with how it decided: {"track_id", "by": "mouth" | "size" | None, "scores"}.

    Raises:
        TypeError / ValueError: see ``choose_speaker``.
    """
    if not min_motion >= 0:
        raise ValueError(f"min_motion must be >= 0, got {min_motion}")
    if not margin >= 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    scores = speaker_scores(frame_faces, speech_segments, pad_s=pad_s)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    chosen, by = None, None
    if ranked and ranked[0][1] >= min_motion:
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        if runner_up <= 0 or ranked[0][1] >= margin * runner_up:
            chosen, by = ranked[0][0], "mouth"
    if chosen is None:
        chosen = largest_track(frame_faces)
        by = None if chosen is None else "size"
    return {"track_id": chosen, "by": by, "scores": {k: round(v, 4) for k, v in scores.items()}}
