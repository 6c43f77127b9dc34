"""Every script in examples/ runs on generated media, with the tiny Nano-EmoX bundle and with the default
lite bundle (no --bundle: the examples' default)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["nano-emox", "lite"])
def bundle_args(request) -> list[str]:
    """``--bundle`` for the tiny Nano-EmoX bundle, or nothing: the default lite bundle."""
    if request.param == "lite":
        request.getfixturevalue("lite_bundle_dir")  # built (or found) once per session
        return []
    return ["--bundle", str(request.getfixturevalue("tiny_bundle"))]


def test_every_example_is_tested():
    tested = {"live_webcam", "analyze_file", "app_callback", "empathetic_dialogue",
              "serve_client"}  # serve_client: tests/serve, against a real server
    assert {p.stem for p in (REPO / "examples").glob("*.py")} == tested


def test_live_webcam(bundle_args, paced_capture, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    code = load("live_webcam").main([*bundle_args, "--window", "0.6", "--max-clips", "2",
                                     "--n-threads", "1"], camera_factory=paced_capture)
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("emotion=" in l and "sentiment=" in l for l in lines)
    assert paced_capture.made and paced_capture.made[0].delivered >= 15


def test_analyze_file_as_a_script(bundle_args, media_dir):
    out = subprocess.run([sys.executable, str(REPO / "examples" / "analyze_file.py"), str(media_dir / "clip.mp4"),
                          *bundle_args, "--subtitle", "We won!", "--n-threads", "1"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    import json

    payload = json.loads(out.stdout[: out.stdout.rindex("}") + 1])
    assert set(payload) == {"sentiment", "emotion", "open_vocab_emotion", "intent", "reason"}
    assert payload["intent"]["valid"] is True
    assert "faces: 1" in out.stdout


def test_app_callback(bundle_args, media_dir, capsys):
    assert load("app_callback").main([str(media_dir / "clip.mp4"), *bundle_args, "--n-threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("final mood: ") and out[-1].endswith("(2 updates)")  # 3 s in 1.5 s windows
    assert out[0].startswith("mood: ")


def test_empathetic_dialogue(bundle_args, media_dir, capsys):
    argv = [*bundle_args, "--n-threads", "1", str(media_dir / "short.mp4"), "I failed my exam.",
            str(media_dir / "clip.mp4"), "I studied for weeks."]
    assert load("empathetic_dialogue").main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "user: I failed my exam." and out[3] == "user: I studied for weeks."
    assert out[-1] == "2 turns"


def test_dialogue_turns_come_in_pairs(tiny_bundle):
    with pytest.raises(SystemExit):
        load("empathetic_dialogue").main(["--bundle", str(tiny_bundle), "only-a-clip.mp4"])


def test_the_runtime_never_imports_torch():
    code = ("import sys; import emox_edge.analyzer, emox_edge.api, emox_edge.kinds.nanoemox, emox_edge.kinds.lite, "
            "emox_edge.capture, emox_edge.output, emox_edge.cli.run, emox_edge.cli.analyze; "
            "bad = [m for m in ('torch', 'transformers', 'converters') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
