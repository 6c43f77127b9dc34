"""A small synchronous client for ``emox-edge serve`` (needs ``pip install 'emox-edge[serve]'``).

    from emox_edge.client import Client

    client = Client("http://127.0.0.1:8765", token=None)
    print(client.analyze("talk.mp4", ["emotion", "sentiment"]))          # POST /v1/analyze

    with client.stream(["emotion"], window_s=2.0) as session:            # WS /v1/stream
        session.send_frame(jpeg_bytes, t=0.0)
        session.send_audio(pcm16_bytes, t=0.0)
        session.end()
        for result in session.results():                                 # ClipResult dicts
            print(result["start"], result["tasks"]["emotion"]["label"])
"""

from __future__ import annotations

import json
import queue
import struct
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from emox_edge.errors import EmoxEdgeError, MissingDependencyError

KIND_JPEG, KIND_PCM16 = 0x01, 0x02
_HEADER = struct.Struct("<Bd")
SAMPLE_RATE = 16000
INSTALL_HINT = "pip install 'emox-edge[serve]'"


class ServerError(EmoxEdgeError, RuntimeError):
    """The server refused a request; ``status`` is its HTTP status (0 for a refused WebSocket message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


def jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """A uint8 RGB frame [H, W, 3] as JPEG bytes."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode a frame of shape {rgb.shape} as JPEG")
    return data.tobytes()


