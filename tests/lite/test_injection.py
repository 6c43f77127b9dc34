"""Perception into the language core: text summaries and lexical embedding rows."""

from __future__ import annotations

import numpy as np
import pytest

from converters.lite.fer_onnx import FER_CLASSES
from emox_edge.lite.injection import PromptBuilder, chat_format_of
from emox_edge.lite.perception import fuse
from emox_edge.lite.prosody import VoiceAffect
from emox_edge.llm import label_grammar

LABELS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
QUESTION = "Which emotion is the person most likely feeling? Answer with one label from: " + ", ".join(LABELS) + "."


@pytest.fixture(scope="module")
def happy():
    face = {c: 0.0 for c in FER_CLASSES}
    face.update(happy=0.9, neutral=0.1)
    return fuse(face, VoiceAffect(0.6, 0.5, "high arousal", "positive tone", 1.0))


def test_text_mode_writes_the_summary(smollm2, happy):
    segs = PromptBuilder(smollm2, mode="text").segments(happy, QUESTION, subtitle="We won!")
    assert len(segs) == 1 and isinstance(segs[0], str)
    text = segs[0]
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    assert "happy 0.90" in text and 'The person said: "We won!"' in text


def test_lexical_mode_injects_mixed_word_rows(smollm2, happy):
    builder = PromptBuilder(smollm2, mode="lexical")
    segs = builder.segments(happy, QUESTION)
    rows = [s for s in segs if isinstance(s, np.ndarray)]
    assert len(rows) == 3  # face, voice arousal, voice valence
    assert all(r.shape == (1, smollm2.embedding_width) and r.dtype == np.float32 for r in rows)
    expected = 0.9 * builder.word_row("happy") + 0.1 * builder.word_row("neutral")
    np.testing.assert_allclose(rows[0][0], expected, rtol=1e-5, atol=1e-6)
    assert "happy 0.90" not in "".join(s for s in segs if isinstance(s, str))


def test_both_modes_reach_the_language_core(smollm2, happy):
    for mode in ("text", "lexical"):
        segs = PromptBuilder(smollm2, mode=mode).segments(happy, QUESTION)
        out = smollm2.generate(segs, max_new_tokens=4, grammar=label_grammar(LABELS), temperature=0.0)
        assert out.text in LABELS


def test_injection_misuse(smollm2, happy):
    with pytest.raises(ValueError, match="text.*lexical"):
        PromptBuilder(smollm2, mode="audio")
    with pytest.raises(ValueError, match="chat_format"):
        PromptBuilder(smollm2, chat_format="alpaca")
    with pytest.raises(ValueError, match="sum to zero"):
        PromptBuilder(smollm2).mix(["happy", "sad"], [0.0, 0.0])
    assert chat_format_of({"tokenizer.chat_template": "{{ '<|im_start|>' }}"}) == "chatml"
    assert chat_format_of({}) == "plain"
