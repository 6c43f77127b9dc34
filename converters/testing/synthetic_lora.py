"""Build a Nano-EmoX-style training checkpoint with non-zero LoRA weights for a given Qwen2 config.

The keys, shapes and layout are those of the released training runner (spec sections 6.2 and 10):
``{"model": state_dict, "optimizer": ..., "config": {...}, "scaler": ..., "epoch": N}`` with
``llama_model.base_model.model.model.layers.{i}.<module>.lora_{A,B}.default.weight`` for the 7
linear modules of every layer, plus a few adapter tensors outside ``llama_model.`` (which the LoRA
converter must ignore). Unlike a freshly initialised PEFT adapter (B = 0), both A and B are random,
so merging visibly changes the model.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from converters._torch import require_torch
from converters.llm.lora import TARGET_MODULES, lora_key, module_shapes

RELEASED_R = 16
RELEASED_ALPHA = 32


def _load_hf_config(config_or_dir: Any) -> Any:
    if isinstance(config_or_dir, (str, os.PathLike)):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(config_or_dir))
    return config_or_dir


def lora_state_dict(
    hf_config: Any, *, r: int = RELEASED_R, alpha: float = RELEASED_ALPHA, magnitude: float = 0.02, seed: int = 0
) -> dict[str, Any]:
    """The LoRA tensors alone (float32), keyed exactly as in a Nano-EmoX checkpoint.

    Args:
        hf_config: a Qwen2 config object or an HF model directory.
        r, alpha: LoRA rank and alpha (merge scale ``alpha / r``).
        magnitude: standard deviation of each entry of the merged update ``(alpha/r)·B·A``.
        seed: torch generator seed.
    """
    torch = require_torch()
    hf_config = _load_hf_config(hf_config)
    gen = torch.Generator().manual_seed(seed)
    scale = alpha / r
    shapes = module_shapes(hf_config)
    state: dict[str, Any] = {}
    for layer in range(int(hf_config.num_hidden_layers)):
        for module in TARGET_MODULES:
            out_f, in_f = shapes[module]
            std_a = 1.0 / math.sqrt(in_f)
            std_b = magnitude / (scale * math.sqrt(r) * std_a)
            state[lora_key(layer, module, "A")] = torch.randn(r, in_f, generator=gen) * std_a
            state[lora_key(layer, module, "B")] = torch.randn(out_f, r, generator=gen) * std_b
    return state


def adapter_stub_state_dict(hidden_size: int, *, seed: int = 1) -> dict[str, Any]:
    """A few small non-LLM tensors named like the checkpoint's adapters (ignored by the LoRA converter)."""
    torch = require_torch()
    gen = torch.Generator().manual_seed(seed)
    return {
        "video_query_tokens": torch.randn(1, 4, 16, generator=gen),
        "audio_query_tokens": torch.randn(1, 4, 16, generator=gen),
        "video_Qformer.bert.embeddings.LayerNorm.weight": torch.ones(16),
        "video_Qformer.bert.embeddings.position_ids": torch.arange(8).unsqueeze(0),
        "video_proj.weight": torch.randn(hidden_size, 16, generator=gen),
        "video_proj.bias": torch.zeros(hidden_size),
        "multi_llama_proj.weight": torch.randn(hidden_size, 8, generator=gen),
        "facial_encoder.query": torch.randn(4, 8, generator=gen),
    }


def training_config(*, r: int = RELEASED_R, alpha: float = RELEASED_ALPHA) -> dict[str, Any]:
    """A nested config shaped like the runner's saved ``config`` (LoRA settings under ``model``)."""
    return {
        "model": {"arch": "nano_emox", "llama_model": "Qwen25", "lora_r": r, "lora_alpha": alpha,
                  "lora_dropout": 0.05, "num_audio_query_token": 32, "num_video_query_token": 32},
        "run": {"task": "video_text_pretrain", "seed": 42, "max_epoch": 60},
    }


def build_synthetic_checkpoint(
    hf_config: Any,
    out_path: str | os.PathLike,
    *,
    r: int = RELEASED_R,
    alpha: float = RELEASED_ALPHA,
    magnitude: float = 0.02,
    seed: int = 0,
    save_config: bool = True,
    extra: Mapping[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a synthetic Nano-EmoX checkpoint and return its path.

    Args:
        hf_config: Qwen2 config object or HF model directory of the base model.
        out_path: ``*.pth`` (torch.save of the runner's dict) or ``*.safetensors`` (tensors, with the
            config as JSON in the metadata under ``"config"``).
        r, alpha, magnitude, seed: see ``lora_state_dict``.
        save_config: store the training config (with lora_r / lora_alpha); False leaves it out, so
            a converter needs ``--lora-r/--lora-alpha``.
        extra: more tensors to store (replacing same-named ones), e.g. misnamed keys in tests.
        drop: keys to leave out (e.g. to simulate a missing LoRA matrix).
    """
    torch = require_torch()
    hf_config = _load_hf_config(hf_config)
    state = lora_state_dict(hf_config, r=r, alpha=alpha, magnitude=magnitude, seed=seed)
    state.update(adapter_stub_state_dict(int(hf_config.hidden_size), seed=seed + 1))
    state.update(extra or {})
    for key in drop:
        state.pop(key, None)
    config = training_config(r=r, alpha=alpha) if save_config else None
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta = {"config": json.dumps(config)} if config else {}
        save_file({k: v.contiguous() for k, v in state.items()}, str(out_path), metadata=meta)
        return out_path
    first = next(iter(state.values()))
    payload = {
        "model": state,
        "optimizer": {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros_like(first)}},
                      "param_groups": [{"lr": 8e-6, "weight_decay": 0.05, "params": [0]}]},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 10},
        "epoch": 3,
    }
    if config is not None:
        payload["config"] = config
    torch.save(payload, out_path)
    return out_path
