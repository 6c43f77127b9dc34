"""Full Nano-EmoX encoder sizes with random weights (slow: minutes, ~10 GB; run under the heavy-job lock).

    flock /tmp/emox-heavy.lock .venv/bin/python -m pytest -m slow tests/encoders/test_full_size.py -s

Checks shapes and slot counts exactly as the spec gives them, the parameter counts of spec section 11,
and that every graph passes the default parity gate. It prints the measured sizes, latencies and
cosines (recorded in docs/encoders-converter.md); nothing about speed is asserted.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _median_ms(path, inputs, runs=3):
    from converters.encoders.convert import run_graph

    run_graph(path, inputs)  # warm-up (session creation, first-run allocations)
    times = []
    for _ in range(runs):
        _, ms = run_graph(path, inputs)
        times.append(ms)
    return round(statistics.median(times), 1)


def test_full_size_conversion(tmp_path):
    import torch

    from converters.encoders.adapters import Adapters
    from converters.encoders.build import build_adapters
    from converters.encoders.convert import EncoderConvertOptions, convert_encoders
    from converters.encoders.facexformer import FaceXFormerEncoder
    from converters.encoders.towers import load_clip_vision, load_hubert
    from converters.testing.tiny_encoders import TinySizes, build_tiny_encoders

    t0 = time.perf_counter()
    src = build_tiny_encoders(tmp_path / "src", seed=0, sizes=TinySizes.full())
    build_s = time.perf_counter() - t0

    # Parameter counts of spec section 11.
    clip = load_clip_vision(src.clip)
    assert sum(p.numel() for p in clip.parameters()) == 303_179_776
    del clip
    hubert = load_hubert(src.hubert)
    assert sum(p.numel() for p in hubert.parameters()) == 315_438_720
    del hubert
    face = FaceXFormerEncoder.from_file(src.facexformer)
    assert sum(p.numel() for p in face.parameters()) == 87_497_912
    del face
    state = torch.load(src.checkpoint, weights_only=True)["model"]
    adapters, _ = build_adapters(state, source="full")
    assert isinstance(adapters, Adapters)
    assert sum(p.numel() for p in adapters.video_Qformer.parameters()) + adapters.video_query_tokens.numel() == 19_716_096
    assert sum(p.numel() for p in adapters.multi_multiscale_fusion.parameters()) == 6_568_963
    assert sum(p.numel() for p in adapters.facial_encoder.face_proj.parameters()) == 1_378_560
    del adapters, state

    out = tmp_path / "out"
    t0 = time.perf_counter()
    result = convert_encoders(EncoderConvertOptions(checkpoint=src.checkpoint, clip=src.clip, hubert=src.hubert,
                                                    facexformer=src.facexformer, out=out))
    convert_s = time.perf_counter() - t0
    assert result.passed
    part = json.loads((out / "encoders.json").read_text())
    shapes = {g: {io["name"]: io["shape"] for io in part["graphs"][g]["outputs"]} for g in part["graphs"]}
    assert shapes == {
        "visual": {"visual_main": ["frames", 1024], "visual_multi": ["frames", 3072]},
        "audio": {"audio_main": ["frames", 1024], "audio_multi": ["frames", 3072]},
        "facial": {"face_features": ["frames", 256]},
        "adapters": {"audio_embeds": [32, 1536], "frame_embeds": [32, 1536], "face_embeds": [4, 1536],
                     "fusion_embeds": [1, 1536]},
    }
    assert part["encoders"]["slots"] == {"audio_embeds": 32, "frame_embeds": 32, "face_embeds": 4, "fusion_embeds": 1}
    assert result.report["peak_rss_mb"] < 24 * 1024

    from converters.encoders import parity as P

    frames = P.parity_frames()
    inputs = {"visual": {"pixel_values": P.clip_pixels(frames)},
              "audio": {"waveforms": P.audio_windows(P.speech_wave())},
              "facial": {"frames": P.face_pixels(frames)}}
    rng = np.random.default_rng(0)
    inputs["adapters"] = {io["name"]: rng.standard_normal(io["shape"]).astype(np.float32)
                          for io in part["graphs"]["adapters"]["inputs"]}
    table = {}
    for name, per in result.report["graphs"].items():
        table[name] = {}
        for precision, entry in per.items():
            table[name][precision] = {
                "MB": round(entry["bytes"] / 2**20, 1),
                "min_cosine": round(min(m["cosine"] for m in entry["outputs"].values()), 6),
                "max_abs_error": float(f"{max(m['max_abs_error'] for m in entry['outputs'].values()):.3g}"),
                "median_ms": _median_ms(out / entry["file"], inputs[name]),
            }
    summary = {"build_sources_s": round(build_s, 1), "convert_s": round(convert_s, 1),
               "peak_rss_mb": result.report["peak_rss_mb"], "graphs": table,
               "chain": {p: {k: round(v["cosine"], 6) for k, v in m.items()} for p, m in result.report["chain"].items()}}
    print("\nFULL-SIZE ENCODERS", json.dumps(summary, indent=2))
