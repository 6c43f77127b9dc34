"""``ServeOptions``: how ``emox-edge serve`` listens and what it accepts; the CLI derives its flags from it.

Every value is checked when the options are made, so a bad one (or a public address without a token)
fails before any model is loaded, with a ``BadInputError`` naming the option and what is allowed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from emox_edge.errors import BadInputError

TOKEN_ENV = "EMOX_EDGE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine ("localhost", 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise BadInputError(f"option {name}={value!r} is not allowed: {allowed}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and what it accepts.

    Attributes:
        host: the address to listen on. Anything other than a loopback address needs a token.
        port: the TCP port to listen on (0 picks a free one).
        token: the secret every request must carry (HTTP "Authorization: Bearer TOKEN", WebSocket
            "?token=TOKEN" or the same header). Also read from the EMOX_EDGE_TOKEN environment variable,
            which keeps it out of the process list.
        max_streams: the most live WebSocket sessions at once; one more is refused with 503.
        max_upload_mb: the largest file POST /v1/analyze accepts, in MB; a larger one gets 413.
        max_message_kb: the largest WebSocket message, in KB; a larger one closes the session (1009).
        queue_clips: clips of one session waiting for analysis; when one more is ready the oldest
            waiting one is dropped and counted.
        workers: analyzers, each with its own copy of the models and its own thread, that share the
            queued work. None (``emox-edge serve``'s default): for a lite bundle with no --n-threads,
            one single-threaded worker per free physical core, at most 4 (two such workers kept up with
            four real-time streams on 2 cores where one two-threaded worker did not; docs/serve.md);
            otherwise 1.
        batch_clips: the most clips, one per session, whose tasks the language core answers together
            in one batch (one llama.cpp sequence per question); 1 answers every clip on its own.
        batch_delay_ms: how long a batch waits for other sessions' clips once it holds one (0: it
            takes the clips already waiting, which is all that streams with the same clip length
            need); it stops waiting once it holds a clip of every session. As Triton's
            max_queue_delay: latency traded for larger batches.
        spread_clips: a session with fixed windows gets a first window of half to one and a half
            windows, chosen so its clips close away from those of the sessions already running
            (``windows.spread_first_window``). Clients that start together would otherwise have all
            their clips close at the same instant and wait for each other's analysis (measured in
            docs/serve.md). Only the first clip's length changes.
        faces_fps: per session, the most frames a second given face detection for the faces messages
            (on the client's timestamps; 0 turns faces messages off).
        clip_frames: the most frames of a clip that are decoded and analysed, spread evenly over it.
        max_window_s: the longest window_s a session may ask for, in seconds.
    """

    host: str = field(default="127.0.0.1", metadata={"metavar": "ADDR"})
    port: int = field(default=8765, metadata={"metavar": "PORT"})
    token: str | None = field(default=None, metadata={"metavar": "TOKEN"})
    max_streams: int = field(default=4, metadata={"metavar": "N"})
    max_upload_mb: float = field(default=200.0, metadata={"metavar": "MB"})
    max_message_kb: float = field(default=1024.0, metadata={"metavar": "KB"})
    queue_clips: int = field(default=2, metadata={"metavar": "N"})
    workers: int | None = field(default=None, metadata={"metavar": "N"})
    batch_clips: int = field(default=8, metadata={"metavar": "N"})
    batch_delay_ms: float = field(default=0.0, metadata={"metavar": "MS"})
    spread_clips: bool = True
    faces_fps: float = field(default=4.0, metadata={"metavar": "FPS"})
    clip_frames: int = field(default=16, metadata={"metavar": "N"})
    max_window_s: float = field(default=30.0, metadata={"metavar": "S"})

    def __post_init__(self) -> None:
        _check(isinstance(self.host, str) and self.host.strip() != "", "host", self.host,
               "an address such as 127.0.0.1")
        _check(isinstance(self.port, int) and 0 <= self.port <= 65535, "port", self.port, "0-65535")
        _check(self.token is None or (isinstance(self.token, str) and len(self.token) >= 8 and self.token.isprintable()
                                      and " " not in self.token),
               "token", "***", "at least 8 printable characters without spaces")
        for name, minimum in (("max_streams", 1), ("queue_clips", 1), ("workers", 1), ("clip_frames", 1),
                              ("batch_clips", 1)):
            value = getattr(self, name)
            if name == "workers" and value is None:  # chosen when the bundle is known (auto_workers)
                continue
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name, value,
                   f"an integer >= {minimum}")
        for name in ("max_upload_mb", "max_message_kb", "max_window_s"):
            value = getattr(self, name)
            _check(_number(value) and value > 0, name, value, "a number > 0")
        _check(isinstance(self.spread_clips, bool), "spread_clips", self.spread_clips, "True or False")
        _check(_number(self.faces_fps) and 0 <= self.faces_fps <= 60, "faces_fps", self.faces_fps, "0-60")
        _check(_number(self.batch_delay_ms) and 0 <= self.batch_delay_ms <= 10000, "batch_delay_ms",
               self.batch_delay_ms, "0-10000")
        if self.token is None and not is_loopback(self.host):
            raise BadInputError(f"refusing to listen on {self.host} without a token: anyone who can reach it could "
                                f"use the camera stream and the models. Give --token (or set {TOKEN_ENV}), or bind "
                                "127.0.0.1")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_kb * 1024)


MAX_AUTO_WORKERS = 4


def auto_workers(kind: str, n_threads: int | None) -> tuple[int, int | None]:
    """``(workers, n_threads)`` when ``ServeOptions.workers`` is None: a lite bundle without a thread count
    gets one single-threaded analyzer per free physical core (at most ``MAX_AUTO_WORKERS``); anything
    else one analyzer with ``n_threads`` as given."""
    if kind != "lite" or n_threads is not None:
        return 1, n_threads
    from emox_edge.devices import default_threads

    workers = min(default_threads(), MAX_AUTO_WORKERS)
    return (workers, 1) if workers > 1 else (1, None)
