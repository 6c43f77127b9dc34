import json

import pytest

from emox_edge.bundle import MANIFEST_NAME, Bundle, BundleError, write_manifest


@pytest.fixture()
def bundle_dir(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(60))
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "visual.onnx").write_bytes(b"onnx-bytes")
    write_manifest(tmp_path, {"kind": "lite", "name": "t"}, files=["model.gguf", "graphs/visual.onnx"])
    return tmp_path


def test_roundtrip(bundle_dir):
    bundle = Bundle.open(bundle_dir, verify="sha256")
    assert bundle.kind == "lite" and bundle.name == "t"
    assert bundle.path("graphs/visual.onnx").read_bytes() == b"onnx-bytes"
    assert set(bundle.manifest["files"]) == {"model.gguf", "graphs/visual.onnx"}


def test_missing_file_is_named(bundle_dir):
    (bundle_dir / "graphs" / "visual.onnx").unlink()
    with pytest.raises(BundleError, match=r"visual\.onnx.*missing"):
        Bundle.open(bundle_dir)


def test_truncated_file_is_named(bundle_dir):
    (bundle_dir / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(BundleError, match=r"model\.gguf.*size 4 bytes"):
        Bundle.open(bundle_dir)


def test_same_size_corruption_needs_sha256(bundle_dir):
    (bundle_dir / "graphs" / "visual.onnx").write_bytes(b"onnx-bytez")
    Bundle.open(bundle_dir, verify="size")  # sizes still agree
    with pytest.raises(BundleError, match=r"visual\.onnx.*sha256"):
        Bundle.open(bundle_dir, verify="sha256")


def test_not_a_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle directory not found"):
        Bundle.open(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=MANIFEST_NAME):
        Bundle.open(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="not a readable JSON"):
        Bundle.open(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(BundleError, match="not an emox-edge bundle"):
        Bundle.open(tmp_path)


def test_newer_format_refused(bundle_dir):
    path = bundle_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="format_version 99"):
        Bundle.open(bundle_dir)


def test_bad_verify_mode_and_unlisted_path(bundle_dir):
    with pytest.raises(ValueError, match="verify must be one of"):
        Bundle.open(bundle_dir, verify="md5")
    with pytest.raises(BundleError, match="not listed"):
        Bundle.open(bundle_dir).path("../etc/passwd")


def test_write_manifest_refuses_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ghost.onnx"):
        write_manifest(tmp_path, {"kind": "lite"}, files=["ghost.onnx"])
    assert not (tmp_path / MANIFEST_NAME).exists()
