"""Checkpoint key coverage: every key used or known-dead, anything else refused with its name."""

from __future__ import annotations

import pytest
import torch

from converters.encoders.build import build_adapters, check_widths
from converters.testing.tiny_encoders import TinySizes, synthetic_checkpoint_state


@pytest.fixture()
def state():
    return synthetic_checkpoint_state(TinySizes(), torch.Generator().manual_seed(0))


def test_a_complete_checkpoint_loads_and_reports_its_groups(state):
    model, part = build_adapters(state, source="ckpt.pth")
    summary = part.summary()
    assert summary["adapters"] == len(model.state_dict())
    assert summary["dead: image_llama_proj"] == 2 and summary["dead: facial_encoder.lynorm"] == 2
    assert summary["dead: Swin relative_position_index buffers"] == 8
    torch.testing.assert_close(model.state_dict()["video_query_tokens"], state["video_query_tokens"])


def test_lora_keys_belong_to_the_language_converter(state):
    key = "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    state[key] = torch.zeros(16, 64)
    _, part = build_adapters(state, source="ckpt.pth")
    assert part.lora == [key]


def test_missing_key_is_named(state):
    del state["audio_Qformer.bert.encoder.layer.1.crossattention.self.value.bias"]
    with pytest.raises(ValueError, match=r"missing keys \[audio_Qformer\.bert\.encoder\.layer\.1\.crossattention\.self\.value\.bias\]"):
        build_adapters(state, source="ckpt.pth")


def test_missing_structural_key_is_named(state):
    del state["video_query_tokens"]
    with pytest.raises(ValueError, match="video_query_tokens"):
        build_adapters(state, source="ckpt.pth")


def test_unexpected_keys_are_named(state):
    state["video_Qformer.bert.encoder.layer.0.attention.self.querry.weight"] = torch.zeros(128, 128)
    state["llama_model.base_model.model.model.norm.weight"] = torch.zeros(64)  # not LoRA: refused here too
    with pytest.raises(ValueError) as err:
        build_adapters(state, source="ckpt.pth")
    assert "querry" in str(err.value) and "llama_model.base_model.model.model.norm.weight" in str(err.value)
    assert "unexpected keys" in str(err.value) and "ckpt.pth" in str(err.value)


def test_shape_mismatch_is_named(state):
    state["video_proj.bias"] = torch.zeros(65)
    with pytest.raises(ValueError, match=r"video_proj\.bias: \(65,\) != expected \(64,\)"):
        build_adapters(state, source="ckpt.pth")


def test_optional_position_id_buffers_may_be_absent(state):
    del state["video_Qformer.bert.embeddings.position_ids"]
    model, _ = build_adapters(state, source="ckpt.pth")
    assert model.state_dict()["video_Qformer.bert.embeddings.position_ids"].shape == (1, 512)


def test_checkpoint_that_does_not_fit_the_towers_is_refused(state):
    model, _ = build_adapters(state, source="ckpt.pth")
    check_widths(model.cfg, clip_width=64, hubert_width=64, face_width=128)
    with pytest.raises(ValueError, match="CLIP hidden_size 1024"):
        check_widths(model.cfg, clip_width=1024, hubert_width=64, face_width=128)
    with pytest.raises(ValueError, match="FaceXFormer linear_fuse width 256"):
        check_widths(model.cfg, clip_width=64, hubert_width=64, face_width=256)


def test_facexformer_file_errors(tmp_path):
    from converters.encoders.facexformer import FaceXFormerEncoder, load_facexformer_state

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_facexformer_state(tmp_path / "missing.pt")
    bad = tmp_path / "model.pt"
    torch.save({"state_dict_backbone": {"backbone.0.0.0.weight": torch.zeros(16, 3, 4, 4)}}, bad)
    with pytest.raises(ValueError, match="linear_fuse.weight"):
        FaceXFormerEncoder.from_file(bad)
