"""``Source``: what every reader (file, image, directory, array, camera, stream) offers the analyzer."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from emox_edge.media import Clip


class Source:
    """A finite or live producer of ``Clip``s; close it (or use ``with``) to release devices."""

    name: str = "source"
    live: bool = False

    def clips(self) -> Iterator[Clip]:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Clip]:
        return self.clips()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def empty_frames() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.float64)
