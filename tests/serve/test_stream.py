"""The real server (uvicorn + FastAPI + the tiny bundle's models) driven through the real client."""

from __future__ import annotations

import contextlib
import json
import struct
import time

import httpx
import pytest

from emox_edge.client import Client, ServerError, jpeg


def _stream(server, **kwargs):
    return Client(server.url).stream(**{"tasks": ["emotion", "sentiment"], "window_s": 1.0, **kwargs})


def test_health_and_info(start_server):
    server = start_server()
    client = Client(server.url)
    assert client.health() == {"ok": True}
    info = client.info()
    assert info["kind"] == "nano-emox" and "emotion" in info["tasks"] and "versions" in info
    assert info["server"]["max_streams"] == 4 and info["server"]["protocol"] == 1


def test_a_stream_gives_one_result_per_window_and_faces(start_server, stream_media):
    server = start_server(faces_fps=5.0, queue_clips=4)  # media comes faster than real time: no drops here
    frames, times, audio = stream_media
    with _stream(server) as session:
        session.feed(frames, times, audio)
        session.request_stats()
        session.end()
        results = list(session.results(timeout=120))
    assert [(r["start"], r["end"]) for r in results] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    for result in results:
        assert result["error"] is None
        assert set(result["tasks"]) == {"emotion", "sentiment"}
        assert result["tasks"]["emotion"]["text"]
    assert session.errors == []
    assert session.faces, "faces messages for the overlay"
    assert all(m["width"] == 320 and m["height"] == 240 for m in session.faces)
    found = [face for m in session.faces for face in m["faces"]]
    assert found and all(0 <= f["box"][0] < f["box"][2] <= 320 and f["id"] is not None for f in found)
    end = session.stats
    # at most 5 frames a second of client time (15 in 3 s); a newer frame replaces one still waiting
    assert 1 <= end["faces_sent"] == len(session.faces) and end["faces_sent"] + end["faces_skipped"] <= 15
    assert [m["t"] for m in session.faces] == sorted({m["t"] for m in session.faces})
    assert end["type"] == "session.end" and end["frames_received"] == 30
    assert end["clips_analysed"] == 3 and end["frames_dropped"] == 0
    assert end["audio_received_s"] == pytest.approx(3.0, abs=0.01)


def test_bad_messages_get_an_error_and_the_session_goes_on(start_server, stream_media):
    server = start_server(faces_fps=0)
    frames, times, audio = stream_media
    with _stream(server) as session:
        session.send_raw(b"\x07" + struct.pack("<d", 0.0) + b"junk")          # unknown kind
        session.send_raw(b"\x01")                                               # too short
        session.send_raw(struct.pack("<Bd", 1, 0.05) + b"\xff\xd8 garbage")  # not a JPEG
        session.send_raw("{not json")
        session.send_raw(json.dumps({"type": "dance"}))
        session.send_raw(json.dumps({"type": "session.update", "tasks": ["nope"]}))
        session.send_frame(jpeg(frames[0]), 0.0)
        session.send_frame(jpeg(frames[0]), 0.0)                                # time does not increase
        bad = bytearray(jpeg(frames[1]))
        bad[len(bad) // 2:] = bytes(len(bad) - len(bad) // 2)                   # corrupt scan data
        session.send_frame(bytes(bad), 0.1)
        session.feed(frames[2:20], times[2:20], audio[:32000])
        session.end()
        results = list(session.results(timeout=120))
    assert len(results) == 2 and all(r["error"] is None for r in results)
    text = "\n".join(session.errors)
    for reason in ("unknown binary kind 0x07", "header bytes", "corrupt JPEG", "not decodable JPEGs", "JSON object",
                   "unknown message type 'dance'", "valid tasks", "must increase"):
        assert reason in text
    assert "Traceback" not in text
    assert session.stats["frames_received"] == 20


def test_media_before_session_update_is_refused(start_server):
    from websockets.sync.client import connect

    server = start_server()
    with connect(server.ws_url + "/v1/stream") as ws:
        ws.send(struct.pack("<Bd", 2, 0.0) + b"\x00\x00" * 100)
        assert "session.update" in json.loads(ws.recv(timeout=10))["message"]
        ws.send(json.dumps({"type": "input.end"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "error"


def test_backpressure_drops_the_oldest_clips_and_counts_them(start_server, stream_media):
    server = start_server(queue_clips=1, faces_fps=0)
    frames, times, audio = stream_media
    with Client(server.url).stream(["emotion", "sentiment"], window_s=0.5) as session:
        for rep in range(4):  # 12 s of media as fast as possible: 24 windows against one worker
            session.feed(frames, times + 3 * rep, audio, start=3.0 * rep)
        session.end()
        results = list(session.results(timeout=180))
    stats = session.stats
    assert stats["clips_dropped"] > 0 and stats["frames_dropped"] > 0 and stats["audio_dropped_s"] > 0
    assert stats["clips_analysed"] == len(results) == stats["clips_queued"] - stats["clips_dropped"]
    assert stats["frames_received"] == 120
    assert [r["start"] for r in results] == sorted(r["start"] for r in results)


def test_a_client_that_disconnects_mid_stream_leaves_the_server_healthy(start_server, stream_media):
    server = start_server(max_streams=1, queue_clips=4)
    frames, times, audio = stream_media
    session = _stream(server)
    session.feed(frames[:15], times[:15], audio[:24000])
    session._ws.socket.close()  # the network goes away: no close handshake
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the slot is freed once the server notices
        try:
            with _stream(server) as again:
                again.feed(frames[:10], times[:10], audio[:16000])
                again.end()
                assert len(list(again.results(timeout=120))) == 1
            break
        except ServerError as exc:
            assert exc.status == 503
            time.sleep(0.2)
    else:
        pytest.fail("the session slot was never freed")
    assert httpx.get(server.url + "/healthz").json() == {"ok": True}


def test_a_message_over_the_size_limit_closes_only_that_session(start_server, stream_media):
    server = start_server(max_message_kb=32)
    frames, times, audio = stream_media
    with _stream(server) as session:
        session.send_raw(struct.pack("<Bd", 2, 0.0) + b"\x00" * 40000)
        assert list(session.messages(timeout=10)) == []  # closed (1009), nothing more
    with _stream(server, window_s=1.0) as session:
        session.feed(frames[:10], times[:10], audio[:16000], chunk_s=0.05)
        session.end()
        assert len(list(session.results(timeout=60))) == 1


def _first_clip_ends(server, stream_media, sessions: int) -> list[float]:
    """Open ``sessions`` streams together, feed each the same media; the end of each one's first clip."""
    frames, times, audio = stream_media
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(_stream(server)) for _ in range(sessions)]
        for session in opened:
            session.feed(frames, times, audio)
            session.end()
        return [next(iter(session.results(timeout=120)))["end"] for session in opened]


def test_sessions_that_start_together_get_their_clips_closed_apart(start_server, stream_media):
    server = start_server(queue_clips=4)
    ends = _first_clip_ends(server, stream_media, 2)
    assert ends[0] == pytest.approx(1.0)  # the first session alone: a plain window
    assert 0.5 <= ends[1] <= 1.5 and abs(ends[1] - 1.0) >= 0.3  # the second closes half a window apart
    server = start_server(queue_clips=4, spread_clips=False)
    assert _first_clip_ends(server, stream_media, 2) == [pytest.approx(1.0)] * 2
