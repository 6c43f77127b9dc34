"""Outputs: a failed run never destroys an existing file, an output is never one of the inputs, and the
annotated video is H.264 with the source's audio (issues 17 and 11)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from emox_edge.errors import BadInputError
from emox_edge.output import JsonlWriter, VideoSaver, check_outputs_not_inputs
from emox_edge.results import ClipResult

from .conftest import bars, tone


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _result() -> ClipResult:
    return ClipResult(source="talk.wav", start=0.0, end=2.0, bundle="tiny", tasks={})


# ----------------------------------------------------------------------------- JSONL
def test_a_run_that_wrote_nothing_keeps_the_existing_jsonl(tmp_path, caplog):
    target = tmp_path / "results.jsonl"
    target.write_text('{"earlier": "results"}\n')
    for finish in (lambda w: w.close(), lambda w: w.abort(), lambda w: w.close(commit=True),
                   lambda w: (w.abort(), w.close())):
        writer = JsonlWriter(target)
        with caplog.at_level(logging.WARNING, logger="emox_edge.output"):
            finish(writer)
        assert target.read_text() == '{"earlier": "results"}\n'
        assert _leftovers(tmp_path) == []
    assert "left unchanged" in caplog.text


def test_jsonl_commits_results_and_close_is_idempotent(tmp_path):
    target = tmp_path / "results.jsonl"
    target.write_text("old\n")
    writer = JsonlWriter(target)
    writer.write(_result())
    writer.write_error("bad.mp4", "bad.mp4: corrupt or unsupported media file")
    assert target.read_text() == "old\n"  # nothing replaces the target before close
    assert writer.close() is True and writer.close() is True
    writer.abort()  # after a commit: nothing to undo
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines[0]["source"] == "talk.wav" and lines[1] == {"source": "bad.mp4",
                                                             "error": "bad.mp4: corrupt or unsupported media file"}
    with pytest.raises(ValueError, match="already closed"):
        writer.write(_result())


def test_a_line_interrupted_in_its_fsync_is_still_committed(tmp_path, monkeypatch):
    """SIGTERM raises in the main thread wherever it is: during the fsync of a line that the file already
    shows (the CI's failure of test_sigterm_commits_what_was_complete, on a busy disk), that line must count."""
    target = tmp_path / "results.jsonl"
    target.write_text("old\n")
    writer = JsonlWriter(target)

    def terminated(fd):
        raise KeyboardInterrupt("SIGTERM during fsync")

    monkeypatch.setattr(os, "fsync", terminated)
    with pytest.raises(KeyboardInterrupt):
        writer.write(_result())
    monkeypatch.undo()
    assert writer.close() is True
    assert json.loads(target.read_text())["source"] == "talk.wav"


def test_error_records_alone_never_replace_an_existing_file(tmp_path):
    fresh, existing = tmp_path / "fresh.jsonl", tmp_path / "existing.jsonl"
    existing.write_text("keep me\n")
    for target in (fresh, existing):
        writer = JsonlWriter(target)
        writer.write_error("bad.mp4", "corrupt")
        writer.close()
    assert json.loads(fresh.read_text()) == {"source": "bad.mp4", "error": "corrupt"}
    assert existing.read_text() == "keep me\n"
    empty = JsonlWriter(tmp_path / "empty.jsonl")
    assert empty.close(commit=True) is True and (tmp_path / "empty.jsonl").read_text() == ""  # explicit: may create


def test_an_output_name_too_long_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="output path too long"):
        JsonlWriter(tmp_path / ("r" * 300 + ".jsonl"))
    long_ok = tmp_path / ("r" * 240 + ".jsonl")  # fits the file system, though its temporary name is longer
    writer = JsonlWriter(long_ok)
    writer.write(_result())
    writer.close()
    assert long_ok.exists() and _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- outputs vs inputs
