"""Uploads, tokens, origins and limits of the real server: every refusal of docs/serve.md."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest

from emox_edge.client import Client, ServerError

TOKEN = "test-token-0123"


def _post(server, path, *, tasks="emotion", headers=None, **fields):
    files = {"file": (path.name, path.read_bytes())}
    return httpx.post(server.url + "/v1/analyze", data={"tasks": tasks, **fields}, files=files,
                      headers=headers or {}, timeout=120)


def test_analyze_an_uploaded_file(start_server, upload_files, tmp_path):
    import tempfile
    from pathlib import Path

    server = start_server()
    before = set(Path(tempfile.gettempdir()).glob("emox-upload-*"))
    result = Client(server.url).analyze(upload_files["clip"], ["emotion", "sentiment"], subtitle="hello there")
    assert isinstance(result, dict) and result["error"] is None
    assert set(result["tasks"]) == {"emotion", "sentiment"} and result["end"] > 1.5
    assert set(Path(tempfile.gettempdir()).glob("emox-upload-*")) == before  # the upload was deleted


@pytest.mark.parametrize("case, status, reason", [
    ("bad task", 422, "valid tasks"),
    ("bad variant", 422, "emotion"),
    ("corrupt", 422, "corrupt.mp4"),
    ("text file", 422, "notes.txt"),
    ("long name", 422, "x" * 150),
    ("unknown field", 422, "unknown form field 'color'"),
    ("no file", 422, "'file' is missing"),
    ("not multipart", 400, "multipart/form-data"),
    ("malformed", 400, "malformed multipart"),
])
def test_bad_uploads_get_a_json_error_without_a_traceback(start_server, upload_files, case, status, reason):
    server = start_server()
    url = server.url + "/v1/analyze"
    if case == "bad task":
        response = _post(server, upload_files["clip"], tasks="emotion,feelings")
    elif case == "bad variant":
        response = _post(server, upload_files["clip"], tasks="emotion:klingon")
    elif case == "corrupt":
        response = _post(server, upload_files["corrupt"])
    elif case == "text file":
        response = _post(server, upload_files["text"])
    elif case == "long name":  # 300 characters: the name is the client's, the temporary file the server's
        files = {"file": ("x" * 296 + ".mp4", upload_files["corrupt"].read_bytes())}
        response = httpx.post(url, data={"tasks": "emotion"}, files=files, timeout=60)
    elif case == "unknown field":
        response = _post(server, upload_files["clip"], color="red")
    elif case == "no file":
        response = httpx.post(url, files={"tasks": (None, "emotion")}, timeout=30)
    elif case == "not multipart":
        response = httpx.post(url, json={"tasks": "emotion"}, timeout=30)
    else:
        response = httpx.post(url, content=b"--xyz\r\ngarbage", timeout=30,
                              headers={"content-type": "multipart/form-data; boundary=abc"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and reason in body["error"]
    assert "Traceback" not in response.text and "emox-upload-" not in response.text


def test_an_upload_over_the_limit_gets_413(start_server, upload_files):
    server = start_server(max_upload_mb=0.001)  # about 1 KB
    response = _post(server, upload_files["clip"])
    assert response.status_code == 413 and "--max-upload-mb" in response.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\n\r\n"
        for _ in range(64):
            yield b"\0" * 1024
        yield b"\r\n--b--\r\n"

    response = httpx.post(server.url + "/v1/analyze", content=chunks(), timeout=30,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert httpx.get(server.url + "/healthz").json() == {"ok": True}


def test_a_token_is_required_everywhere_but_healthz_and_the_page(start_server, upload_files):
    server = start_server(token=TOKEN)
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-token-000"}, {"Authorization": TOKEN}):
        response = httpx.get(server.url + "/v1/info", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert _post(server, upload_files["clip"], headers=headers).status_code == 401
    for token in (None, "wrong-token-000"):
        with pytest.raises(ServerError) as refused:
            Client(server.url, token=token).stream(["emotion"])
        assert refused.value.status == 401
    client = Client(server.url, token=TOKEN)
    assert client.info()["kind"] == "nano-emox"
    with client.stream(["emotion"], window_s=1.0) as session:  # token in the header
        session.end()
        assert list(session.results(timeout=30)) == []
    from websockets.sync.client import connect

    with connect(server.ws_url + f"/v1/stream?token={TOKEN}") as ws:  # token in the query, as browsers do
        ws.send(json.dumps({"type": "stats"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "stats"


def test_more_streams_than_max_streams_get_503(start_server):
    server = start_server(max_streams=1)
    with Client(server.url).stream(["emotion"]):
        with pytest.raises(ServerError) as refused:
            Client(server.url).stream(["emotion"])
        assert refused.value.status == 503 and "--max-streams" in refused.value.message
    with Client(server.url).stream(["emotion"]) as session:  # the slot is free again
        session.end()


def test_without_a_token_only_this_machine_and_its_own_page_get_in(start_server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server = start_server()
    response = httpx.get(server.url + "/v1/info", headers={"Host": "evil.example:80"})  # DNS rebinding
    assert response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:  # another web site open in the user's browser
        connect(server.ws_url + "/v1/stream", origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(server.ws_url + "/v1/stream", origin=server.url):  # the server's own page
        pass


def test_serve_refuses_a_public_address_without_a_token(monkeypatch):
    from emox_edge.cli import serve
    from emox_edge.errors import BadInputError
    from emox_edge.serve.options import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--bundle", "/nonexistent"])
    with pytest.raises(BadInputError, match="without a token"):
        args.func(args)  # before any bundle is opened


def test_serve_through_the_command_line_exits_2_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    from emox_edge.cli import main

    if "serve" not in main.build_parser()._subparsers._group_actions[0].choices:
        pytest.skip("the serve command is not registered in emox_edge/cli/main.py yet")
    env = {k: v for k, v in os.environ.items() if k != "EMOX_EDGE_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "without a token" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_serve_without_the_serve_extra_says_how_to_install_it(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "sitecustomize.py"  # this process cannot import FastAPI, as after a plain install
    blocker.write_text("import sys\nsys.modules['fastapi'] = None\n")
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "serve", "--bundle", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'emox-edge[serve]'" in proc.stderr and "fastapi" in proc.stderr
    assert "Traceback" not in proc.stderr
