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