def pcm16(audio: np.ndarray) -> bytes:
    """Float audio in [-1, 1] as PCM16 little-endian bytes."""
    return (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _message(response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


class Client:
    """Talks to one server. ``url`` is its HTTP address; ``token`` the server's ``--token``, if any."""

    def __init__(self, url: str = "http://127.0.0.1:8765", token: str | None = None, *, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _http(self):
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError(f"emox_edge.client needs httpx: {INSTALL_HINT}") from exc
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout)

    def _get(self, path: str) -> Any:
        with self._http() as http:
            response = http.get(path)
        if response.status_code != 200:
            raise ServerError(response.status_code, _message(response))
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._get("/healthz")

    def info(self) -> dict[str, Any]:
        """The server's bundle, kind, tasks and variants, device, versions and limits."""
        return self._get("/v1/info")

    def analyze(self, path: "str | Path", tasks: "Sequence[str] | str" = ("emotion",),
                subtitle: str | None = None) -> "dict[str, Any] | list[dict[str, Any]]":
        """Upload a video, audio or image file; returns its ClipResult dict (a list for several clips).

        Raises:
            ServerError: the server refused it (status 400, 401, 413, 422, 503, ...).
        """
        path = Path(path)
        data = {"tasks": tasks if isinstance(tasks, str) else ",".join(tasks)}
        if subtitle:
            data["subtitle"] = subtitle
        with self._http() as http, path.open("rb") as handle:
            response = http.post("/v1/analyze", data=data, files={"file": (path.name, handle)})
        if response.status_code != 200:
            raise ServerError(response.status_code, _message(response))
        return response.json()

    def stream(self, tasks: "Sequence[str] | str" = ("emotion",), window_s: float = 4.0, vad: bool = False, *,
               subtitle: str | None = None, history: Sequence[str] | None = None) -> "StreamSession":
        """Open a live session (``session.update`` sent and acknowledged).

        Raises:
            ServerError: the connection was refused (401, 403, 503) or the settings were (status 0).
        """
        update: dict[str, Any] = {"type": "session.update", "tasks": tasks if isinstance(tasks, str) else list(tasks),
                                  "window_s": window_s, "vad": vad}
        if subtitle:
            update["subtitle"] = subtitle
        if history:
            update["history"] = list(history)
        return StreamSession(self, update)


class StreamSession:
    """A live session: send media, then ``end()`` and read ``results()``. Made by ``Client.stream``."""

    def __init__(self, client: Client, update: dict[str, Any]) -> None:
        try:
            from websockets.exceptions import InvalidStatus
            from websockets.sync.client import connect
        except ImportError as exc:
            raise MissingDependencyError(f"emox_edge.client needs websockets: {INSTALL_HINT}") from exc
        import inspect

        url = "ws" + client.url[4:] + "/v1/stream"
        kwargs = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}  # websockets >= 17
        try:
            self._ws = connect(url, additional_headers=client.headers, max_size=2**24, open_timeout=30, **kwargs)
        except InvalidStatus as exc:
            body = exc.response.body or b""
            try:
                message = json.loads(body).get("error", "")
            except ValueError:
                message = body.decode("utf-8", "replace")[:200]
            raise ServerError(exc.response.status_code, message or "refused") from None
        self.faces: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stats: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self._inbox: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="emox-client-reader")
        self._reader.start()
        self._ws.send(json.dumps(update))
        while True:
            message = self._next(timeout=30.0)
            if message is None or message["type"] == "error":
                self.close()
                raise ServerError(0, message["message"] if message else "the server closed the session")
            if message["type"] == "session.updated":
                self.settings = message
                break

    def _read(self) -> None:
        try:
            for text in self._ws:
                self._inbox.put(json.loads(text))
        except Exception:  # the connection closed, cleanly or not
            pass
        finally:
            self._inbox.put(None)

    def _next(self, timeout: float | None = None) -> dict[str, Any] | None:
        message = self._inbox.get(timeout=timeout)
        if message is None:
            self._inbox.put(None)  # stays closed for later readers
        return message

    def send_frame(self, jpeg_bytes: bytes, t: float) -> None:
        """Send one JPEG frame taken at client time ``t`` (seconds)."""
        self._ws.send(_HEADER.pack(KIND_JPEG, float(t)) + bytes(jpeg_bytes))

    def send_audio(self, pcm16_bytes: bytes, t: float) -> None:
        """Send PCM16 little-endian mono 16 kHz audio whose first sample is at client time ``t``."""
        self._ws.send(_HEADER.pack(KIND_PCM16, float(t)) + bytes(pcm16_bytes))

    def send_raw(self, data: "bytes | str") -> None:
        """Send a message as is (for tests of the server's refusals)."""
        self._ws.send(data)

    def feed(self, frames: np.ndarray, frame_times: np.ndarray, audio: np.ndarray, *, start: float = 0.0,
             chunk_s: float = 0.1, speed: float | None = None) -> None:
        """Send RGB ``frames`` (at ``frame_times``) and float ``audio`` (16 kHz, from ``start``) in time
        order, audio in ``chunk_s`` chunks; ``speed=1.0`` paces them in real time, None as fast as possible."""
        step = max(int(chunk_s * SAMPLE_RATE), 1)
        items = [(float(t), 0, i) for i, t in enumerate(frame_times)]
        items += [(start + i / SAMPLE_RATE, 1, i) for i in range(0, audio.size, step)]
        items.sort()
        t0, wall0 = (items[0][0] if items else 0.0), time.perf_counter()
        for t, kind, i in items:
            if speed:
                delay = (t - t0) / speed - (time.perf_counter() - wall0)
                if delay > 0:
                    time.sleep(delay)
            if kind == 0:
                self.send_frame(jpeg(frames[i]), t)
            else:
                self.send_audio(pcm16(audio[i:i + step]), t)

    def request_stats(self) -> None:
        """Ask for the counters; they arrive as a ``stats`` message (kept in ``self.stats``)."""
        self._ws.send(json.dumps({"type": "stats"}))

    def end(self) -> None:
        """No more media: the server analyses the last clip, sends the results, then closes."""
        self._ws.send(json.dumps({"type": "input.end"}))

    def messages(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every message from the server until it closes the session (also kept: faces, errors, stats)."""
        while True:
            message = self._next(timeout)
            if message is None:
                return
            kind = message.get("type")
            if kind == "faces":
                self.faces.append(message)
            elif kind == "error":
                self.errors.append(message["message"])
            elif kind in ("stats", "session.end"):
                self.stats = message
            yield message
            if kind == "session.end":
                return

    def results(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The ClipResult dict of each clip, as they come, until the server ends the session."""
        for message in self.messages(timeout):
            if message.get("type") == "result":
                yield message["result"]

    def close(self) -> None:
        self._ws.close()
        self._reader.join(5.0)

    def __enter__(self) -> "StreamSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
