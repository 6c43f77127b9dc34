"""Nano-EmoX frame sampling, resizing and normalisation (spec §2.1).

Training decoded each clip with decord ``VideoReader(uri, height=224, width=224)``: FFmpeg's
``scale=224:224`` filter straight to rgb24, no aspect preservation, no crop. decord's wheels carry
FFmpeg 4.x, whose ``scale`` filter defaults to ``flags=bilinear``. Measured against that graph
(``benchmarks/runtime_resize.py``), libswscale bilinear applied to the decoded YUV frame (what our
file decoder does, ``Clip.model_frames``) differs by 0.15-0.44 on average (0..255); from RGB frames
(camera, arrays) libswscale bilinear is the closest resizer we measured (mean 1.1-1.3, OpenCV
INTER_LINEAR 1.5-3.4, INTER_AREA 1.3-1.9), so ``resize_frames`` uses it.
"""

from __future__ import annotations

import numpy as np

from emox_edge.errors import BadInputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def sample_indices(vlen: int, n_frames: int = 8) -> list[int]:
    """Frame indices ``floor(k * vlen / n)`` for k < n; fewer than n frames: all, then the last repeated.

    ``vlen == 0`` gives an empty list (the caller substitutes black frames).
    """
    if vlen < 0 or n_frames <= 0:
        raise BadInputError(f"need vlen >= 0 and n_frames > 0, got vlen={vlen}, n_frames={n_frames}")
    if vlen == 0:
        return []
    if vlen < n_frames:
        return list(range(vlen)) + [vlen - 1] * (n_frames - vlen)
    return [(k * vlen) // n_frames for k in range(n_frames)]


def pick_instants(start: float, end: float, n_frames: int = 8) -> np.ndarray:
    """The ``n_frames`` evenly spaced instants ``start + k * (end - start) / n`` of a clip (seconds)."""
    return start + np.arange(n_frames, dtype=np.float64) * ((end - start) / n_frames)


def time_picks(frame_times: np.ndarray, start: float, end: float, n_frames: int = 8) -> list[int]:
    """Indices of the first frame at or after each of ``pick_instants(start, end, n)`` (the last frame
    where none is): sampling evenly in time, for live clips whose camera rate is not steady.

    A pick is final as soon as its frame has arrived, so a live source can encode it before the clip
    closes (``LiveSource``); for a steady rate it is the frame ``sample_indices`` picks, or its neighbour.
    """
    times = np.asarray(frame_times, np.float64)
    if times.size == 0:
        return []
    found = np.searchsorted(times, pick_instants(start, end, n_frames), side="left")
    return np.minimum(found, times.size - 1).tolist()


def resize_rgb(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize one uint8 RGB frame to ``size`` x ``size`` with libswscale bilinear (no aspect kept)."""
    import av

    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    return video_frame.reformat(width=size, height=size, interpolation="BILINEAR").to_ndarray()


def select_frames(frames: np.ndarray, model_frames: np.ndarray | None, *, n_frames: int, size: int,
                  indices: list[int] | None = None) -> np.ndarray:
    """The ``n_frames`` model frames of a clip, uint8 ``[n, size, size, 3]``.

    ``indices``: the frames to take (default ``sample_indices``, as trained). Uses the decoder-resized
    ``model_frames`` when they have the right size, else resizes the selected ``frames``. A clip
    without frames gives black frames.
    """
    if indices is None:
        indices = sample_indices(frames.shape[0], n_frames)
    if not indices:
        return np.zeros((n_frames, size, size, 3), np.uint8)
    if model_frames is not None and model_frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(model_frames[indices])
    cache: dict[int, np.ndarray] = {}
    out = np.empty((n_frames, size, size, 3), np.uint8)
    for k, index in enumerate(indices):
        if index not in cache:
            cache[index] = resize_rgb(frames[index], size)
        out[k] = cache[index]
    return out


def clip_normalize(frames: np.ndarray, mean=CLIP_MEAN, std=CLIP_STD) -> np.ndarray:
    """``(x/255 - mean)/std`` per channel: uint8 ``[n, H, W, 3]`` -> float32 ``[n, 3, H, W]``."""
    x = frames.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def raw_float(frames: np.ndarray) -> np.ndarray:
    """The facial branch's input: float32 ``[n, 3, H, W]`` with values 0..255, unnormalised."""
    return np.ascontiguousarray(frames.astype(np.float32).transpose(0, 3, 1, 2))
