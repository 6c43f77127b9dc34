"""The hand-written Swin backbone: torchvision's layout, stage shapes, and window attention semantics."""

from __future__ import annotations

import math

import pytest
import torch

from converters.encoders.swin import (
    PatchMerging,
    SwinBackbone,
    SwinConfig,
    WindowAttention,
    relative_position_index,
)

TINY = SwinConfig(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


def test_swin_b_has_torchvision_layout_and_parameter_count():
    model = SwinBackbone(SwinConfig())
    state = model.state_dict()
    # Swin-B without its classification head: 87,768,224 - 1024*1000 - 1000 (spec section 11).
    assert sum(p.numel() for p in model.parameters()) == 86_743_224
    expected = {
        "features.0.0.weight": (128, 3, 4, 4),
        "features.0.2.weight": (128,),
        "features.1.0.attn.qkv.weight": (384, 128),
        "features.1.1.attn.relative_position_bias_table": (169, 4),
        "features.1.0.attn.relative_position_index": (2401,),
        "features.2.reduction.weight": (256, 512),
        "features.2.norm.weight": (512,),
        "features.5.17.mlp.3.weight": (512, 2048),
        "features.7.1.attn.relative_position_bias_table": (169, 32),
        "norm.weight": (1024,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("head") for k in state)


def test_stage_shapes_for_a_224px_frame():
    model = SwinBackbone(TINY).eval()
    with torch.no_grad():
        stages = model.stages(torch.rand(2, 3, 224, 224))
    assert [tuple(s.shape) for s in stages] == [(2, 56, 56, 16), (2, 28, 28, 32), (2, 14, 14, 64), (2, 7, 7, 128)]


def test_config_is_derived_from_a_state_dict():
    state = SwinBackbone(TINY).state_dict()
    assert SwinConfig.from_state_dict(state) == TINY
    prefixed = {f"backbone.0.{k[len('features.'):]}": v for k, v in state.items() if k.startswith("features.")}
    assert SwinConfig.from_state_dict(prefixed, features="backbone.0.") == TINY


def test_relative_position_index_by_hand_for_a_2x2_window():
    # tokens (0,0),(0,1),(1,0),(1,1); index = (dy + 1) * 3 + (dx + 1)
    expected = [4, 3, 1, 0,
                5, 4, 2, 1,
                7, 6, 4, 3,
                8, 7, 5, 4]
    assert relative_position_index(2).tolist() == expected
    assert relative_position_index(7).max().item() == 13 * 13 - 1


def _plain_attention(tokens, qkv, proj, heads):
    """Multi-head self-attention over a [n, C] token set, written out without any windowing."""
    n, c = tokens.shape
    d = c // heads
    q, k, v = (qkv(tokens)).split(c, dim=-1)
    out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(d)
        out.append(scores.softmax(-1) @ v[:, sl])
    return proj(torch.cat(out, dim=-1))


def test_window_attention_with_zero_bias_is_plain_attention_inside_each_window():
    torch.manual_seed(0)
    attn = WindowAttention(dim=8, heads=2, window=7, shift=0).eval()
    x = torch.randn(1, 14, 14, 8)
    with torch.no_grad():
        got = attn(x)
        for wy in range(2):
            for wx in range(2):
                block = x[0, wy * 7:(wy + 1) * 7, wx * 7:(wx + 1) * 7].reshape(49, 8)
                want = _plain_attention(block, attn.qkv, attn.proj, heads=2).reshape(7, 7, 8)
                torch.testing.assert_close(got[0, wy * 7:(wy + 1) * 7, wx * 7:(wx + 1) * 7], want, atol=1e-5, rtol=1e-5)


def test_shifted_windows_attend_only_within_contiguous_regions():
    torch.manual_seed(1)
    window, shift, size = 7, 3, 14
    attn = WindowAttention(dim=8, heads=2, window=window, shift=shift).eval()
    x = torch.randn(1, size, size, 8)
    with torch.no_grad():
        got = attn(x)
        # By hand: token (i, j) attends to the tokens of its window on the grid rolled by -shift,
        # restricted to those that were also neighbours before the roll (same region).
        rolled = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))

        def region(r, c):
            def band(p):
                return 0 if p < size - window else (1 if p < size - shift else 2)
            return band(r) * 3 + band(c)

        want = torch.zeros_like(rolled)
        for r in range(size):
            for c in range(size):
                wy, wx = r // window, c // window
                members = [(rr, cc) for rr in range(wy * window, (wy + 1) * window)
                           for cc in range(wx * window, (wx + 1) * window) if region(rr, cc) == region(r, c)]
                tokens = torch.stack([rolled[0, rr, cc] for rr, cc in members])
                idx = members.index((r, c))
                want[0, r, c] = _plain_attention(tokens, attn.qkv, attn.proj, heads=2)[idx]
        want = torch.roll(want, shifts=(shift, shift), dims=(1, 2))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_no_shift_when_the_window_covers_the_whole_map():
    torch.manual_seed(2)
    shifted = WindowAttention(dim=8, heads=2, window=7, shift=3).eval()
    plain = WindowAttention(dim=8, heads=2, window=7, shift=0).eval()
    plain.load_state_dict(shifted.state_dict())
    x = torch.randn(1, 7, 7, 8)
    with torch.no_grad():
        torch.testing.assert_close(shifted(x), plain(x))


def test_relative_position_bias_is_added_per_head():
    torch.manual_seed(3)
    attn = WindowAttention(dim=8, heads=2, window=7, shift=0).eval()
    x = torch.randn(1, 7, 7, 8)
    with torch.no_grad():
        base = attn(x)
        attn.relative_position_bias_table.normal_()
        assert not torch.allclose(attn(x), base, atol=1e-4)


def test_patch_merging_concatenates_neighbours_in_torchvision_order():
    merge = PatchMerging(dim=1)
    with torch.no_grad():
        merge.norm.weight.fill_(1.0)
        merge.norm.bias.zero_()
        merge.reduction.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0], [0.0, 0.0, 0.0, 0.0]]))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)  # (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4
    # torchvision order x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2] -> [1, 3, 2, 4]
    concat = torch.tensor([1.0, 3.0, 2.0, 4.0])
    normed = (concat - concat.mean()) / torch.sqrt(concat.var(unbiased=False) + 1e-5)
    want = torch.stack([normed @ torch.tensor([1.0, 10.0, 100.0, 1000.0]), torch.tensor(0.0)])
    with torch.no_grad():
        torch.testing.assert_close(merge(x).flatten(), want)


def test_missing_patch_embedding_is_refused():
    with pytest.raises(ValueError, match="features.0.0.weight"):
        SwinConfig.from_state_dict({"something": torch.zeros(1)})
