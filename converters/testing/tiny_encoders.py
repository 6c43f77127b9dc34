"""Scaled-down Nano-EmoX perception inputs with random weights, for tests, examples and benchmarks.

``build_tiny_encoders(out_dir)`` writes what ``emox-edge convert encoders`` reads, at small widths but
with the true input shapes (224 px frames, 32000-sample windows), the true depth where the spec's layer
indices need it (24 CLIP / HuBERT layers), the true slot counts (32 / 32 / 4 / 1) and the exact
checkpoint key names of spec section 10:

- ``clip/``: a ``CLIPModel`` directory (vision tower 24 layers x 64 wide, patch 32, tiny text
  tower), like openai/clip-vit-large-patch14's layout;
- ``hubert/``: a ``HubertModel`` directory (large layout: layer-norm conv stem, stable layer norm);
- ``facexformer/model.pt``: ``{"state_dict_backbone": ...}`` with a tiny Swin in torchvision layout,
  ``linear_c``, ``linear_fuse`` and a few decoder keys (ignored by the converter);
- ``checkpoint.pth``: ``{"model": ..., "config": ...}`` with every adapter key, the known-dead keys and
  the Swin ``relative_position_index`` buffers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from converters._torch import require_torch


@dataclass(frozen=True)
class TinySizes:
    """Widths of the tiny models. Head size is 64 wherever the spec's head count is implied by width.

    ``TinySizes.full()`` gives the real Nano-EmoX sizes (for the slow full-size test).
    """

    clip_width: int = 64
    clip_layers: int = 24
    clip_heads: int = 2
    clip_intermediate: int = 128
    clip_patch: int = 32  # the real model uses 14; 32 keeps the tiny tower fast at the true 224 px input
    hubert_width: int = 64
    hubert_layers: int = 24
    hubert_heads: int = 2
    hubert_intermediate: int = 128
    hubert_conv_dim: int = 32
    hubert_pos_kernel: int = 16
    hubert_pos_groups: int = 4
    swin_embed: int = 16
    swin_depths: tuple[int, ...] = (2, 2, 2, 2)
    swin_heads: tuple[int, ...] = (1, 2, 2, 4)
    face_dim: int = 128
    face_hidden: int = 128
    qformer_hidden: int = 128
    qformer_intermediate: int = 256
    qformer_layers: int = 2
    fusion_hidden: int = 128
    llm_width: int = 64
    n_video_query: int = 32
    n_audio_query: int = 32
    n_face_query: int = 4
    video_positions: int = 32
    audio_positions: int = 8

    @classmethod
    def full(cls) -> "TinySizes":
        """CLIP ViT-L/14, chinese-hubert-large, Swin-B FaceXFormer and the released adapter sizes (spec 3-5)."""
        return cls(clip_width=1024, clip_layers=24, clip_heads=16, clip_intermediate=4096, clip_patch=14,
                   hubert_width=1024, hubert_layers=24, hubert_heads=16, hubert_intermediate=4096, hubert_conv_dim=512,
                   hubert_pos_kernel=128, hubert_pos_groups=16, swin_embed=128, swin_depths=(2, 2, 18, 2),
                   swin_heads=(4, 8, 16, 32), face_dim=256, face_hidden=768, qformer_hidden=768,
                   qformer_intermediate=3072, qformer_layers=2, fusion_hidden=512, llm_width=1536)


@dataclass(frozen=True)
class TinyEncoderFiles:
    root: Path
    clip: Path
    hubert: Path
    facexformer: Path
    checkpoint: Path


def build_tiny_encoders(out_dir: str | Path, *, seed: int = 0, sizes: TinySizes = TinySizes()) -> TinyEncoderFiles:
    """Write tiny CLIP, HuBERT, FaceXFormer and a synthetic Nano-EmoX checkpoint under ``out_dir``."""
    torch = require_torch()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files = TinyEncoderFiles(root, root / "clip", root / "hubert", root / "facexformer" / "model.pt",
                             root / "checkpoint.pth")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    _write_clip(files.clip, sizes)
    _write_hubert(files.hubert, sizes)
    _write_facexformer(files.facexformer, sizes, gen)
    torch.save({"model": synthetic_checkpoint_state(sizes, gen), "config": _config(sizes), "epoch": 0},
               files.checkpoint)
    (root / "sizes.json").write_text(json.dumps(asdict(sizes), indent=2) + "\n", encoding="utf-8")
    return files


def _write_clip(path: Path, s: TinySizes) -> None:
    from transformers import CLIPConfig, CLIPModel

    vision = dict(hidden_size=s.clip_width, intermediate_size=s.clip_intermediate, num_hidden_layers=s.clip_layers,
                  num_attention_heads=s.clip_heads, image_size=224, patch_size=s.clip_patch, hidden_act="quick_gelu")
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=128,
                max_position_embeddings=16)
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=32)).save_pretrained(path)


def _write_hubert(path: Path, s: TinySizes) -> None:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = HubertConfig(
        hidden_size=s.hubert_width, num_hidden_layers=s.hubert_layers, num_attention_heads=s.hubert_heads,
        intermediate_size=s.hubert_intermediate, conv_dim=(s.hubert_conv_dim,) * 7, conv_bias=True,
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=s.hubert_pos_kernel,
        num_conv_pos_embedding_groups=s.hubert_pos_groups)
    HubertModel(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(path)


def _write_facexformer(path: Path, s: TinySizes, gen) -> None:
    torch = require_torch()
    from converters.encoders.facexformer import FaceXFormerEncoder
    from converters.encoders.swin import SwinConfig

    swin = SwinConfig(embed_dim=s.swin_embed, depths=s.swin_depths, num_heads=s.swin_heads)
    state = _randomize(FaceXFormerEncoder(swin, s.face_dim), gen)
    # Decoder keys of the full FaceXFormer: present in the real file, ignored by the encoder-only model.
    state["face_decoder.layers.0.self_attn.q_proj.weight"] = torch.randn(s.face_dim, s.face_dim, generator=gen)
    state["landmarks_token"] = torch.randn(1, s.face_dim, generator=gen)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict_backbone": state, "epoch": 0}, path)


def synthetic_checkpoint_state(s: TinySizes, gen) -> dict:
    """Every spec-section-10 adapter key at ``s``'s shapes, plus the known-dead keys and Swin buffers."""
    torch = require_torch()
    from converters.encoders.adapters import AdapterConfig, Adapters
    from converters.encoders.qformer import QFormerConfig
    from converters.encoders.swin import relative_position_index

    video_q = QFormerConfig(hidden=s.qformer_hidden, layers=s.qformer_layers, intermediate=s.qformer_intermediate,
                            encoder_width=s.clip_width)
    audio_q = QFormerConfig(hidden=s.qformer_hidden, layers=s.qformer_layers, intermediate=s.qformer_intermediate,
                            encoder_width=s.hubert_width)
    cfg = AdapterConfig(
        video_qformer=video_q, audio_qformer=audio_q, n_video_query=s.n_video_query, n_audio_query=s.n_audio_query,
        video_positions=s.video_positions, audio_positions=s.audio_positions, llm_width=s.llm_width,
        fusion_audio_in=s.hubert_width, fusion_visual_in=s.clip_width, fusion_hidden=s.fusion_hidden,
        fusion_scales=3, gate_hidden=s.fusion_hidden, face_dim=s.face_dim, n_face_query=s.n_face_query,
        face_hidden=s.face_hidden)
    state = _randomize(Adapters(cfg), gen)
    state["image_llama_proj.weight"] = torch.randn(s.llm_width, s.clip_width, generator=gen) * 0.02
    state["image_llama_proj.bias"] = torch.zeros(s.llm_width)
    for name in ("multi_audio_embs", "multi_video_embs"):
        state[f"{name}.weight"] = torch.randn(s.clip_width, s.clip_width, generator=gen) * 0.02
        state[f"{name}.bias"] = torch.zeros(s.clip_width)
    state["facial_encoder.lynorm.weight"] = torch.ones(s.face_dim)
    state["facial_encoder.lynorm.bias"] = torch.zeros(s.face_dim)
    for stage, depth in zip((1, 3, 5, 7), s.swin_depths):
        for block in range(depth):
            state[f"facial_encoder.facexformer.backbone.0.{stage}.{block}.attn.relative_position_index"] = \
                relative_position_index(7)
    return state


