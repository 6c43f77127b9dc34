"""Session options for ONNX Runtime beside llama.cpp: no spin-waiting, one shared CPU arena."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from emox_edge.onnx_session import session_options


def _matmul_graph(path, n: int) -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [n, n], np.eye(n, dtype=np.float32).ravel() * 2.0)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime reads, whatever the installed onnx writes by default
    onnx.save(model, str(path))


def test_options_turn_spinning_off_and_share_the_arena():
    so = session_options(3)
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.use_env_allocators") == "1"
    assert session_options().intra_op_num_threads == 0  # ONNX Runtime's own default


def test_sessions_sharing_the_arena_compute_correctly(tmp_path):
    import onnxruntime as ort

    sessions = []
    for n in (8, 64):
        _matmul_graph(tmp_path / f"m{n}.onnx", n)
        sessions.append((n, ort.InferenceSession(str(tmp_path / f"m{n}.onnx"), session_options(1),
                                                  providers=["CPUExecutionProvider"])))
    rng = np.random.default_rng(0)
    for _ in range(3):  # interleaved runs reuse the shared arena's blocks
        for n, session in sessions:
            x = rng.standard_normal((512, n)).astype(np.float32)
            np.testing.assert_allclose(session.run(None, {"x": x})[0], 2.0 * x, rtol=1e-6)
