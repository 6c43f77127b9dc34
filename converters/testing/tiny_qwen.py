"""A tiny random-weight Qwen2 model with a real byte-level BPE tokenizer, built offline in seconds.

``build_tiny_qwen2(dir)`` writes a Hugging Face directory (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json) that has the exact architecture
family of Nano-EmoX's language core (Qwen2: GQA, q/k/v biases, SwiGLU, RMSNorm, RoPE θ=1e6, tied
embeddings, more embedding rows than tokens) at a toy size. The tokenizer is trained with the
``tokenizers`` library on ``tiny_qwen_corpus`` with Qwen2's pre-tokenizer regex and NFC normalizer,
and carries Qwen's special tokens, so llama.cpp (pre-tokenizer "qwen2") tokenizes like HF does.

A finished directory carries a stamp of its build arguments; calling the builder again with the
same arguments returns at once, so tests and benchmarks can share one cache directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from converters._torch import require_torch
from converters.testing.tiny_qwen_corpus import corpus_lines

logger = logging.getLogger(__name__)

# Qwen2's pre-tokenizer split (the same regex llama.cpp uses for pre-tokenizer "qwen2").
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_STAMP = "emox_tiny_qwen2.json"
_BUILD_VERSION = 1


def _train_tokenizer(vocab_size: int):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def _save_tokenizer(tok, out_dir: Path) -> dict[str, int]:
    from transformers import PreTrainedTokenizerFast

    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    hf_tok.save_pretrained(out_dir)
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update({"tokenizer_class": "Qwen2TokenizerFast", "add_bos_token": False, "errors": "replace"})
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return ids


def build_tiny_qwen2(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position: int = 1024,
    tie: bool = True,
    init_std: float = 0.05,
    dtype: str = "float32",
) -> Path:
    """Build (or reuse) a tiny random Qwen2ForCausalLM + BPE tokenizer in ``out_dir``.

    Args:
        out_dir: target directory (created; replaced when it holds a different build).
        seed: torch seed of the random weights (the tokenizer depends only on the corpus).
        vocab_size: tokens the BPE trainer aims for, special tokens included (600..2000); the
            embedding matrix gets more rows than tokens (rounded up to 128), as in Qwen2.5.
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, max_position: shape.
        tie: tie the output matrix to the token embedding (Qwen2.5-1.5B does).
        init_std: std of the random weights (larger gives peakier next-token distributions).
        dtype: "float32" or "bfloat16" safetensors (the real checkpoint is bf16).

    Returns:
        ``Path(out_dir)``.

    Raises:
        ValueError: an out-of-range vocabulary size or an unknown dtype.
    """
    if not 600 <= vocab_size <= 2000:
        raise ValueError(f"vocab_size must be in 600..2000; got {vocab_size}")
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16'; got {dtype!r}")
    args = {
        "version": _BUILD_VERSION, "seed": seed, "vocab_size": vocab_size, "hidden_size": hidden_size,
        "num_layers": num_layers, "num_heads": num_heads, "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate_size, "max_position": max_position, "tie": tie,
        "init_std": init_std, "dtype": dtype,
    }
    out_dir = Path(out_dir)
    stamp = out_dir / _STAMP
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == args:
        return out_dir

    torch = require_torch()
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        tok = _train_tokenizer(vocab_size)
        ids = _save_tokenizer(tok, tmp)
        n_tokens = tok.get_vocab_size(with_added_tokens=True)
        rows = (n_tokens // 128 + 1) * 128  # always some padding rows beyond the tokenizer
        config = Qwen2Config(
            vocab_size=rows, hidden_size=hidden_size, intermediate_size=intermediate_size,
            num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
            max_position_embeddings=max_position, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
            tie_word_embeddings=tie, initializer_range=init_std, use_sliding_window=False,
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], torch_dtype=dtype,
        )
        config.architectures = ["Qwen2ForCausalLM"]
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).eval()
        with torch.no_grad():  # non-trivial norms and biases, so the converter's mapping is tested
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.copy_(1.0 + 0.1 * torch.randn_like(param))
                elif name.endswith(".bias"):
                    param.copy_(init_std * torch.randn_like(param))
        model.to(getattr(torch, dtype)).save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(
            bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
            pad_token_id=ids["<|endoftext|>"], do_sample=False,
        ).save_pretrained(tmp)
        (tmp / _STAMP).write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("built tiny Qwen2 (%d tokens, %d rows) in %s", n_tokens, rows, out_dir)
    return out_dir


def tiny_qwen2_gguf(cache_dir: str | os.PathLike, *, out_type: str = "f16", quant: str | None = None, **build) -> Path:
    """Build (or reuse) the tiny model under ``cache_dir`` and return its GGUF (optionally quantized).

    ``build`` is passed to ``build_tiny_qwen2``; the files are named after its arguments, so
    different variants can share ``cache_dir``.
    """
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.llm.quantize import quantize_gguf

    cache_dir = Path(cache_dir)
    tag = "-".join(f"{k}{v}" for k, v in sorted(build.items())) or "default"
    hf_dir = build_tiny_qwen2(cache_dir / f"hf-{tag}", **build)
    gguf_path = cache_dir / f"tiny-{tag}-{out_type}.gguf"
    stamp = hf_dir / _STAMP
    if not gguf_path.is_file() or gguf_path.stat().st_mtime < stamp.stat().st_mtime:
        write_qwen2_gguf(hf_dir, gguf_path, out_type=out_type)
    if quant is None:
        return gguf_path
    quant_path = cache_dir / f"tiny-{tag}-{quant}.gguf"
    if not quant_path.is_file() or quant_path.stat().st_mtime < gguf_path.stat().st_mtime:
        quantize_gguf(gguf_path, quant_path, quant)
    return quant_path
