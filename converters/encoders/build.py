"""Build the PyTorch reference adapters from a checkpoint, checking keys, shapes and cross-model widths."""

from __future__ import annotations

import logging
from typing import Mapping

from converters.encoders.adapters import AdapterConfig, Adapters
from converters.encoders.keys import KeyPartition, validate
from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)


def build_adapters(state: Mapping[str, object], *, source: str) -> tuple[Adapters, KeyPartition]:
    """Adapters sized from ``state`` and loaded strictly; refuses missing/unknown/misshaped keys."""
    cfg = AdapterConfig.from_state_dict(state)
    model = Adapters(cfg)
    part = validate(state, model.state_dict(), source=source)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in part.adapters.items()}, strict=True)
    log.info("checkpoint %s: %s", source, ", ".join(f"{k} {v}" for k, v in part.summary().items()))
    return model.eval(), part


def check_widths(cfg: AdapterConfig, *, clip_width: int, hubert_width: int, face_width: int) -> None:
    """The checkpoint's adapters must fit the towers' widths (else they were trained on other encoders)."""
    pairs = [
        ("video Q-Former cross-attention key/value width", cfg.video_qformer.encoder_width, "CLIP hidden_size", clip_width),
        ("audio Q-Former cross-attention key/value width", cfg.audio_qformer.encoder_width, "HuBERT hidden_size", hubert_width),
        ("fusion visual_proj input width", cfg.fusion_visual_in, "CLIP hidden_size", clip_width),
        ("fusion audio_proj input width", cfg.fusion_audio_in, "HuBERT hidden_size", hubert_width),
        ("facial_encoder.query width", cfg.face_dim, "FaceXFormer linear_fuse width", face_width),
    ]
    bad = [f"{a} {x} != {b} {y}" for a, x, b, y in pairs if x != y]
    if bad:
        raise BadInputError("the checkpoint does not fit these base encoders: " + "; ".join(bad))
