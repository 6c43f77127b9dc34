"""Damaged bundles and over-long inputs through the public path: a clear error naming what is wrong
(exit 2 on the command line), or an answer within the context, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emox_edge.analyzer import Analyzer
from emox_edge.bundle import MANIFEST_NAME
from emox_edge.errors import BundleError
from emox_edge.options import AnalyzerOptions

REPO = Path(__file__).resolve().parents[2]
FAST = AnalyzerOptions(deterministic=True, max_new_tokens=8, n_ctx=1024, n_threads=1)


def _copy_without(bundle_dir: Path, out: Path, *path: str) -> Path:
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    node = manifest
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    return out


def test_a_manifest_missing_an_entry_is_refused_naming_it(lite_bundle_dir, tmp_path):
    damaged = _copy_without(lite_bundle_dir, tmp_path / "lite", "graphs", "expression")
    with pytest.raises(BundleError, match="'graphs.expression'"):
        Analyzer.from_bundle(damaged, FAST)
    out = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "analyze", str(REPO / "emox_edge" / "data" /
                          "astronaut_256.jpg"), "--bundle", str(damaged)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "graphs.expression" in out.stderr and "Traceback" not in out.stderr


def test_a_manifest_entry_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    quant = manifest["language_core"]["default"]
    outside = tmp_path / "elsewhere.gguf"
    shutil.copy(bundle / manifest["language_core"]["gguf"][quant], outside)
    for rel in ("../elsewhere.gguf", str(outside)):
        manifest["language_core"]["gguf"][quant] = rel
        manifest["files"][rel] = {"size": outside.stat().st_size, "sha256": "0" * 64}
        (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="outside the bundle"):
            Analyzer.from_bundle(bundle, FAST)
    link = bundle / "llm" / "link.gguf"
    link.symlink_to(outside)
    manifest["language_core"]["gguf"][quant] = "llm/link.gguf"
    manifest["files"]["llm/link.gguf"] = {"size": outside.stat().st_size, "sha256": "0" * 64}
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        Analyzer.from_bundle(bundle, FAST)


@pytest.mark.parametrize("kind", ["nano-emox", "lite"])
def test_a_subtitle_longer_than_the_context_is_trimmed(kind, tiny_bundle, lite_bundle_dir):
    bundle = tiny_bundle if kind == "nano-emox" else lite_bundle_dir
    subtitle = " ".join(f"word{i} is said here" for i in range(30_000))  # ~120 kB
    with Analyzer.from_bundle(bundle, FAST) as analyzer:
        image = REPO / "emox_edge" / "data" / "astronaut_256.jpg"
        result = analyzer.analyze(image, ["intent", "empathize"], subtitle=subtitle)
    assert result.error is None and all(task.valid for task in result.tasks.values())
    prompts = [task.timings["n_prompt"] for task in result.tasks.values() if "n_prompt" in task.timings]
    assert prompts and all(n <= 1024 for n in prompts), result.tasks  # lite's intent: the sentence encoder
