"""The per-stream speech stage: words cut by fixed live windows, flush, failures, dialogue memory."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.speech import DialogueMemory, SpeechOptions, SpeechStage, Transcriber, Transcript
from emox_edge.speech.features import resample

from .conftest import SR, wer, words

SENTENCE = "Could you please help me carry these boxes to the car?"


@pytest.fixture(scope="module")
def sentence_stream(say):
    """0.6 s of silence, the sentence (~3 s), 1.5 s of silence."""
    speech = say(SENTENCE)
    return np.concatenate([np.zeros(int(0.6 * SR), np.float32), speech, np.zeros(int(1.5 * SR), np.float32)])


def windows(audio: np.ndarray, seconds: float):
    step = int(seconds * SR)
    for i in range(0, len(audio), step):
        yield i / SR, audio[i : i + step]


def run_live(stage: SpeechStage, vad, audio: np.ndarray, seconds: float, *, flush: bool = True) -> list[Transcript]:
    out = []
    for start, clip in windows(audio, seconds):
        spans = vad.speech_segments(clip, SR)
        out.append(stage.transcribe_clip(clip, SR, spans, live=True, clip_start=start, clip_end=start + len(clip) / SR))
    if flush:
        out.append(stage.flush())
    return out


def test_a_sentence_cut_by_a_window_border_comes_out_once_and_whole(base, vad, sentence_stream):
    # the scenario really cuts the sentence: speech runs into the end of clip 1 and on from the start of clip 2
    (_, c1), (_, c2) = list(windows(sentence_stream, 2.0))[:2]
    assert vad.speech_segments(c1, SR)[-1][1] >= 2.0 - 0.1
    assert vad.speech_segments(c2, SR)[0][0] <= 0.1

    stage = SpeechStage(base, SpeechOptions())
    transcripts = run_live(stage, vad, sentence_stream, 2.0)
    texts = [t.text for t in transcripts]
    assert texts[0] == "", texts  # held back, not transcribed half
    assert sum(1 for t in texts if t) == 1, texts  # exactly one clip holds it
    # Whole: the same words as the uncut stream gives (one word of slack for the VAD's clip-wise
    # span edges), and close to what was said (espeak's "these boxes to" is heard as "the box
    # into" at times: 3 of 11 words).
    uncut = base.transcribe(sentence_stream, segments=vad.speech_segments(sentence_stream, SR), options=SpeechOptions())
    assert wer(words(uncut.text), words(texts[1])) <= 0.1, (uncut.text, texts)
    everything = [w for t in texts for w in words(t)]
    assert wer(words(SENTENCE), everything) <= 0.3, texts  # nothing duplicated or lost across clips
    assert len(everything) == len(words(uncut.text)) or wer(words(uncut.text), everything) <= 0.1
    # stream times: the words start in clip 1 (0.6 s), though clip 2 transcribed them
    assert transcripts[1].segments[0].start < 1.0
    assert stage.held_seconds == 0.0


def test_a_sentence_over_three_windows_comes_out_once(base, vad, sentence_stream):
    stage = SpeechStage(base, SpeechOptions())
    texts = [t.text for t in run_live(stage, vad, sentence_stream, 1.2)]
    assert sum(1 for t in texts if t) == 1, texts
    assert wer(words(SENTENCE), [w for t in texts for w in words(t)]) <= 0.3, texts


def test_carry_over_is_capped(base, vad, sentence_stream):
    stage = SpeechStage(base, SpeechOptions(), max_carry_s=0.5)
    transcripts = run_live(stage, vad, sentence_stream, 2.0)
    assert transcripts[0].text != ""  # the 1.4 s of speech at the end of clip 1 exceeds the cap: no hold


def test_flush_returns_what_is_held_at_the_end_of_a_stream(base, vad, sentence_stream):
    stage = SpeechStage(base, SpeechOptions())
    start, clip = next(windows(sentence_stream, 2.0))
    first = stage.transcribe_clip(clip, SR, vad.speech_segments(clip, SR), live=True, clip_start=0.0, clip_end=2.0)
    assert first.text == "" and stage.held_seconds > 1.0
    held = stage.flush()
    assert {"could", "you", "please"} <= set(words(held.text)), held.text
    assert stage.held_seconds == 0.0 and stage.flush().text == ""


def test_a_gap_in_the_stream_transcribes_the_held_audio_first(base, vad, sentence_stream, say):
    stage = SpeechStage(base, SpeechOptions())
    clip = sentence_stream[: 2 * SR]
    stage.transcribe_clip(clip, SR, vad.speech_segments(clip, SR), live=True, clip_start=0.0, clip_end=2.0)
    later = np.concatenate([say("Good morning."), np.zeros(SR, np.float32)])
    out = stage.transcribe_clip(later, SR, vad.speech_segments(later, SR), live=True, clip_start=10.0, clip_end=12.0)
    got = words(out.text)
    assert got[:3] == ["could", "you", "please"] and got[-2:] == ["good", "morning"], out.text
    assert out.segments[0].start < 2.0 and out.segments[-1].start >= 10.0


def test_files_are_not_carried_over(base, vad, sentence_stream):
    stage = SpeechStage(base, SpeechOptions())
    clip = sentence_stream[: 2 * SR]
    out = stage.transcribe_clip(clip, SR, vad.speech_segments(clip, SR), live=False, clip_start=0.0, clip_end=2.0)
    assert out.text != "" and stage.held_seconds == 0.0


def test_other_sample_rates_are_resampled(base, say):
    speech = say(SENTENCE)
    at48k = np.interp(np.arange(len(speech) * 3) / 3, np.arange(len(speech)), speech).astype(np.float32)
    stage = SpeechStage(base, SpeechOptions())
    out = stage.transcribe_clip(at48k, 48000, None, live=False, clip_start=0.0, clip_end=len(speech) / SR)
    assert wer(words(SENTENCE), words(out.text)) <= 0.3, out.text


def test_resampling_filters_what_would_alias():
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 10000 * t).astype(np.float32)  # above 8 kHz: would fold to 6 kHz
    voice = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    assert np.sqrt(np.mean(resample(tone, 48000)[200:-200] ** 2)) < 0.02
    assert np.sqrt(np.mean(resample(voice, 48000)[200:-200] ** 2)) > 0.69
    assert len(resample(voice, 48000)) == 16000 and resample(voice, 16000) is not None


class FailingTranscriber(Transcriber):
    """The real model, but decoding of one clip fails as CTranslate2 would (RuntimeError)."""

    def __init__(self, real: Transcriber) -> None:
        self.__dict__.update(real.__dict__)
        self.fail = True

    def transcribe(self, audio, *, segments=None, options=None):
        if self.fail:
            raise RuntimeError("CTranslate2: std::bad_alloc")
        return super().transcribe(audio, segments=segments, options=options)

    def close(self) -> None:  # the session fixture owns the model
        pass


def test_a_failing_clip_gives_an_empty_transcript_with_the_reason(base, say):
    failing = FailingTranscriber(base)
    stage = SpeechStage(failing, SpeechOptions())
    speech = say("Good morning.")
    bad = stage.transcribe_clip(speech, SR, None, live=False, clip_start=0.0, clip_end=1.0)
    assert bad.text == "" and "bad_alloc" in bad.error
    failing.fail = False  # the stream goes on
    good = stage.transcribe_clip(speech, SR, None, live=False, clip_start=1.0, clip_end=2.0)
    assert words(good.text) == ["good", "morning"] and good.error is None


def test_dialogue_memory_of_a_stream(base, say):
    stage = SpeechStage(base, SpeechOptions(history_turns=2))
    said = ["Good morning.", "Thank you very much.", "Can you help me?"]
    for i, text in enumerate(said):
        audio = np.concatenate([say(text), np.zeros(SR // 2, np.float32)])
        stage.transcribe_clip(audio, SR, None, live=True, clip_start=3.0 * i, clip_end=3.0 * i + len(audio) / SR)
    # the dialogue before the last clip, oldest first, bounded to 2 turns
    assert [words(t) for t in stage.history] == [["user", "good", "morning"], ["user", "thank", "you", "very", "much"]]
    assert len(stage.memory) == 2 and words(stage.memory.turns()[-1])[:3] == ["user", "can", "you"], stage.memory.turns()
    stage.reset()
    assert stage.memory.turns() == [] and stage.history == []


def test_dialogue_memory_rules():
    memory = DialogueMemory(3)
    for text in ("one", "  ", "", "two  words", "three", "four"):
        memory.add(text)
    assert memory.turns() == ["user: two words", "user: three", "user: four"]
    none = DialogueMemory(0)
    none.add("hello")
    assert none.turns() == []
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(BadInputError, match="max_turns"):
            DialogueMemory(bad)


def test_stage_misuse_is_refused(base):
    with pytest.raises(InputTypeError, match="Transcriber"):
        SpeechStage(object())
    with pytest.raises(BadInputError, match="language='xx'"):
        SpeechStage(base, SpeechOptions(language="xx"))
    with pytest.raises(BadInputError, match="max_carry_s"):
        SpeechStage(base, max_carry_s=-1)
    stage = SpeechStage(base)
    with pytest.raises(BadInputError, match="clip_end"):
        stage.transcribe_clip(np.zeros(SR, np.float32), SR, None, live=True, clip_start=2.0, clip_end=1.0)
    with pytest.raises(BadInputError, match="sample_rate"):
        stage.transcribe_clip(np.zeros(SR, np.float32), 0, None, live=True, clip_start=0.0, clip_end=1.0)
    with pytest.raises(InputTypeError, match="numpy"):
        stage.transcribe_clip(b"pcm", SR, None, live=True, clip_start=0.0, clip_end=1.0)
