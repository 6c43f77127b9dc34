"""The int8 levers measured against the shipped dynamic int8 (issue 14 item 1), built from the tiny
converter's fp32 graphs: they must run in ONNX Runtime, keep LayerNorm and Softmax in float, and
stay within the parity gate of the fp32 graph they come from."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from converters.encoders.int8_variants import MODEL_TYPES, fuse_and_quantize, quantize_int8_static
from converters.encoders.parity import Thresholds, compare

GATE = Thresholds().int8_cosine


def _feed(path, rows: int, seed: int) -> dict[str, np.ndarray]:
    model = onnx.load(str(path), load_external_data=False)
    rng = np.random.default_rng(seed)
    feed = {}
    for graph_input in model.graph.input:
        dims = [d.dim_value or rows for d in graph_input.type.tensor_type.shape.dim]
        feed[graph_input.name] = rng.standard_normal(dims).astype(np.float32) * 0.5
    return feed


def _run(path, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _min_cosine(got, reference) -> float:
    return min(m["cosine"] for m in compare(dict(enumerate(reference)), dict(enumerate(got))).values())


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.mark.parametrize("name", ["visual", "audio"])
def test_static_int8_is_calibrated_qoperator_with_float_normalisation(cli_conversion, tmp_path, name):
    code, out = cli_conversion
    assert code == 0
    fp32 = out / f"{name}.onnx"
    calibration = [_feed(fp32, 1, seed) for seed in range(4)]
    settings = quantize_int8_static(fp32, tmp_path / f"{name}.static.onnx", calibration)
    ops = _ops(tmp_path / f"{name}.static.onnx")
    assert ops["QLinearMatMul"] > 0 and ops["DynamicQuantizeLinear"] == 0
    assert ops["LayerNormalization"] == _ops(fp32)["LayerNormalization"] and ops["Softmax"] > 0
    assert settings["calibration_rows"] == 4 and settings["per_channel"] is True
    assert settings["excluded_activation_matmuls"] > 0  # attention scores and context stay float
    feed = _feed(fp32, 1, seed=1)  # a calibrated distribution
    assert _min_cosine(_run(tmp_path / f"{name}.static.onnx", feed), _run(fp32, feed)) >= GATE


def test_static_int8_needs_calibration_rows(cli_conversion, tmp_path):
    _code, out = cli_conversion
    with pytest.raises(ValueError, match="no calibration rows"):
        quantize_int8_static(out / "visual.onnx", tmp_path / "x.onnx", [])
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("name", ["visual", "audio", "facial"])
def test_fused_int8_runs_and_keeps_parity(cli_conversion, tmp_path, name):
    _code, out = cli_conversion
    fp32, dst = out / f"{name}.onnx", tmp_path / f"{name}.fused.onnx"
    settings = fuse_and_quantize(fp32, dst, model_type=MODEL_TYPES[name])
    assert settings["method"] == "fused + dynamic" and "Attention" in settings["operators"]
    assert isinstance(settings["fused_ops"], dict)
    ops = _ops(dst)
    assert ops["MatMulInteger"] + ops["QAttention"] + ops["DynamicQuantizeMatMul"] > 0
    feed = _feed(fp32, 2, seed=3)
    assert _min_cosine(_run(dst, feed), _run(fp32, feed)) >= GATE
