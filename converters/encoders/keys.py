"""Which checkpoint keys the encoders converter uses, which it knowingly skips, and refusal of the rest.

A Nano-EmoX phase-3 checkpoint (spec section 10) is loaded upstream with ``strict=False``, so a typo
would silently leave a layer random. Here every key must be either an adapter parameter (loaded into
``Adapters`` strictly, shapes checked) or one of the known, unused groups below; anything else is
refused with the list of offending keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from emox_edge.errors import BadInputError

# Trained and saved, but never used by the multiscale model (spec 3.3, 5, 10).
DEAD_PATTERNS = {
    "image_llama_proj": re.compile(r"^image_llama_proj\.(weight|bias)$"),
    "multi_audio_embs": re.compile(r"^multi_audio_embs\.(weight|bias)$"),
    "multi_video_embs": re.compile(r"^multi_video_embs\.(weight|bias)$"),
    "facial_encoder.lynorm": re.compile(r"^facial_encoder\.lynorm\.(weight|bias)$"),
    "Swin relative_position_index buffers": re.compile(
        r"^facial_encoder\.facexformer\.backbone\.0\.\d+\.\d+\.attn\.relative_position_index$"),
}
# Belong to the language-core converter (merged into the GGUF there).
LORA_PATTERN = re.compile(r"^llama_model\..*\.lora_[AB]\.[^.]+\.weight$")
# Buffers the adapters carry but never read: accepted when present, filled in when absent.
OPTIONAL_BUFFERS = re.compile(r"^(video|audio)_Qformer\.bert\.embeddings\.position_ids$")


@dataclass
class KeyPartition:
    adapters: dict = field(default_factory=dict)
    dead: dict[str, list[str]] = field(default_factory=dict)
    lora: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        out = {"adapters": len(self.adapters), "lora (language-core converter)": len(self.lora)}
        out.update({f"dead: {name}": len(keys) for name, keys in self.dead.items()})
        return out


def partition(state: Mapping[str, object], expected: set[str]) -> KeyPartition:
    """Split checkpoint keys into adapter keys, known-dead groups, LoRA and unknown ones."""
    part = KeyPartition()
    for key, value in state.items():
        if key in expected:
            part.adapters[key] = value
            continue
        if LORA_PATTERN.match(key):
            part.lora.append(key)
            continue
        for name, pattern in DEAD_PATTERNS.items():
            if pattern.match(key):
                part.dead.setdefault(name, []).append(key)
                break
        else:
            part.unknown.append(key)
    return part


def validate(state: Mapping[str, "object"], module_state: Mapping[str, "object"], *, source: str) -> KeyPartition:
    """Check a checkpoint against the adapters' state dict; raise ValueError naming every offending key.

    Returns the partition (adapter tensors, with optional buffers filled in from ``module_state``).
    """
    expected = set(module_state)
    part = partition(state, expected)
    missing = sorted(k for k in expected - set(part.adapters) if not OPTIONAL_BUFFERS.match(k))
    shapes = sorted(
        f"{k}: {tuple(part.adapters[k].shape)} != expected {tuple(module_state[k].shape)}"
        for k in part.adapters if tuple(part.adapters[k].shape) != tuple(module_state[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if part.unknown:
        problems.append(f"unexpected keys {_listing(sorted(part.unknown))} (neither adapter weights, LoRA, "
                        "nor a known unused group)")
    if shapes:
        problems.append(f"shape mismatches {_listing(shapes)}")
    if problems:
        raise BadInputError(f"{source}: not a Nano-EmoX checkpoint this converter can use: " + "; ".join(problems))
    for key in expected - set(part.adapters):
        part.adapters[key] = module_state[key]
    return part


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return f"[{shown}{more}]"
