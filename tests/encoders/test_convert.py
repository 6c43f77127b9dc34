"""``emox-edge convert encoders`` end to end on the tiny sources, the parity gate, and CLI misuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emox_edge.cli.main import main

GRAPHS = ("visual", "audio", "facial", "adapters")
REPO = Path(__file__).resolve().parents[2]


def _args(src, out, *extra):
    return ["convert", "encoders", "--checkpoint", str(src.checkpoint), "--clip", str(src.clip), "--hubert",
            str(src.hubert), "--facexformer", str(src.facexformer), "--out", str(out), "--quiet", *extra]


def test_cli_writes_every_graph_report_and_manifest_part(cli_conversion):
    code, out = cli_conversion
    assert code == 0
    for name in GRAPHS:
        assert (out / f"{name}.onnx").is_file() and (out / f"{name}.int8.onnx").is_file()
    report = json.loads((out / "encoders-report.json").read_text())
    assert report["passed"] and not report["failures"]
    for name in GRAPHS:
        for precision, floor in (("fp32", 0.9999), ("int8", 0.99)):
            entry = report["graphs"][name][precision]
            assert entry["passed"]
            assert min(m["cosine"] for m in entry["outputs"].values()) >= floor
            if name != "adapters":  # the per-frame graphs were also checked run in chunks of 3 frames
                assert entry["chunked"]["passed"] and entry["chunked"]["rows_per_run"] == 3
                assert min(m["cosine"] for m in entry["chunked"]["outputs"].values()) >= floor
        assert report["graphs"][name]["int8"]["bytes"] < report["graphs"][name]["fp32"]["bytes"]
    assert set(report["chain"]) == {"fp32", "int8"}
    markdown = (out / "encoders-report.md").read_text()
    assert "| visual | int8 |" in markdown and "min cosine, in chunks" in markdown
    assert "| adapters | int8 | adapters.int8.onnx |" in markdown
    assert report["peak_rss_mb"] > 0


def test_manifest_part_describes_graph_io(cli_conversion):
    _, out = cli_conversion
    part = json.loads((out / "encoders.json").read_text())
    assert part["kind"] == "nano-emox-encoders"
    graphs = part["graphs"]
    assert graphs["visual"]["inputs"] == [{"name": "pixel_values", "shape": ["frames", 3, 224, 224], "dtype": "float32"}]
    assert graphs["audio"]["inputs"] == [{"name": "waveforms", "shape": ["frames", 32000], "dtype": "float32"}]
    assert graphs["facial"]["outputs"] == [{"name": "face_features", "shape": ["frames", 128], "dtype": "float32"}]
    assert graphs["adapters"]["inputs"][0] == {"name": "visual_main", "shape": [8, 64], "dtype": "float32"}
    outs = {o["name"]: o["shape"] for o in graphs["adapters"]["outputs"]}
    assert outs == {"audio_embeds": [32, 64], "frame_embeds": [32, 64], "face_embeds": [4, 64], "fusion_embeds": [1, 64]}
    assert [i["name"] for i in graphs["adapters"]["inputs"]] == [
        "visual_main", "visual_multi", "audio_main", "audio_multi", "face_features"]
    assert graphs["visual"]["file"] == "visual.int8.onnx" and graphs["visual"]["fp32"] == "visual.onnx"
    assert part["encoders"]["embedding_width"] == 64
    assert part["preprocess"]["audio"]["normalize"] == {"mode": "joint", "eps": 1e-7,
                                                         "formula": part["preprocess"]["audio"]["normalize"]["formula"]}


def test_int8_graphs_keep_layernorm_and_softmax_in_float(cli_conversion):
    import onnx

    _, out = cli_conversion
    model = onnx.load(str(out / "adapters.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert "LayerNormalization" in ops and "Softmax" in ops
    floats = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    # the exporter shares identical initializers (e.g. all-ones LN scales) through Identity nodes
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    ln_inputs = {alias.get(x, x) for n in model.graph.node if n.op_type == "LayerNormalization" for x in n.input[1:]}
    assert ln_inputs and ln_inputs <= floats


def test_graphs_chain_in_onnx_runtime(cli_conversion):
    from converters.encoders.convert import run_graph
    from converters.encoders.parity import clip_pixels, face_pixels, parity_frames

    _, out = cli_conversion
    frames = parity_frames()
    rng = np.random.default_rng(0)
    feats = {}
    feats.update(run_graph(out / "visual.int8.onnx", {"pixel_values": clip_pixels(frames)})[0])
    feats.update(run_graph(out / "audio.int8.onnx", {"waveforms": rng.standard_normal((8, 32000)).astype(np.float32)})[0])
    feats.update(run_graph(out / "facial.int8.onnx", {"frames": face_pixels(frames)})[0])
    embeds, _ = run_graph(out / "adapters.int8.onnx", feats)
    assert {k: v.shape for k, v in embeds.items()} == {
        "audio_embeds": (32, 64), "frame_embeds": (32, 64), "face_embeds": (4, 64), "fusion_embeds": (1, 64)}
    assert all(np.isfinite(v).all() for v in embeds.values())


def _parity_batch(graph: str) -> np.ndarray:
    from converters.encoders.parity import clip_pixels, face_pixels, parity_frames

    if graph == "audio":
        return np.random.default_rng(1).standard_normal((8, 32000)).astype(np.float32)
    return (clip_pixels if graph == "visual" else face_pixels)(parity_frames())


@pytest.mark.parametrize("graph, name", [("visual", "pixel_values"), ("audio", "waveforms"), ("facial", "frames")])
def test_a_per_frame_graph_encodes_each_frame_alone(cli_conversion, graph, name):
    from converters.encoders.convert import run_graph

    _, out = cli_conversion
    batch = _parity_batch(graph)
    whole, _ = run_graph(out / f"{graph}.onnx", {name: batch})
    for row in (0, 5):
        alone, _ = run_graph(out / f"{graph}.onnx", {name: batch[row:row + 1]})
        for key, value in alone.items():
            assert value.shape == (1, *whole[key].shape[1:])
            np.testing.assert_allclose(value[0], whole[key][row], rtol=1e-4, atol=1e-5)


def test_failing_parity_gate_writes_no_graph_of_that_precision(tiny_sources, tmp_path, capsys):
    out = tmp_path / "enc"
    code = main(_args(tiny_sources, out, "--int8-cosine", "1.0"))
    assert code == 1
    assert "parity gate failed" in capsys.readouterr().err
    assert not list(out.glob("*.int8.onnx"))
    assert all((out / f"{g}.onnx").is_file() for g in GRAPHS)  # fp32 passed and was kept
    assert not (out / "encoders.json").exists()  # an incomplete conversion cannot be bundled
    report = json.loads((out / "encoders-report.json").read_text())
    assert not report["passed"] and len(report["failures"]) == 4
    assert "int8" in report["failures"][0] and "< threshold 1.0" in report["failures"][0]


def test_non_empty_out_needs_force(tiny_sources, tmp_path, capsys):
    out = tmp_path / "enc"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(_args(tiny_sources, out)) != 0
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_missing_facexformer_file_is_bad_input(tiny_sources, tmp_path, capsys):
    args = _args(tiny_sources, tmp_path / "enc")
    args[args.index("--facexformer") + 1] = str(tmp_path / "nope" / "model.pt")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "FileNotFoundError" in err and "nope/model.pt" in err
    assert not (tmp_path / "enc").exists()


@pytest.mark.parametrize("flag,value", [("--fp32-cosine", "1.5"), ("--int8-cosine", "-2")])
def test_threshold_out_of_range_is_bad_input(tiny_sources, tmp_path, capsys, flag, value):
    assert main(_args(tiny_sources, tmp_path / "enc", flag, value)) == 2
    assert "must be in [-1, 1]" in capsys.readouterr().err


def test_without_torch_the_cli_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from emox_edge.cli.main import main\n"
        "sys.exit(main(['convert', 'encoders', '--checkpoint', 'c.pth', '--clip', 'c', '--hubert', 'h',"
        " '--facexformer', 'f.pt', '--out', 'o']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'emox-edge[convert]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    help_proc = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None\n"
                                "from emox_edge.cli.main import main; sys.exit(main(['convert', 'bundle', '--help']))"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert help_proc.returncode == 0 and "--encoders" in help_proc.stdout


class _Pickled:
    """A custom object: loading a checkpoint that holds one needs full unpickling."""


def test_pickled_checkpoint_needs_trust(tiny_sources, tmp_path, capsys):
    import torch

    ckpt = tmp_path / "pickled.pth"
    state = torch.load(tiny_sources.checkpoint, weights_only=True)
    torch.save({"model": state["model"], "config": _Pickled()}, ckpt)
    args = _args(tiny_sources, tmp_path / "enc")
    args[args.index("--checkpoint") + 1] = str(ckpt)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--trust-checkpoint" in err and "pickled.pth" in err
    assert not (tmp_path / "enc").exists()


def test_a_size_traced_as_a_constant_fails_the_chunked_check(tmp_path):
    import torch

    from converters.encoders.convert import open_session
    from converters.encoders.export import export_onnx
    from emox_edge.encoders import run_in_rows

    class FixedBatch(torch.nn.Module):
        def forward(self, x):  # the batch of 8 baked into the reshape
            return x.reshape(8, 2, -1).mean(dim=1)

    class PerRow(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], 2, -1).mean(dim=1)

    x = torch.arange(8 * 6, dtype=torch.float32).reshape(8, 6)
    inputs = {"x": x.numpy()}
    for module, runs in ((FixedBatch(), False), (PerRow(), True)):
        path = export_onnx(module, (x,), tmp_path / f"{type(module).__name__}.onnx", input_names=["x"],
                           output_names=["y"], output_shapes=[(8, 3)], frame_axis=True)
        session = open_session(path, threads=1)
        assert [i.shape for i in session.get_inputs()] == [["frames", 6]]
        if runs:
            (got,) = run_in_rows(session, ["y"], inputs, 3)
            np.testing.assert_allclose(got, module(x).numpy())
        else:
            with pytest.raises(Exception):  # ONNX Runtime's own error type: the reshape cannot fit 3 rows
                run_in_rows(session, ["y"], inputs, 3)
