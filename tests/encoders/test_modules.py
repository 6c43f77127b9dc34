"""Reference modules written from the spec, checked against independent implementations and properties."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from converters.encoders import parity as P
from converters.encoders.adapters import AdapterConfig, MultiScaleFusion
from converters.encoders.qformer import QFormer, QFormerConfig
from converters.testing.tiny_encoders import TinySizes, synthetic_checkpoint_state


def _qformer_to_hf(state):
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        key = key.replace("bert.embeddings.LayerNorm", "layernorm").replace("bert.", "")
        key = key.replace("attention.self.", "attention.attention.").replace("crossattention.self.", "crossattention.attention.")
        out[key] = value
    return out


def test_qformer_matches_transformers_blip2_qformer():
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    torch.manual_seed(0)
    cfg = QFormerConfig(hidden=128, layers=2, intermediate=256, encoder_width=64)
    ours = QFormer(cfg).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.2)
    hf = Blip2QFormerModel(Blip2QFormerConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, encoder_hidden_size=64,
        cross_attention_frequency=1, layer_norm_eps=1e-12, hidden_act="gelu")).eval()
    hf.load_state_dict(_qformer_to_hf(ours.state_dict()), strict=True)
    queries, frames = torch.randn(1, 32, 128), torch.randn(1, 8, 64)
    with torch.no_grad():
        want = hf(query_embeds=queries, encoder_hidden_states=frames,
                  encoder_attention_mask=torch.ones(1, 8, dtype=torch.long)).last_hidden_state
        torch.testing.assert_close(ours(queries, frames), want, atol=2e-5, rtol=1e-4)


def test_qformer_config_from_checkpoint_keys():
    state = synthetic_checkpoint_state(TinySizes(), torch.Generator().manual_seed(0))
    cfg = QFormerConfig.from_state_dict(state, "audio_Qformer.")
    assert cfg == QFormerConfig(hidden=128, layers=2, intermediate=256, encoder_width=64, max_positions=512)


def test_fusion_with_identical_scales_equals_one_scale():
    """The gate's weights sum to 1, so identical experts on identical inputs give that expert's output."""
    torch.manual_seed(0)
    fusion = MultiScaleFusion(AdapterConfig(fusion_audio_in=16, fusion_visual_in=16, fusion_hidden=64, gate_hidden=64)).eval()
    with torch.no_grad():
        for s in (1, 2):
            fusion.cross_attns[s].load_state_dict(fusion.cross_attns[0].state_dict())
            fusion.ffns[s].load_state_dict(fusion.ffns[0].state_dict())
        a, v = torch.randn(1, 8, 16), torch.randn(1, 8, 16)
        got = fusion(a.repeat(1, 1, 3), v.repeat(1, 1, 3))
        ap, vp = fusion.audio_proj(a), fusion.visual_proj(v)
        r = fusion.cross_attns[0](ap, vp, vp)[0] + ap
        torch.testing.assert_close(got, r + fusion.ffns[0](r), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def adapters():
    state = synthetic_checkpoint_state(TinySizes(), torch.Generator().manual_seed(0))
    from converters.encoders.build import build_adapters

    model, _ = build_adapters(state, source="synthetic")
    return model


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(8, 64, generator=g), torch.randn(8, 192, generator=g), torch.randn(8, 64, generator=g),
            torch.randn(8, 192, generator=g), torch.randn(8, 128, generator=g))


def test_adapter_outputs_have_the_spec_slot_counts(adapters):
    with torch.no_grad():
        audio, frame, face, fusion = adapters(*_features())
    assert tuple(audio.shape) == (32, 64) and tuple(frame.shape) == (32, 64)
    assert tuple(face.shape) == (4, 64) and tuple(fusion.shape) == (1, 64)
    assert adapters.cfg.slots() == {"audio_embeds": 32, "frame_embeds": 32, "face_embeds": 4, "fusion_embeds": 1}


def test_face_head_ignores_frame_order_but_video_branch_does_not(adapters):
    vm, vx, am, ax, ff = _features()
    perm = torch.tensor([3, 1, 7, 0, 2, 6, 5, 4])
    with torch.no_grad():
        base = adapters(vm, vx, am, ax, ff)
        shuffled_faces = adapters(vm, vx, am, ax, ff[perm])
        shuffled_frames = adapters(vm[perm], vx, am, ax, ff)
    torch.testing.assert_close(shuffled_faces[2], base[2], atol=1e-5, rtol=1e-5)  # no position info (spec 3.3)
    assert not torch.allclose(shuffled_frames[1], base[1], atol=1e-4)  # frame position embeddings


def test_visual_tower_without_layer_24_equals_the_full_model(tiny_sources):
    from converters.encoders.towers import VisualReference, VisualTower, load_clip_vision

    clip = load_clip_vision(tiny_sources.clip)
    x = torch.randn(8, 3, 224, 224)
    with torch.no_grad():
        ref, cut = VisualReference(clip)(x), VisualTower(clip)(x)
        states = clip(pixel_values=x, output_hidden_states=True).hidden_states
    assert len(VisualTower(clip).layers) == clip.config.num_hidden_layers - 1
    torch.testing.assert_close(cut[0], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cut[1], ref[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref[1][:, 64:128], states[16][:, 0])


def test_audio_reference_pools_as_the_spec_says(tiny_sources):
    from converters.encoders.towers import AudioReference, load_hubert

    hubert = load_hubert(tiny_sources.hubert)
    x = torch.randn(8, 32000)
    with torch.no_grad():
        main, multi = AudioReference(hubert)(x)
        states = hubert(x, output_hidden_states=True).hidden_states
    assert states[-1].shape[1] == 99  # the conv stem gives 99 frames per 2 s window (spec 2.3)
    want = (states[-4] + states[-3] + states[-2] + states[-1]).mean(dim=1) / 4
    torch.testing.assert_close(main, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(multi[:, 128:], states[22].mean(dim=1))


def test_facexformer_encoder_shapes_and_strict_loading(tiny_sources):
    from converters.encoders.facexformer import FaceXFormerEncoder, load_facexformer_state

    state = load_facexformer_state(tiny_sources.facexformer)
    assert "face_decoder.layers.0.self_attn.q_proj.weight" in state  # decoder keys present, ignored
    model = FaceXFormerEncoder.from_state_dict(state)
    with torch.no_grad():
        out = model(torch.rand(8, 3, 224, 224) * 255)
    assert tuple(out.shape) == (8, 128)
    torch.testing.assert_close(model.state_dict()["linear_fuse.weight"], state["linear_fuse.weight"])


def test_audio_windows_follow_the_start_rule():
    sr = 16000
    audio = np.arange(int(3.6 * sr), dtype=np.float32)  # D = 3.6 s: starts k * 1.6 / 8 s = k * 3200 samples
    windows = P.audio_windows(audio, eps=0.0)
    raw = np.stack([audio[k * 3200:k * 3200 + 32000] for k in range(8)])
    np.testing.assert_allclose(windows, (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)
    assert abs(float(windows.mean())) < 1e-5 and abs(float(windows.std()) - 1.0) < 1e-4  # joint, not per window
    assert int(7 * Fraction(16, 10) / 8 * sr) == 7 * 3200


def test_short_audio_is_zero_padded_and_repeated():
    windows = P.audio_windows(np.ones(8000, np.float32), eps=1e-7)
    assert windows.shape == (8, 32000)
    assert np.array_equal(windows[0], windows[7])
    assert windows[0, 0] > 0 > windows[0, -1]  # ones then zero padding, normalised


def test_clip_normalisation_matches_the_constants():
    frames = np.full((8, 224, 224, 3), 255, np.uint8)
    pixels = P.clip_pixels(frames)
    assert pixels.shape == (8, 3, 224, 224)
    np.testing.assert_allclose(pixels[0, :, 0, 0], (1 - np.array([0.48145466, 0.4578275, 0.40821073]))
                               / np.array([0.26862954, 0.26130258, 0.27577711]), rtol=1e-6)


def test_parity_inputs_are_real_media():
    frames = P.parity_frames()
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == np.uint8
    assert len({f.tobytes() for f in frames}) == 8
    speech = P.speech_wave()
    assert speech.dtype == np.float32 and len(speech) > 3 * 16000
    assert np.abs(speech).max() > 0.05


def test_compare_reports_cosine_and_error():
    ref = {"x": np.array([1.0, 2.0, 3.0])}
    same = P.compare(ref, {"x": np.array([1.0, 2.0, 3.0])})["x"]
    flipped = P.compare(ref, {"x": -np.array([1.0, 2.0, 3.0])})["x"]
    assert same["cosine"] == pytest.approx(1.0) and same["max_abs_error"] == 0.0
    assert flipped["cosine"] == pytest.approx(-1.0) and flipped["max_abs_error"] == pytest.approx(6.0)
    ok, msg = P.gate("g", "int8", {"x": flipped}, P.Thresholds())
    assert not ok and "threshold 0.99" in msg
    with pytest.raises(P.ParityError, match="shape"):
        P.compare(ref, {"x": np.zeros(2)})
