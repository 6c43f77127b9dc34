"""The server with its analysis on real Ray Serve replicas (a local Ray instance, 2 CPUs; a perception
and a language replica): the same HTTP and WebSocket API as the single-process server, the same
answers (clips of several streams answered in one language batch included), and a lost replica that
costs one clip, not the session.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from emox_edge.client import Client, ServerError

from .conftest import answers, stream_answers


def test_ray_serve_answers_as_the_single_process_server(tiny_analysis, tiny_local, start_server, stream_media,
                                                         clip_file):
    ray_server = start_server(tiny_analysis.analyzers(), faces_fps=0, queue_clips=8)
    local_server = start_server([tiny_local], faces_fps=0, queue_clips=8)

    info = Client(ray_server.url).info()
    assert info["kind"] == Client(local_server.url).info()["kind"] == "nano-emox"
    assert info["scaleout"]["backend"] == "ray" and info["scaleout"]["replicas"] == {"perception": 1, "language": 1}
    assert httpx.get(ray_server.url + "/").status_code == 200, "the same web page"

    remote, spans, session = stream_answers(ray_server.url, stream_media)
    local, local_spans, _ = stream_answers(local_server.url, stream_media)
    assert spans == local_spans == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert remote == local and all(text for clip in remote for _, text in clip.values())
    assert session.errors == [] and session.stats["clips_analysed"] == 3

    uploaded = Client(ray_server.url).analyze(clip_file, ["emotion", "sentiment"])
    assert answers(uploaded) == answers(Client(local_server.url).analyze(clip_file, ["emotion", "sentiment"]))

    with pytest.raises(ServerError) as refused:  # a bad variant: refused by the ingress, as by the local server
        Client(ray_server.url).stream(["emotion:klingon"])
    assert "klingon" in refused.value.message

    corrupt = clip_file.parent / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
    refusals = []
    for server in (ray_server, local_server):  # the replica's MediaError, as the local one, with the file's name
        with pytest.raises(ServerError) as refused:
            Client(server.url).analyze(corrupt, "emotion")
        refusals.append((refused.value.status, refused.value.message))
    assert refusals[0] == refusals[1] and refusals[0][0] == 422 and "corrupt.mp4" in refusals[0][1]
    assert "emox-upload-" not in refusals[0][1] and "Traceback" not in refusals[0][1]


def test_faces_messages_and_the_session_tracker_go_through_the_replicas(tiny_analysis, start_server, stream_media):
    """The session's face tracker lives in the ingress: it travels with each request and comes back."""
    from emox_edge.client import jpeg
    from emox_edge.faces import FaceTracker

    server = start_server(tiny_analysis.analyzers(), faces_fps=5.0, queue_clips=8)
    frames, times, audio = stream_media
    with Client(server.url).stream(["emotion"], window_s=1.5) as session:
        session.feed(frames, times, audio, speed=4.0)
        session.end()
        results = list(session.results(timeout=180))
    assert len(results) == 2 and session.faces and session.errors == []
    assert all(m["width"] == 320 for m in session.faces)

    remote, tracker = tiny_analysis.analyzers()[0], FaceTracker()
    first = remote.detect_faces_jpeg(jpeg(frames[0]), t=0.0, tracker=tracker)
    second = remote.detect_faces_jpeg(jpeg(frames[1]), t=0.1, tracker=tracker)
    assert [f["id"] for f in first["faces"]] == [f["id"] for f in second["faces"]] == [1]
    assert tracker._next_id == 2 and len(tracker._tracks) == 1, "the replica's tracker state came back"


def test_the_remote_analyzer_takes_clips_and_refuses_directories(tiny_analysis, tiny_local, stream_media, tmp_path):
    from emox_edge.errors import BadInputError
    from emox_edge.media import Clip

    frames, times, audio = stream_media
    clip = Clip(frames[:10], times[:10], audio[:16000], start=0.0, end=1.0, source="test")
    remote = tiny_analysis.analyzers()[0]
    local = tiny_local.analyze(clip, ["emotion"])
    assert answers(remote.analyze(clip, ["emotion"]).to_dict()) == answers(local.to_dict())
    with pytest.raises(BadInputError, match="directory"):
        remote.analyze(tmp_path, ["emotion"])
    with pytest.raises(BadInputError, match="klingon"):
        remote.check_tasks(["emotion:klingon"])


