"""What the caller asks for: a task name with an optional variant ("intent:mintrec2", "emotion:meld",
"sentiment:valence", "sentiment:valence:sims", "open_vocab_emotion:2", "reason:1")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.results import TASKS


@dataclass(frozen=True)
class TaskRequest:
    """One task to answer.

    Attributes:
        task: one of ``emox_edge.results.TASKS``.
        variant: the label set (emotion: mer/meld/iemocap/none; intent: mintrec/mintrec2), the
            sentiment mode (three_way/valence[:range]), or a prompt index (open_vocab_emotion, reason).
    """

    task: str
    variant: str | None = None

    @classmethod
    def parse(cls, spec: "str | TaskRequest") -> "TaskRequest":
        """Parse "task[:variant]".

        Raises:
            ValueError: unknown task (the message lists the valid ones).
            TypeError: ``spec`` is not a string.
        """
        if isinstance(spec, TaskRequest):
            return spec
        if not isinstance(spec, str):
            raise InputTypeError(f"a task is a string such as 'emotion' or 'intent:mintrec2', got {type(spec).__name__}")
        name, _, variant = spec.strip().partition(":")
        name = name.strip().lower().replace("-", "_")
        if name not in TASKS:
            raise BadInputError(f"unknown task {spec!r}; valid tasks: {', '.join(TASKS)} (optionally 'task:variant'), or 'all'")
        return cls(name, variant.strip().lower() or None)

    def __str__(self) -> str:
        return self.task if self.variant is None else f"{self.task}:{self.variant}"


ALL = "all"


def parse_tasks(specs: "Iterable[str | TaskRequest] | str") -> list[TaskRequest]:
    """Parse a list of task specs (a single string may hold several, comma separated); "all" stands
    for the six tasks in their default variants."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    out = []
    for spec in specs:
        if isinstance(spec, str) and spec.strip().lower() == ALL:
            out.extend(TaskRequest(task) for task in TASKS)
        else:
            out.append(TaskRequest.parse(spec))
    if not out:
        raise BadInputError(f"no task given; valid tasks: {', '.join(TASKS)}")
    return out
