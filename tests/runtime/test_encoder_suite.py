"""The encoder suite on the tiny bundle: every graph runs, and the CPU arena is shrunk after each run
(the chunks a clip's activations took go back to the system) without changing any output."""

from __future__ import annotations

import numpy as np


def _inputs(bundle, seed: int = 0) -> dict[str, np.ndarray]:
    shapes = {io["name"]: io["shape"] for graph in bundle.section("graphs").values() for io in graph.get("inputs", [])}
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shapes[name]).astype(np.float32)
            for name in ("pixel_values", "frames", "waveforms")}


def test_runs_shrink_the_arena_and_repeat_exactly(tiny_bundle):
    from emox_edge.bundle import Bundle
    from emox_edge.encoders import EncoderSuite

    bundle = Bundle.open(tiny_bundle)
    suite = EncoderSuite(bundle, device="cpu", precision="int8", n_threads=1)
    assert suite._run_options.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    feed = _inputs(bundle)
    first, timings = suite.run(feed)
    suite.run(_inputs(bundle, seed=1))  # another clip in between: its chunks are handed back too
    again, _ = suite.run(feed)
    assert set(timings) == {g.name for g in suite.graphs}
    for name in ("frame_embeds", "audio_embeds", "face_embeds", "fusion_embeds"):
        assert np.isfinite(first[name]).all()
        np.testing.assert_array_equal(first[name], again[name])
