"""SpeechOptions: validation, the task rule, and the CLI flags derived from the dataclass."""

from __future__ import annotations

import argparse

import pytest

from emox_edge.cli.flags import add_flags, field_docs, from_args
from emox_edge.errors import BadInputError
from emox_edge.speech import SpeechOptions


def test_defaults_and_task_rule():
    options = SpeechOptions()
    assert (options.enabled, options.language, options.task, options.history_turns) == (True, None, None, 4)
    assert options.task_for("en") == "transcribe" and options.task_for("de") == "translate"
    assert SpeechOptions(task="transcribe").task_for("de") == "transcribe"
    assert SpeechOptions(task="translate").task_for("en") == "translate"


@pytest.mark.parametrize("kwargs, names", [
    ({"language": "German"}, "language='German'"),
    ({"language": ""}, "language=''"),
    ({"task": "summarize"}, "task='summarize'.*transcribe, translate"),
    ({"history_turns": -1}, "history_turns=-1"),
    ({"history_turns": 2.5}, "history_turns=2.5"),
    ({"enabled": "yes"}, "enabled='yes'"),
])
def test_bad_values_name_the_option_and_what_is_allowed(kwargs, names):
    with pytest.raises(BadInputError, match=names):
        SpeechOptions(**kwargs)


def test_cli_flags_come_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_flags(parser, SpeechOptions)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    assert {"--asr", "--no-asr", "--language", "--asr-task", "--history-turns"} <= flags
    args = parser.parse_args(["--no-asr", "--language", "de", "--asr-task", "transcribe", "--history-turns", "2"])
    assert from_args(SpeechOptions, args) == SpeechOptions(enabled=False, language="de", task="transcribe", history_turns=2)
    assert from_args(SpeechOptions, parser.parse_args([])) == SpeechOptions()
    with pytest.raises(SystemExit):
        parser.parse_args(["--asr-task", "summarize"])
    docs = field_docs(SpeechOptions)
    assert set(docs) == {"enabled", "language", "task", "history_turns"}
    assert "translate" in docs["task"] and "English" in docs["task"]


def test_flags_keep_their_names_when_nested_in_the_analyzer_options():
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Outer:
        """Outer.

        Attributes:
            speech: speech recognition.
        """

        speech: SpeechOptions = field(default_factory=SpeechOptions)

    parser = argparse.ArgumentParser()
    add_flags(parser, Outer)
    args = parser.parse_args(["--no-asr", "--language", "fr", "--history-turns", "0"])
    assert from_args(Outer, args).speech == SpeechOptions(enabled=False, language="fr", history_turns=0)
