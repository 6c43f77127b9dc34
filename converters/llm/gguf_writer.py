"""Write a Hugging Face Qwen2 model directory to GGUF through the ``gguf`` package's ``GGUFWriter``.

Every hyper-parameter comes from ``config.json`` and the vocabulary from ``tokenizer.json`` /
``tokenizer_config.json``; nothing model-specific is hard-coded. Tensors are streamed one at a time
(header and tensor table first, then each tensor converted and written), so writing the 1.5B model
needs about one tensor's worth of memory beyond the output, and no torch when the weights come from
safetensors. The output appears under its final name only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from emox_edge._io import atomic_path

logger = logging.getLogger(__name__)

OUT_TYPES = ("f32", "f16")
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}
# Per-layer tensors of a Qwen2 block, as GGUF names without the "blk.N." prefix.
_BLOCK_TENSORS = (
    "attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
    "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
)


@dataclass(frozen=True)
class _Source:
    """One input tensor: its HF name, shape and a loader returning float32 numpy."""

    name: str
    shape: tuple[int, ...]
    load: Callable[[], np.ndarray]


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", head)
        if size > os.path.getsize(path):
            raise ValueError(f"{path} is not a safetensors file (header size {size} exceeds the file)")
        header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def _safetensors_sources(files: list[Path]) -> Iterator[_Source]:
    for path in files:
        header, base = _read_safetensors_header(path)
        for name, info in header.items():
            dtype = info["dtype"]
            if dtype not in _ST_DTYPES:
                raise ValueError(f"{path}: tensor {name} has dtype {dtype}; expected one of {sorted(_ST_DTYPES)}")
            shape = tuple(int(d) for d in info["shape"])
            start, end = info["data_offsets"]

            def load(path=path, base=base, dtype=dtype, shape=shape, start=start, end=end) -> np.ndarray:
                np_dtype = _ST_DTYPES[dtype]
                count = (end - start) // np.dtype(np_dtype).itemsize
                raw = np.fromfile(path, dtype=np_dtype, count=count, offset=base + start).reshape(shape)
                return _bf16_to_f32(raw) if dtype == "BF16" else raw.astype(np.float32, copy=False)

            yield _Source(name, shape, load)


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    if hasattr(value, "detach"):  # a torch tensor; torch is only present when the caller used it
        import torch

        return value.detach().to(dtype=torch.float32, device="cpu").numpy()
    raise TypeError(f"state_dict[{name!r}] is {type(value).__name__}; expected a numpy array or a torch tensor")


def _state_dict_sources(state_dict: Mapping[str, Any]) -> Iterator[_Source]:
    for name, value in state_dict.items():
        if not (isinstance(value, np.ndarray) or hasattr(value, "detach")):
            raise TypeError(f"state_dict[{name!r}] is {type(value).__name__}; expected a numpy array or a torch tensor")
        shape = tuple(int(d) for d in value.shape)
        yield _Source(name, shape, lambda value=value, name=name: _to_numpy(value, name))


def _weight_files(hf_dir: Path) -> list[Path]:
    index = hf_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [hf_dir / n for n in names]
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"no *.safetensors weights in {hf_dir}; expected model.safetensors (or shards with an index),"
            " or pass state_dict="
        )
    return files


def _load_config(hf_dir: Path) -> dict[str, Any]:
    if not hf_dir.is_dir():
        raise FileNotFoundError(f"HF model directory not found: {hf_dir}")
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found; expected a Hugging Face model directory")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    if config.get("model_type") != "qwen2" and "Qwen2ForCausalLM" not in archs:
        raise ValueError(
            f"{config_path}: model_type {config.get('model_type')!r} / architectures {archs}; expected a Qwen2 model"
        )
    return config


def _vocab(hf_dir: Path, vocab_size: int, gguf) -> tuple[list[str], list[int]]:
    """Token strings and types, padded to the model's embedding rows like llama.cpp's converter."""
    tok_path = hf_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise FileNotFoundError(f"{tok_path} not found; the GGUF vocabulary is read from tokenizer.json")
    tok = json.loads(tok_path.read_text(encoding="utf-8"))
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise ValueError(f"{tok_path}: tokenizer model {model.get('type')!r}; expected a byte-level 'BPE'")
    by_id: dict[int, tuple[str, int]] = {i: (t, gguf.TokenType.NORMAL) for t, i in model["vocab"].items()}
    for added in tok.get("added_tokens", []):
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[int(added["id"])] = (added["content"], kind)
    if by_id and max(by_id) >= vocab_size:
        raise ValueError(
            f"{tok_path} has token id {max(by_id)} but config.json vocab_size is {vocab_size}; "
            "expected ids < vocab_size"
        )
    tokens, types = [], []
    for i in range(vocab_size):
        text, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        tokens.append(text)
        types.append(int(kind))
    return tokens, types


def _add_metadata(writer, metadata: Mapping[str, Any]) -> None:
    for key, value in metadata.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_int64(key, value) if value < 0 or value >= 2**32 else writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, (list, tuple)) and value:
            writer.add_array(key, list(value))
        else:
            raise TypeError(
                f"metadata[{key!r}] is {type(value).__name__}; expected bool, int, float, str or a non-empty list"
            )


def _add_hparams(writer, config: Mapping[str, Any], gguf, out_type: str, name: str) -> None:
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    head_dim = config.get("head_dim")
    if head_dim and int(head_dim) != hidden // heads:
        writer.add_key_length(int(head_dim))
        writer.add_value_length(int(head_dim))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    scaling = config.get("rope_scaling")
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "yarn":
            writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
            writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
        elif kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
        elif kind != "default":
            raise ValueError(f"config.json rope_scaling type {kind!r}; expected none, 'linear' or 'yarn'")
    ftype = gguf.LlamaFileType.ALL_F32 if out_type == "f32" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(int(ftype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF (out, in) shapes implied by config.json, keyed by GGUF name (per-layer names unprefixed)."""
    hidden, inter, vocab = int(config["hidden_size"]), int(config["intermediate_size"]), int(config["vocab_size"])
    heads = int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    q, k = heads * head_dim, kv * head_dim
    return {
        "token_embd.weight": (vocab, hidden), "output.weight": (vocab, hidden), "output_norm.weight": (hidden,),
        "attn_norm.weight": (hidden,), "ffn_norm.weight": (hidden,),
        "attn_q.weight": (q, hidden), "attn_q.bias": (q,), "attn_k.weight": (k, hidden), "attn_k.bias": (k,),
        "attn_v.weight": (k, hidden), "attn_v.bias": (k,), "attn_output.weight": (hidden, q),
        "ffn_gate.weight": (inter, hidden), "ffn_up.weight": (inter, hidden), "ffn_down.weight": (hidden, inter),
    }


