"""The serving benchmark on the tests' tiny bundle: real server, real clients, both client phases."""

from __future__ import annotations

import pytest


def test_the_serving_benchmark_runs(tiny_bundle):
    from benchmarks import bench_serve

    result = bench_serve.unit_serve({"bundle": str(tiny_bundle), "clients": [1, 2], "seconds": 2.0, "window_s": 1.0,
                                     "speed": 2.0, "threads": 1, "faces_fps": 2.0, "phases": ["random", "together"]})
    runs = {(r["clients"], r["phase"]): r for r in result["runs"]}
    assert set(runs) == {(1, "-"), (2, "random"), (2, "together")}  # one client is measured once
    assert runs[1, "-"]["clips"] >= 1 and runs[2, "random"]["frames_received"] == 40
    assert runs[1, "-"]["latency_p50_s"] is not None and "throughput_x" in runs[2, "together"]
    assert runs[2, "together"]["start_delays_s"] == [0.0, 0.0] and runs[2, "random"]["start_delays_s"][1] > 0
    assert result["workers"] == 1  # what emox-edge serve picks for a nano-emox bundle
    assert "clips/s" in bench_serve.render({"result": result})


def test_client_start_delays_are_seeded_and_within_one_clip():
    from benchmarks.bench_serve import start_delays

    delays = start_delays(4, 2.0, "random")
    assert delays == start_delays(4, 2.0, "random") and delays[0] == 0.0
    assert all(0.0 <= d < 2.0 for d in delays) and len(set(delays)) == 4
    assert start_delays(4, 2.0, "together") == [0.0] * 4
    with pytest.raises(ValueError, match="phase"):
        start_delays(2, 2.0, "staggered")
