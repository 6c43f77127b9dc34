"""The ``/v1/stream`` WebSocket protocol: parsing and checking every client message (docs/serve.md).

Client -> server, text (JSON objects): ``session.update`` (first: tasks, window_s, vad, subtitle,
history), ``input.end`` (flush the last clip, finish, close), ``stats`` (ask for the counters).
Client -> server, binary: byte 0 the kind (``0x01`` JPEG frame, ``0x02`` PCM16 little-endian mono
16 kHz audio), bytes 1-8 a little-endian float64 timestamp in seconds on the client's clock (the
frame's time, or the first sample's), then the payload.

Every refusal is a ``ProtocolError`` (a ``BadInputError``) whose message the server sends back as
``{"type": "error", "message": ...}``; the session goes on.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from emox_edge.errors import BadInputError

KIND_JPEG = 0x01
KIND_PCM16 = 0x02
KINDS = {KIND_JPEG: "jpeg", KIND_PCM16: "pcm16"}
HEADER = struct.Struct("<Bd")
SAMPLE_RATE = 16000
TEXT_TYPES = ("session.update", "input.end", "stats")
UPDATE_FIELDS = ("type", "tasks", "window_s", "vad", "subtitle", "history")
MIN_WINDOW_S = 0.5
MAX_SUBTITLE = 4000
MAX_HISTORY = 16
MAX_HISTORY_LINE = 1000
MAX_FRAME_PIXELS = 3840 * 2160
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ProtocolError(BadInputError):
    """A message the server cannot use; its text goes back to the client in an ``error`` message."""


@dataclass(frozen=True)
class SessionConfig:
    """What a session asked for in ``session.update``."""

    tasks: tuple[str, ...]
    window_s: float = 4.0
    vad: bool = False
    subtitle: str = ""
    history: tuple[str, ...] = ()


@dataclass(frozen=True)
class Media:
    """One binary message: a JPEG frame or a PCM16 audio chunk at client time ``t`` (seconds)."""

    kind: int
    t: float
    payload: bytes
    size: tuple[int, int] | None = None  # (width, height) of a frame

    @property
    def samples(self) -> np.ndarray:
        """The audio chunk as int16 samples (audio messages only)."""
        return np.frombuffer(self.payload, dtype="<i2")

    @property
    def end(self) -> float:
        """The time just after this message's media: ``t`` for a frame, ``t`` + duration for audio."""
        return self.t + (len(self.payload) // 2) / SAMPLE_RATE if self.kind == KIND_PCM16 else self.t


def parse_text(text: str) -> dict[str, Any]:
    """A text message as a JSON object with a known ``type``.

    Raises:
        ProtocolError: not JSON, not an object, or an unknown type (the message lists the valid ones).
    """
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"a text message must be a JSON object: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a text message must be a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if kind not in TEXT_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}; valid types: {', '.join(TEXT_TYPES)}")
    return message


