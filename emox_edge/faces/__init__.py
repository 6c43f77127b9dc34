"""Face detection (CenterFace ONNX or OpenCV Haar) and IoU tracking, used for overlays and per-face results."""

from emox_edge.faces.detector import BACKENDS, FaceDetector, FaceDetectorOptions
from emox_edge.faces.tracker import FaceTracker

__all__ = ["BACKENDS", "FaceDetector", "FaceDetectorOptions", "FaceTracker"]
