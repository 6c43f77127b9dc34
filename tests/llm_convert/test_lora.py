"""converters/llm/lora.py: LoRA settings, strict key validation and the float32 merge."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from converters.llm.lora import (  # noqa: E402
    TARGET_MODULES,
    LoraError,
    LoraSettings,
    collect_lora,
    lora_key,
    merge_lora,
    module_shapes,
    resolve_settings,
)
from converters.testing.synthetic_lora import lora_state_dict, training_config  # noqa: E402


@pytest.fixture(scope="module")
def config(tiny_base):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(tiny_base))


SETTINGS = LoraSettings(r=16, alpha=32.0, source="test")


def test_module_shapes_come_from_the_config(config):
    shapes = module_shapes(config)
    hidden, ffn = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (hidden // config.num_attention_heads)
    assert shapes["self_attn.q_proj"] == (hidden, hidden)
    assert shapes["self_attn.k_proj"] == (kv, hidden) and shapes["self_attn.v_proj"] == (kv, hidden)
    assert shapes["mlp.gate_proj"] == (ffn, hidden) and shapes["mlp.down_proj"] == (hidden, ffn)


def test_resolve_settings_from_nested_config():
    s = resolve_settings(training_config(r=16, alpha=32))
    assert (s.r, s.alpha, s.scale, s.source) == (16, 32.0, 2.0, "checkpoint config")


def test_resolve_settings_from_flags_and_errors():
    assert resolve_settings({}, r=8, alpha=16).scale == 2.0
    assert resolve_settings(None, r=4, alpha=4).source == "flags"
    with pytest.raises(ValueError, match="--lora-alpha"):
        resolve_settings({}, r=8)
    with pytest.raises(ValueError, match="--lora-r and --lora-alpha.*r=16, alpha=32"):
        resolve_settings({"run": {"seed": 1}})
    with pytest.raises(ValueError, match="contradicts"):
        resolve_settings(training_config(r=16, alpha=32), r=8)
    with pytest.raises(ValueError, match="conflicting lora_r"):
        resolve_settings({"a": {"lora_r": 16, "lora_alpha": 32}, "b": {"lora_r": 8}})
    with pytest.raises(ValueError, match="positive integer"):
        resolve_settings({}, r=0, alpha=1)
    # the config gives one value, the flag the other
    s = resolve_settings({"lora_r": 16}, alpha=32)
    assert (s.r, s.alpha) == (16, 32.0)


def test_collect_accepts_the_full_set(config):
    pairs = collect_lora(lora_state_dict(config), config, SETTINGS)
    assert len(pairs) == config.num_hidden_layers * len(TARGET_MODULES)
    assert pairs[0].target == "model.layers.0.self_attn.q_proj.weight"


def test_missing_key_is_listed(config):
    state = lora_state_dict(config)
    gone = lora_key(1, "mlp.up_proj", "B")
    del state[gone]
    with pytest.raises(LoraError, match="missing LoRA keys") as info:
        collect_lora(state, config, SETTINGS)
    assert info.value.keys == [gone]


def test_extra_keys_are_listed(config):
    state = lora_state_dict(config)
    extra = [
        lora_key(config.num_hidden_layers, "self_attn.q_proj", "A"),  # a layer the base lacks
        "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.other.weight",  # 2nd adapter
        "llama_model.base_model.model.lm_head.weight",  # full weights are not expected
    ]
    for key in extra:
        state[key] = torch.zeros(1)
    with pytest.raises(LoraError, match="unexpected keys") as info:
        collect_lora(state, config, SETTINGS)
    assert sorted(info.value.keys) == sorted(extra)


def test_misshaped_tensors_are_listed(config):
    state = lora_state_dict(config)
    a_key, b_key = lora_key(0, "self_attn.k_proj", "A"), lora_key(1, "mlp.down_proj", "B")
    state[a_key] = torch.zeros(16, config.hidden_size + 1)
    state[b_key] = torch.zeros(config.hidden_size, 8)
    with pytest.raises(LoraError, match="misshaped") as info:
        collect_lora(state, config, SETTINGS)
    assert [k.split(" ")[0] for k in info.value.keys] == [a_key, b_key]
    # a rank that disagrees with the saved config is misshaped too
    with pytest.raises(LoraError, match="r=8"):
        collect_lora(lora_state_dict(config), config, LoraSettings(r=8, alpha=16, source="flags"))


def test_nan_is_refused(config):
    state = lora_state_dict(config)
    state[lora_key(0, "mlp.gate_proj", "A")][0, 0] = float("nan")
    with pytest.raises(LoraError, match="NaN"):
        collect_lora(state, config, SETTINGS)


def test_non_llm_keys_are_ignored(config):
    state = lora_state_dict(config)
    state["video_Qformer.bert.encoder.layer.0.attention.self.query.weight"] = torch.zeros(3, 3)
    assert len(collect_lora(state, config, SETTINGS)) == config.num_hidden_layers * 7


def test_merge_is_w_plus_scale_b_a_in_float32(config):
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).float()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    settings = LoraSettings(r=16, alpha=24.0, source="test")
    pairs = collect_lora(lora_state_dict(config, r=16, alpha=24.0, seed=3), config, settings)
    assert merge_lora(model, pairs, settings) == len(pairs)
    params = dict(model.named_parameters())
    for pair in pairs:
        want = before[pair.target].double() + 1.5 * (pair.b.double() @ pair.a.double())
        assert torch.allclose(params[pair.target].double(), want, atol=1e-6)
    untouched = [k for k in before if not any(k == p.target for p in pairs)]
    assert untouched and all(torch.equal(params[k], before[k]) for k in untouched)


def test_merge_refuses_half_precision(config):
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(config).half()
    pairs = collect_lora(lora_state_dict(config), config, SETTINGS)
    with pytest.raises(TypeError, match="float32"):
        merge_lora(model, pairs, SETTINGS)
