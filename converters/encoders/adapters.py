"""Everything the Nano-EmoX checkpoint trains between the encoders and the language core (spec 3.3, 4, 5).

``Adapters`` holds its parameters under the checkpoint's own names (``video_Qformer.bert.*``,
``multi_multiscale_fusion.cross_attns.0.in_proj_weight``, ``facial_encoder.query`` ...), so the
checkpoint loads with ``load_state_dict(strict=True)`` after the known-dead keys are set aside
(``converters.encoders.keys``). Every size comes from the checkpoint's tensor shapes.

forward(visual_main [T,Dv], visual_multi [T,S*Dv], audio_main [T,Da], audio_multi [T,S*Da], face [T,Df])
  -> audio_embeds [32,W], frame_embeds [32,W], face_embeds [4,W], fusion_embeds [1,W]   (W = LLM width)
with T = 8 frames / windows and batch 1 (the graphs take one clip at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from converters._torch import require_torch
from converters.encoders.qformer import QFormer, QFormerConfig, heads_for
from emox_edge.errors import BadInputError

torch = require_torch()
nn = torch.nn

OUTPUT_NAMES = ("audio_embeds", "frame_embeds", "face_embeds", "fusion_embeds")
INPUT_NAMES = ("visual_main", "visual_multi", "audio_main", "audio_multi", "face_features")


@dataclass(frozen=True)
class AdapterConfig:
    """Sizes of the adapter stack, all read from checkpoint shapes (defaults: the released model)."""

    video_qformer: QFormerConfig = QFormerConfig()
    audio_qformer: QFormerConfig = QFormerConfig()
    n_video_query: int = 32
    n_audio_query: int = 32
    video_positions: int = 32
    audio_positions: int = 8
    llm_width: int = 1536
    fusion_audio_in: int = 1024
    fusion_visual_in: int = 1024
    fusion_hidden: int = 512
    fusion_scales: int = 3
    gate_hidden: int = 512
    face_dim: int = 256
    n_face_query: int = 4
    face_hidden: int = 768

    @classmethod
    def from_state_dict(cls, state: Mapping[str, "torch.Tensor"]) -> "AdapterConfig":
        def need(key: str):
            if key not in state:
                raise BadInputError(f"checkpoint is missing {key!r} (a Nano-EmoX phase-3 checkpoint holds it; spec section 10)")
            return state[key]

        vq, aq = need("video_query_tokens"), need("audio_query_tokens")
        scales = {int(m.group(1)) for k in state if (m := re.match(r"multi_multiscale_fusion\.cross_attns\.(\d+)\.", k))}
        return cls(
            video_qformer=QFormerConfig.from_state_dict(state, "video_Qformer."),
            audio_qformer=QFormerConfig.from_state_dict(state, "audio_Qformer."),
            n_video_query=int(vq.shape[1]),
            n_audio_query=int(aq.shape[1]),
            video_positions=int(need("video_frame_position_embedding.weight").shape[0]),
            audio_positions=int(need("audio_position_embedding.weight").shape[0]),
            llm_width=int(need("video_proj.weight").shape[0]),
            fusion_audio_in=int(need("multi_multiscale_fusion.audio_proj.weight").shape[1]),
            fusion_visual_in=int(need("multi_multiscale_fusion.visual_proj.weight").shape[1]),
            fusion_hidden=int(need("multi_multiscale_fusion.audio_proj.weight").shape[0]),
            fusion_scales=len(scales),
            gate_hidden=int(need("multi_multiscale_fusion.gate_mlp.0.weight").shape[0]),
            face_dim=int(need("facial_encoder.query").shape[1]),
            n_face_query=int(need("facial_encoder.query").shape[0]),
            face_hidden=int(need("facial_encoder.face_proj.0.weight").shape[0]),
        )

    def slots(self) -> dict[str, int]:
        """Embeddings per placeholder: audio, frame, face, fusion."""
        return {"audio_embeds": self.n_audio_query, "frame_embeds": self.n_video_query,
                "face_embeds": self.n_face_query, "fusion_embeds": 1}


class MultiScaleFusion(nn.Module):
    """Spec section 5: per-scale cross-attention experts (audio queries over video) mixed by a softmax gate."""

    def __init__(self, cfg: AdapterConfig):
        super().__init__()
        hidden = cfg.fusion_hidden
        self.scales = cfg.fusion_scales
        self.audio_proj = nn.Linear(cfg.fusion_audio_in, hidden)
        self.visual_proj = nn.Linear(cfg.fusion_visual_in, hidden)
        self.cross_attns = nn.ModuleList(
            nn.MultiheadAttention(hidden, heads_for(hidden, "fusion"), batch_first=True) for _ in range(self.scales))
        self.ffns = nn.ModuleList(nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, hidden))
            for _ in range(self.scales))
        self.gate_mlp = nn.Sequential(
            nn.Linear(hidden * self.scales, cfg.gate_hidden), nn.GELU(), nn.Dropout(0.0),
            nn.Linear(cfg.gate_hidden, self.scales), nn.Softmax(dim=-1))

    def forward(self, audio_multi, visual_multi):
        audio = torch.chunk(audio_multi, self.scales, dim=-1)
        visual = torch.chunk(visual_multi, self.scales, dim=-1)
        fused = []
        for attn, ffn, a_s, v_s in zip(self.cross_attns, self.ffns, audio, visual):
            a = self.audio_proj(a_s)
            v = self.visual_proj(v_s)
            r = attn(a, v, v, need_weights=False)[0] + a
            fused.append(r + ffn(r))
        weights = self.gate_mlp(torch.cat(fused, dim=-1).mean(dim=1))  # [b, S]
        return sum(weights[:, s, None, None] * fused[s] for s in range(self.scales))


class FacialTemporal(nn.Module):
    """Spec 3.3 ``FacialEncoderFxformer`` minus the frozen FaceXFormer: 4 learned queries attend over frames."""

    def __init__(self, cfg: AdapterConfig):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(cfg.n_face_query, cfg.face_dim))
        self.attn = nn.MultiheadAttention(cfg.face_dim, heads_for(cfg.face_dim, "facial attention"), batch_first=True)
        self.face_proj = nn.Sequential(
            nn.Linear(cfg.face_dim, cfg.face_hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(cfg.face_hidden, cfg.llm_width))

    def forward(self, face_features):
        query = self.query.unsqueeze(0).expand(face_features.shape[0], -1, -1)
        pooled = self.attn(query, face_features, face_features, need_weights=False)[0]
        return self.face_proj(pooled)


class Adapters(nn.Module):
    """Position embeddings, both Q-Formers, projections, fusion and the facial head, under checkpoint names."""

    def __init__(self, cfg: AdapterConfig):
        super().__init__()
        self.cfg = cfg
        self.video_query_tokens = nn.Parameter(torch.zeros(1, cfg.n_video_query, cfg.video_qformer.hidden))
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, cfg.n_audio_query, cfg.audio_qformer.hidden))
        self.video_frame_position_embedding = nn.Embedding(cfg.video_positions, cfg.video_qformer.encoder_width)
        self.audio_position_embedding = nn.Embedding(cfg.audio_positions, cfg.audio_qformer.encoder_width)
        self.video_Qformer = QFormer(cfg.video_qformer)
        self.audio_Qformer = QFormer(cfg.audio_qformer)
        self.video_proj = nn.Linear(cfg.video_qformer.hidden, cfg.llm_width)
        self.audio_llama_proj = nn.Linear(cfg.audio_qformer.hidden, cfg.llm_width)
        self.multi_multiscale_fusion = MultiScaleFusion(cfg)
        self.multi_llama_proj = nn.Linear(cfg.fusion_hidden, cfg.llm_width)
        self.facial_encoder = FacialTemporal(cfg)

    def forward(self, visual_main, visual_multi, audio_main, audio_multi, face_features):
        """Unbatched ``[T, D]`` inputs (one clip) -> unbatched ``[slots, W]`` outputs."""
        vm, vx, am, ax, ff = (t.unsqueeze(0) for t in (visual_main, visual_multi, audio_main, audio_multi, face_features))
        frames = vm.shape[1]
        video_in = vm + self.video_frame_position_embedding.weight[:frames].unsqueeze(0)
        audio_in = am + self.audio_position_embedding.weight[:frames].unsqueeze(0)
        frame_embeds = self.video_proj(self.video_Qformer(self.video_query_tokens, video_in))
        audio_embeds = self.audio_llama_proj(self.audio_Qformer(self.audio_query_tokens, audio_in))
        fused = self.multi_multiscale_fusion(ax, vx).mean(dim=1)  # [1, hidden]
        fusion_embeds = self.multi_llama_proj(fused)
        face_embeds = self.facial_encoder(ff)
        return audio_embeds[0], frame_embeds[0], face_embeds[0], fusion_embeds
