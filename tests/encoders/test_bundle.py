"""The tiny nano-emox bundle, ``convert bundle``, ``info`` and corrupt-bundle detection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emox_edge.bundle.manifest import Bundle, BundleError
from emox_edge.cli.main import main
from emox_edge.results import TASKS


def test_tiny_bundle_is_complete_and_verified(tiny_bundle):
    bundle = Bundle.open(tiny_bundle, verify="sha256")
    assert bundle.kind == "nano-emox"
    core, enc = bundle.section("language_core"), bundle.section("encoders")
    assert core["embedding_width"] == enc["embedding_width"] == 64
    assert core["default"] in core["gguf"] and set(core["gguf"]) == {"f16", "q8_0"}
    assert enc["slots"] == {"audio_embeds": 32, "frame_embeds": 32, "face_embeds": 4, "fusion_embeds": 1}
    for name, graph in bundle.section("graphs").items():
        for key in ("file", "fp32", "int8"):
            assert bundle.path(graph[key]).is_file(), (name, key)
    assert set(bundle.section("tasks")) == set(TASKS)
    placeholders = bundle.section("prompt")["placeholders"]
    assert [(p["token"], p["slots"]) for p in placeholders] == [
        ("<MultiHere>", 1), ("<AudioHere>", 32), ("<FaceHere>", 4), ("<FrameHere>", 32)]
    assert all(p["token"] in bundle.section("prompt")["template"] for p in placeholders)


def test_tiny_bundle_is_reused_when_its_stamp_matches(tiny_bundle):
    from converters.testing.tiny_bundle import build_tiny_bundle

    created = json.loads((tiny_bundle / "bundle.json").read_text())["created"]
    assert build_tiny_bundle(tiny_bundle) == tiny_bundle
    assert json.loads((tiny_bundle / "bundle.json").read_text())["created"] == created


def test_constants_are_verbatim(tiny_bundle):
    tasks = Bundle.open(tiny_bundle).section("tasks")
    assert "\ufb02oating-point number ranging from {min} to {max}" in tasks["sentiment"]["prompts"]["valence"]
    assert "clues\u2014visual" in tasks["reason"]["prompts"][0]
    assert "listener\uff0cyour goal" in tasks["empathize"]["prompt"] and "user\u2019s emotions" in tasks["empathize"]["prompt"]
    assert "arrange,ask for help" in tasks["intent"]["label_sets"]["mintrec2"]["candidate_labels"]
    assert len(tasks["intent"]["label_sets"]["mintrec"]["labels"]) == 20
    assert len(tasks["intent"]["label_sets"]["mintrec2"]["labels"]) == 30
    assert tasks["emotion"]["label_sets"]["meld"] == ["anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"]
    template = Bundle.open(tiny_bundle).section("prompt")["template"]
    assert template.startswith("###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. ")
    assert template.endswith("{question} ###Assistant: ")


def test_language_core_of_the_bundle_takes_the_adapter_width(tiny_bundle):
    from emox_edge.llm import LanguageCore

    bundle = Bundle.open(tiny_bundle)
    core = bundle.section("language_core")
    with LanguageCore.from_file(bundle.path(core["gguf"][core["default"]]), n_ctx=256) as lm:
        assert lm.embedding_width == bundle.section("encoders")["embedding_width"]


def test_generation_stops_come_from_the_gguf(tiny_bundle):
    gen = Bundle.open(tiny_bundle).section("generation")
    assert "###" in gen["stop_strings"]
    assert gen["eos_token_ids"] and max(gen["eos_token_ids"]) < 2000  # the tiny tokenizer's ids, not Qwen's 151645


def test_info_prints_readably_and_as_json(tiny_bundle, capsys):
    assert main(["info", str(tiny_bundle)]) == 0
    text = capsys.readouterr().out
    assert "nano-emox bundle 'tiny-nano-emox'" in text
    assert "adapters:" in text and "fusion_embeds [1,64]" in text and "<AudioHere> x32" in text
    assert "intent: label sets mintrec (20), mintrec2 (30)" in text
    assert main(["info", str(tiny_bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "nano-emox"


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_corrupt_file_is_named(bundle_copy, capsys):
    target = bundle_copy / "encoders" / "adapters.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    Bundle.open(bundle_copy, verify="size")  # same size: only the hash can tell
    with pytest.raises(BundleError, match=r"adapters\.int8\.onnx: corrupt file, sha256"):
        Bundle.open(bundle_copy, verify="sha256")
    assert main(["info", str(bundle_copy), "--verify", "sha256"]) == 2
    assert "adapters.int8.onnx" in capsys.readouterr().err


def test_truncated_and_missing_files_are_named(bundle_copy):
    gguf = bundle_copy / "llm" / "llm-q8_0.gguf"
    gguf.write_bytes(gguf.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"llm-q8_0\.gguf: corrupt file, size 100 bytes"):
        Bundle.open(bundle_copy)
    (bundle_copy / "encoders" / "visual.onnx").unlink()
    gguf.unlink()
    with pytest.raises(BundleError, match="missing"):
        Bundle.open(bundle_copy)


def test_convert_bundle_cli_assembles_and_verifies(cli_conversion, tiny_llm_dir, tmp_path, capsys):
    _, enc = cli_conversion
    out = tmp_path / "bundle"
    assert main(["convert", "bundle", "--llm", str(tiny_llm_dir), "--encoders", str(enc), "--out", str(out),
                 "--name", "mine", "--quiet"]) == 0
    bundle = Bundle.open(out, verify="sha256")
    assert bundle.name == "mine" and bundle.section("language_core")["default"] == "f16"
    assert bundle.section("graphs")["audio"]["file"] == "encoders/audio.int8.onnx"
    assert "reports/encoders-report.json" in bundle.manifest["files"]
    # a second run needs --force, and replaces the bundle
    assert main(["convert", "bundle", "--llm", str(tiny_llm_dir), "--encoders", str(enc), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["convert", "bundle", "--llm", str(tiny_llm_dir), "--encoders", str(enc), "--out", str(out),
                 "--force", "--quiet"]) == 0
    Bundle.open(out, verify="sha256")


def test_convert_bundle_refuses_mismatched_width(cli_conversion, tmp_path, capsys):
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.testing.tiny_qwen import build_tiny_qwen2

    _, enc = cli_conversion
    hf = build_tiny_qwen2(tmp_path / "hf32", hidden_size=32, num_heads=2, num_kv_heads=1)
    write_qwen2_gguf(hf, tmp_path / "llm" / "llm-f16.gguf")
    assert main(["convert", "bundle", "--llm", str(tmp_path / "llm"), "--encoders", str(enc),
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "64-wide embeddings" in err and "embedding_length 32" in err
    assert not (tmp_path / "b" / "bundle.json").exists()


def test_convert_bundle_misuse(cli_conversion, tiny_llm_dir, tmp_path, capsys):
    _, enc = cli_conversion
    assert main(["convert", "bundle", "--llm", str(tmp_path), "--encoders", str(enc), "--out", str(tmp_path / "b")]) == 2
    assert "no llm-<type>.gguf" in capsys.readouterr().err
    assert main(["convert", "bundle", "--llm", str(tiny_llm_dir), "--encoders", str(tmp_path), "--out",
                 str(tmp_path / "b")]) == 2
    assert "encoders.json" in capsys.readouterr().err
    assert main(["convert", "bundle", "--llm", str(tiny_llm_dir), "--encoders", str(enc), "--out", str(tmp_path / "b"),
                 "--default-quant", "q4_k_m"]) == 2
    assert "'q4_k_m' is not among the GGUFs found: f16" in capsys.readouterr().err


def test_bundle_graphs_run_in_onnx_runtime(tiny_bundle):
    from converters.encoders.convert import run_graph

    bundle = Bundle.open(tiny_bundle)
    graphs = bundle.section("graphs")
    feats = {}
    for name in ("visual", "audio", "facial"):
        spec = graphs[name]["inputs"][0]
        assert spec["shape"][0] == "frames"  # per-frame graphs: a clip's 8 frames, or fewer at a time
        shape = [8, *spec["shape"][1:]]
        feats.update(run_graph(bundle.path(graphs[name]["file"]), {spec["name"]: np.zeros(shape, np.float32)})[0])
    out, _ = run_graph(bundle.path(graphs["adapters"]["file"]), feats)
    assert [list(out[o["name"]].shape) for o in graphs["adapters"]["outputs"]] == [
        o["shape"] for o in graphs["adapters"]["outputs"]]
