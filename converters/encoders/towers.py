"""The two Hugging Face towers as Nano-EmoX uses them (spec sections 3.1 and 3.2).

Visual (CLIP ViT-L/14 vision tower, 8 frames as ``pixel_values [8, 3, 224, 224]`` CLIP-normalised):
    main  = CLS token of hidden_states[-2]                       -> [8, D]
    multi = CLS tokens of hidden_states[12], [16], [22] concat'd -> [8, 3D]
Audio (chinese-hubert-large, 8 jointly normalised 2 s windows ``[8, 32000]``):
    main  = mean of hidden_states[-4:], then mean over time      -> [8, D]
    multi = time-means of hidden_states[16], [18], [22] concat'd  -> [8, 3D]

``*Reference`` modules compute exactly that from the full HF forward (``output_hidden_states=True``):
they are the parity reference. ``VisualTower`` is the export form: it runs only the layers the outputs
need (layer 24 and ``post_layernorm`` are dropped). The audio tower needs every layer, so the export
form is the reference itself. Layer indices are spec facts; the models' depth comes from their config
and is checked against them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from converters._torch import require_torch
from emox_edge.errors import BadInputError

torch = require_torch()
nn = torch.nn

log = logging.getLogger(__name__)

VISUAL_MULTI_LAYERS = (12, 16, 22)
AUDIO_MAIN_LAYERS = 4  # mean of the last four hidden states
AUDIO_MULTI_LAYERS = (16, 18, 22)


def _check_depth(kind: str, n_layers: int, needed: int, path: str) -> None:
    if n_layers < needed:
        raise BadInputError(
            f"{path}: {kind} config has num_hidden_layers={n_layers}; Nano-EmoX reads hidden states up to "
            f"index {needed} (multiscale layers {VISUAL_MULTI_LAYERS if kind == 'CLIP' else AUDIO_MULTI_LAYERS}), "
            f"so at least {needed} layers are required"
        )


def _need_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} directory not found: {path} (expected a Hugging Face model directory with config.json)")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise NotADirectoryError(f"{path}: not a Hugging Face model directory (no config.json) for the {what}")
    return path


def load_clip_vision(path: str | os.PathLike):
    """``CLIPVisionModel`` from a local directory holding a CLIPModel or CLIPVisionModel (eager attention, fp32, eval)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = _need_dir(path, "CLIP")
    config = CLIPVisionConfig.from_pretrained(path)
    _check_depth("CLIP", config.num_hidden_layers, max(VISUAL_MULTI_LAYERS) + 1, str(path))
    model = CLIPVisionModel.from_pretrained(path, config=config, attn_implementation="eager", dtype=torch.float32)
    return model.eval()


def load_hubert(path: str | os.PathLike):
    """``HubertModel`` from a local directory (eager attention, fp32, eval)."""
    from transformers import HubertConfig, HubertModel

    path = _need_dir(path, "HuBERT")
    config = HubertConfig.from_pretrained(path)
    _check_depth("HuBERT", config.num_hidden_layers, max(AUDIO_MULTI_LAYERS), str(path))
    model = HubertModel.from_pretrained(path, config=config, attn_implementation="eager", dtype=torch.float32)
    return model.eval()


class VisualReference(nn.Module):
    """Spec-faithful: the full CLIP vision forward, then CLS tokens of the chosen hidden states."""

    def __init__(self, clip_vision):
        super().__init__()
        self.clip = clip_vision

    def forward(self, pixel_values):
        states = self.clip(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        main = states[-2][:, 0]
        multi = torch.cat([states[i][:, 0] for i in VISUAL_MULTI_LAYERS], dim=-1)
        return main, multi


class VisualTower(nn.Module):
    """Export form: embeddings, pre-LN and the first L-1 encoder layers only (hidden_states[-2] is their output)."""

    def __init__(self, clip_vision):
        super().__init__()
        vision = clip_vision.vision_model
        self.embeddings = vision.embeddings
        self.pre_layrnorm = vision.pre_layrnorm
        n_layers = len(vision.encoder.layers)
        self.layers = nn.ModuleList(list(vision.encoder.layers)[: n_layers - 1])

    def forward(self, pixel_values):
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        cls = {}
        for index, layer in enumerate(self.layers, start=1):
            out = layer(hidden, None, None)
            hidden = out[0] if isinstance(out, tuple) else out
            if index in VISUAL_MULTI_LAYERS:
                cls[index] = hidden[:, 0]
        multi = torch.cat([cls[i] for i in VISUAL_MULTI_LAYERS], dim=-1)
        return hidden[:, 0], multi


class AudioReference(nn.Module):
    """Spec-faithful (and exported as is): HuBERT hidden states pooled as Nano-EmoX does."""

    def __init__(self, hubert):
        super().__init__()
        self.hubert = hubert

    def forward(self, waveforms):
        states = self.hubert(waveforms, output_hidden_states=True).hidden_states
        main = torch.stack(states[-AUDIO_MAIN_LAYERS:], dim=0).mean(dim=0).mean(dim=1)
        multi = torch.cat([states[i].mean(dim=1) for i in AUDIO_MULTI_LAYERS], dim=-1)
        return main, multi
