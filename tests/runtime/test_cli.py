"""``emox-edge run`` and ``emox-edge analyze`` as a user runs them (subprocesses), errors and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converters.testing import media

REPO = Path(__file__).resolve().parents[2]
FAST = ["--deterministic", "--n-threads", "1", "--n-ctx", "1024", "--max-new-tokens", "16"]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "emox_edge.cli.main", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_run_on_a_file_writes_lines_jsonl_and_video(tiny_bundle, media_dir, tmp_path):
    out = cli("-q", "run", "--source", media_dir / "clip.mp4", "--bundle", tiny_bundle, "--task", "emotion,intent:mintrec2",
              "--window", "1.0", "--max-clips", "2", "--jsonl", tmp_path / "r.jsonl", "--save", tmp_path / "r.mp4", *FAST)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("   0.00-   1.00s emotion=") and "intent=" in lines[0]
    assert "not in label set" not in out.stdout  # grammar-constrained
    records = [json.loads(l) for l in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["start"] for r in records] == [0.0, 1.0]
    assert records[0]["tasks"]["emotion"]["valid"] is True and records[0]["faces"]
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "r.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50  # 2 clips x 1 s x 25 fps, annotated
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.mp4"]  # no .part left


def test_run_show_without_display_is_headless(tiny_bundle, media_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "run", "--source", str(media_dir / "face.png"),
                          "--bundle", str(tiny_bundle), "--show", *FAST], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "no display available; running headless" in out.stderr
    assert len(out.stdout.strip().splitlines()) == 1


def test_run_without_a_source_falls_back_to_the_demo_clip(tiny_bundle, tmp_path):
    env = {**os.environ, "EMOX_EDGE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "run", "--bundle", str(tiny_bundle),
                          "--max-clips", "1", "--task", "intent", *FAST], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "camera 0 does not open: using the demo clip" in out.stderr
    assert out.stdout.startswith("   0.00-   4.00s intent=")
    # the demo fallback leaves an annotated video in the working directory
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "emox-demo-annotated.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 0
    cap.release()


def test_analyze_json(tiny_bundle, media_dir):
    out = cli("-q", "analyze", media_dir / "clip.mp4", "--bundle", tiny_bundle, "--task", "sentiment",
              "--task", "open_vocab_emotion", "--json", "--subtitle", "We did it!", *FAST)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["end"] == pytest.approx(3.0, abs=0.05) and payload["error"] is None
    assert payload["tasks"]["sentiment"]["label"] in ("positive", "negative", "neutral")
    assert payload["tasks"]["open_vocab_emotion"]["labels"]


def test_analyze_text_output(tiny_bundle, media_dir):
    out = cli("-q", "analyze", media_dir / "speech16.wav", "--bundle", tiny_bundle, "--task", "intent", *FAST)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].startswith("  intent: ")


@pytest.mark.parametrize("args, code, message", [
    (["analyze", "{media}/missing.mp4"], 2, "FileNotFoundError: {media}/missing.mp4"),
    (["analyze", "{media}/corrupt.mp4"], 2, "{media}/corrupt.mp4: corrupt or unsupported media file"),
    (["analyze", "{media}/clip.mp4", "--task", "mood"], 2, "unknown task 'mood'; valid tasks"),
    (["analyze", "{media}/clip.mp4", "--task", "emotion:klingon"], 2, "label set 'klingon' is not one of mer, meld"),
    (["run", "--camera", "93"], 2, "ConnectionError: camera 93 could not be opened"),
    (["run", "--source", "{media}/clip.mp4", "--max-clips", "0"], 2, "--max-clips must be >= 1"),
    (["run", "--source", "{media}/clip.mp4", "--save", "{media}/out.gif"], 2, "unsupported video suffix '.gif'"),
    (["run", "--source", "{media}/clip.mp4", "--quant", "q9"], 2, "quant='q9': bundle"),
    (["run", "--source", "{media}/clip.mp4", "--task", "emotion:nope"], 2, "label set 'nope' is not one of"),
    (["analyze", "{media}/clip.mp4", "--task", "emotion:nope"], 2, "label set 'nope' is not one of"),
    (["run", "--source", "{media}/clip.mp4", "--n-threads", "0"], 2, "n_threads=0 is not allowed: an integer >= 1"),
    (["run", "--source", "{media}/clip.mp4", "--n-threads", "-3"], 2, "n_threads=-3 is not allowed"),
    (["run", "--source", "{media}/clip.mp4", "--n-ctx", "1"], 2, "n_ctx=1 is not allowed: an integer >= 512"),
    (["run", "--source", "{media}/clip.mp4", "--max-new-tokens", "-1"], 2, "max_new_tokens=-1 is not allowed"),
    (["run", "--source", "{media}/clip.mp4", "--window", "0"], 2, "--window must be a number of seconds > 0"),
    (["analyze", "{media}/" + "x" * 300 + ".mp4"], 2, "File name too long"),
])
def test_errors_are_one_line(tiny_bundle, media_dir, args, code, message):
    args = [a.replace("{media}", str(media_dir)) for a in args]
    out = cli(args[0], "--bundle", tiny_bundle, *FAST, *args[1:])  # the case's flags win over FAST's
    assert out.returncode == code, (out.stdout, out.stderr)
    err = [line for line in out.stderr.splitlines() if line.startswith("emox-edge: error:")]
    assert len(err) == 1 and message.replace("{media}", str(media_dir)) in err[0], out.stderr
    assert "Traceback" not in out.stderr


def _interrupt_a_run(tmp_path, tiny_bundle, sig, *, min_lines: int, save: bool):
    """Start ``run`` on a 30 s video, send ``sig`` once ``min_lines`` results are in the .part file."""
    long = media.make_face_video(tmp_path / "long.mp4", 30.0, 10, (160, 120))
    jsonl = tmp_path / "live.jsonl"
    extra = ["--save", str(tmp_path / "live.mp4")] if save else []
    proc = subprocess.Popen([sys.executable, "-m", "emox_edge.cli.main", "-q", "run", "--source", str(long),
                             "--bundle", str(tiny_bundle), "--window", "0.5", "--jsonl", str(jsonl), *extra, *FAST],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parts = list(tmp_path.glob(".live.jsonl.*.part"))
            if parts and len(parts[0].read_text().splitlines()) >= min_lines:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no result written within 120 s")
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, stdout, stderr, jsonl


def test_ctrl_c_flushes_outputs(tiny_bundle, media_dir, tmp_path):
    proc, stdout, stderr, jsonl = _interrupt_a_run(tmp_path, tiny_bundle, signal.SIGINT, min_lines=2, save=True)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    records = [json.loads(l) for l in jsonl.read_text().splitlines()]
    assert len(records) >= 2 and all(r["error"] is None for r in records)
    assert (tmp_path / "live.mp4").stat().st_size > 0
    assert not list(tmp_path.glob(".*.part*"))
    assert len(stdout.strip().splitlines()) >= len(records)


def test_a_bug_exits_1_and_says_so(monkeypatch, capsys, media_dir):
    from emox_edge.cli import analyze
    from emox_edge.cli.main import main

    def buggy(args):
        return {}["total"]  # what a library bug looks like: not the user's fault

    monkeypatch.setattr(analyze, "run", buggy)
    assert main(["analyze", str(media_dir / "clip.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (a bug in emox-edge" in err[0] and "KeyError" in err[0] and "-v" in err[0]
    with pytest.raises(KeyError):  # -v shows the traceback
        main(["-v", "analyze", str(media_dir / "clip.mp4")])


def test_bad_input_exits_2_and_says_so_in_one_line(capsys, tmp_path):
    from emox_edge.cli.main import main

    assert main(["analyze", str(tmp_path / "nope.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emox-edge: error: FileNotFoundError")


def test_a_failed_run_keeps_an_existing_jsonl(tiny_bundle, media_dir, tmp_path):
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text('{"kept": true}\n')
    for extra in (["--source", str(media_dir / "corrupt.mp4")], ["--source", str(media_dir / "clip.mp4"),
                                                                 "--task", "emotion:nope"]):
        out = cli("run", *extra, "--bundle", tiny_bundle, "--jsonl", str(jsonl), *FAST)
        assert out.returncode == 2, out.stderr
        assert jsonl.read_text() == '{"kept": true}\n'
    empty = tmp_path / "empty-bundle"
    empty.mkdir()
    out = cli("run", "--source", str(media_dir / "clip.mp4"), "--bundle", empty, "--jsonl", str(jsonl), *FAST)
    assert out.returncode == 2 and jsonl.read_text() == '{"kept": true}\n'
    assert not list(tmp_path.glob(".*.part*"))


def test_an_output_that_is_an_input_is_refused(tiny_bundle, media_dir, tmp_path):
    import shutil

    talk = tmp_path / "talk.wav"
    shutil.copy(media_dir / "silence.wav", talk)
    before = talk.read_bytes()
    out = cli("run", "--source", str(talk), "--bundle", tiny_bundle, "--jsonl", str(talk), *FAST)
    assert out.returncode == 2 and "is the input" in out.stderr
    assert talk.read_bytes() == before


def test_sigterm_commits_what_was_complete(tiny_bundle, tmp_path):
    proc, stdout, stderr, jsonl = _interrupt_a_run(tmp_path, tiny_bundle, signal.SIGTERM, min_lines=1, save=False)
    assert proc.returncode == 143, stderr
    records = [json.loads(l) for l in jsonl.read_text().splitlines()]
    assert len(records) >= 1 and all(r["error"] is None for r in records)
    assert not list(tmp_path.glob(".*.part*"))
