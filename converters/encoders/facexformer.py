"""FaceXFormer encoder-only (spec section 3.3): Swin backbone + multiscale MLP fuse -> one vector per frame.

Input: ``[N, 3, H, W]`` full RGB frames as float 0..255 (Nano-EmoX feeds them unnormalised, without a
face crop). Per Swin stage i, ``linear_c.{i}.proj`` maps every pixel C_i -> D (D = 256 for the real
model); the maps are bilinearly resized (align_corners=False) to the first stage's size, concatenated
stage 4 first, fused by ``linear_fuse`` (1x1 conv 4D -> D, no bias) and averaged over space -> ``[N, D]``.

The weights come from FaceXFormer's ``model.pt``: ``state_dict_backbone`` holds ``backbone.0.*`` (the
Swin ``features``), ``backbone.1.*`` (final norm, unused), ``linear_c.{i}.proj.*``, ``linear_fuse.weight``
and the decoder (ignored).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

from converters._torch import require_torch
from converters.encoders.swin import SwinBackbone, SwinConfig
from emox_edge.errors import BadInputError

torch = require_torch()
nn = torch.nn
F = torch.nn.functional

log = logging.getLogger(__name__)

STATE_KEY = "state_dict_backbone"
_OWN_PREFIXES = ("backbone.", "linear_c.", "linear_fuse.")


class FaceXFormerMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)


class FaceXFormerEncoder(nn.Module):
    """Encoder-only FaceXFormer. State-dict keys: ``backbone.0.*``, ``backbone.1.*``, ``linear_c.*``, ``linear_fuse.*``."""

    def __init__(self, swin: SwinConfig, out_dim: int):
        super().__init__()
        backbone = SwinBackbone(swin)
        # torchvision's children()[:-1] keep features (0), norm (1), permute, avgpool, flatten: only 0 and 1 hold weights.
        self.backbone = nn.Sequential(backbone.features, backbone.norm)
        self.linear_c = nn.ModuleList(FaceXFormerMLP(dim, out_dim) for dim in swin.stage_dims())
        self.linear_fuse = nn.Conv2d(out_dim * len(swin.depths), out_dim, kernel_size=1, bias=False)
        self.swin = swin
        self.out_dim = out_dim

    @classmethod
    def from_state_dict(cls, state: Mapping[str, "torch.Tensor"], *, source: str = "FaceXFormer state dict") -> "FaceXFormerEncoder":
        """Build with sizes derived from ``state`` and load it strictly (decoder keys dropped first)."""
        own = {k: v for k, v in state.items() if k.startswith(_OWN_PREFIXES)}
        ignored = len(state) - len(own)
        if "linear_fuse.weight" not in own:
            raise BadInputError(f"{source}: no 'linear_fuse.weight'; not a FaceXFormer checkpoint "
                             f"(expected keys {', '.join(p + '*' for p in _OWN_PREFIXES)})")
        swin = SwinConfig.from_state_dict(own, features="backbone.0.")
        out_dim = int(own["linear_fuse.weight"].shape[0])
        model = cls(swin, out_dim)
        check_keys(model, own, source=source)
        model.load_state_dict(own, strict=True)
        log.info("%s: Swin embed %d, depths %s, heads %s, window %d; fuse %d (%d decoder keys ignored)",
                 source, swin.embed_dim, swin.depths, swin.num_heads, swin.window_size, out_dim, ignored)
        return model.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, trust: bool = False) -> "FaceXFormerEncoder":
        return cls.from_state_dict(load_facexformer_state(path, trust=trust), source=str(path))

    def forward(self, frames):
        stages = []
        x = frames
        for index, layer in enumerate(self.backbone[0]):
            x = layer(x)
            if index % 2 == 1:
                stages.append(x)  # NHWC
        size = stages[0].shape[1:3]
        maps = []
        for feat, mlp in zip(stages, self.linear_c):
            n, h, w, c = feat.shape
            proj = mlp.proj(feat.reshape(n, h * w, c))  # per pixel, row-major like flatten(2) of NCHW
            proj = proj.permute(0, 2, 1).reshape(n, self.out_dim, h, w)
            maps.append(F.interpolate(proj, size=size, mode="bilinear", align_corners=False))
        fused = self.linear_fuse(torch.cat(maps[::-1], dim=1))
        return fused.mean(dim=(2, 3))


def load_facexformer_state(path: str | os.PathLike, *, trust: bool = False) -> dict[str, "torch.Tensor"]:
    """Read ``model.pt`` and return its ``state_dict_backbone`` (a bare state dict is accepted too)."""
    from converters import checkpoint

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FaceXFormer checkpoint not found: {path} (expected model.pt with key {STATE_KEY!r})")
    if path.is_dir():
        raise IsADirectoryError(f"FaceXFormer checkpoint {path} is a directory; expected the model.pt file")
    if path.suffix.lower() == ".safetensors":
        state, _ = checkpoint.load_checkpoint(path, trust=trust)
        return state
    obj = checkpoint._load_torch(path, trust=trust)  # noqa: SLF001 - shared loader, same trust rules
    if isinstance(obj, Mapping) and isinstance(obj.get(STATE_KEY), Mapping):
        obj = obj[STATE_KEY]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BadInputError(f"{path}: expected a dict with key {STATE_KEY!r} holding a state dict of tensors")
    return dict(obj)


def check_keys(module: "nn.Module", state: Mapping[str, "torch.Tensor"], *, source: str) -> None:
    """Raise ValueError naming missing, unexpected and misshaped keys of ``state`` against ``module``."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k}: {tuple(state[k].shape)} != expected {tuple(expected[k].shape)}"
                    for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {_clip(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_clip(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_clip(shapes)}")
    if problems:
        raise BadInputError(f"{source}: " + "; ".join(problems))


def _clip(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} in all)"
