"""Nano-EmoX metadata carried by the language-core GGUF, and the converter's check of a written file.

Keys written (besides what ``gguf_writer`` writes: hyper-parameters, context length, RoPE, tokenizer):
- ``nano_emox.stop_strings``: ``["###"]``, the answer terminator the model was trained on (spec 9);
- ``nano_emox.stop_token_ids``: EOS ids of the base (generation_config.json / tokenizer) plus the
  ids of ``<|im_end|>`` and ``<|endoftext|>`` when the vocabulary has them;
- ``nano_emox.lora_merged`` (bool), and ``nano_emox.lora_r`` / ``nano_emox.lora_alpha`` when merged;
- ``nano_emox.converter``: ``emox-edge <version>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from emox_edge._version import __version__

log = logging.getLogger(__name__)

STOP_STRINGS_KEY = "nano_emox.stop_strings"
STOP_TOKEN_IDS_KEY = "nano_emox.stop_token_ids"
LORA_MERGED_KEY = "nano_emox.lora_merged"
STOP_STRINGS = ("###",)
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def stop_token_ids(base: Path, tokenizer: Any) -> list[int]:
    """EOS ids from generation_config.json and the tokenizer, plus ChatML end tokens present."""
    ids: list[int] = []
    gen = base / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        ids.extend(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids.extend(vocab[t] for t in _STOP_TOKENS if t in vocab)
    return list(dict.fromkeys(int(i) for i in ids))


def gguf_metadata(base: Path, tokenizer: Any, *, settings: Any | None) -> dict[str, Any]:
    """The extra GGUF key/values of a converted Nano-EmoX language core."""
    meta: dict[str, Any] = {
        STOP_STRINGS_KEY: list(STOP_STRINGS),
        LORA_MERGED_KEY: settings is not None,
        "nano_emox.converter": f"emox-edge {__version__}",
    }
    stops = stop_token_ids(base, tokenizer)
    if stops:
        meta[STOP_TOKEN_IDS_KEY] = stops
    if settings is not None:
        meta["nano_emox.lora_r"] = int(settings.r)
        meta["nano_emox.lora_alpha"] = float(settings.alpha)
    return meta


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Scalar and short-array metadata of a GGUF (token lists reduced to their length)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out: dict[str, Any] = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        if name in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
            out[name + ".count"] = len(fld.data)
            continue
        out[name] = fld.contents()
    return out


def check_gguf_metadata(path: Path, hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """Verify a written GGUF against the base config; return its metadata.

    Raises:
        RuntimeError: a key is missing or differs (a converter bug, never the user's input).
    """
    meta = read_gguf_metadata(path)
    heads = int(hf_config["num_attention_heads"])
    want: dict[str, Any] = {
        "general.architecture": "qwen2",
        "qwen2.context_length": int(hf_config["max_position_embeddings"]),
        "qwen2.block_count": int(hf_config["num_hidden_layers"]),
        "qwen2.embedding_length": int(hf_config["hidden_size"]),
        "qwen2.attention.head_count": heads,
        "qwen2.attention.head_count_kv": int(hf_config.get("num_key_value_heads") or heads),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.tokens.count": int(hf_config["vocab_size"]),
        STOP_STRINGS_KEY: list(STOP_STRINGS),
    }
    problems = [f"{k}={meta.get(k)!r} (expected {v!r})" for k, v in want.items() if meta.get(k) != v]
    theta = float(hf_config.get("rope_theta", 10000.0))
    got_theta = meta.get("qwen2.rope.freq_base")
    if got_theta is None or abs(float(got_theta) - theta) > 1e-6 * theta:
        problems.append(f"qwen2.rope.freq_base={got_theta!r} (expected {theta})")
    if not meta.get("tokenizer.ggml.merges.count"):
        problems.append("tokenizer.ggml.merges missing")
    if problems:
        raise RuntimeError(f"{path.name}: metadata check failed: {'; '.join(problems)}")
    return meta
