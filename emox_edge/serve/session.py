"""One live ``/v1/stream`` session: its settings, its windows, its counters and its outgoing messages.

Everything here runs on the server's event loop, except the ``done`` callbacks of its jobs, which a
worker calls and which hop back to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable, Sequence

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.serve import jobs
from emox_edge.serve.options import ServeOptions
from emox_edge.serve.protocol import (
    KIND_JPEG,
    ProtocolError,
    SessionConfig,
    parse_binary,
    parse_session_update,
    parse_text,
)
from emox_edge.serve.windows import Window, Windower, spread_first_window
from emox_edge.serve.worker import Job, WorkerPool

log = logging.getLogger(__name__)

MAX_QUEUED_FACES = 16  # faces messages waiting to be sent; more are skipped (a slow client)


class StreamSession:
    """State of one WebSocket session. Feed it with ``on_text`` / ``on_binary``; send what ``outbox`` holds."""

    def __init__(self, *, pool: WorkerPool, options: ServeOptions, loop: asyncio.AbstractEventLoop,
                 check_tasks: Callable[[Sequence[str]], Sequence[Any]],
                 peers: Callable[[], Iterable["StreamSession"]] = tuple) -> None:
        from emox_edge.faces import FaceTracker

        self.id = pool.new_owner("stream")
        self.pool, self.options, self.loop, self._check_tasks = pool, options, loop, check_tasks
        self._peers = peers  # the server's other sessions (their clip phases)
        self.clip_phase: tuple[float, float] | None = None  # (window_s, when its clips close mod window_s)
        self.config: SessionConfig | None = None
        self.windower: Windower | None = None
        self.tracker = FaceTracker()  # face ids per session, not shared with other streams
        self.seen = jobs.SeenFaces()  # the overlay's analysed frames, reused by the clips' perception
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.finished = asyncio.Event()
        self.ending = False
        self.closed = False
        self.outstanding = 0
        self.counts = dict(clips_queued=0, clips_analysed=0, clips_dropped=0, clips_failed=0, frames_bad=0,
                           frames_in_dropped_clips=0, audio_in_dropped_clips_s=0.0, faces_sent=0, faces_skipped=0,
                           clips_batched=0)
        self._last_faces_t: float | None = None
        self._uses_core: bool | None = None  # whether the last clip's tasks needed the language core

    # ------------------------------------------------------------------ input
    def on_text(self, text: str) -> None:
        """Handle one text message. Raises ``ProtocolError`` for a bad one (the session goes on)."""
        message = parse_text(text)
        kind = message["type"]
        if kind == "stats":
            self.push(self.stats())
        elif kind == "session.update":
            config = parse_session_update(message, check_tasks=self._check_tasks,
                                          max_window_s=self.options.max_window_s, current=self.config)
            if self.config is None or (config.window_s, config.vad) != (self.config.window_s, self.config.vad):
                if self.windower is not None:
                    self._submit_all(self.windower.flush())
                self.windower = Windower(config.window_s, vad=config.vad)
                self.clip_phase = None
            if self.config is None or config.tasks != self.config.tasks:
                self._uses_core = None
            self.config = config
            self.push({"type": "session.updated", "session": self.id, "tasks": list(config.tasks),
                       "window_s": config.window_s, "vad": config.vad, "faces_fps": self.options.faces_fps,
                       "clip_frames": self.options.clip_frames})
        elif kind == "input.end":
            self._require_config()
            self.ending = True
            self._submit_all(self.windower.flush())
            self._check_finished()

    def on_binary(self, data: bytes) -> None:
        """Handle one frame or audio chunk. Raises ``ProtocolError`` for a bad one (the session goes on)."""
        self._require_config()
        if self.ending:
            raise ProtocolError("input.end was sent: no more media is accepted in this session")
        media = parse_binary(data)
        if self.windower.start is None and not self.windower.vad and self.options.spread_clips:
            self._place_first_window()
        windows = self.windower.add(media)
        if media.kind == KIND_JPEG:
            self._maybe_faces(media.t, media.payload)
        self._submit_all(windows)

    def _place_first_window(self) -> None:
        """Choose the first window's length so this session's clips close away from its peers' (server
        clock; ``spread_first_window``)."""
        now, window_s = time.monotonic(), self.windower.window_s
        peers = [p.clip_phase for p in self._peers() if p is not self and p.clip_phase is not None]
        first = spread_first_window(now, window_s, peers)
        self.windower.first_s = first
        self.clip_phase = (window_s, (now + first) % window_s)

    def _require_config(self) -> None:
        if self.config is None:
            raise ProtocolError("send {\"type\": \"session.update\", \"tasks\": [...]} before any media")

    # ------------------------------------------------------------------ work
    def _submit_all(self, windows: list[Window]) -> None:
        for window in windows:
            self._submit(window)

    def _submit(self, window: Window) -> None:
        config, source = self.config, f"stream:{self.id}"
        max_frames, tracker, seen = self.options.clip_frames, self.tracker, self.seen

        def run(analyzer):  # the session's own tracker: face ids never mix across streams
            return jobs.analyse_window(analyzer, window, config, source=source, max_frames=max_frames,
                                       tracker=tracker)

        # the first half of run, answered in a round with other sessions' clips; a clip whose tasks
        # needed no language core last time is answered at once (a round would only delay it)
        wait = self._uses_core is not False

        def perceive(analyzer):
            return jobs.perceive_window(analyzer, window, config, source=source, max_frames=max_frames,
                                        tracker=tracker, wait=wait, seen=seen)

        job = Job(self.id, run, lambda value, error: self._from_worker(self._clip_done, job, value, error),
                  meta={"frames": len(window.frames), "audio_s": window.audio.size / 16000.0,
                        "start": window.start, "end": window.end}, perceive=perceive)
        self.outstanding += 1
        self.counts["clips_queued"] += 1
        dropped = self.pool.scheduler.put(job)
        if dropped is not None:
            self.outstanding -= 1
            self.counts["clips_dropped"] += 1
            self.counts["frames_in_dropped_clips"] += dropped.meta["frames"]
            self.counts["audio_in_dropped_clips_s"] += dropped.meta["audio_s"]

    def _maybe_faces(self, t: float, data: bytes) -> None:
        fps = self.options.faces_fps
        if fps <= 0 or (self._last_faces_t is not None and t - self._last_faces_t < 1.0 / fps):
            return
        self._last_faces_t = t
        tracker, seen = self.tracker, self.seen

        def run(analyzer):
            return jobs.detect_faces(analyzer, data, t=t, tracker=tracker, seen=seen)

        job = Job(self.id, run, lambda value, error: self._from_worker(self._faces_done, job, value, error))
        if self.pool.scheduler.put_slot(job) is not None:
            self.counts["faces_skipped"] += 1

    def _from_worker(self, handler, job: Job, value: Any, error: BaseException | None) -> None:
        if not self.closed:
            self.loop.call_soon_threadsafe(handler, job, value, error)

    def _clip_done(self, job: Job, outcome: jobs.ClipOutcome | None, error: BaseException | None) -> None:
        self.outstanding -= 1
        span = f"{job.meta['start']:.2f}-{job.meta['end']:.2f} s"
        if outcome is not None and outcome.bad_frames:
            self.counts["frames_bad"] += len(outcome.bad_frames)
            first = outcome.bad_frames[0]
            self.push({"type": "error", "message": f"{len(outcome.bad_frames)} frame(s) of the clip {span} are not "
                                                   f"decodable JPEGs (first at t={first:.3f}); skipped"})
        if error is not None:
            self.counts["clips_failed"] += 1
            if isinstance(error, (BadInputError, InputTypeError)):  # the media's fault; anything else is a bug
                message = f"clip {span}: {error}"
            elif isinstance(error, ConnectionError):  # a remote analyzer's replica was lost (emox_edge.scaleout)
                log.warning("session %s, clip %s: %s", self.id, span, error)
                message = f"clip {span}: {error}"
            else:
                log.error("session %s, clip %s failed", self.id, span, exc_info=error)
                message = f"clip {span}: internal error ({type(error).__name__}), logged on the server"
            self.push({"type": "error", "message": message})
        elif outcome is not None and outcome.result:
            self.counts["clips_analysed"] += 1
            self.counts["clips_batched"] += outcome.batch > 1
            if not outcome.result.get("error"):
                self._uses_core = "answer_ms" in (outcome.result.get("timings") or {})
            queue_ms = ((job.started_at or job.queued_at) - job.queued_at) * 1000.0
            self.push({"type": "result", "result": outcome.result, "frames": outcome.frames,
                       "queue_ms": round(queue_ms, 1), "analysis_ms": round(outcome.analysis_ms, 1),
                       "batch": outcome.batch})
        self._check_finished()

    def _faces_done(self, job: Job, message: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None:
            log.warning("session %s: face detection failed: %s: %s", self.id, type(error).__name__, error)
        elif message is None:
            self.counts["frames_bad"] += 1
        elif self.outbox.qsize() < MAX_QUEUED_FACES:
            self.counts["faces_sent"] += 1
            self.push(message)
        else:
            self.counts["faces_skipped"] += 1

    def _check_finished(self) -> None:
        if self.ending and self.outstanding <= 0:
            self.finished.set()

    # ------------------------------------------------------------------ output
    def push(self, message: dict[str, Any]) -> None:
        """Queue a message for the client (event-loop thread only)."""
        if not self.closed:
            self.outbox.put_nowait(message)

    def stats(self) -> dict[str, Any]:
        c = self.windower.counters if self.windower is not None else None
        n = self.counts
        return {"type": "stats", "session": self.id,
                "frames_received": c.frames_received if c else 0,
                "frames_dropped": (c.frames_dropped if c else 0) + n["frames_in_dropped_clips"],
                "frames_late": c.frames_late if c else 0,
                "frames_bad": n["frames_bad"],
                "audio_received_s": round(c.audio_received_s, 3) if c else 0.0,
                "audio_dropped_s": round((c.audio_dropped_s if c else 0.0) + n["audio_in_dropped_clips_s"], 3),
                "audio_late_s": round(c.audio_late_s, 3) if c else 0.0,
                "clips_queued": n["clips_queued"], "clips_analysed": n["clips_analysed"],
                "clips_dropped": n["clips_dropped"], "clips_failed": n["clips_failed"],
                "clips_silent": c.clips_silent if c else 0, "clips_waiting": self.pool.scheduler.waiting(self.id),
                "faces_sent": n["faces_sent"], "faces_skipped": n["faces_skipped"],
                "clips_batched": n["clips_batched"], "batching": self.pool.batch_stats()}

    def close(self) -> None:
        """The connection is gone: drop the waiting work (a running clip finishes and is discarded)."""
        if not self.closed:
            self.closed = True
            self.pool.scheduler.remove(self.id)
