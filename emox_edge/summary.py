"""Short readable text for results: one task's answer, one clip's line (used by ``line()`` and overlays)."""

from __future__ import annotations

from typing import Any


def task_summary(result: Any, *, width: int = 80) -> str:
    """A short text for one task: label(s), score, or the (shortened) reply."""
    if getattr(result, "abstained", False):
        return f"(abstained: {result.abstain_reason})"
    if result.task == "empathize":
        body = result.reply if result.reply is not None else result.text
        text = f"[{result.label}] {body}" if result.label else body
    elif result.task == "reason":  # its sentences are the answer; its label is the emotion they explain
        text = result.text
    elif result.labels:
        text = ", ".join(result.labels)
    elif result.score is not None:
        text = f"{result.score:+.2f} ({result.label})"
    elif result.label is not None:
        text = result.label + ("" if result.valid else " (not in label set)")
    else:
        text = result.text
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def summary_line(result: Any) -> str:
    span = f"{result.start:7.2f}-{result.end:7.2f}s"
    if result.error:
        return f"{span} ERROR {result.error}"
    parts = [f"{name}={task_summary(task)}" for name, task in result.tasks.items()]
    faces = f" faces={len(result.faces)}" if result.faces else ""
    heard = getattr(result, "transcript", None) or {}
    said = heard.get("text") or "" if heard.get("source") == "asr" else ""  # a given subtitle is not repeated
    if said:
        said = " ".join(said.split())
        parts.insert(0, 'said="' + (said if len(said) <= 60 else said[:57] + "...") + '"')
    total = result.timings.get("total_ms")
    timing = f" ({total / 1000:.1f}s)" if total is not None else ""
    return f"{span} " + " | ".join(parts) + faces + timing
