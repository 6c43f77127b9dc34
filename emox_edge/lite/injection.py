"""How the lite bundle's perception reaches the language core: as text or as lexical embeddings.

Both go through the same path a Nano-EmoX bundle uses: a prompt of segments (text, token ids,
float32 embedding rows) given to ``emox_edge.llm.LanguageCore``.

- ``text``: the perception summary is written into the prompt ("facial expression: happy 0.82, ...").
- ``lexical``: each perception channel becomes one embedding row, the probability-weighted mix of the
  token embeddings of its class words (face: the 7 expression words; voice: calm/steady/excited and
  negative/neutral/positive), injected where the words would be.

benchmarks/bench_lite_injection.py measures which answers better; the winner is the bundle default
(``lite.injection`` in the manifest, see docs/lite-bundle.md).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.lite.perception import Perception
from emox_edge.lite.tables import table

INJECTION_MODES = ("text", "lexical")
CHAT_FORMATS = ("chatml", "plain")


def chat_format_of(metadata: Mapping[str, str]) -> str:
    """"chatml" when the GGUF's chat template uses <|im_start|> (Qwen2.5, SmolLM2), else "plain"."""
    template = metadata.get("tokenizer.chat_template", "")
    return "chatml" if "<|im_start|>" in template else "plain"


def _soft_weights(value: float) -> np.ndarray:
    """A value in [-1, 1] as weights over (low, middle, high) words."""
    v = float(np.clip(value, -1.0, 1.0))
    return np.array([max(0.0, -v), 1.0 - abs(v), max(0.0, v)], np.float64)


class PromptBuilder:
    """Builds the prompt segments of one question about one clip's perception.

    Raises (on construction):
        ValueError: ``mode`` or ``chat_format`` is not one of the accepted values.
    """

    def __init__(self, core, *, mode: str = "text", chat_format: str | None = None) -> None:
        if mode not in INJECTION_MODES:
            raise BadInputError(f"injection mode must be one of {INJECTION_MODES}, got {mode!r}")
        self.core = core
        self.mode = mode
        self.chat_format = chat_format or chat_format_of(core.metadata)
        if self.chat_format not in CHAT_FORMATS:
            raise BadInputError(f"chat_format must be one of {CHAT_FORMATS}, got {self.chat_format!r}")
        self._chat = table("chat")
        self._word_rows: dict[str, np.ndarray] = {}

    # -------------------------------------------------------------------------------- embeddings
    def word_row(self, word: str) -> np.ndarray:
        """Mean input embedding of the tokens of `` word`` (as it appears mid-sentence)."""
        if word not in self._word_rows:
            ids = self.core.tokenize(" " + word, special=False)
            self._word_rows[word] = self.core.token_embeddings(ids).astype(np.float64).mean(axis=0)
        return self._word_rows[word]

    def mix(self, words: Sequence[str], weights: Sequence[float]) -> np.ndarray:
        """One embedding row: sum_i w_i * row(word_i) / sum(w)."""
        weights = np.asarray(weights, np.float64)
        total = weights.sum()
        if total <= 0:
            raise BadInputError("soft word weights sum to zero")
        rows = np.stack([self.word_row(w) for w in words])
        return ((weights / total) @ rows).astype(np.float32)[None, :]

    def perception_segments(self, perception: Perception) -> list:
        if self.mode == "text":
            return [self._chat["perception_text"].format(summary=perception.summary())]
        words = table("soft_words")
        segs: list = [self._chat["perception_embedding_intro"]]
        if perception.expression:
            classes = list(perception.expression)
            segs.append(self.mix(classes, [perception.expression[c] for c in classes]))
        else:
            segs.append(" none visible")
        segs.append(self._chat["perception_embedding_voice"])
        if perception.voice is not None:
            segs.append(self.mix(words["arousal"], _soft_weights(perception.voice.arousal)))
            segs.append(self.mix(words["valence"], _soft_weights(perception.voice.valence)))
        else:
            segs.append(" no speech")
        segs.append(".")
        return segs

    # -------------------------------------------------------------------------------- prompt
    def segments(self, perception: Perception, question: str, *, subtitle: str = "",
                 history: Sequence[str] = (), assistant_prefix: str = "") -> list:
        """The whole prompt: system, user turn (history, perception, transcript, question), assistant start."""
        user: list = []
        if history:
            user.append("Earlier in the conversation:\n" + "\n".join(f"- {h}" for h in history) + "\n")
        user.extend(self.perception_segments(perception))
        said = self._chat["subtitle"].format(subtitle=subtitle.strip()) if subtitle.strip() else self._chat["no_subtitle"]
        user.append(f"\n{said}\n{question}")
        return self.chat(self._chat["system"], user, assistant_prefix=assistant_prefix)

    def chat(self, system: str, user: Sequence, *, assistant_prefix: str = "") -> list:
        """A system turn, a user turn of ``user`` segments and the assistant's turn opened, in the core's format."""
        if self.chat_format == "chatml":
            head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
            tail = f"<|im_end|>\n<|im_start|>assistant\n{assistant_prefix}"
        else:
            head = f"{system}\n\nUser: "
            tail = f"\nAssistant: {assistant_prefix}"
        return _merge_text([head, *user, tail])


def _merge_text(segments: list) -> list:
    """Join neighbouring strings so the prompt tokenizes as the model would see plain text."""
    out: list = []
    for seg in segments:
        if isinstance(seg, str) and out and isinstance(out[-1], str):
            out[-1] += seg
        else:
            out.append(seg)
    return out