def test_an_output_that_is_an_input_is_refused(media, tmp_path):
    wav = media / "tone.wav"
    with pytest.raises(BadInputError, match=r"output .*tone.wav is the input .*tone.wav"):
        check_outputs_not_inputs([wav], [str(wav)])
    link = tmp_path / "link.wav"
    link.symlink_to(wav)
    hard = tmp_path / "hard.wav"
    os.link(wav, hard)
    for alias in (link, hard, media / "." / "tone.wav"):
        with pytest.raises(BadInputError, match="is the input"):
            check_outputs_not_inputs([None, alias], [wav])
    with pytest.raises(BadInputError, match="inside the input directory"):
        check_outputs_not_inputs([media / "results.jsonl"], [media])
    with pytest.raises(BadInputError, match="given twice"):
        check_outputs_not_inputs([tmp_path / "a.mp4", tmp_path / "a.mp4"], [wav])
    # cameras, URLs, arrays and missing paths are not files that could be overwritten
    check_outputs_not_inputs([tmp_path / "out.jsonl", tmp_path / "out.mp4"],
                             [0, "57", "rtsp://127.0.0.1/cam", np.zeros(3), tmp_path / "missing.mp4", wav, None])


# ----------------------------------------------------------------------------- annotated video
def _streams(path):
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        n_frames = sum(1 for _ in container.decode(video))
        info = {"video": video.codec_context.name, "frames": n_frames}
    if audio is not None:
        from emox_edge.capture.decode import read_audio

        info["audio"] = audio.codec_context.name
        info["samples"] = read_audio(path)
    return info


def test_video_is_h264_with_the_source_audio(tmp_path):
    from emox_edge.output_video import h264_codec

    assert h264_codec() == "libx264", "PyAV's wheels carry libx264"
    target = tmp_path / "out.mp4"
    saver = VideoSaver(target, fps=25)
    for k in range(50):  # 2 s of frames, audio added after them (the order run.py uses)
        saver.write(bars(k, 161, 121), t=k / 25)  # odd sizes are made even
    saver.add_audio(tone(1.0, 16000), 16000, 0.0)
    saver.add_audio(tone(1.0, 16000), 16000, 1.0)
    assert not target.exists()
    assert saver.close() is True and saver.close() is True
    info = _streams(target)
    assert info["video"] == "h264" and info["frames"] == 50
    assert info["audio"] == "aac" and abs(info["samples"].size - 32000) < 2048
    assert np.abs(info["samples"][4000:28000]).max() > 0.2  # the tone survived AAC
    assert _leftovers(tmp_path) == []


def test_audio_gaps_are_silence_so_sound_stays_in_sync(tmp_path):
    target = tmp_path / "gaps.mkv"
    saver = VideoSaver(target, fps=10)
    for k in range(30):
        saver.write(bars(k, 64, 48), t=k / 10)
    saver.add_audio(tone(1.0, 16000), 16000, 0.0)
    saver.add_audio(tone(1.0, 44100), 44100, 2.0)  # another rate: resampled to the first
    saver.close()
    samples = _streams(target)["samples"]
    assert abs(samples.size - 48000) < 2048
    assert np.abs(samples[18000:30000]).max() < 0.02  # 1-2 s: the gap
    assert np.abs(samples[34000:46000]).max() > 0.2


def test_a_failed_run_never_replaces_an_existing_video(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"the user's earlier video")
    nothing = VideoSaver(target)
    assert nothing.close() is False
    aborted = VideoSaver(target)
    aborted.write(bars(0, 64, 48))
    aborted.add_audio(tone(0.5, 16000), 16000, 0.0)
    aborted.abort()
    aborted.abort()
    assert aborted.close() is False
    assert target.read_bytes() == b"the user's earlier video"
    assert _leftovers(tmp_path) == []
    with pytest.raises(BadInputError, match=r"unsupported video suffix '.gif'; use one of .mp4"):
        VideoSaver(tmp_path / "out.gif")


def test_the_mpeg4_fallback_writes_a_playable_file(tmp_path):
    target = tmp_path / "fallback.avi"
    saver = VideoSaver(target, fps=10, codec="mpeg4")  # what a PyAV without libx264 writes
    for k in range(10):
        saver.write(bars(k, 64, 48))
    saver.add_audio(tone(1.0, 16000), 16000, 0.0)
    saver.close()
    info = _streams(target)
    assert info["video"] == "mpeg4" and info["frames"] == 10 and info["audio"] == "aac"
