"""HF Qwen2 directory -> GGUF: tensors, hyper-parameters, vocabulary, state_dict, bf16, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from converters.llm.gguf_writer import write_qwen2_gguf
from converters.testing.tiny_qwen import build_tiny_qwen2
from emox_edge.llm import LanguageCore

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")


def _hf_state(hf_dir):
    from safetensors.torch import load_file

    return {k: v.float().numpy() for k, v in load_file(hf_dir / "model.safetensors").items()}


def _gguf_tensors(path):
    reader = gguf.GGUFReader(path)
    out = {}
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        out[t.name] = (t.tensor_type.name, np.asarray(data, np.float32))
    return reader, out


def _field(reader, key):
    return reader.fields[key].contents()


def test_f32_tensors_are_exact_and_named(tiny_hf, tmp_path):
    out = write_qwen2_gguf(tiny_hf, tmp_path / "m.gguf", out_type="f32")
    reader, tensors = _gguf_tensors(out)
    state = _hf_state(tiny_hf)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, 2)
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == len(state) - ("lm_head.weight" in state)
    for hf_name, value in state.items():
        if hf_name == "lm_head.weight":
            continue
        kind, data = tensors[name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))]
        assert kind == "F32"
        np.testing.assert_array_equal(data, value, err_msg=hf_name)


def test_f16_types_and_hparams(tiny_hf, tiny_f16):
    reader, tensors = _gguf_tensors(tiny_f16)
    config = json.loads((tiny_hf / "config.json").read_text())
    state = _hf_state(tiny_hf)
    for name, (kind, data) in tensors.items():
        assert kind == ("F32" if data.ndim == 1 else "F16"), name
    np.testing.assert_allclose(tensors["token_embd.weight"][1], state["model.embed_tokens.weight"], atol=1e-3)
    assert _field(reader, "general.architecture") == "qwen2"
    assert _field(reader, "qwen2.context_length") == config["max_position_embeddings"]
    assert _field(reader, "qwen2.embedding_length") == config["hidden_size"]
    assert _field(reader, "qwen2.block_count") == config["num_hidden_layers"]
    assert _field(reader, "qwen2.feed_forward_length") == config["intermediate_size"]
    assert _field(reader, "qwen2.attention.head_count") == config["num_attention_heads"]
    assert _field(reader, "qwen2.attention.head_count_kv") == config["num_key_value_heads"]
    assert _field(reader, "qwen2.rope.freq_base") == pytest.approx(config["rope_theta"])
    assert _field(reader, "qwen2.attention.layer_norm_rms_epsilon") == pytest.approx(config["rms_norm_eps"])
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "qwen2"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == config["vocab_size"] and tokens[-1].startswith("[PAD")
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokens.index("<|im_end|>")
    assert _field(reader, "tokenizer.ggml.add_bos_token") is False
    assert len(_field(reader, "tokenizer.ggml.merges")) > 500


def test_untied_bf16_model_and_metadata(tmp_path):
    """bf16 safetensors (the real checkpoint's dtype), an untied lm_head, extra metadata."""
    hf = build_tiny_qwen2(tmp_path / "hf", tie=False, dtype="bfloat16", seed=3)
    out = write_qwen2_gguf(hf, tmp_path / "m.gguf", out_type="f32",
                           metadata={"emox_edge.stop_strings": ["###", "##"], "emox_edge.version": 2,
                                     "emox_edge.note": "tiny", "emox_edge.flag": True, "emox_edge.scale": 0.5})
    from safetensors.torch import load_file

    raw = load_file(hf / "model.safetensors")
    assert raw["lm_head.weight"].dtype == torch.bfloat16
    _, tensors = _gguf_tensors(out)
    np.testing.assert_array_equal(tensors["output.weight"][1], raw["lm_head.weight"].float().numpy())
    np.testing.assert_array_equal(tensors["blk.1.ffn_down.weight"][1],
                                  raw["model.layers.1.mlp.down_proj.weight"].float().numpy())
    with LanguageCore.from_file(out, n_ctx=256) as core:
        meta = core.metadata
        assert meta["emox_edge.note"] == "tiny" and meta["emox_edge.version"] == "2"
        assert meta["emox_edge.flag"] == "true"
        assert json.loads(meta["emox_edge.stop_strings"]) == ["###", "##"]
        assert meta["emox_edge.scale"] == "0.5" and meta["qwen2.attention.layer_norm_rms_epsilon"] == "1e-06"
        assert meta["tokenizer.ggml.tokens"] == f"arr[8,{core.n_vocab}]"
        assert core.next_token_logits("hello").shape == (core.n_vocab,)
    reader = gguf.GGUFReader(out)
    assert reader.fields["emox_edge.stop_strings"].contents() == ["###", "##"]


def test_state_dict_replaces_weights(tiny_hf, tmp_path):
    state = _hf_state(tiny_hf)
    state["model.layers.0.mlp.up_proj.weight"] = state["model.layers.0.mlp.up_proj.weight"] + 0.25
    mixed = dict(state)
    mixed["model.norm.weight"] = torch.from_numpy(state["model.norm.weight"] * 2).to(torch.bfloat16)
    out = write_qwen2_gguf(tiny_hf, tmp_path / "merged.gguf", out_type="f32", state_dict=mixed)
    _, tensors = _gguf_tensors(out)
    np.testing.assert_array_equal(tensors["blk.0.ffn_up.weight"][1], state["model.layers.0.mlp.up_proj.weight"])
    np.testing.assert_array_equal(tensors["output_norm.weight"][1], mixed["model.norm.weight"].float().numpy())
    with LanguageCore.from_file(out, n_ctx=256) as a, LanguageCore.from_file(
            write_qwen2_gguf(tiny_hf, tmp_path / "plain.gguf", out_type="f32"), n_ctx=256) as b:
        assert np.abs(a.next_token_logits("hello there") - b.next_token_logits("hello there")).max() > 1e-2


def test_writer_errors(tiny_hf, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        write_qwen2_gguf(tmp_path / "missing", tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="f32, f16"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", out_type="q4")
    state = _hf_state(tiny_hf)
    del state["model.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(ValueError, match=r"missing tensors.*blk\.1\.attn_k\.bias"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", state_dict=state)
    state = _hf_state(tiny_hf)
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:10]
    with pytest.raises(ValueError, match=r"embed_tokens.*\(10, 64\).*\(1152, 64\)"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", state_dict=state)
    state = _hf_state(tiny_hf)
    state["model.layers.0.mlp.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="no GGUF name"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", state_dict=state)
    with pytest.raises(TypeError, match="metadata"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", metadata={"k": {"nested": 1}})
    with pytest.raises(TypeError, match="state_dict"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf",
                         state_dict={**_hf_state(tiny_hf), "model.norm.weight": [1.0] * 64})
    other = tmp_path / "llama"
    shutil.copytree(tiny_hf, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="expected a Qwen2 model"):
        write_qwen2_gguf(other, tmp_path / "x.gguf")
    (other / "model.safetensors").unlink()
    cfg.update(model_type="qwen2")
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        write_qwen2_gguf(other, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf*")), "a failed write must leave no file behind"


def test_wrong_tensor_shape_is_refused(tiny_hf, tmp_path):
    state = _hf_state(tiny_hf)
    down = state["model.layers.1.mlp.down_proj.weight"]
    state["model.layers.1.mlp.down_proj.weight"] = torch.from_numpy(down)[:, :-1]
    with pytest.raises(ValueError, match=r"down_proj.*\(64, 127\).*\(64, 128\)"):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", state_dict=state)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_nothing(tiny_hf, tmp_path):
    """A tensor that cannot be read (a torch 'meta' tensor) fails half-way through the write."""
    state = _hf_state(tiny_hf)
    state["model.layers.1.mlp.down_proj.weight"] = torch.empty(64, 128, device="meta")
    with pytest.raises((NotImplementedError, RuntimeError)):
        write_qwen2_gguf(tiny_hf, tmp_path / "x.gguf", state_dict=state)
    assert list(tmp_path.iterdir()) == []


def test_rope_scaling_from_config(tiny_hf, tmp_path):
    hf = tmp_path / "yarn"
    shutil.copytree(tiny_hf, hf)
    cfg = json.loads((hf / "config.json").read_text())
    cfg["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}
    (hf / "config.json").write_text(json.dumps(cfg))
    out = write_qwen2_gguf(hf, tmp_path / "yarn.gguf")
    reader = gguf.GGUFReader(out)
    assert _field(reader, "qwen2.rope.scaling.type") == "yarn"
    assert _field(reader, "qwen2.rope.scaling.factor") == pytest.approx(4.0)
    assert _field(reader, "qwen2.rope.scaling.original_context_length") == 256
    with LanguageCore.from_file(out, n_ctx=256) as core:
        assert np.isfinite(core.next_token_logits("hello")).all()
    cfg["rope_scaling"] = {"type": "dynamic", "factor": 2.0}
    (hf / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'dynamic'.*'linear' or 'yarn'"):
        write_qwen2_gguf(hf, tmp_path / "dyn.gguf")


def test_sharded_safetensors_with_index(tiny_hf, tmp_path):
    """Shards of different header sizes: every tensor must be read from its own file's offsets."""
    from safetensors.numpy import save_file

    hf = tmp_path / "sharded"
    shutil.copytree(tiny_hf, hf, ignore=shutil.ignore_patterns("model.safetensors"))
    state = _hf_state(tiny_hf)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 3],
              "model-00002-of-00002.safetensors": names[len(names) // 3:]}
    weight_map = {}
    for fname, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(hf / fname))
        weight_map.update({k: fname for k in keys})
    (hf / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    _, sharded = _gguf_tensors(write_qwen2_gguf(hf, tmp_path / "sharded.gguf", out_type="f32"))
    _, single = _gguf_tensors(write_qwen2_gguf(tiny_hf, tmp_path / "single.gguf", out_type="f32"))
    assert sharded.keys() == single.keys()
    for name in single:
        np.testing.assert_array_equal(sharded[name][1], single[name][1], err_msg=name)
