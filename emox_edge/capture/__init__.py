"""Sources and capture: cameras, microphones, files, streams and arrays, cut into ``Clip``s."""

from emox_edge.capture.segment import LiveSegmenter, Segmentation, SpeechDetector, fixed_windows
from emox_edge.capture.live import LiveSource, StreamSource
from emox_edge.capture.sources import (
    ACCEPTED,
    ArraySource,
    DirectorySource,
    FileSource,
    ImageSource,
    Source,
    resolve_source,
)

__all__ = [
    "ACCEPTED",
    "ArraySource",
    "DirectorySource",
    "FileSource",
    "ImageSource",
    "LiveSegmenter",
    "LiveSource",
    "Segmentation",
    "Source",
    "SpeechDetector",
    "StreamSource",
    "fixed_windows",
    "resolve_source",
]
