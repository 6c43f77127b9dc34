"""Swin Transformer (v1) backbone with torchvision's exact state-dict layout.

FaceXFormer's checkpoint stores its Swin-B backbone under torchvision's ``swin_b`` key names
(``backbone.0.{stage}.{block}.attn.qkv.weight`` ...). torchvision itself cannot be used here: the
PyPI wheels do not import beside the local torch 2.13.0 build, and the matching pair is a 5.5 GB CUDA
build. This module re-implements the architecture from the Swin paper so that the keys load 1:1:

- ``features.0``: patch embedding ``Sequential(Conv2d(3, C, 4, 4), Permute, LayerNorm(C))``.
- ``features.{1,3,5,7}``: stages of ``SwinBlock`` (pre-norm window attention + MLP), windows shifted
  by half a window in every odd block (no shift where the window covers the whole map).
- ``features.{2,4,6}``: ``PatchMerging`` (2x2 neighbours concatenated in the order (0,0), (1,0),
  (0,1), (1,1), LayerNorm(4C), Linear(4C -> 2C, no bias)).
- ``norm``: final LayerNorm (loaded, unused by FaceXFormer's encoder).

Every size is read from the state dict (embed dim from the conv, depths from the block indices, heads
from the relative-position-bias tables, window from the table length), so a scaled-down Swin loads
through the same code. Feature maps are NHWC, as in torchvision.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from converters._torch import require_torch
from emox_edge.errors import BadInputError

torch = require_torch()
nn = torch.nn
F = torch.nn.functional

_LN_EPS = 1e-5  # torchvision builds Swin with LayerNorm(eps=1e-5)


@dataclass(frozen=True)
class SwinConfig:
    """Sizes of a Swin v1 backbone (torchvision ``swin_b``: 128, (2,2,18,2), (4,8,16,32), 7, 4)."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0

    def stage_dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, "torch.Tensor"], features: str = "features.") -> "SwinConfig":
        """Derive the sizes from torchvision-layout keys; ``features`` is the prefix of the ``features`` Sequential."""
        conv = state.get(f"{features}0.0.weight")
        if conv is None:
            raise BadInputError(f"no Swin patch embedding found: expected key {features}0.0.weight")
        embed_dim, _, patch, _ = conv.shape
        pattern = re.compile(re.escape(features) + r"(\d+)\.(\d+)\.attn\.relative_position_bias_table$")
        blocks: dict[int, dict[int, int]] = {}
        table_len = None
        for key, value in state.items():
            match = pattern.match(key)
            if match:
                stage, block = int(match.group(1)), int(match.group(2))
                blocks.setdefault(stage, {})[block] = int(value.shape[1])
                table_len = int(value.shape[0])
        stages = sorted(blocks)
        if not stages or stages != list(range(1, 2 * len(stages), 2)):
            raise BadInputError(f"Swin stages must be {features}1, 3, 5, ...; found {stages}")
        depths = tuple(len(blocks[s]) for s in stages)
        heads = tuple(blocks[s][0] for s in stages)
        window = (int(round(math.sqrt(table_len))) + 1) // 2
        if (2 * window - 1) ** 2 != table_len:
            raise BadInputError(f"relative position bias table of {table_len} rows is not (2w-1)^2 for any window w")
        hidden = state.get(f"{features}1.0.mlp.0.weight")
        ratio = float(hidden.shape[0]) / embed_dim if hidden is not None else 4.0
        return cls(embed_dim=int(embed_dim), depths=depths, num_heads=heads, window_size=window,
                   patch_size=int(patch), mlp_ratio=ratio)


def relative_position_index(window: int) -> "torch.Tensor":
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a w x w window, flattened."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [N, N, 2] (dy, dx)
    return ((rel[..., 0] + window - 1) * (2 * window - 1) + (rel[..., 1] + window - 1)).flatten()


