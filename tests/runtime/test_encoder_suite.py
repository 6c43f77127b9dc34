"""The encoder suite on the tiny bundle: every graph runs, and the CPU arena is shrunk after each run
(the chunks a clip's activations took go back to the system) without changing any output."""

from __future__ import annotations

import numpy as np


def _inputs(bundle, seed: int = 0) -> dict[str, np.ndarray]:
    shapes = {io["name"]: [8 if isinstance(d, str) else d for d in io["shape"]]  # the frames axis: a clip's 8
              for graph in bundle.section("graphs").values() for io in graph.get("inputs", [])}
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
    suite.rows.clear()  # run every row again, not from the row cache
    again, _ = suite.run(feed)
    assert set(timings) == {g.name for g in suite.graphs}
    for name in ("frame_embeds", "audio_embeds", "face_embeds", "fusion_embeds"):
        assert np.isfinite(first[name]).all()
        np.testing.assert_array_equal(first[name], again[name])


def test_per_frame_graphs_run_a_row_at_a_time_with_the_same_answer(tiny_bundle):
    from emox_edge.bundle import Bundle
    from emox_edge.encoders import FRAMES_PER_RUN, EncoderSuite

    bundle = Bundle.open(tiny_bundle)
    feed = _inputs(bundle)
    chunked = EncoderSuite(bundle, device="cpu", precision="fp32", n_threads=1)
    whole = EncoderSuite(bundle, device="cpu", precision="fp32", n_threads=1, frames_per_run=None)
    assert FRAMES_PER_RUN == chunked.frames_per_run == 1
    assert {g.name: g.per_frame for g in chunked.graphs} == {
        "visual": True, "audio": True, "facial": True, "adapters": False}
    runs = []
    for graph in chunked.graphs:  # count the runs each graph gets
        graph.session = _Recording(graph.session, runs, graph.name)
    got, _ = chunked.run(feed)
    want, _ = whole.run(feed)
    names = [name for name, _ in runs]
    assert names.count("visual") == names.count("audio") == names.count("facial") == 8 and names.count("adapters") == 1
    for name in ("visual_main", "audio_multi", "face_features", "frame_embeds", "fusion_embeds"):
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_frames_per_run_must_be_a_positive_integer(tiny_bundle):
    import pytest

    from emox_edge.bundle import Bundle
    from emox_edge.encoders import EncoderSuite
    from emox_edge.errors import BadInputError

    for bad in (0, -1, 1.5, True):
        with pytest.raises(BadInputError, match="frames_per_run"):
            EncoderSuite(Bundle.open(tiny_bundle), device="cpu", frames_per_run=bad)


def test_the_arena_is_shrunk_after_a_graphs_last_row_only(tiny_bundle):
    from emox_edge.bundle import Bundle
    from emox_edge.encoders import EncoderSuite

    suite = EncoderSuite(Bundle.open(tiny_bundle), device="cpu", precision="int8", n_threads=1)
    runs = []
    for graph in suite.graphs:
        graph.session = _Recording(graph.session, runs, graph.name)
    suite.run(_inputs(Bundle.open(tiny_bundle)))
    options = [o for _, o in runs]
    shrinking = [o is suite._run_options for o in options]
    assert len(options) == 3 * 8 + 1  # three per-frame graphs, a row per run, then the adapters
    assert shrinking == ([False] * 7 + [True]) * 3 + [True]


class _Recording:
    """An ONNX Runtime session that records each run as (graph name, run options): the suite's chunking
    and its arena shrinking are what is tested."""

    def __init__(self, session, runs: list, name: str) -> None:
        self._session, self._runs, self._name = session, runs, name

    def run(self, outputs, feed, options=None):
        self._runs.append((self._name, options))
        return self._session.run(outputs, feed, options)
