"""Nano-EmoX's six tasks as its bundle manifest describes them: prompts, label sets, answer parsing.

The manifest sections ``prompt``, ``tasks`` and ``generation`` (format in docs/bundle-format.md;
the canonical copy is ``emox_edge/data/nano_emox.json``) hold every string; this module only
assembles them. ``segments`` splits the prompt template at its placeholder runs (spec §7.5) so the
language core can splice encoder outputs in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.results import TaskResult
from emox_edge.tasks import parsers
from emox_edge.tasks.requests import TaskRequest

CLOSED_SET = ("sentiment", "emotion", "intent")


def packaged_spec() -> dict[str, Any]:
    """The canonical Nano-EmoX prompt/task/generation description shipped with emox-edge."""
    text = resources.files("emox_edge").joinpath("data/nano_emox.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Question:
    """A task's question and the template it goes into."""

    request: TaskRequest
    template: str
    text: str
    labels: tuple[str, ...]
    answer_prefix: str  # the trained answer's fixed beginning ("" when none), used by grammars
    answer_suffix: str
    capitalise: bool = False
    valence_range: tuple[float, float] | None = None


class TaskBook:
    """Prompts and parsers of one bundle.

    Args:
        prompt, tasks: the manifest's ``prompt`` and ``tasks`` sections.
    """

    def __init__(self, prompt: Mapping[str, Any], tasks: Mapping[str, Any]) -> None:
        self.prompt = prompt
        self.tasks = tasks
        self.templates = dict(prompt.get("templates") or {"default": prompt["template"]})
        self.placeholders = [(p["token"], int(p["slots"]), p["embeddings"]) for p in prompt["placeholders"]]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "TaskBook":
        """From a manifest's sections, falling back to the packaged description for missing ones."""
        spec = packaged_spec()
        return cls(manifest.get("prompt") or spec["prompt"], manifest.get("tasks") or spec["tasks"])

    # ---------------------------------------------------------------- questions
    def label_sets(self, task: str) -> list[str]:
        sets = self.tasks.get(task, {}).get("label_sets", {})
        return list(sets)

    def question(self, request: TaskRequest, *, subtitle: str = "", history: Sequence[str] = ()) -> Question:
        """The question of ``request`` (see ``TaskRequest`` for the variants).

        Raises:
            ValueError: an unknown variant (the message lists the valid ones).
        """
        task, variant = request.task, request.variant
        spec = self.tasks[task]
        if task == "sentiment":
            mode, _, rng = (variant or spec.get("default_prompt", "three_way")).partition(":")
            if mode not in spec["prompts"]:
                raise BadInputError(f"sentiment variant {mode!r} is not one of {', '.join(spec['prompts'])}")
            if mode == "valence":
                ranges = spec.get("valence_ranges", {})
                key = rng or spec.get("default_valence_range", "mosi")
                if key not in ranges:
                    raise BadInputError(f"valence range {key!r} is not one of {', '.join(ranges)}")
                low, high = (float(v) for v in ranges[key])
                text = spec["prompts"]["valence"].replace("{min}", _num(low)).replace("{max}", _num(high))
                return Question(request, "default", text, (), "The valence score is ", ".", valence_range=(low, high))
            prefix, suffix = _split_format(spec["answer_formats"]["three_way"], "{label}")
            return Question(request, "default", spec["prompts"]["three_way"], tuple(spec["labels"]), prefix, suffix)
        if task == "emotion":
            key = variant or spec.get("default_label_set", "mer")
            if key == "none":
                prefix, suffix = _split_format(spec["answer_formats"]["without_labels"], "{label}")
                return Question(request, "default", spec["prompt_without_labels"], (), prefix, suffix)
            labels = self._label_set(task, key)
            text = spec["prompt"].replace("{labels}", spec.get("label_separator", ",").join(labels))
            prefix, suffix = _split_format(spec["answer_formats"]["with_labels"], "{label}")
            return Question(request, "default", text, tuple(labels), prefix, suffix)
        if task == "intent":
            key = variant or spec.get("default_label_set", "mintrec")
            entry = self._label_set(task, key)
            text = spec["prompt"].replace("{candidate_labels}", entry["candidate_labels"])
            return Question(request, "default", text, tuple(entry["labels"]), "", "", capitalise=True)
        if task == "open_vocab_emotion":
            text = _pick(spec["prompts"], variant, spec.get("default_prompt", 0), task)
            prefix, suffix = _split_format(spec["answer_format"], "{labels}")
            return Question(request, "default", text, (), prefix, suffix)
        if task == "reason":
            return Question(request, "default", _pick(spec["prompts"], variant, spec.get("default_prompt", 0), task), (), "", "")
        if task == "empathize":
            context = "\n".join(history)
            text = spec["prompt"].replace("{context}", context).replace("{current_user_input}", subtitle)
            text += spec.get("prompt_suffix", "").replace("{current_user_input}", subtitle)
            return Question(request, spec.get("template", "avamerg"), text, (), "<think>", "")
        raise BadInputError(f"unknown task {task!r}")

    def _label_set(self, task: str, key: str):
        sets = self.tasks[task]["label_sets"]
        if key not in sets:
            extra = ", none" if task == "emotion" else ""
            raise BadInputError(f"{task} label set {key!r} is not one of {', '.join(sets)}{extra}")
        return sets[key]

    # ---------------------------------------------------------------- prompt segments
    def segments(self, question: Question, *, subtitle: str, history: Sequence[str],
                 embeddings: Mapping[str, np.ndarray]) -> list[str | np.ndarray]:
        """Text spans and encoder outputs in prompt order (spec §7.5).

        ``embeddings`` maps the manifest's placeholder ``embeddings`` names (frame_embeds, ...) to
        float32 ``[slots, width]`` arrays.

        Raises:
            ValueError: an encoder output is missing or has the wrong number of rows.
        """
        template = self.templates[question.template]
        fill = "\n".join(history) if question.request.task == "empathize" else subtitle
        text = template.replace("{subtitle}", fill).replace("{question}", question.text)
        parts: list[str | np.ndarray] = [text]
        for token, slots, name in self.placeholders:
            if name not in embeddings:
                raise BadInputError(f"no encoder output {name!r} for placeholder {token}")
            rows = np.asarray(embeddings[name], np.float32)
            if rows.ndim == 3 and rows.shape[0] == 1:
                rows = rows[0]
            if rows.ndim != 2 or rows.shape[0] != slots:
                raise BadInputError(f"{name} must be [{slots}, width] for {token}, got {rows.shape}")
            out: list[str | np.ndarray] = []
            for part in parts:
                if isinstance(part, str) and token in part:
                    before, after = part.split(token, 1)
                    out.extend([before, rows, after])
                else:
                    out.append(part)
            parts = out
        return [p for p in parts if not (isinstance(p, str) and p == "")]

    # ---------------------------------------------------------------- answers
    def grammar(self, question: Question) -> str | None:
        """A GBNF grammar forcing the trained answer format with one valid label (closed sets only)."""
        if question.request.task not in CLOSED_SET or not question.labels:
            return None
        from emox_edge.llm.grammar import gbnf_literal

        labels = [parsers.capitalise(l) if question.capitalise else l for l in question.labels]
        alts = " | ".join(gbnf_literal(l) for l in labels)
        parts = [gbnf_literal(question.answer_prefix) if question.answer_prefix else "", f"( {alts} )",
                 gbnf_literal(question.answer_suffix) if question.answer_suffix else ""]
        return "root ::= " + " ".join(p for p in parts if p) + "\n"

    def candidates(self, question: Question) -> list[str] | None:
        """Every valid answer of a closed-set question, spelled as trained (prefix, label, suffix);
        None for open questions. What likelihood scoring chooses from (the grammar's language)."""
        if question.request.task not in CLOSED_SET or not question.labels:
            return None
        labels = [parsers.capitalise(l) if question.capitalise else l for l in question.labels]
        return [f"{question.answer_prefix}{label}{question.answer_suffix}" for label in labels]

    def parse(self, question: Question, raw: str, *, timings: Mapping[str, float] | None = None) -> TaskResult:
        """Post-process the model's reply and read the task's answer out of it."""
        text = parsers.postprocess_reply(raw)
        task = question.request.task
        timings = dict(timings or {})
        if question.valence_range is not None:
            answer = parsers.parse_valence(text, low=question.valence_range[0], high=question.valence_range[1])
            return TaskResult(task, text, label=answer.label, valid=answer.valid, score=answer.score, timings=timings)
        if task in CLOSED_SET and question.labels:
            answer = parsers.parse_label(text, question.labels)
            return TaskResult(task, text, label=answer.label, valid=answer.valid, timings=timings)
        if task in ("open_vocab_emotion", "emotion"):
            empty = self.tasks.get("open_vocab_emotion", {}).get("empty_label", "neutral")
            labels = parsers.parse_open_vocab(text, empty_label=empty)
            return TaskResult(task, text, label=labels[0] if labels else None, labels=labels, timings=timings)
        if task == "empathize":
            pattern = self.tasks["empathize"].get("emotion_pattern", r"the emotion of the speaker is\s+(\w+)")
            answer = parsers.parse_empathy(text, emotion_pattern=pattern)
            return TaskResult(task, text, label=answer.emotion, think=answer.think, reply=answer.reply, timings=timings)
        return TaskResult(task, text, timings=timings)


def _split_format(fmt: str, field: str) -> tuple[str, str]:
    if field not in fmt:
        return "", ""
    before, after = fmt.split(field, 1)
    return before, after


def _pick(prompts: Sequence[str], variant: str | None, default: int, task: str) -> str:
    if variant is None:
        return prompts[int(default)]
    if not variant.isdigit() or not 0 <= int(variant) < len(prompts):
        raise BadInputError(f"{task} variant must be a prompt index 0..{len(prompts) - 1}, got {variant!r}")
    return prompts[int(variant)]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
