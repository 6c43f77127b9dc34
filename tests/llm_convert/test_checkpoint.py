"""converters/checkpoint.py: reading .pth / .safetensors training checkpoints safely."""

from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")

from converters.checkpoint import (  # noqa: E402
    CheckpointError,
    UntrustedCheckpointError,
    find_config_values,
    load_checkpoint,
)


def test_runner_layout_gives_model_and_config(tiny_ckpt):
    state, config = load_checkpoint(tiny_ckpt)
    assert any(k.startswith("llama_model.base_model.model.model.layers.0.") for k in state)
    assert "video_query_tokens" in state
    assert not any(k.startswith(("optimizer", "scaler", "epoch")) for k in state)
    assert config["model"]["lora_r"] == 16 and config["model"]["lora_alpha"] == 32
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_bare_state_dict(tmp_path):
    path = tmp_path / "bare.pth"
    torch.save({"a.weight": torch.ones(2, 3), "b": torch.zeros(1)}, path)
    state, config = load_checkpoint(path)
    assert set(state) == {"a.weight", "b"} and config == {}
    assert torch.equal(state["a.weight"], torch.ones(2, 3))


def test_state_dict_key_layout(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"state_dict": {"x": torch.ones(1)}, "config": {"lora_r": 8}}, path)
    state, config = load_checkpoint(path)
    assert list(state) == ["x"] and config == {"lora_r": 8}


def test_safetensors_with_config_metadata(ckpt_with):
    path = ckpt_with("ckpt.safetensors", r=8, alpha=24)
    state, config = load_checkpoint(path)
    assert config["model"]["lora_r"] == 8 and config["model"]["lora_alpha"] == 24
    a = state["llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    assert a.shape[0] == 8


def test_legacy_non_zip_format_loads(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.arange(4.0)}}, path, _use_new_zipfile_serialization=False)
    state, _ = load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(4.0))


def test_pickled_object_needs_trust(tmp_path):
    path = tmp_path / "with_args.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1e-5)}, path)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "--trust-checkpoint" in message and str(path) in message and "argparse.Namespace" in message
    state, _ = load_checkpoint(path, trust=True)
    assert torch.equal(state["w"], torch.ones(2))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(IsADirectoryError, match="directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_files(tmp_path, tiny_ckpt, suffix):
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(b"definitely not a checkpoint " * 20)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*junk"):
        load_checkpoint(junk)
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(tiny_ckpt.read_bytes()[: tiny_ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)


def test_non_tensor_entries_are_refused(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"model": {"w": torch.ones(1), "note": "hello"}}, path)
    with pytest.raises(CheckpointError, match="note"):
        load_checkpoint(path)
    path2 = tmp_path / "list.pth"
    torch.save([torch.ones(1)], path2)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(path2)


def test_safetensors_bad_config_json(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.ones(1)}, str(path), metadata={"config": "{not json"})
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(path)
    path2 = tmp_path / "flat.safetensors"
    save_file({"w": torch.ones(1)}, str(path2), metadata={"lora_r": "16", "lora_alpha": "32"})
    assert load_checkpoint(path2)[1] == {"lora_r": 16, "lora_alpha": 32}


def test_find_config_values_searches_nested_dicts_and_lists():
    config = {"a": {"lora_r": 16, "b": [{"lora_r": 16}, {"c": {"lora_alpha": 32}}]}, "lora_alpha": 32}
    assert find_config_values(config, "lora_r") == [16, 16]
    assert find_config_values(config, "lora_alpha") == [32, 32]
    assert find_config_values(config, "missing") == []
    assert json.dumps(config)  # still plain data
