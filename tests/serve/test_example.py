"""examples/serve_client.py against a real server: streamed clip by clip, and uploaded whole."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("example_serve_client", REPO / "examples" / "serve_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serve_client_example(start_server, upload_files, capsys):
    server = start_server(queue_clips=4)
    example = _example()
    assert example.main([str(upload_files["clip"]), "--url", server.url, "--window", "2", "--task", "emotion"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip().startswith("0.0-  2.0 s  emotion=")
    stats = json.loads(lines[-1])
    assert stats["clips_analysed"] == 1 and stats["frames_received"] == 20 and stats["frames_dropped"] == 0
    assert example.main([str(upload_files["clip"]), "--url", server.url, "--upload", "--task", "emotion"]) == 0
    assert "emotion=" in capsys.readouterr().out