def shift_mask(height: int, width: int, window: int, shift_h: int, shift_w: int) -> "torch.Tensor":
    """Additive mask [num_windows, N, N]: -100 between tokens a cyclic shift glued together from far apart.

    An axis with shift 0 is not split (it fits in one window).
    """
    region = torch.zeros(height, width)

    def slices(shift: int):
        if not shift:
            return (slice(None),)
        return (slice(0, -window), slice(-window, -shift), slice(-shift, None))

    label = 0
    for hs in slices(shift_h):
        for ws in slices(shift_w):
            region[hs, ws] = label
            label += 1
    windows = region.view(height // window, window, width // window, window).permute(0, 2, 1, 3)
    windows = windows.reshape(-1, window * window)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class Permute(nn.Module):
    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) windows with a learned relative position bias."""

    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.dim, self.heads, self.window, self.shift = dim, heads, window, shift
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))

    def position_bias(self):
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index].view(n, n, self.heads)
        return bias.permute(2, 0, 1).unsqueeze(0)  # [1, heads, N, N]

    def forward(self, x):
        batch, height, width, channels = x.shape
        w = self.window
        pad_b, pad_r = (-height) % w, (-width) % w
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = height + pad_b, width + pad_r
        shift_h = self.shift if w < ph else 0
        shift_w = self.shift if w < pw else 0
        if shift_h or shift_w:
            x = torch.roll(x, shifts=(-shift_h, -shift_w), dims=(1, 2))
        n_win = (ph // w) * (pw // w)
        x = x.view(batch, ph // w, w, pw // w, w, channels).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(batch * n_win, w * w, channels)
        head_dim = channels // self.heads
        qkv = self.qkv(x).reshape(x.shape[0], w * w, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * head_dim**-0.5, qkv[1], qkv[2]
        attn = q.matmul(k.transpose(-2, -1)) + self.position_bias()
        if shift_h or shift_w:
            mask = shift_mask(ph, pw, w, shift_h, shift_w).to(attn.dtype)
            attn = attn.view(batch, n_win, self.heads, w * w, w * w) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, w * w, w * w)
        attn = attn.softmax(dim=-1)
        x = attn.matmul(v).transpose(1, 2).reshape(x.shape[0], w * w, channels)
        x = self.proj(x)
        x = x.view(batch, ph // w, pw // w, w, w, channels).permute(0, 1, 3, 2, 4, 5).reshape(batch, ph, pw, channels)
        if shift_h or shift_w:
            x = torch.roll(x, shifts=(shift_h, shift_w), dims=(1, 2))
        return x[:, :height, :width, :]


class SwinMLP(nn.Sequential):
    """Linear -> GELU -> Dropout -> Linear -> Dropout (keys ``mlp.0`` and ``mlp.3``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = WindowAttention(dim, heads, window, shift)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = SwinMLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=_LN_EPS)

    def forward(self, x):
        _, height, width, _ = x.shape
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinBackbone(nn.Module):
    """``features`` + ``norm`` of torchvision's SwinTransformer (v1); the head is not built."""

    def __init__(self, config: SwinConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, config.embed_dim, kernel_size=config.patch_size, stride=config.patch_size),
            Permute((0, 2, 3, 1)),
            nn.LayerNorm(config.embed_dim, eps=_LN_EPS),
        )]
        dims = config.stage_dims()
        for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads)):
            shift = config.window_size // 2
            layers.append(nn.Sequential(*[
                SwinBlock(dims[i], heads, config.window_size, 0 if j % 2 == 0 else shift, config.mlp_ratio)
                for j in range(depth)
            ]))
            if i < len(config.depths) - 1:
                layers.append(PatchMerging(dims[i]))
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=_LN_EPS)

    def stages(self, x):
        """NCHW image -> list of the NHWC output of every stage (what FaceXFormer's hooks capture)."""
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index % 2 == 1:
                outputs.append(x)
        return outputs

    def forward(self, x):
        return self.norm(self.stages(x)[-1])
