"""OpenCV's frontal-face Haar cascade (``cv2.data``, opencv<5): no download, no landmarks.

Used when no CenterFace graph is available (e.g. before the lite bundle is built). Measured against
CenterFace in benchmarks/bench_faces.py: fewer faces found and slower at 640x480.
"""

from __future__ import annotations

import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"


class HaarBackend:
    name = "haar"

    def __init__(self, *, min_neighbors: int = 5, scale_factor: float = 1.1) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise ImportError("this OpenCV build has no Haar cascades (opencv>=5); install 'opencv-python<5' "
                              "or give FaceDetector a CenterFace model")
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self._cascade.empty():
            raise FileNotFoundError(f"OpenCV cascade {CASCADE} not found under {cv2.data.haarcascades}")
        self._min_neighbors = min_neighbors
        self._scale_factor = scale_factor

    def __call__(self, frame_rgb: np.ndarray, *, threshold: float, nms_iou: float, max_side: int):
        import cv2

        h, w = frame_rgb.shape[:2]
        ratio = min(1.0, max_side / max(h, w))
        grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
        if ratio < 1.0:
            grey = cv2.resize(grey, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(grey, scaleFactor=self._scale_factor,
                                               minNeighbors=self._min_neighbors, minSize=(24, 24))
        boxes = np.asarray(found, np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes /= ratio
        scores = np.ones(len(boxes), np.float32)  # the cascade gives no calibrated score
        return boxes, scores, np.zeros((len(boxes), 0, 2), np.float32)

    def close(self) -> None:
        self._cascade = None