def test_clips_of_several_streams_share_a_language_batch_and_answer_as_alone(tiny_analysis, tiny_local,
                                                                            stream_media):
    """Three clips perceived on the perception replica, sent to the language replica at once: one batch
    of three (``@serve.batch``), each answer the single-process analyzer's for that clip alone."""
    from emox_edge.media import Clip

    frames, times, audio = stream_media
    tasks = ["emotion", "sentiment", "intent"]
    clips = [Clip(frames[k:k + 10], times[k:k + 10], audio[1600 * k:1600 * k + 16000], start=k / 10, end=k / 10 + 1,
                  source=f"stream-{k}", subtitle=text)
             for k, text in ((0, ""), (10, "I lost my keys again."), (20, "What a lovely surprise!"))]
    perception, language = tiny_analysis.handles["perception"], tiny_analysis.handles["language"]
    perceived = [perception.perceive.remote(clip, (), "", None).result(timeout_s=120)[0][0] for clip in clips]
    before = len(tiny_analysis.batch_sizes())
    pending = [language.answer.remote(p, tasks) for p in perceived]
    results = [r.result(timeout_s=120)[0] for r in pending]
    assert 3 in tiny_analysis.batch_sizes()[before:], "the three clips were answered in one batch"
    alone = [tiny_local.analyze(clip, tasks) for clip in clips]
    assert [answers(r.to_dict()) for r in results] == [answers(r.to_dict()) for r in alone]
    assert [r.source for r in results] == ["stream-0", "stream-10", "stream-20"]


def _clip_ms(url: str, media, tasks) -> float:
    """How long one 0.5 s clip takes on a replica (``analysis_ms`` of its result message)."""
    frames, times, audio = media
    with Client(url).stream(tasks, window_s=0.5) as session:
        session.feed(frames[:5], times[:5], audio[:8000])
        session.end()
        return max(m["analysis_ms"] for m in session.messages(timeout=180) if m["type"] == "result")


@pytest.mark.slow
def test_a_killed_replica_costs_its_clip_and_is_replaced(tiny_analysis, start_server, stream_media):
    import ray

    tasks = ["emotion", "sentiment", "intent"]
    server = start_server(tiny_analysis.analyzers(), faces_fps=0, queue_clips=8)
    pool = server._server.config.app.state.pool
    frames, times, audio = stream_media
    half_clip_s = _clip_ms(server.url, stream_media, tasks) / 2000.0
    killed: list[str] = []

    def kill_mid_clip() -> None:  # half-way through a clip, kill both replicas' processes: whichever holds
        deadline = time.monotonic() + 60  # the clip then (perception or language) loses it
        while time.monotonic() < deadline and not killed:
            if pool.scheduler._busy:
                time.sleep(half_clip_s)  # earlier, Ray Serve would resend the request to the new replica
                names = [tiny_analysis.replica_names(role)[0] for role in ("perception", "language")]
                for name in names:
                    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
                killed.extend(names)
            time.sleep(0.002)

    with Client(server.url).stream(tasks, window_s=0.5) as session:
        killer = threading.Thread(target=kill_mid_clip, daemon=True)
        killer.start()
        session.feed(frames, times, audio)
        killer.join(60)
        session.end()
        started = time.monotonic()
        results = list(session.results(timeout=240))  # no hang: the session ends
    assert killed and time.monotonic() - started < 240
    stats = session.stats
    lost = [e for e in session.errors if "replica was lost" in e]
    assert lost and lost[0].startswith("clip 0.00-0.50 s: "), (session.errors, stats)
    assert stats["clips_failed"] == len(lost) == 1
    assert stats["clips_analysed"] == len(results) == stats["clips_queued"] - stats["clips_dropped"] - 1
    for role in ("perception", "language"):
        assert tiny_analysis.replica_names(role) not in ([], killed), f"Ray Serve replaced the {role} replica"
    again, _, second = stream_answers(server.url, (frames[:10], times[:10], audio[:16000]))
    assert len(again) == 1 and second.errors == []


@pytest.mark.slow
def test_the_scaleout_benchmark_runs(ray_instance, tiny_bundle):
    from benchmarks import bench_scaleout

    result = bench_scaleout.unit_scaleout({"bundle": str(tiny_bundle), "clients": 2, "seconds": 2.0, "window_s": 1.0,
                                           "workers": [1], "replicas": ["perception=1,language=1"],
                                           "cpus_per_replica": "0.5", "faces_fps": 2.0})
    local, remote = result["runs"]
    assert (local["backend"], remote["backend"]) == ("single process", "Ray Serve")
    assert local["clips"] >= 1 and remote["clips"] >= 1 and remote["latency_p95_s"] is not None
    assert "clips/s" in bench_scaleout.render({"result": result})


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_serve_ray_stops_on_ctrl_c_and_sigterm_as_the_single_process_server(tiny_bundle, sig, code, said):
    """``emox-edge serve --ray`` in its own process (its own local Ray instance): Ctrl-C exits 130 and
    SIGTERM 143, as the single-process server's process, after deleting both applications."""
    app = f"emox-test-signal-{code}"
    proc = subprocess.Popen([sys.executable, "-m", "emox_edge.cli.main", "serve", "--ray", "--bundle", str(tiny_bundle),
                             "--port", "0", "--n-threads", "1", "--num-cpus", "2", "--cpus-per-replica", "0.5",
                             "--app-name", app], stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "emox-edge serve: http" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(240), "".join(lines)
        proc.send_signal(sig)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    err = "".join(lines)
    assert proc.returncode == code, err
    assert f"emox-edge: {said}" in err and "Traceback" not in err
    assert f"Deleting app ['{app}-perception']" in err and f"Deleting app ['{app}-language']" in err
