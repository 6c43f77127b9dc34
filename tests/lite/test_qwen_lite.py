"""The lite bundle with Nano-EmoX's language-core architecture (Qwen2.5-1.5B, 1.1 GB): slow."""

from __future__ import annotations

import pytest

from emox_edge.analyzer import Analyzer
from emox_edge.options import AnalyzerOptions
from emox_edge.results import TASKS

pytestmark = pytest.mark.slow


def test_qwen_lite_bundle_runs_every_task(demo_clip_file):
    from emox_edge.bundle import Bundle
    from emox_edge.capture import resolve_source
    from emox_edge.demo import DEMO_TRANSCRIPT
    from converters.lite.build import build_lite_bundle

    bundle = Bundle.open(build_lite_bundle(lm="qwen2.5-1.5b"), verify="sha256")
    core = bundle.section("language_core")
    assert core["architecture"] == "qwen2" and core["embedding_width"] == 1536 and core["chat_format"] == "chatml"
    source = resolve_source(str(demo_clip_file))
    clip = next(iter(source.clips()))
    source.close()
    clip = type(clip)(**{**clip.__dict__, "subtitle": DEMO_TRANSCRIPT})
    with Analyzer(bundle, AnalyzerOptions(deterministic=True, n_threads=1, max_new_tokens=24)) as pipeline:
        result = pipeline.analyze(clip, list(TASKS))
    assert result.bundle == "lite:qwen2.5-1.5b"
    assert all(task.valid for task in result.tasks.values()), result.to_dict()["tasks"]
    assert result.tasks["emotion"].label == "happy"
    assert result.tasks["intent"].label in ("thank", "inform", "praise", "greet")
