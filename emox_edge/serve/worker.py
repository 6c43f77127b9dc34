"""Analysis workers: each owns one analyzer (analyzers are not thread-safe) and runs queued jobs.

Work is queued per owner (a stream session, or one upload), bounded: ``put`` on a full queue drops
the oldest waiting job and hands it back to be counted. Face detection has one slot per owner that a
newer frame replaces. Face jobs are short and drive the overlay, so they go first, but while clips
wait they get at most ``FACES_SHARE`` of the workers' recent time, so that many sessions' faces
cannot starve the clips. Owners' queues are served in turn, and never two jobs of the same owner at
once, so a session's clips are answered in order.

Clips of several sessions are answered together (``BatchOptions``). A worker takes a clip, runs its
perception (faces, voice, the kind's encoders; ``Analyzer.perceive_clip``), then takes the clip every
other session has ready, perceives each, and hands all of them to the language core in one call
(``Analyzer.answer_clips``: one llama.cpp sequence per question in one context, shared prompt
prefixes decoded once, every answer decoded in the same step). Whatever becomes ready while the
round's clips are perceived goes in it (a session contributes at most one clip per round, and its
next clip waits until that one is answered, so its results stay in order); ``delay_ms`` may hold a
round open for clips about to arrive. A clip marked ``Perceived.wait=False`` (its session's tasks
needed no language core last time) is answered as soon as it is perceived. Perception and answering run on the same worker thread, one after the other: on a CPU both
use every core the analyzer was given, and running them side by side would put two thread pools on
the same cores (llama.cpp slows down many times when its threads outnumber free cores). A round
whose batched answer fails is answered again clip by clip, so a bad clip fails alone.

An analyzer without ``perceive_clip`` / ``answer_clips`` (``emox_edge.scaleout.RemoteAnalyzer``)
runs each clip on its own (``Job.run``).
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
    """``run(analyzer)`` on a worker thread, then ``done(value, error)`` there too (must be thread-safe).

    A clip that can be answered together with other sessions' clips also has ``perceive(analyzer)``:
    its first half, returning a ``Perceived`` (or a final value when there is nothing to answer).
    """

    owner: Hashable
    run: Callable[[Any], Any]
    done: Callable[[Any, BaseException | None], None]
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    slot: bool = False  # a face job (put_slot), not queued work
    perceive: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Perceived:
    """A clip after perception: ``answer(analyzer, [item, ...])`` answers it with others of a round and
    returns one value (or exception) per item, in order. ``wait=False``: answer it at once, alone (its
    tasks need no language core, so a round would only delay it)."""

    item: Any
    answer: Callable[[Any, list], list]
    wait: bool = True


@dataclass(frozen=True)
class BatchOptions:
    """How clips of several sessions are answered together.

    Attributes:
        max_clips: the most clips in one round (1: every clip on its own).
        delay_ms: how long a round waits for more clips once it holds one (0: only those already
            waiting); it ends early when it holds a clip of every session (``sessions()``).
    """

    max_clips: int = 8
    delay_ms: float = 0.0


class Scheduler:
    """Bounded per-owner queues, one face slot per owner, and fair turns between owners."""

    def __init__(self, *, queue_clips: int) -> None:
        self.queue_clips = queue_clips
        self._cond = threading.Condition()
        self._queues: dict[Hashable, collections.deque[Job]] = {}
        self._slots: dict[Hashable, Job] = {}
        self._turns: collections.deque[Hashable] = collections.deque()
        self._busy: set[Hashable] = set()
        self._held: set[Hashable] = set()  # owners whose perceived clip waits in a round: no next clip yet
        self._spent = {True: 0.0, False: 0.0}  # recent seconds of work: face slots, queued jobs
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

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
            return len(self._queues.get(owner, ())) + (owner in self._busy or owner in self._held)

    def take(self, timeout: float, *, batchable: bool = False) -> Job | None:
        """The next job for a worker (None after ``timeout`` seconds or once closed); with
        ``batchable`` only a queued clip that has ``perceive`` (never a face slot or an upload)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                job = self._next(batchable)
                if job is not None:
                    self._busy.add(job.owner)
                    job.started_at = time.perf_counter()
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return None

    def finish(self, job: Job, *, hold: bool = False) -> None:
        """``job`` is done (``hold``: its owner's next clip waits for ``release``, its answer is pending)."""
        with self._cond:
            self._busy.discard(job.owner)
            if hold:
                self._held.add(job.owner)
            self._spend(job.slot, time.perf_counter() - (job.started_at or time.perf_counter()))
            self._cond.notify_all()

    def release(self, owners, seconds: float = 0.0) -> None:
        """The held owners' clips were answered (in ``seconds`` of clip work)."""
        with self._cond:
            self._held.difference_update(owners)
            self._spend(False, seconds)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _spend(self, slot: bool, seconds: float) -> None:
        for kind in self._spent:
            self._spent[kind] *= SPENT_DECAY
        self._spent[slot] += seconds

    def _free(self, owner: Hashable) -> bool:
        return owner not in self._busy and owner not in self._held

    def _next(self, batchable: bool = False) -> Job | None:
        queued = any(queue and self._free(owner) for owner, queue in self._queues.items())
        slot_share = self._spent[True] / max(self._spent[True] + self._spent[False], 1e-9)
        if not batchable and (not queued or slot_share < FACES_SHARE):  # faces first, never starving clips
            for owner in list(self._slots):
                if owner not in self._busy:
                    return self._slots.pop(owner)
        for _ in range(len(self._turns)):
            owner = self._turns[0]
            self._turns.rotate(-1)
            queue = self._queues.get(owner)
            if not self._free(owner) or not queue or (batchable and queue[0].perceive is None):
                continue
            job = queue.popleft()
            if not queue:
                self._turns.remove(owner)
                del self._queues[owner]
            return job
        return None


