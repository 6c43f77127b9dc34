"""Speech recognition inside the analyzer: the words spoken reach every language task's prompt.

Real Whisper base (CTranslate2, from registry packages), real espeak-ng speech, the tiny Nano-EmoX
bundle with a speech section added by the converters (``add_speech_section``), and the default lite
bundle on a PulseAudio null-sink microphone.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from converters.testing import media
from emox_edge.analyzer import Analyzer
from emox_edge.bundle import Bundle, write_manifest
from emox_edge.options import AnalyzerOptions
from emox_edge.speech import SpeechOptions

REQUEST = "Could you please help me carry these heavy boxes upstairs?"


@pytest.fixture(scope="module")
def nano_with_speech(tiny_bundle, tmp_path_factory):
    """The tiny Nano-EmoX bundle plus Whisper base, the way `convert bundle --asr base` adds it."""
    from converters.speech import add_speech_section

    out = tmp_path_factory.mktemp("asr") / "tiny-nano-emox-asr"
    shutil.copytree(tiny_bundle, out)
    manifest = dict(Bundle.open(out).manifest)
    body = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "created", "producer", "files")}
    body["speech"] = add_speech_section(out, "base")
    files = [str(p.relative_to(out)) for p in sorted(out.rglob("*")) if p.is_file() and p.name != "bundle.json"]
    write_manifest(out, body, files=files)
    return out


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spoken")
    return media.make_speech_wav(folder / "request.wav", REQUEST, 16000, 1, min_seconds=4.0)


def _options(**speech):
    return AnalyzerOptions(deterministic=True, max_new_tokens=12, n_ctx=1024, n_threads=1,
                           speech=SpeechOptions(**speech))


def test_the_words_spoken_reach_the_nano_emox_prompt(nano_with_speech, spoken, monkeypatch):
    with Analyzer.from_bundle(nano_with_speech, _options()) as analyzer:
        prompts = []
        run_batch = analyzer.core.run_batch
        monkeypatch.setattr(analyzer.core, "run_batch",
                            lambda requests, **kw: prompts.extend(r.segments for r in requests) or run_batch(requests, **kw))
        result = analyzer.analyze(spoken, ["intent", "emotion"])
    assert result.error is None and result.transcript["source"] == "asr"
    heard = result.transcript["text"].lower()
    for word in ("help", "carry", "boxes"):
        assert word in heard, heard
    assert result.transcript["language"] == "en" and result.timings["asr_ms"] > 0
    assert len(prompts) == 2
    for segments in prompts:  # the subtitle slot of both prompts holds the words
        text = "".join(s for s in segments if isinstance(s, str)).lower()
        assert "carry these heavy boxes" in text or "carry these boxes" in text, text
    assert 'said="' in result.line()


def test_a_given_subtitle_wins_and_asr_can_be_turned_off(nano_with_speech, spoken):
    with Analyzer.from_bundle(nano_with_speech, _options()) as analyzer:
        given = analyzer.analyze(spoken, ["emotion"], subtitle="We won the final!")
    assert given.transcript == {"text": "We won the final!", "source": "subtitle"}
    with Analyzer.from_bundle(nano_with_speech, _options(enabled=False)) as analyzer:
        off = analyzer.analyze(spoken, ["emotion"])
    assert off.transcript is None and "asr_ms" not in off.timings


def test_silence_gives_no_words(nano_with_speech, tmp_path):
    silent = media.make_silence_wav(tmp_path / "silence.wav", 3.0)
    with Analyzer.from_bundle(nano_with_speech, _options()) as analyzer:
        result = analyzer.analyze(silent, ["emotion"])
    assert result.transcript is None or result.transcript["text"] == ""


def test_a_language_the_model_lacks_is_refused_up_front(nano_with_speech):
    from emox_edge.errors import BadInputError

    with pytest.raises(BadInputError, match="language='xx'"):
        Analyzer.from_bundle(nano_with_speech, _options(language="xx"))


def test_the_live_microphone_gets_a_transcript(pulse_source, lite_bundle_dir, spoken):
    import threading

    stop = threading.Event()

    def speak() -> None:  # the null sink's monitor only delivers while something plays: keep talking
        while not stop.is_set():
            subprocess.run(["paplay", f"--device={pulse_source}", str(spoken)], timeout=30)

    options = AnalyzerOptions(deterministic=True, max_new_tokens=12, n_threads=1)
    speaker = threading.Thread(target=speak, daemon=True)
    heard, results = [], []
    with Analyzer.from_bundle(lite_bundle_dir, options) as analyzer:
        speaker.start()
        try:
            for result in analyzer.stream(None, ["emotion"], window_s=3.0, max_clips=8, source_options={"mic": True}):
                results.append(result)
                heard.append((result.transcript or {}).get("text", ""))
                if _heard_the_request(" ".join(heard).lower()):
                    break
        finally:
            stop.set()
            speaker.join(timeout=40)
    said = " ".join(heard).lower()
    assert _heard_the_request(said), (said, [r.error for r in results])
    assert all(r.error is None for r in results)
    assert np.isfinite([r.timings["total_ms"] for r in results]).all()


def _heard_the_request(said: str) -> bool:
    """"carry" and one more content word of REQUEST. Whisper hears espeak through the null sink as
    "box", "boxes" or "mocks" from window to window (all 8 windows "mocks" once, on a loaded machine),
    so no single word of it is required."""
    return "carry" in said and any(word in said for word in ("box", "heavy", "upstairs"))
