"""Damaged model files are bad bundles (BundleError naming the file), never a native abort or a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.errors import BundleError


@pytest.fixture
def gguf_model(tmp_path):
    """A small well-formed GGUF file (header, key/values, two tensors), written by the gguf package."""
    import gguf

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32))
    writer.add_tensor("output_norm.weight", np.ones(32, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _load(path):
    from emox_edge.llm import LanguageCore

    return LanguageCore.from_file(path, n_ctx=64, n_threads=1)


def test_the_well_formed_file_passes_validation(gguf_model):
    from emox_edge.llm.gguf_file import validate_gguf

    assert validate_gguf(gguf_model) == gguf_model


def test_same_size_garbage_gguf(gguf_model):
    size = gguf_model.stat().st_size
    gguf_model.write_bytes(np.random.default_rng(1).bytes(size))
    with pytest.raises(BundleError, match=r"model.gguf is not a GGUF file: it starts with .*expected b'GGUF'"):
        _load(gguf_model)


@pytest.mark.parametrize("keep", [8, 24], ids=["magic+version", "whole fixed header"])
def test_right_magic_then_garbage(gguf_model, keep):
    data = gguf_model.read_bytes()
    gguf_model.write_bytes(data[:keep] + np.random.default_rng(keep).bytes(len(data) - keep))
    with pytest.raises(BundleError, match=r"model.gguf: could not load the GGUF model: .*expected a GGUF model file"):
        _load(gguf_model)


def test_tensor_data_cut_short_is_caught_before_llama_cpp(gguf_model):
    data = gguf_model.read_bytes()
    gguf_model.write_bytes(data[: len(data) - 4096])  # the header and table are whole; the data is not
    with pytest.raises(BundleError, match=r"model.gguf: could not load tensor 'token_embd.weight': its data at bytes "
                                          r"\d+-\d+ lies outside the \d+-byte file"):
        _load(gguf_model)


def test_a_future_gguf_version_is_refused(gguf_model):
    data = bytearray(gguf_model.read_bytes())
    data[4:8] = (99).to_bytes(4, "little")
    gguf_model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="version 99, expected one of 2, 3"):
        _load(gguf_model)


def test_same_size_garbage_onnx_graph(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from emox_edge.onnx_session import create_session

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "encoder.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    session = create_session(path, n_threads=1)
    assert session.run(None, {"x": -np.ones((1, 4), np.float32)})[0].max() == 0.0
    path.write_bytes(np.random.default_rng(2).bytes(path.stat().st_size))
    with pytest.raises(BundleError, match=r"encoder.onnx: ONNX Runtime cannot load this graph \(corrupt or not ONNX\)"):
        create_session(path, n_threads=1)
