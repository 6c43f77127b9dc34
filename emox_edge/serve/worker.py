"""Analysis workers: each owns one analyzer (analyzers are not thread-safe) and runs queued jobs.

Work is queued per owner (a stream session, or one upload), bounded: ``put`` on a full queue drops
the oldest waiting job and hands it back to be counted. Face detection has one slot per owner that a
newer frame replaces. Face jobs are short and drive the overlay, so they go first, but while clips
wait they get at most ``FACES_SHARE`` of the workers' recent time, so that many sessions' faces
cannot starve the clips. Owners' queues are served in turn, and never two jobs of the same owner at once, so a
session's clips are answered in order.

Not in scope: batching the language core across sessions (several llama.cpp sequences in one
context); each job runs on its own. See docs/serve.md.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

log = logging.getLogger(__name__)

FACES_SHARE = 0.25  # while clips wait, face jobs get at most this share of the workers' recent time
SPENT_DECAY = 0.95  # per finished job: how fast "recent" forgets


@dataclass(eq=False)
class Job:
    """``run(analyzer)`` on a worker thread, then ``done(value, error)`` there too (must be thread-safe)."""

    owner: Hashable
    run: Callable[[Any], Any]
    done: Callable[[Any, BaseException | None], None]
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    slot: bool = False  # a face job (put_slot), not queued work


class Scheduler:
    """Bounded per-owner queues, one face slot per owner, and fair turns between owners."""

    def __init__(self, *, queue_clips: int) -> None:
        self.queue_clips = queue_clips
        self._cond = threading.Condition()
        self._queues: dict[Hashable, collections.deque[Job]] = {}
        self._slots: dict[Hashable, Job] = {}
        self._turns: collections.deque[Hashable] = collections.deque()
        self._busy: set[Hashable] = set()
        self._spent = {True: 0.0, False: 0.0}  # recent seconds of work: face slots, queued jobs
        self._closed = False

    def put(self, job: Job, *, limit: int | None = None) -> Job | None:
        """Queue ``job``; returns the oldest waiting job of its owner when that was dropped for it."""
        with self._cond:
            queue = self._queues.setdefault(job.owner, collections.deque())
            dropped = queue.popleft() if len(queue) >= (limit or self.queue_clips) else None
            queue.append(job)
            if job.owner not in self._turns:
                self._turns.append(job.owner)
            self._cond.notify()
            return dropped

    def put_slot(self, job: Job) -> Job | None:
        """Put ``job`` in its owner's face slot; returns the job it replaced (never run)."""
        job.slot = True
        with self._cond:
            replaced = self._slots.get(job.owner)
            self._slots[job.owner] = job
            self._cond.notify()
            return replaced

    def remove(self, owner: Hashable) -> int:
        """Forget an owner's waiting jobs (its session ended); returns how many were queued."""
        with self._cond:
            queue = self._queues.pop(owner, ())
            self._slots.pop(owner, None)
            if owner in self._turns:
                self._turns.remove(owner)
            return len(queue)

    def waiting(self, owner: Hashable) -> int:
        with self._cond:
            return len(self._queues.get(owner, ())) + (owner in self._busy)

    def take(self, timeout: float) -> Job | None:
        """The next job for a worker (None after ``timeout`` seconds or once closed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                job = self._next()
                if job is not None:
                    self._busy.add(job.owner)
                    job.started_at = time.perf_counter()
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return None

    def finish(self, job: Job) -> None:
        with self._cond:
            self._busy.discard(job.owner)
            for kind in self._spent:
                self._spent[kind] *= SPENT_DECAY
            self._spent[job.slot] += time.perf_counter() - (job.started_at or time.perf_counter())
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _next(self) -> Job | None:
        queued = any(queue and owner not in self._busy for owner, queue in self._queues.items())
        slot_share = self._spent[True] / max(self._spent[True] + self._spent[False], 1e-9)
        if not queued or slot_share < FACES_SHARE:  # face jobs first, but never starving queued work
            for owner in list(self._slots):
                if owner not in self._busy:
                    return self._slots.pop(owner)
        for _ in range(len(self._turns)):
            owner = self._turns[0]
            self._turns.rotate(-1)
            queue = self._queues.get(owner)
            if owner in self._busy or not queue:
                continue
            job = queue.popleft()
            if not queue:
                self._turns.remove(owner)
                del self._queues[owner]
            return job
        return None


class WorkerPool:
    """One thread per analyzer, all taking jobs from one ``Scheduler``."""

    def __init__(self, analyzers: list[Any], *, queue_clips: int) -> None:
        self.analyzers = analyzers
        self.scheduler = Scheduler(queue_clips=queue_clips)
        self.jobs_done = 0
        self.busy_s = 0.0
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._threads = [threading.Thread(target=self._loop, args=(a,), name=f"emox-serve-worker-{i}", daemon=True)
                         for i, a in enumerate(analyzers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def new_owner(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and wait for the running ones (the analyzers stay open: their owner closes them)."""
        self.scheduler.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _loop(self, analyzer: Any) -> None:
        while True:
            job = self.scheduler.take(0.5)
            if job is None:
                if self.scheduler._closed:
                    return
                continue
            value, error = None, None
            try:
                value = job.run(analyzer)
            except Exception as exc:  # reported to the job's owner; the worker goes on
                error = exc
            finally:
                self.scheduler.finish(job)
                with self._lock:
                    self.jobs_done += 1
                    self.busy_s += time.perf_counter() - (job.started_at or time.perf_counter())
            try:
                job.done(value, error)
            except Exception:
                log.exception("delivering a result failed")
