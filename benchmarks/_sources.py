"""Source models for the benchmarks: what a user would hand the converters, at tiny or full size.

Full size: the encoders are random (no Nano-EmoX weights exist yet) at the exact architectures of
spec §1/§11; the language core is the real Qwen2.5-Coder-1.5B-Instruct (same architecture and
tokenizer as Nano-EmoX's Qwen2.5-1.5B) read back from its pinned Q4_K_M GGUF by transformers.

The checkpoint is the encoders helper's synthetic one (``converters.testing.tiny_encoders``: every
spec §10 key, random weights that keep activations O(1)) at the released shapes. Its four output
projections are then rescaled so the injected rows have the RMS of the language model's own token
embeddings, as trained projections must (rows 50x larger than any token embedding would push the real
language core far off its training distribution and exaggerate every numeric difference).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from converters._torch import require_torch

torch = require_torch()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FullSizes:
    """The real Nano-EmoX encoder architectures (spec §1, §3, §11)."""

    clip_hidden: int = 1024
    clip_layers: int = 24
    clip_heads: int = 16
    clip_intermediate: int = 4096
    hubert_hidden: int = 1024
    hubert_layers: int = 24
    hubert_heads: int = 16
    hubert_intermediate: int = 4096
    swin_embed: int = 128
    swin_depths: tuple[int, ...] = (2, 2, 18, 2)
    swin_heads: tuple[int, ...] = (4, 8, 16, 32)
    face_dim: int = 256


FULL = FullSizes()


def full_checkpoint_sizes(llm_width: int):
    """``converters.testing.tiny_encoders.TinySizes`` at the released model's sizes (spec §10 shapes)."""
    from converters.testing.tiny_encoders import TinySizes

    return TinySizes(clip_width=1024, clip_layers=24, hubert_width=1024, hubert_layers=24, swin_embed=128,
                     swin_depths=(2, 2, 18, 2), swin_heads=(4, 8, 16, 32), face_dim=256, face_hidden=768,
                     qformer_hidden=768, qformer_intermediate=3072, qformer_layers=2, fusion_hidden=512,
                     llm_width=llm_width)


def save_clip_vision(out: Path, sizes: FullSizes, *, seed: int) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=sizes.clip_hidden, intermediate_size=sizes.clip_intermediate,
                              num_hidden_layers=sizes.clip_layers, num_attention_heads=sizes.clip_heads,
                              image_size=224, patch_size=14, hidden_act="quick_gelu", projection_dim=768)
    CLIPVisionModel(config).eval().save_pretrained(out)
    return out


def save_hubert(out: Path, sizes: FullSizes, *, seed: int) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    config = HubertConfig(hidden_size=sizes.hubert_hidden, num_hidden_layers=sizes.hubert_layers,
                          num_attention_heads=sizes.hubert_heads, intermediate_size=sizes.hubert_intermediate,
                          conv_dim=(512,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True,
                          num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, conv_bias=True)
    HubertModel(config).eval().save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    return out


def save_facexformer(out: Path, sizes: FullSizes, *, seed: int) -> Path:
    from converters.encoders.facexformer import FaceXFormerEncoder
    from converters.encoders.swin import SwinConfig
    from emox_edge._io import atomic_path

    torch.manual_seed(seed)
    model = FaceXFormerEncoder(SwinConfig(embed_dim=sizes.swin_embed, depths=sizes.swin_depths,
                                          num_heads=sizes.swin_heads), sizes.face_dim)
    _init_(model)
    with atomic_path(out) as tmp:
        torch.save({"state_dict_backbone": model.state_dict()}, tmp)
    return out


def _init_(module) -> None:
    """Swin-style init: Linear/Conv N(0, 0.02), biases 0, LayerNorm 1/0 (bias tables keep their own init)."""
    nn = torch.nn
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(sub.weight, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


def checkpoint_state(sizes, target_rms: float, *, seed: int) -> dict:
    """The encoders helper's synthetic checkpoint (every spec §10 key) with rescaled output projections.

    No LoRA keys: the real language core is converted as is.
    """
    from converters.testing.tiny_encoders import synthetic_checkpoint_state

    state = synthetic_checkpoint_state(sizes, torch.Generator().manual_seed(seed))
    match_output_rms(state, target_rms)
    return state


PROJECTIONS = {"audio_embeds": "audio_llama_proj", "frame_embeds": "video_proj",
               "face_embeds": "facial_encoder.face_proj.3", "fusion_embeds": "multi_llama_proj"}


def match_output_rms(state: dict, target_rms: float) -> dict[str, float]:
    """Scale, in ``state``, the four projections into the language width so each output's RMS is ``target_rms``.

    Measured on random unit-variance encoder features; returns the RMS each output had before.
    """
    from converters.encoders.build import build_adapters

    model, _ = build_adapters(state, source="benchmark checkpoint")
    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    width_v, width_a = cfg.video_qformer.encoder_width, cfg.audio_qformer.encoder_width
    inputs = (torch.randn(8, width_v, generator=gen), torch.randn(8, 3 * width_v, generator=gen),
              torch.randn(8, width_a, generator=gen), torch.randn(8, 3 * width_a, generator=gen),
              torch.randn(8, cfg.face_dim, generator=gen))
    with torch.no_grad():
        outputs = dict(zip(("audio_embeds", "frame_embeds", "face_embeds", "fusion_embeds"), model(*inputs)))
    before = {}
    for name, prefix in PROJECTIONS.items():
        value = float(outputs[name].float().pow(2).mean().sqrt())
        before[name] = value
        if value > 0:
            for suffix in ("weight", "bias"):
                state[f"{prefix}.{suffix}"] = state[f"{prefix}.{suffix}"] * (target_rms / value)
    return before


def token_embedding_rms(hf_dir: Path) -> float:
    """RMS of the language model's input embedding matrix (read from its safetensors)."""
    from safetensors import safe_open

    for path in sorted(hf_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            if "model.embed_tokens.weight" in handle.keys():
                emb = handle.get_tensor("model.embed_tokens.weight").float()
                return float(emb.pow(2).mean().sqrt())
    raise FileNotFoundError(f"{hf_dir}: no model.embed_tokens.weight in its safetensors")


def qwen_from_gguf(gguf_path: Path, out: Path) -> Path:
    """Read the GGUF into a float32 transformers Qwen2 (dequantized weights) and save it as a HF dir."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        link = Path(tmp) / gguf_path.name
        link.symlink_to(gguf_path)
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf_path.name, torch_dtype=torch.float32,
                                                     low_cpu_mem_usage=True)
        # transformers refuses to save a GGUF-loaded model while it carries a quantization setting.
        for holder in (model, model.config):
            if hasattr(holder, "quantization_config"):
                delattr(holder, "quantization_config")
        model.hf_quantizer = None
        staging = Path(tmp) / "hf"
        model.save_pretrained(staging, safe_serialization=True, max_shard_size="2GB")
        tokenizer.save_pretrained(staging)
        del model
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    meta = {"from": str(gguf_path), "dtype": "float32", "note": "weights are the dequantized Q4_K_M values"}
    (out / "emox_bench_source.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def real_qwen_gguf() -> Path:
    from converters.lite.sources import fetch_qwen25_coder_gguf

    return fetch_qwen25_coder_gguf()