def parse_session_update(message: dict[str, Any], *, check_tasks: Callable[[Sequence[str]], Sequence[Any]],
                         max_window_s: float, current: SessionConfig | None = None) -> SessionConfig:
    """The session's settings after ``message`` (fields it leaves out keep ``current``'s values).

    ``check_tasks`` is the analyzer's: it raises a ``BadInputError`` listing the valid tasks and variants.

    Raises:
        ProtocolError: an unknown field, a value of the wrong type or out of range, no tasks in the
            first update, an unknown task or variant.
    """
    unknown = sorted(set(message) - set(UPDATE_FIELDS))
    if unknown:
        raise ProtocolError(f"session.update: unknown field(s) {', '.join(unknown)}; valid fields: "
                            f"{', '.join(UPDATE_FIELDS[1:])}")
    values: dict[str, Any] = {} if current is None else dict(current.__dict__)
    if "tasks" in message:
        values["tasks"] = _tasks(message["tasks"], check_tasks)
    elif current is None:
        raise ProtocolError("the first session.update must give tasks, e.g. {\"tasks\": [\"emotion\"]}")
    if "window_s" in message:
        window = message["window_s"]
        if not isinstance(window, (int, float)) or isinstance(window, bool) or not (
                MIN_WINDOW_S <= window <= max_window_s):
            raise ProtocolError(f"session.update: window_s={window!r} must be a number of seconds in "
                                f"[{MIN_WINDOW_S}, {max_window_s:g}]")
        values["window_s"] = float(window)
    if "vad" in message:
        if not isinstance(message["vad"], bool):
            raise ProtocolError(f"session.update: vad={message['vad']!r} must be true or false")
        values["vad"] = message["vad"]
    if "subtitle" in message:
        subtitle = message["subtitle"]
        if not isinstance(subtitle, str) or len(subtitle) > MAX_SUBTITLE:
            raise ProtocolError(f"session.update: subtitle must be a string of at most {MAX_SUBTITLE} characters")
        values["subtitle"] = subtitle
    if "history" in message:
        history = message["history"]
        if (not isinstance(history, list) or len(history) > MAX_HISTORY
                or not all(isinstance(line, str) and len(line) <= MAX_HISTORY_LINE for line in history)):
            raise ProtocolError(f"session.update: history must be a list of at most {MAX_HISTORY} strings of at "
                                f"most {MAX_HISTORY_LINE} characters")
        values["history"] = tuple(history)
    return SessionConfig(**values)


def _tasks(raw: Any, check_tasks: Callable[[Sequence[str]], Sequence[Any]]) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        raise ProtocolError(f"session.update: tasks must be a non-empty list of strings such as "
                            f"[\"emotion\", \"intent:mintrec2\"], got {raw!r:.80}")
    try:
        return tuple(str(request) for request in check_tasks(raw))
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"session.update: {exc}") from None


def parse_binary(data: bytes, *, max_pixels: int = MAX_FRAME_PIXELS) -> Media:
    """A binary message: kind byte, float64 timestamp, payload.

    Raises:
        ProtocolError: too short, an unknown kind, a timestamp that is not a finite number, an empty
            payload, a frame that is not a JPEG or declares more than ``max_pixels``, an odd-length
            audio payload.
    """
    if len(data) <= HEADER.size:
        raise ProtocolError(f"a binary message needs {HEADER.size} header bytes (kind, float64 time) and a payload; "
                            f"got {len(data)} bytes")
    kind, t = HEADER.unpack_from(data)
    if kind not in KINDS:
        raise ProtocolError(f"unknown binary kind 0x{kind:02x}; valid kinds: 0x01 JPEG frame, 0x02 PCM16 audio")
    if not math.isfinite(t) or abs(t) > 1e9:
        raise ProtocolError(f"timestamp {t!r} is not a finite number of seconds")
    payload = bytes(data[HEADER.size:])
    if kind == KIND_PCM16:
        if len(payload) % 2:
            raise ProtocolError(f"PCM16 audio at t={t:.3f} has an odd number of bytes ({len(payload)})")
        return Media(kind, float(t), payload)
    width, height = jpeg_size(payload)
    if width * height > max_pixels:
        raise ProtocolError(f"frame at t={t:.3f} is {width}x{height}; the most accepted is {max_pixels} pixels")
    return Media(kind, float(t), payload, (width, height))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's frame header, without decoding it.

    Raises:
        ProtocolError: no JPEG start marker, a corrupt marker chain, no frame header, a zero size.
    """
    if data[:2] != b"\xff\xd8":
        raise ProtocolError("frame payload is not a JPEG (no start-of-image marker)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ProtocolError(f"corrupt JPEG: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            if width == 0 or height == 0:
                raise ProtocolError(f"JPEG declares a {width}x{height} frame")
            return width, height
        if length < 2:
            raise ProtocolError(f"corrupt JPEG: segment length {length} at byte {i}")
        i += 2 + length
    raise ProtocolError("corrupt JPEG: no frame header")
