"""Options of the speech stage; the CLI derives ``--asr``, ``--language`` and ``--asr-task`` from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emox_edge.errors import BadInputError

TASKS = ("transcribe", "translate")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")  # Whisper's codes: "en", "de", "zh", "haw", "yue"


@dataclass(frozen=True)
class SpeechOptions:
    """Speech recognition: what was said becomes the subtitle of every language task.

    Attributes:
        enabled: transcribe the voiced parts of clips that have no subtitle, with the bundle's
            Whisper model. Turn it off to give the model no words.
        language: the code of the language spoken, e.g. en or de. None detects it for each utterance.
        task: transcribe (keep the language spoken) or translate (into English). None transcribes
            English and translates every other language, since Nano-EmoX reads English subtitles.
        history_turns: how many transcribed turns of a live session are kept as the dialogue
            history of the empathize task. 0 keeps none.
    """

    enabled: bool = field(default=True, metadata={"flag": "--asr"})
    language: str | None = field(default=None, metadata={"flag": "--language", "metavar": "CODE"})
    task: str | None = field(default=None, metadata={"flag": "--asr-task", "choices": TASKS})
    history_turns: int = field(default=4, metadata={"flag": "--history-turns", "metavar": "N"})

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise BadInputError(f"option speech enabled={self.enabled!r} is not allowed: True or False")
        if self.language is not None and not (isinstance(self.language, str) and _LANGUAGE_CODE.match(self.language)):
            raise BadInputError(f"option language={self.language!r} is not allowed: a lower-case language code "
                                f"such as en, de or zh, or None to detect it")
        if self.task is not None and self.task not in TASKS:
            raise BadInputError(f"option asr task={self.task!r} is not allowed: one of {', '.join(TASKS)}, "
                                f"or None (transcribe English, translate the rest)")
        if not (isinstance(self.history_turns, int) and not isinstance(self.history_turns, bool)
                and self.history_turns >= 0):
            raise BadInputError(f"option history_turns={self.history_turns!r} is not allowed: an integer >= 0")

    def task_for(self, language: str) -> str:
        """The Whisper task for speech in ``language``: the forced one, else transcribe only English."""
        if self.task is not None:
            return self.task
        return "transcribe" if language == "en" else "translate"