def _randomize(module, gen) -> dict:
    """Random weights that keep activations O(1): N(0, 1/fan_in) matrices, unit LayerNorms, small biases,
    N(0, 0.02) query tokens and position embeddings, N(0, 1) face queries, N(0, 0.5) Swin bias tables."""
    torch = require_torch()
    nn = torch.nn
    with torch.no_grad():
        for name, sub in module.named_modules():
            if isinstance(sub, nn.LayerNorm):
                sub.weight.fill_(1.0)
                sub.bias.zero_()
            elif isinstance(sub, (nn.Linear, nn.Conv2d)):
                fan_in = sub.weight[0].numel()
                sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) / fan_in**0.5)
                if sub.bias is not None:
                    sub.bias.copy_(torch.randn(sub.bias.shape, generator=gen) * 0.02)
            elif isinstance(sub, nn.MultiheadAttention):
                fan_in = sub.in_proj_weight.shape[1]
                sub.in_proj_weight.copy_(torch.randn(sub.in_proj_weight.shape, generator=gen) / fan_in**0.5)
                sub.in_proj_bias.copy_(torch.randn(sub.in_proj_bias.shape, generator=gen) * 0.02)
            elif isinstance(sub, nn.Embedding):
                sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) * 0.02)
        for name, param in module.named_parameters():
            if name.endswith("query_tokens"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
            elif name.endswith("facial_encoder.query"):
                param.copy_(torch.randn(param.shape, generator=gen))
            elif name.endswith("relative_position_bias_table"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _config(s: TinySizes) -> dict:
    return {"model": {"arch": "nano_emox", "num_video_query_token": s.n_video_query,
                      "num_audio_query_token": s.n_audio_query, "num_facial_query_token": s.n_face_query,
                      "num_multi_query_token": 1, "multi_fusion_type": "multiscale", "lora_r": 16, "lora_alpha": 32},
            "run": {"tiny": True}}
