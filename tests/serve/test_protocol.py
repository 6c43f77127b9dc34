"""The stream protocol's parsing, the windowing on client timestamps and the scheduler: no server."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from emox_edge.serve.options import ServeOptions, is_loopback
from emox_edge.serve.protocol import (
    KIND_JPEG,
    KIND_PCM16,
    Media,
    ProtocolError,
    jpeg_size,
    parse_binary,
    parse_session_update,
    parse_text,
)
from emox_edge.serve.windows import Windower
from emox_edge.serve.worker import Job, Scheduler


def _jpeg(width=32, height=24) -> bytes:
    import cv2

    return cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))[1].tobytes()


def _frame(t: float, data: bytes | None = None) -> Media:
    return parse_binary(struct.pack("<Bd", KIND_JPEG, t) + (data or _jpeg()))


def _audio(t: float, seconds: float, level: float = 0.3) -> Media:
    samples = (level * 32767 * np.sin(np.arange(int(seconds * 16000)) * 0.2)).astype("<i2")
    return parse_binary(struct.pack("<Bd", KIND_PCM16, t) + samples.tobytes())


def _check(tasks):
    from emox_edge.tasks import parse_tasks

    return parse_tasks(tasks)


def test_binary_messages_parse():
    frame = _frame(1.5, _jpeg(64, 48))
    assert (frame.kind, frame.t, frame.size) == (KIND_JPEG, 1.5, (64, 48))
    audio = _audio(2.0, 0.5)
    assert audio.kind == KIND_PCM16 and audio.samples.size == 8000 and audio.end == pytest.approx(2.5)


@pytest.mark.parametrize("data, message", [
    (b"\x01", "header bytes"),
    (struct.pack("<Bd", 7, 0.0) + b"xx", "unknown binary kind 0x07"),
    (struct.pack("<Bd", 1, float("nan")) + b"\xff\xd8", "not a finite number"),
    (struct.pack("<Bd", 1, 0.0) + b"GIF89a....", "not a JPEG"),
    (struct.pack("<Bd", 1, 0.0) + b"\xff\xd8\x00\x00\x00\x00", "no marker"),
    (struct.pack("<Bd", 1, 0.0) + b"\xff\xd8\xff\xd9", "no frame header"),
    (struct.pack("<Bd", 2, 0.0) + b"\x00\x01\x02", "odd number of bytes"),
])
def test_bad_binary_messages_are_refused_with_a_reason(data, message):
    with pytest.raises(ProtocolError, match=message):
        parse_binary(data)


def test_a_frame_declaring_too_many_pixels_is_refused_before_decoding():
    data = bytearray(_jpeg(32, 24))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)  # height, width
    assert jpeg_size(bytes(data)) == (20000, 20000)
    with pytest.raises(ProtocolError, match="20000x20000"):
        parse_binary(struct.pack("<Bd", 1, 0.0) + bytes(data))


def test_text_messages_and_session_update():
    with pytest.raises(ProtocolError, match="JSON object"):
        parse_text("not json")
    with pytest.raises(ProtocolError, match="valid types: session.update, input.end, stats"):
        parse_text(json.dumps({"type": "hello"}))
    config = parse_session_update({"type": "session.update", "tasks": "emotion,sentiment", "window_s": 2},
                                  check_tasks=_check, max_window_s=30)
    assert config.tasks == ("emotion", "sentiment") and config.window_s == 2.0 and not config.vad
    later = parse_session_update({"type": "session.update", "vad": True}, check_tasks=_check, max_window_s=30,
                                 current=config)
    assert later.tasks == config.tasks and later.vad


@pytest.mark.parametrize("update, message", [
    ({}, "must give tasks"),
    ({"tasks": []}, "non-empty list"),
    ({"tasks": ["feelings"]}, "valid tasks"),
    ({"tasks": ["emotion"], "window_s": 0.1}, "window_s=0.1"),
    ({"tasks": ["emotion"], "window_s": 99}, "window_s=99"),
    ({"tasks": ["emotion"], "window_s": True}, "window_s=True"),
    ({"tasks": ["emotion"], "vad": "yes"}, "vad='yes'"),
    ({"tasks": ["emotion"], "history": "user: hi"}, "history must be a list"),
    ({"tasks": ["emotion"], "subtitle": "x" * 5000}, "subtitle must be"),
    ({"tasks": ["emotion"], "windows": 3}, "unknown field"),
])
def test_bad_session_updates_are_refused(update, message):
    with pytest.raises(ProtocolError, match=message):
        parse_session_update({"type": "session.update", **update}, check_tasks=_check, max_window_s=30)


def test_fixed_windows_close_when_every_stream_passed_their_end():
    w = Windower(1.0)
    out = []
    for k in range(25):  # 2.5 s: frames at 10 fps, audio in 0.1 s chunks
        out += w.add(_frame(k / 10))
        out += w.add(_audio(k / 10, 0.1))
    assert [(win.start, win.end) for win in out] == [(0.0, 1.0), (1.0, 2.0)]
    assert [len(win.frames) for win in out] == [10, 10]
    assert all(win.audio.size == 16000 and np.count_nonzero(win.audio) > 15000 for win in out)
    rest = w.flush()
    assert len(rest) == 1 and rest[0].start == 2.0 and len(rest[0].frames) == 5


def test_a_stalled_stream_does_not_hold_windows_forever():
    w = Windower(1.0)
    w.add(_audio(0.0, 0.2))  # the audio stops here
    closed = []
    for k in range(16):
        closed += w.add(_frame(k / 10))
    assert [(win.start, win.end) for win in closed] == [(0.0, 1.0)]  # closed 0.5 s past its end


def test_late_backwards_and_gaps():
    w = Windower(1.0)
    for k in range(12):
        w.add(_frame(k / 10))
    with pytest.raises(ProtocolError, match="must increase"):
        w.add(_frame(0.5))
    w.add(_audio(0.2, 0.1))  # ends before the open window [1.0, 2.0): late, counted, not an error
    assert w.counters.audio_late_s == pytest.approx(0.1)
    w.add(_audio(1.6, 0.1))
    with pytest.raises(ProtocolError, match="before the previous chunk ended"):
        w.add(_audio(1.5, 0.1))
    windows = w.add(_frame(10.0)) + w.add(_audio(10.0, 0.1))  # a pause of 8 s, then media again
    assert [win.start for win in windows] == [1.0]
    assert [win.start for win in w.flush()] == [10.0]


def test_buffer_is_bounded_and_drops_the_oldest():
    w = Windower(30.0, max_buffer_bytes=10 * len(_jpeg()))
    for k in range(50):
        w.add(_frame(k / 100))
    assert w.counters.frames_dropped == 40 and w.counters.frames_received == 50
    assert [t for t, _ in w.flush()[0].frames][0] == pytest.approx(0.40)


def test_vad_cuts_at_a_pause_and_skips_silence():
    w = Windower(8.0, vad=True)
    out = []
    t = 0.0
    for seconds, level in ((1.5, 0.3), (0.6, 0.0), (1.0, 0.3), (0.6, 0.0), (2.0, 0.0)):
        for _ in range(int(round(seconds / 0.1))):
            out += w.add(_audio(t, 0.1, level))
            t = round(t + 0.1, 6)
    out += w.flush()
    assert len(out) == 2  # two utterances; the trailing silence is no clip
    assert 1.5 <= out[0].end <= 2.1 and out[1].start == out[0].end
    assert w.counters.clips_silent >= 1


def _job(owner, name, log):
    return Job(owner, lambda a: log.append(name), lambda v, e: None, meta={"name": name})


def test_scheduler_drops_the_oldest_and_takes_turns():
    s = Scheduler(queue_clips=2)
    log = []
    assert s.put(_job("a", "a1", log)) is None
    assert s.put(_job("a", "a2", log)) is None
    assert s.put(_job("a", "a3", log)).meta["name"] == "a1"  # full: the oldest waiting goes
    s.put(_job("b", "b1", log))
    assert s.put_slot(_job("a", "fa1", log)) is None
    assert s.put_slot(_job("a", "fa2", log)).meta["name"] == "fa1"  # a newer frame replaces the slot
    order = []
    while (job := s.take(0.01)) is not None:
        order.append(job.meta["name"])
        s.finish(job)
    assert order == ["fa2", "a2", "b1", "a3"]



def test_face_jobs_never_starve_waiting_clips():
    import time

    s = Scheduler(queue_clips=8)
    log = []

    def run(job, seconds):
        job.started_at = time.perf_counter() - seconds  # as if it had run that long
        s.finish(job)

    for k in range(4):
        s.put(_job("a", f"a{k}", log))
    order = []
    for k in range(8):
        s.put_slot(_job("a" if k % 2 else "b", f"f{k}", log))
        job = s.take(0.01)
        order.append(job.meta["name"])
        run(job, 0.1 if job.slot else 0.2)
    clips = sum(name.startswith("a") for name in order)
    assert order[0] == "f0" and clips == 4  # faces first, then at most a quarter of the time while clips wait
    assert s.take(0.01).meta["name"].startswith("f")  # no clip waits: faces freely


def test_scheduler_never_runs_two_jobs_of_one_owner_at_once():
    s = Scheduler(queue_clips=4)
    log = []
    s.put(_job("a", "a1", log))
    s.put(_job("a", "a2", log))
    first = s.take(0.01)
    assert s.take(0.01) is None
    s.finish(first)
    assert s.take(0.01).meta["name"] == "a2"
    assert s.remove("a") == 0


def test_options_refuse_a_public_address_without_a_token():
    from emox_edge.errors import BadInputError

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("box.local")
    with pytest.raises(BadInputError, match="refusing to listen on 0.0.0.0 without a token"):
        ServeOptions(host="0.0.0.0")
    assert ServeOptions(host="0.0.0.0", token="s3cret-token").token == "s3cret-token"
    with pytest.raises(BadInputError, match="max_streams"):
        ServeOptions(max_streams=0)
    with pytest.raises(BadInputError, match="token"):
        ServeOptions(token="short")


def test_workers_default_to_one_single_threaded_lite_analyzer_per_free_core(monkeypatch):
    import emox_edge.devices as devices
    from emox_edge.errors import BadInputError
    from emox_edge.serve.options import MAX_AUTO_WORKERS, auto_workers

    assert ServeOptions().workers is None and ServeOptions(workers=2).workers == 2
    with pytest.raises(BadInputError, match="workers"):
        ServeOptions(workers=0)
    for free, expected in ((1, (1, None)), (2, (2, 1)), (16, (MAX_AUTO_WORKERS, 1))):
        monkeypatch.setattr(devices, "default_threads", lambda free=free: free)  # the host's free cores
        assert auto_workers("lite", None) == expected
        assert auto_workers("nano-emox", None) == (1, None)  # a 3 GiB bundle is not copied per core
        assert auto_workers("lite", 2) == (1, 2)  # a thread count given: one analyzer with it


def test_the_first_window_is_spread_away_from_running_sessions():
    from emox_edge.serve.windows import spread_first_window

    assert spread_first_window(100.0, 2.0, []) == 2.0  # alone: a plain window
    assert spread_first_window(100.0, 2.0, [(4.0, 0.0)]) == 2.0  # peers with another window length don't count
    # a peer whose clips close at 0 (mod 2 s): the newcomer's close lands half a window away
    first = spread_first_window(100.0, 2.0, [(2.0, 0.0)])
    assert 1.0 <= first <= 3.0 and (100.0 + first) % 2.0 == pytest.approx(1.0)
    # three peers at 0, 0.5 and 1.0 s: the widest gap is 1.0-2.0, its middle 1.5
    first = spread_first_window(100.0, 2.0, [(2.0, 0.0), (2.0, 0.5), (2.0, 1.0)])
    assert (100.0 + first) % 2.0 == pytest.approx(1.5)


def test_a_longer_first_window_then_plain_ones():
    w = Windower(1.0, first_s=1.4)
    out = []
    for k in range(35):
        out += w.add(_frame(k / 10))
        out += w.add(_audio(k / 10, 0.1))
    assert [(round(win.start, 6), round(win.end, 6)) for win in out] == [(0.0, 1.4), (1.4, 2.4), (2.4, 3.4)]
    assert [len(win.frames) for win in out] == [14, 10, 10]
    assert [(round(win.start, 6), round(win.end, 6)) for win in w.flush()] == [(3.4, 3.5)]
