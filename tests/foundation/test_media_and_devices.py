import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from emox_edge.devices import DEVICES, physical_cores, resolve_device
from emox_edge.media import Clip


def _clip(**kw):
    base = dict(
        frames=np.zeros((2, 4, 4, 3), np.uint8),
        frame_times=np.array([0.0, 0.1]),
        audio=np.zeros(160, np.float32),
    )
    base.update(kw)
    return Clip(**base)


def test_clip_valid_and_duration():
    clip = _clip(start=1.0, end=3.5)
    assert clip.duration == 2.5


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(frames=np.zeros((2, 4, 4, 3), np.float32)), "uint8"),
        (dict(frames=np.zeros((2, 4, 4), np.uint8)), "uint8"),
        (dict(frame_times=np.array([0.0])), "frame_times"),
        (dict(audio=np.zeros((2, 160), np.float32)), "mono float32"),
        (dict(audio=np.zeros(160, np.int16)), "mono float32"),
        (dict(sample_rate=0), "sample_rate"),
    ],
)
def test_clip_rejects_bad_arrays(kw, match):
    with pytest.raises(ValueError, match=match):
        _clip(**kw)


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu").ort_providers[-1] == "CPUExecutionProvider"
    assert resolve_device("auto").name in {"cpu", "cuda", "metal"}
    assert physical_cores() >= 1


def test_resolve_device_rejects_unknown():
    with pytest.raises(ValueError, match="auto, cpu, cuda, metal"):
        resolve_device("tpu")
    assert DEVICES == ("auto", "cpu", "cuda", "metal")


def test_unavailable_device_falls_back_with_log(caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present: nothing to fall back from")
    with caplog.at_level("WARNING"):
        resolved = resolve_device("cuda")
    assert resolved.name == "cpu"
    assert "falling back to CPU" in caplog.text


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="busy_cpus reads Linux's /proc/stat")
def test_busy_cpus_sees_another_program_but_not_this_one():
    from emox_edge.devices import busy_cpus

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cpus(0.5) >= 0.6  # one core spinning in another process
    finally:
        spinner.kill()
        spinner.wait()
    baseline = busy_cpus(0.3)
    stop = threading.Event()

    def spin_here() -> None:
        while not stop.is_set():
            pass

    spin = threading.Thread(target=spin_here, daemon=True)
    spin.start()  # this process spinning is not "other programs"
    try:
        assert busy_cpus(0.3) < baseline + 0.5
    finally:
        stop.set()
        spin.join()


def test_default_threads_leaves_busy_cores_alone(monkeypatch, caplog):
    from emox_edge import devices

    monkeypatch.setattr(devices, "_threads_cache", [])
    monkeypatch.setattr(devices, "physical_cores", lambda: 4)
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(devices, "busy_cpus", lambda window_s=0.2: 1.6)
    with caplog.at_level("WARNING", logger="emox_edge.devices"):
        assert devices.default_threads() == 2
    assert "keep 1.6 of 4 cores busy" in caplog.text
    monkeypatch.setattr(devices, "busy_cpus", lambda window_s=0.2: 9.0)
    assert devices.default_threads() == 2  # cached for the encoders and the core loaded together
    monkeypatch.setattr(devices, "_threads_cache", [])
    assert devices.default_threads() == 1  # never below one
    monkeypatch.setattr(devices, "_threads_cache", [])
    monkeypatch.setattr(devices, "busy_cpus", lambda window_s=0.2: 0.2)
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert devices.default_threads() == 2  # a cpuset of two CPUs caps four cores


def test_auto_falls_back_with_one_warning_naming_what_was_asked_and_used(caplog, monkeypatch):
    from emox_edge import devices

    if "CUDAExecutionProvider" in devices.ort_available_providers() or devices.llama_supports_gpu_offload():
        pytest.skip("a GPU backend is present: auto does not fall back here")
    monkeypatch.setattr(devices, "_warned", set())
    with caplog.at_level("WARNING"):
        assert resolve_device("auto").name == "cpu"
        resolve_device("auto")
    lines = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "device 'auto'" in lines[0] and "falling back to CPU" in lines[0]
