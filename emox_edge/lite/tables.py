"""The lite bundle's constant tables (``emox_edge/data/lite.json``), read once."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Mapping

from emox_edge.errors import BadInputError

SENTIMENT_LABELS = ("positive", "negative", "neutral")


@functools.lru_cache(maxsize=None)
def lite_tables() -> Mapping[str, Any]:
    """The parsed ``lite.json`` (keys starting with "about" are documentation)."""
    text = resources.files("emox_edge").joinpath("data/lite.json").read_text(encoding="utf-8")
    return json.loads(text)


def table(name: str) -> dict[str, Any]:
    """One table of ``lite.json`` without its "about" entry."""
    return {k: v for k, v in lite_tables()[name].items() if k != "about"}


@functools.lru_cache(maxsize=None)
def _nano_tasks() -> Mapping[str, Any]:
    text = resources.files("emox_edge").joinpath("data/nano_emox.json").read_text(encoding="utf-8")
    return json.loads(text)["tasks"]


def nano_task(name: str) -> Mapping[str, Any]:
    """One task entry of Nano-EmoX's own task table (``data/nano_emox.json``)."""
    return _nano_tasks()[name]


@functools.lru_cache(maxsize=None)
def intent_labels(label_set: str = "mintrec") -> tuple[tuple[str, ...], str]:
    """(labels, candidate string) of an intent label set, from Nano-EmoX's own task table."""
    sets = nano_task("intent")["label_sets"]
    if label_set not in sets:
        raise BadInputError(f"unknown intent label set {label_set!r}; known: {', '.join(sorted(sets))}")
    return tuple(sets[label_set]["labels"]), sets[label_set]["candidate_labels"]