@dataclass
class BatchStats:
    """Rounds of clips answered together, counted by the pool (read under its lock)."""

    rounds: int = 0
    clips: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "clips": self.clips, "largest": self.largest,
                "sizes": {str(k): v for k, v in sorted(self.sizes.items())}}


class WorkerPool:
    """One thread per analyzer, all taking jobs from one ``Scheduler``.

    ``sessions()`` says how many sessions may send clips (a round with ``delay_ms`` stops waiting
    once it holds one of each).
    """

    def __init__(self, analyzers: list[Any], *, queue_clips: int, batch: BatchOptions | None = None,
                 sessions: Callable[[], int] | None = None) -> None:
        self.analyzers = analyzers
        self.scheduler = Scheduler(queue_clips=queue_clips)
        self.batch = batch or BatchOptions()
        self.sessions = sessions or (lambda: self.batch.max_clips)
        self.jobs_done = 0
        self.busy_s = 0.0
        self._stats = BatchStats()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._threads = [threading.Thread(target=self._loop, args=(a,), name=f"emox-serve-worker-{i}", daemon=True)
                         for i, a in enumerate(analyzers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def new_owner(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def batch_stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.to_dict()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and wait for the running ones (the analyzers stay open: their owner closes them)."""
        self.scheduler.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _loop(self, analyzer: Any) -> None:
        batches = callable(getattr(analyzer, "perceive_clip", None)) and callable(getattr(analyzer, "answer_clips", None))
        while True:
            job = self.scheduler.take(0.5)
            if job is None:
                if self.scheduler.closed:
                    return
                continue
            if batches and job.perceive is not None:
                self._round(analyzer, job)
            else:
                self._run(analyzer, job)

    def _run(self, analyzer: Any, job: Job) -> None:
        value, error = None, None
        try:
            value = job.run(analyzer)
        except Exception as exc:  # reported to the job's owner; the worker goes on
            error = exc
        finally:
            self._finished(job)
        _deliver(job, value, error)

    def _finished(self, job: Job, *, hold: bool = False) -> None:
        self.scheduler.finish(job, hold=hold)
        with self._lock:
            self.jobs_done += 1
            self.busy_s += time.perf_counter() - (job.started_at or time.perf_counter())

    def _round(self, analyzer: Any, first: Job) -> None:
        """Perceive ``first`` and every clip ready meanwhile (one per owner), then answer them together
        (a clip that need not wait is answered at once)."""
        pending: list[tuple[Job, Any]] = []
        deadline = time.monotonic() + self.batch.delay_ms / 1000.0
        job: Job | None = first
        while job is not None:
            self._perceive(analyzer, job, pending)
            if pending and not pending[-1][1].wait:
                self._answer(analyzer, [pending.pop()])
            if not pending or len(pending) >= self.batch.max_clips:
                break
            wait = deadline - time.monotonic()
            if pending and len(pending) >= self.sessions():
                wait = 0.0  # a clip of every session already
            job = self.scheduler.take(max(wait, 0.0), batchable=True)
        if pending:
            self._answer(analyzer, pending)

    def _answer(self, analyzer: Any, pending: list[tuple[Job, "Perceived"]]) -> None:
        """Answer perceived clips together, release their owners, deliver the outcomes."""
        t0 = time.perf_counter()
        outcomes: dict[int, Any] = {}
        for answer in dict.fromkeys(p.answer for _, p in pending):  # one function in practice
            part = [i for i, (_, p) in enumerate(pending) if p.answer is answer]
            try:
                values = answer(analyzer, [pending[i][1].item for i in part])
            except Exception as exc:  # answer() isolates clips itself; this is a bug in it: fail the round
                log.error("answering %d clips failed", len(part), exc_info=exc)
                values = [exc] * len(part)
            outcomes.update(zip(part, values))
        spent = time.perf_counter() - t0
        self.scheduler.release([j.owner for j, _ in pending], spent)
        with self._lock:
            self.busy_s += spent
            self._stats.rounds += 1
            self._stats.clips += len(pending)
            self._stats.largest = max(self._stats.largest, len(pending))
            self._stats.sizes[len(pending)] += 1
        for i, (job, _) in enumerate(pending):
            outcome = outcomes[i]
            if isinstance(outcome, BaseException):
                _deliver(job, None, outcome)
            else:
                _deliver(job, outcome, None)

    def _perceive(self, analyzer: Any, job: Job, pending: list) -> None:
        value, error = None, None
        try:
            value = job.perceive(analyzer)
        except Exception as exc:  # this clip fails alone
            error = exc
        held = error is None and isinstance(value, Perceived)
        self._finished(job, hold=held)
        if held:
            pending.append((job, value))
        else:
            _deliver(job, value, error)


def _deliver(job: Job, value: Any, error: BaseException | None) -> None:
    try:
        job.done(value, error)
    except Exception:
        log.exception("delivering a result failed")
