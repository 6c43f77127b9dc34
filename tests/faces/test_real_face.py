"""A real face through a real detector: the shipped astronaut photo moving 50 px/s, OpenCV's Haar cascade
(no model file), 3 analysed frames per second over two 4 s clips; the tracker keeps one id."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.demo import load_face_image
from emox_edge.faces import FaceDetector
from emox_edge.faces.tracker import FaceTracker

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "CascadeClassifier"):
    pytest.skip("this OpenCV build has no Haar cascades (opencv>=5)", allow_module_level=True)

SPEED = 50.0  # px/s
FPS = 3


def frame_at(t: float, photo: np.ndarray, rng) -> tuple[np.ndarray, tuple[float, float]]:
    """A 640x360 frame with the photo pasted at x = 20 + 50 t (plus a little camera noise); returns its offset."""
    canvas = np.full((360, 640, 3), 70, np.uint8)
    x, y = 20.0 + SPEED * t, 40.0
    shift = np.float32([[1, 0, x], [0, 1, y]])
    cv2.warpAffine(photo, shift, (640, 360), dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)
    noisy = canvas.astype(np.int16) + rng.normal(0, 2, canvas.shape).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8), (x, y)


def test_moving_real_face_keeps_one_id():
    photo = load_face_image()  # 256x256, Haar finds the face at (87, 31, 138, 82): ~51 px
    times = [k * 4.0 + i / FPS for k in range(2) for i in range(int(4 * FPS))]  # two clips, 24 frames
    rng = np.random.default_rng(0)
    tracker = FaceTracker()
    ids, found = [], 0
    with FaceDetector() as detector:  # Haar
        assert detector.backend == "haar"
        for t in times:
            frame, (x, y) = frame_at(t, photo, rng)
            faces = tracker.update(detector.detect(frame), t)
            # the astronaut's face lies at about (85-140, 25-90) in the 256 px photo
            on_face = [f for f in faces if x + 70 < (f.box[0] + f.box[2]) / 2 < x + 155 and
                       y + 15 < (f.box[1] + f.box[3]) / 2 < y + 100]
            if on_face:
                found += 1
                ids.append(on_face[0].track_id)
    assert found >= 0.8 * len(times), f"Haar found the face in {found} of {len(times)} frames"
    assert len(set(ids)) == 1, f"the moving face got ids {ids}"
