import hashlib
import json

import pytest

from emox_edge._io import atomic_path, sha256_file, write_json_atomic


def test_atomic_path_renames_on_success(tmp_path):
    final = tmp_path / "sub" / "out.bin"
    with atomic_path(final) as tmp:
        assert tmp != final and tmp.parent == final.parent
        tmp.write_bytes(b"abc")
        assert not final.exists()
    assert final.read_bytes() == b"abc"
    assert [p.name for p in final.parent.iterdir()] == ["out.bin"]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_sha256_and_json(tmp_path):
    path = write_json_atomic(tmp_path / "a.json", {"k": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"k": "é"}
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_atomic_output_gets_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "perm.json", {})
    finally:
        os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o644
