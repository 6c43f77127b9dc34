"""Face detection (CenterFace from the lite bundle, Haar fallback) and the IoU tracker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emox_edge.faces import FaceDetector, FaceDetectorOptions, FaceTracker
from converters.lite.centerface import prepare_centerface
from emox_edge.results import Face


@pytest.fixture(scope="module")
def detector(lite_bundle):
    path = lite_bundle.path(lite_bundle.section("graphs")["face_detector"]["file"])
    with FaceDetector(FaceDetectorOptions(model_path=path, n_threads=2)) as det:
        yield det


def _lfw_frame(image: np.ndarray) -> np.ndarray:
    """A 25x25 LFW crop upscaled to 100 px on a 160 px grey canvas (the benchmark's protocol)."""
    face = cv2.resize((image * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
    face = cv2.copyMakeBorder(face, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=128)
    return np.repeat(face[:, :, None], 3, axis=2)


def test_astronaut_face_with_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < 200 and 40 < y1 < 90 and 250 < x2 < 300 and 150 < y2 < 210
    assert face.score > 0.8 and len(face.landmarks) == 5
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx and max(ly, ry) < ny < min(mly, mry)  # eyes above nose above mouth
    assert all(x1 <= px <= x2 and y1 <= py <= y2 for px, py in face.landmarks)


def test_lfw_faces_found_and_non_faces_rejected(detector, lfw):
    faces, non_faces = lfw
    found = sum(bool(detector.detect(_lfw_frame(img))) for img in faces)
    false = sum(bool(detector.detect(_lfw_frame(img))) for img in non_faces)
    assert found >= 95, f"faces found {found}/100"
    assert false <= 3, f"false positives {false}/100"


def test_haar_fallback_needs_no_model(astronaut):
    with FaceDetector() as det:
        assert det.backend == "haar"
        faces = det.detect(astronaut)
    assert len(faces) >= 1 and faces[0].landmarks == ()
    assert 150 < faces[0].box[0] < 220


def test_blank_frame_has_no_face(detector):
    assert detector.detect(np.full((480, 640, 3), 90, np.uint8)) == []


def test_detector_misuse(detector, tmp_path, lite_bundle):
    with pytest.raises(TypeError, match="numpy uint8"):
        detector.detect([[0, 0, 0]])
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        detector.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        FaceDetector(FaceDetectorOptions(model_path=tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="score_threshold"):
        FaceDetector(FaceDetectorOptions(score_threshold=1.5))
    fer = lite_bundle.path(lite_bundle.section("graphs")["expression"]["fp32"])
    with pytest.raises(ValueError, match="not the CenterFace graph"):
        prepare_centerface(fer, tmp_path / "x.onnx")
    closed = FaceDetector()
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        closed.detect(np.zeros((64, 64, 3), np.uint8))


def test_prepared_graph_has_dynamic_dims(cached_sources, tmp_path):
    import onnx

    out = prepare_centerface(cached_sources["centerface"], tmp_path / "cf.onnx")
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def _face(x: float, y: float, size: float = 50.0) -> Face:
    return Face(box=(x, y, x + size, y + size), score=0.9)


def test_tracker_keeps_ids_across_frames():
    tracker = FaceTracker(iou_threshold=0.3, max_missed=1)
    a, b = tracker.update([_face(0, 0), _face(200, 0)])
    assert (a.track_id, b.track_id) == (1, 2)
    # both moved a little, listed in the other order
    b2, a2 = tracker.update([_face(205, 3), _face(4, 2)])
    assert (a2.track_id, b2.track_id) == (1, 2)
    # a third face appears far away: a new id
    assert [f.track_id for f in tracker.update([_face(6, 2), _face(400, 400)])] == [1, 3]
    # face 1 vanishes for longer than max_missed, then comes back: a new id
    tracker.update([])
    tracker.update([])
    assert tracker.update([_face(6, 2)])[0].track_id == 4


def test_tracker_misuse():
    with pytest.raises(ValueError, match="iou_threshold"):
        FaceTracker(iou_threshold=0)
    with pytest.raises(ValueError, match="max_missed"):
        FaceTracker(max_missed=-1)