def _plan_tensors(sources: Iterator[_Source], config: Mapping[str, Any], gguf) -> list[tuple[str, _Source]]:
    """Map HF names to GGUF names, drop what GGUF does not store, and check nothing is missing."""
    n_layers = int(config["num_hidden_layers"])
    tied = bool(config.get("tie_word_embeddings", False))
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, n_layers)
    planned: dict[str, _Source] = {}
    for src in sources:
        if src.name.endswith("rotary_emb.inv_freq"):
            continue
        if tied and src.name == "lm_head.weight":
            continue  # the output matrix is the token embedding; llama.cpp reuses token_embd
        new = name_map.get_name(src.name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ValueError(f"tensor {src.name!r} has no GGUF name for a Qwen2 model; expected HF Qwen2 names")
        planned[new] = src
    expected = ["token_embd.weight", "output_norm.weight"] + ([] if tied else ["output.weight"])
    expected += [f"blk.{i}.{t}" for i in range(n_layers) for t in _BLOCK_TENSORS]
    missing = [n for n in expected if n not in planned]
    if missing:
        raise ValueError(f"missing tensors for a Qwen2 model with {n_layers} layers (tied={tied}): {missing[:8]}")
    shapes = _expected_shapes(config)
    for name, src in planned.items():
        want = shapes.get(name.split(".", 2)[-1] if name.startswith("blk.") else name)
        if want is not None and src.shape != want:
            raise ValueError(f"tensor {src.name!r} has shape {src.shape}; config.json implies {want}")
    return list(planned.items())


def write_qwen2_gguf(
    hf_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    out_type: str = "f16",
    state_dict: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write the Qwen2 model in ``hf_dir`` to a GGUF file.

    Args:
        hf_dir: HF directory with config.json, tokenizer.json (+ tokenizer_config.json) and,
            unless ``state_dict`` is given, ``*.safetensors`` (F32, F16 or BF16).
        out_path: the GGUF file to write (atomically).
        out_type: "f16" (matrices in F16, norms and biases in F32) or "f32".
        state_dict: HF tensor name -> numpy array or torch tensor; replaces the safetensors weights
            (used for the LoRA-merged model).
        metadata: extra GGUF key/values (str, bool, int, float, or a list of one of them).

    Returns:
        The path of the written file.

    Raises:
        FileNotFoundError: ``hf_dir``, its config.json, tokenizer.json or weights are missing.
        ValueError: not a Qwen2 model, an unknown ``out_type``, a missing or misshapen tensor.
        TypeError: a metadata value or a state_dict entry of an unsupported type.
    """
    import gguf

    if out_type not in OUT_TYPES:
        raise ValueError(f"out_type must be one of {', '.join(OUT_TYPES)}; got {out_type!r}")
    hf_dir = Path(hf_dir)
    config = _load_config(hf_dir)
    sources = _state_dict_sources(state_dict) if state_dict is not None else _safetensors_sources(_weight_files(hf_dir))
    plan = _plan_tensors(sources, config, gguf)
    tokens, types = _vocab(hf_dir, int(config["vocab_size"]), gguf)

    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2])
    _add_hparams(writer, config, gguf, out_type, str(config.get("_name_or_path") or hf_dir.name))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=len(tokens))
    special.add_special_token.setdefault("bos", False)  # HF Qwen2 tokenizers never prepend a BOS
    special.add_to_gguf(writer, quiet=True)
    _add_metadata(writer, metadata or {})

    def out_dtype(shape: tuple[int, ...]) -> type:
        return np.float16 if out_type == "f16" and len(shape) > 1 else np.float32

    for name, src in plan:
        dtype = out_dtype(src.shape)
        nbytes = int(np.prod(src.shape)) * np.dtype(dtype).itemsize
        writer.add_tensor_info(name, src.shape, np.dtype(dtype), nbytes)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, src in plan:
            array = src.load()
            if tuple(array.shape) != src.shape:
                raise ValueError(f"tensor {src.name!r} has shape {tuple(array.shape)}; declared {src.shape}")
            writer.write_tensor_data(np.ascontiguousarray(array.astype(out_dtype(src.shape), copy=False)))
            logger.debug("wrote %s -> %s %s", src.name, name, src.shape)
        writer.close()
    logger.info("wrote %s (%d tensors, %s)", out_path, len(plan), out_type)
    return out_path
