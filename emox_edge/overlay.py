"""Drawing a ``ClipResult`` on a frame: face boxes with track ids and expressions, task answers, reply.

OpenCV is imported lazily. Frames are uint8 RGB in and out (convert to BGR only to show or write).
"""

from __future__ import annotations

import textwrap

import numpy as np

from emox_edge.errors import BadInputError

_BOX = (60, 220, 90)
_TEXT = (255, 255, 255)
_PANEL = (20, 20, 20)
_ERROR = (230, 60, 60)
_SAID = (250, 220, 120)


def draw_result(frame: np.ndarray, result, *, faces=None) -> np.ndarray:
    """Return an annotated copy of ``frame``.

    Raises:
        ValueError: ``frame`` is not uint8 [H, W, 3].
    """
    import cv2

    from emox_edge.summary import task_summary

    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInputError(f"plot() takes a uint8 RGB frame [H, W, 3], got {getattr(frame, 'dtype', type(frame))} "
                         f"{getattr(frame, 'shape', '')}")
    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 900.0)
    thick = max(1, int(round(scale * 2)))
    for face in result.faces if faces is None else faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, thick)
        label = f"#{face.track_id}" if face.track_id is not None else ""
        if face.expression:
            top = max(face.expression.items(), key=lambda kv: kv[1])
            label += f" {top[0]} {top[1]:.2f}"
        if label.strip():
            y = y1 - 4 if y1 >= 16 else y1 + int(16 * scale) + 4  # inside the box when it touches the top
            cv2.putText(out, label.strip(), (x1 + 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _BOX, thick, cv2.LINE_AA)
    lines: list[tuple[str, tuple]] = []
    if result.error:
        lines.append((f"error: {result.error}", _ERROR))
    chars = max(int(w / (scale * 20)), 20)
    heard = getattr(result, "transcript", None) or {}
    if heard.get("source") == "asr" and heard.get("text"):  # what was said, as a subtitle
        for i, piece in enumerate(textwrap.wrap(f'"{heard["text"]}"', chars)[:2]):
            lines.append((piece if i == 0 else "  " + piece, _SAID))
    for name, task in result.tasks.items():
        for i, piece in enumerate(textwrap.wrap(f"{name}: {task_summary(task, width=4 * chars)}", chars)[:3]):
            lines.append((piece if i == 0 else "  " + piece, _TEXT))
    if not lines:
        return out
    line_h = int(28 * scale) + 4
    top = max(h - line_h * len(lines) - 6, 0)
    panel = out[top:h].astype(np.float32)
    out[top:h] = (panel * 0.45 + np.asarray(_PANEL, np.float32) * 0.55).astype(np.uint8)
    for i, (text, color) in enumerate(lines):
        y = top + line_h * (i + 1) - 4
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return out
