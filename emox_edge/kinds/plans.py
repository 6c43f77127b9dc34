"""How the tasks of one or many clips share the language core: a kind plans, the analyzer batches.

A bundle kind answers a task with either a finished ``TaskResult`` (no language core needed, or an
abstention) or an ``Ask``: the language-core requests the task needs and a ``finish`` that turns
their outputs into the result, or into a further ``Ask`` (empathize: the chain of thought, then the
reply after it). ``run_plans`` gathers the pending requests of every task of every clip into one
``LanguageCore.run_batch`` per round, so shared prompt prefixes are decoded once and all answers
are decoded in the same llama.cpp steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence, Union

from emox_edge.llm.batching import BatchRequest
from emox_edge.results import TaskResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ask:
    """Language-core work for one task: ``requests`` run in the next batch, then ``finish(outputs)``."""

    requests: Sequence[BatchRequest]
    finish: Callable[[list], Union[TaskResult, "Ask"]]


Step = Union[TaskResult, Ask]


def run_plans(core_of: Callable[[], object], steps: Sequence[Step],
              failed: Callable[[int, BaseException], TaskResult] | None = None) -> list[TaskResult]:
    """Run every ``Ask`` of ``steps`` to its ``TaskResult``, one ``run_batch`` per round.

    ``core_of()`` returns the language core (only called when some task needs it). A ``finish`` that
    raises makes ``failed(i, exc)`` the result of step i when given; otherwise the error propagates.
    Each result gets ``timings["total_ms"]``: from the start to when its answer was final.
    """
    t0 = time.perf_counter()
    results: list = list(steps)
    done_at = [0.0 if isinstance(s, TaskResult) else None for s in results]
    while True:
        pending = [i for i, s in enumerate(results) if isinstance(s, Ask)]
        if not pending:
            break
        requests = [r for i in pending for r in results[i].requests]
        outputs = core_of().run_batch(requests)
        k = 0
        for i in pending:
            ask = results[i]
            n = len(ask.requests)
            try:
                results[i] = ask.finish(outputs[k:k + n])
            except Exception as exc:
                if failed is None:
                    raise
                log.error("task %d failed: %s: %s", i, type(exc).__name__, exc)
                results[i] = failed(i, exc)
            k += n
            if isinstance(results[i], TaskResult):
                done_at[i] = (time.perf_counter() - t0) * 1000.0
    return [replace(r, timings={**r.timings, "total_ms": round(float(ms), 2)}) for r, ms in zip(results, done_at)]


def timings_of(*outputs) -> dict[str, float]:
    """The language-core timings of a task's outputs (prefill is the shared batch's)."""
    return {"prefill_ms": round(max(o.prefill_ms for o in outputs), 2),
            "decode_ms": round(sum(getattr(o, "decode_ms", 0.0) for o in outputs), 2),
            "n_prompt": float(sum(o.n_prompt for o in outputs)),
            "n_generated": float(sum(getattr(o, "n_generated", 0) for o in outputs))}
