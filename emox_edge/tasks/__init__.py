"""The six tasks: requests, Nano-EmoX prompts and grammars (``TaskBook``), and answer parsers."""

from emox_edge.tasks.book import CLOSED_SET, Question, TaskBook, packaged_spec
from emox_edge.tasks.parsers import (
    parse_empathy,
    parse_label,
    parse_open_vocab,
    parse_valence,
    postprocess_reply,
)
from emox_edge.tasks.requests import TaskRequest, parse_tasks

__all__ = [
    "CLOSED_SET",
    "Question",
    "TaskBook",
    "TaskRequest",
    "packaged_spec",
    "parse_empathy",
    "parse_label",
    "parse_open_vocab",
    "parse_tasks",
    "parse_valence",
    "postprocess_reply",
]
