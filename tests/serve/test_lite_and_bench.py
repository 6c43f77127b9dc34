"""The default lite bundle behind the server (faces with expressions), and the serving benchmark's smoke run.

Both are @slow: the lite bundle is built from ~100 MB of registry packages on first use, and the
benchmark streams in real time.
"""

from __future__ import annotations

import pytest

from emox_edge.client import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite_analyzer(lite_bundle_dir):
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions

    analyzer = Analyzer.from_bundle(lite_bundle_dir, AnalyzerOptions(max_new_tokens=16, n_threads=1))
    yield analyzer
    analyzer.close()


def test_the_lite_bundle_streams_with_face_expressions(start_server, lite_analyzer, stream_media, upload_files):
    server = start_server([lite_analyzer], faces_fps=5.0, queue_clips=4)
    assert Client(server.url).info()["kind"] == "lite"
    frames, times, audio = stream_media
    with Client(server.url).stream(["emotion", "sentiment", "intent"], window_s=1.5) as session:
        session.feed(frames, times, audio, speed=2.0)
        session.end()
        results = list(session.results(timeout=300))
    assert len(results) == 2 and all(r["error"] is None for r in results)
    assert all(set(r["tasks"]) == {"emotion", "sentiment", "intent"} for r in results)
    faces = [face for m in session.faces for face in m["faces"]]
    assert faces and all(face["expression"] for face in faces), "the lite bundle's FER labels each face"
    result = Client(server.url).analyze(upload_files["clip"], "emotion")
    assert result["tasks"]["emotion"]["label"]


def test_the_serving_benchmark_runs(tiny_bundle):
    from benchmarks import bench_serve

    result = bench_serve.unit_serve({"bundle": str(tiny_bundle), "clients": [1, 2], "seconds": 2.0, "window_s": 1.0,
                                     "speed": 2.0, "threads": 1, "faces_fps": 2.0})
    runs = {r["clients"]: r for r in result["runs"]}
    assert set(runs) == {1, 2} and runs[1]["clips"] >= 1 and runs[2]["frames_received"] == 40
    assert runs[1]["latency_p50_s"] is not None and "throughput_x" in runs[2]
    assert "clips/s" in bench_serve.render({"result": result})
