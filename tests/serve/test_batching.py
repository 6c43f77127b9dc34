"""Clips of several sessions answered together: one language-core batch per round, the same answers
as one session alone, per-session order, and a clip that fails alone (real server, real tiny bundle)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from emox_edge.client import Client, jpeg

TASKS = ["emotion", "sentiment"]


def _run_session(server, media, n_frames: int, out: dict, go: threading.Event | None = None) -> None:
    frames, times, audio = media
    with Client(server.url).stream(TASKS, window_s=1.0) as session:
        if go is not None:
            go.wait(30)
        session.feed(frames[:n_frames], times[:n_frames], audio[:n_frames * 1600])
        session.end()
        out["messages"] = [m for m in session.messages(timeout=120) if m["type"] == "result"]
        out["stats"] = session.stats
        out["errors"] = session.errors


def _answers(result: dict) -> dict:
    return {name: (task["text"], task.get("label"), task.get("valid")) for name, task in result["tasks"].items()}


def test_two_sessions_clips_are_answered_in_one_batch_as_one_session_alone(start_server, stream_media):
    # a round waits (up to 10 s) for a clip of every session, so the two sessions' clips meet however
    # the machine schedules the two clients; the same windows in both (no spreading) to compare answers
    server = start_server(faces_fps=0, queue_clips=4, batch_delay_ms=10000, spread_clips=False)
    alone: dict = {}
    _run_session(server, stream_media, 20, alone)
    assert [m["batch"] for m in alone["messages"]] == [1, 1]

    outs = [{}, {}]
    go = threading.Event()
    threads = [threading.Thread(target=_run_session, args=(server, stream_media, 20, out, go)) for out in outs]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(180)
    for out in outs:
        assert out["errors"] == []
        assert [(m["result"]["start"], m["result"]["end"]) for m in out["messages"]] == [(0.0, 1.0), (1.0, 2.0)]
        assert [m["batch"] for m in out["messages"]] == [2, 2], "each clip answered with the other session's"
        assert out["stats"]["clips_batched"] == 2 and out["stats"]["clips_analysed"] == 2
        for mine, reference in zip(out["messages"], alone["messages"]):
            assert mine["result"]["error"] is None
            assert _answers(mine["result"]) == _answers(reference["result"])
            for name, task in mine["result"]["tasks"].items():
                if task.get("score") is not None:
                    assert task["score"] == pytest.approx(reference["result"]["tasks"][name]["score"], abs=1e-3)
    batching = outs[0]["stats"]["batching"]
    assert batching["sizes"].get("2", 0) >= 2 and batching["largest"] == 2
    assert batching["rounds"] == batching["sizes"]["1"] + batching["sizes"]["2"]
    assert Client(server.url).info()["server"]["batching"]["sizes"] == batching["sizes"]


def test_batch_clips_1_answers_every_clip_on_its_own(start_server, stream_media):
    server = start_server(faces_fps=0, queue_clips=4, batch_clips=1, batch_delay_ms=2000, spread_clips=False)
    outs = [{}, {}]
    threads = [threading.Thread(target=_run_session, args=(server, stream_media, 10, out)) for out in outs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert [m["batch"] for out in outs for m in out["messages"]] == [1, 1]
    assert outs[0]["stats"]["batching"]["largest"] == 1


def _window(media, start: int, stop: int):
    from emox_edge.serve.windows import Window

    frames, times, audio = media
    pcm = (audio[start * 1600:stop * 1600] * 32767).astype(np.int16)
    return Window(float(times[start]), float(times[start]) + (stop - start) / 10.0,
                  [(float(times[k]), jpeg(frames[k])) for k in range(start, stop)], pcm)


def test_a_clip_that_fails_in_a_round_fails_alone(serve_analyzer, stream_media):
    """Perception failing (a task the bundle lacks) and the batched answer failing (an item the
    analyzer cannot answer) each fail one clip; the others of the round get their results."""
    from emox_edge.serve import jobs
    from emox_edge.serve.protocol import SessionConfig
    from emox_edge.serve.worker import BatchOptions, Job, WorkerPool

    good = SessionConfig(tasks=tuple(TASKS), window_s=1.0, vad=False)
    bad = SessionConfig(tasks=("no_such_task",), window_s=1.0, vad=False)
    pool = WorkerPool([serve_analyzer], queue_clips=4, batch=BatchOptions(max_clips=8, delay_ms=0))
    got: dict = {}
    finished = threading.Semaphore(0)

    def submit(name, config, window, wait=True):
        def perceive(analyzer):
            return jobs.perceive_window(analyzer, window, config, source=name, max_frames=8, wait=wait)

        def done(value, error):
            got[name] = (value, error)
            finished.release()

        pool.scheduler.put(Job(name, lambda a: None, done, perceive=perceive))

    # queued before the worker starts: one round; "d" need not wait for it (answered at once, alone)
    for name, config, wait in (("a", good, True), ("b", bad, True), ("d", good, False), ("c", good, True)):
        submit(name, config, _window(stream_media, 0, 10), wait)
    pool.start()
    try:
        for _ in range(4):
            assert finished.acquire(timeout=120)
    finally:
        pool.close()
    assert got["b"][1] is not None and "no_such_task" in str(got["b"][1])
    assert got["a"][0].batch == got["c"][0].batch == 2 and got["a"][0].result["tasks"]
    assert got["d"][0].batch == 1 and _answers(got["d"][0].result) == _answers(got["a"][0].result)
    assert pool.batch_stats()["sizes"] == {"1": 1, "2": 1}

    item = jobs.perceive_window(serve_analyzer, _window(stream_media, 10, 20), good, source="x", max_frames=8).item
    broken = jobs.PerceivedWindow(None, item.requests, [], 0, 0.0)  # nothing perceived: answer_clips raises
    first, second = jobs.answer_windows(serve_analyzer, [item, broken])
    assert isinstance(second, Exception)
    assert first.result["error"] is None and first.result["tasks"] and first.batch == 1  # answered alone


def test_batching_options_are_checked():
    from emox_edge.errors import BadInputError
    from emox_edge.serve import ServeOptions

    with pytest.raises(BadInputError, match="batch_clips"):
        ServeOptions(batch_clips=0)
    with pytest.raises(BadInputError, match="batch_delay_ms"):
        ServeOptions(batch_delay_ms=-1)
    with pytest.raises(BadInputError, match="batch_delay_ms"):
        ServeOptions(batch_delay_ms=60000)
    assert ServeOptions(batch_clips=1, batch_delay_ms=50).batch_clips == 1
