"""Encoder outputs of single rows (one frame, one audio window), kept by the exact bytes of their input.

A per-frame graph run one row at a time (``FRAMES_PER_RUN = 1``) gives a row's outputs from that row
alone, so a row seen before need not run again. Two places gain:

- live capture: ``LiveSource`` hands the frames a clip will sample to ``EncoderSuite.encode_ahead``
  while the clip is still being captured; when it closes, those rows are found here;
- repeated rows: the 8 audio windows of a clip without sound (a camera without a microphone, a
  silent video) are all zeros, the same in every clip; a clip shorter than 8 frames repeats its last.

The key is a BLAKE2 digest of the graph's name and every input's name, dtype, shape and bytes (0.9 ms
for a 224x224 frame on an AMD EPYC AVX2 core), so a hit is the same input, never a near one: results
are what running the row would give. Not used for graphs run several rows at once: dynamic int8 quantizes each run's
activations with their own scale, so a row's outputs would depend on its neighbours.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Mapping

import numpy as np

ROWS_KEPT = 64  # ~16 KB of outputs per row for Nano-EmoX: two clips' rows of every graph, under 1 MB


def row_key(graph: str, feed: Mapping[str, np.ndarray]) -> bytes:
    """The digest of one row's feed for ``graph``."""
    h = hashlib.blake2b(graph.encode(), digest_size=16)
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        h.update(f"|{name}|{array.dtype.str}|{array.shape}|".encode())
        h.update(memoryview(array).cast("B"))
    return h.digest()


class RowCache:
    """The outputs of the most recently used ``capacity`` rows (least recently used go first)."""

    def __init__(self, capacity: int = ROWS_KEPT) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[bytes, list[np.ndarray]] = OrderedDict()
        self.hits = 0  # lookups that found the row

    def get(self, key: bytes) -> list[np.ndarray] | None:
        """The row's outputs (marked as recently used), or None."""
        outputs = self._rows.get(key)
        if outputs is not None:
            self._rows.move_to_end(key)
            self.hits += 1
        return outputs

    def put(self, key: bytes, outputs: list[np.ndarray]) -> None:
        self._rows[key] = outputs
        self._rows.move_to_end(key)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()
