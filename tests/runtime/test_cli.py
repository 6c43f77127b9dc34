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
    (["analyze", "{media}/corrupt.mp4"], 2, "ValueError: {media}/corrupt.mp4: corrupt or unsupported media file"),
    (["analyze", "{media}/clip.mp4", "--task", "mood"], 2, "unknown task 'mood'; valid tasks"),
    (["analyze", "{media}/clip.mp4", "--task", "emotion:klingon"], 2, "label set 'klingon' is not one of mer, meld"),
    (["run", "--camera", "93"], 1, "ConnectionError: camera 93 could not be opened"),
    (["run", "--source", "{media}/clip.mp4", "--max-clips", "0"], 2, "--max-clips must be >= 1"),
    (["run", "--source", "{media}/clip.mp4", "--save", "{media}/out.gif"], 2, "unsupported video suffix '.gif'"),
    (["run", "--source", "{media}/clip.mp4", "--quant", "q9"], 2, "quant 'q9' is not in bundle"),
])
def test_errors_are_one_line(tiny_bundle, media_dir, args, code, message):
    args = [a.replace("{media}", str(media_dir)) for a in args]
    out = cli(*args, "--bundle", tiny_bundle, *FAST)
    assert out.returncode == code, (out.stdout, out.stderr)
    err = [line for line in out.stderr.splitlines() if line.startswith("emox-edge: error:")]
    assert len(err) == 1 and message.replace("{media}", str(media_dir)) in err[0], out.stderr
    assert "Traceback" not in out.stderr


def test_ctrl_c_flushes_outputs(tiny_bundle, media_dir, tmp_path):
    long = media.make_face_video(tmp_path / "long.mp4", 30.0, 10, (160, 120))
    jsonl = tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "emox_edge.cli.main", "-q", "run", "--source", str(long),
                             "--bundle", str(tiny_bundle), "--window", "0.5", "--jsonl", str(jsonl),
                             "--save", str(tmp_path / "live.mp4"), *FAST],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parts = list(tmp_path.glob(".live.jsonl.*.part"))
            if parts and len(parts[0].read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no result written within 120 s")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    records = [json.loads(l) for l in jsonl.read_text().splitlines()]
    assert len(records) >= 2 and all(r["error"] is None for r in records)
    assert (tmp_path / "live.mp4").stat().st_size > 0
    assert not list(tmp_path.glob(".*.part*"))
    assert len(stdout.strip().splitlines()) >= len(records)
