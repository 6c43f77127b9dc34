"""Smoke tests of the benchmark suite: every section's code path on tiny models, the report's
structure, the regression flagging and the misuse errors. Numbers are never asserted (speed is
measured in benchmarks/, not tested); only that each measurement exists and is a sane quantity."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _common, run

REPO = Path(__file__).resolve().parents[2]

SECTIONS = ("stages", "llm", "e2e", "fidelity", "live", "overlap", "serve", "memory")


def test_every_section_ran(quick_report):
    assert list(quick_report["sections"]) == list(SECTIONS)
    for name, section in quick_report["sections"].items():
        assert section["status"] == "ok", f"{name}: {section.get('reason')}"
        assert section["title"]
    assert quick_report["mode"] == "quick"
    assert quick_report["settings"]["inline"] is True


def test_json_report_on_disk_matches(quick_report):
    saved = json.loads(Path(quick_report["paths"]["json"]).read_text(encoding="utf-8"))
    assert saved["metrics"] == quick_report["metrics"]
    assert saved["regressions"] == []  # a first run has no baseline
    for key in ("machine", "settings", "sections", "children", "load_average", "build", "reproduce"):
        assert key in saved, key
    machine = saved["machine"]
    assert machine["cpu"] and machine["physical_cores"] >= 1
    assert machine["versions"]["llama-cpp-python"] and machine["versions"]["onnxruntime"]
    if Path("/proc/cpuinfo").is_file():  # the SIMD int8/bf16 speed depends on, named in the markdown
        from benchmarks._common import SIMD_FLAGS

        assert set(machine["cpu_simd"]) <= set(SIMD_FLAGS)
        assert "; SIMD: " in Path(quick_report["paths"]["markdown"]).read_text(encoding="utf-8")


@pytest.mark.parametrize("metric", [
    "stages.torch_ms.visual", "stages.int8_ms.audio", "stages.fp32_ms.facial", "stages.int8_ms.adapters",
    "stages.cosine_int8_vs_fp32.frame_embeds", "stages.int8_speedup.visual",
    "stages.levers.speedup_vs_int8.visual.static", "stages.levers.speedup_vs_int8.audio.fused",
    "stages.levers.cosine_vs_torch.facial.static", "stages.levers.ms.visual.int8",
    "llm.q4_k_m.prefill_ms", "llm.q8_0.decode_tok_s", "llm.f16.first_token_ms", "llm.transformers.decode_tok_s",
    "llm.q4_k_m.ceiling_tok_s", "llm.bandwidth_gbs", "llm.overhead_q4_k_m.decode_ratio_core_vs_plain",
    "e2e.pytorch.total_ms", "e2e.q4_k_m-int8.total_ms", "e2e.q4_k_m-int8.speedup_total", "e2e.q8_0-fp32.rss_ratio",
    "e2e.q4_k_m-int8-constrained.total_ms", "e2e.shipped.speedup_first_token", "e2e.shipped.speedup_total",
    "e2e.shipped.peak_rss_mib", "e2e.six_tasks_over_one", "e2e.label_agreement.likelihood_vs_grammar",
    "e2e.label_agreement.grammar_vs_free", "live.first_token_after_clip_ms", "live.speedup_first_token_after_clip",
    "fidelity.agreement.q4_k_m-int8.all", "fidelity.parity.q4_k_m.top1",
    "live.1_face.capture_fps", "overlap.throughput_gain", "overlap.latency_ratio", "overlap.sequential_s_per_clip", "live.4_face.rss_end_mib", "analyze.rss_60s_over_4s",
    "serve.1_clients.clips_per_s", "serve.4_clients.throughput_x", "serve.4_clients_together.p95_over_single_p50",
])
def test_metric_present_and_sane(quick_report, metric):
    value = quick_report["metrics"].get(metric)
    assert isinstance(value, float) and math.isfinite(value), (metric, value)
    if metric.split(".")[-1].startswith(("cos", "frame_embeds")) or "agreement" in metric or "top1" in metric:
        assert -1.0 <= value <= 1.0
    else:
        assert value > 0


def test_higher_is_better_names_real_metrics(quick_report):
    higher = set(quick_report["higher_is_better"])
    assert higher <= set(quick_report["metrics"])
    assert {"llm.q4_k_m.decode_tok_s", "live.1_face.capture_fps", "e2e.q4_k_m-int8.speedup_total"} <= higher
    assert "e2e.pytorch.total_ms" not in higher


def test_markdown_has_every_table(quick_report):
    text = Path(quick_report["paths"]["markdown"]).read_text(encoding="utf-8")
    assert text.startswith("# emox-edge benchmarks (quick)")
    for name, section in quick_report["sections"].items():
        assert f"## {section['title']}" in text, name
    for header in ("| stage | PyTorch fp32 | ORT fp32 | ORT int8", "| language core | prompt positions",
                   "| pipeline | first token | clip total", "| emox-edge | sentiment | emotion",
                   "| GGUF | top-1 agreement", "| source | frames | camera fps sustained",
                   "| graph | shipped dynamic int8 (cos vs PyTorch) | static int8"):
        assert header in text, header
    assert "PyTorch fp32 reference" in text and "emox-edge Q4_K_M + int8" in text
    assert "## Reproduce" in text and "python -m benchmarks --quick" in text
    assert quick_report["machine"]["cpu"] in text


def test_live_memory_sampled(quick_report):
    runs = quick_report["sections"]["live"]["runs"]
    for key in ("1_face", "4_face"):
        curve = runs[key]["rss_curve"]
        assert [n for n, _ in curve] == sorted(n for n, _ in curve) and curve[0][0] == 100
        assert runs[key]["frames_served"] + runs[key]["frames_lost_at_source"] >= 100
        assert runs[key]["clips"] >= 1


def _finish(report, tmp_path, baseline_metrics, *, mode="quick", threshold=0.15, threads=None):
    baseline = tmp_path / "baseline.json"
    old = {"mode": mode, "machine": {"date": "2026-01-01T00:00:00+00:00", "cpu": "old"}, "metrics": baseline_metrics,
           "settings": {"threads": threads or report["settings"]["threads"]}}
    baseline.write_text(json.dumps(old), encoding="utf-8")
    fresh = copy.deepcopy(report)
    fresh.pop("paths", None)
    return run.finish_report(fresh, latest=tmp_path / "latest.json", baseline=baseline,
                             markdown=tmp_path / "bench.md", threshold=threshold)


def test_regression_flagged_in_json_and_markdown(quick_report, tmp_path):
    metrics = dict(quick_report["metrics"])
    slower = "e2e.q4_k_m-int8.total_ms"
    fps = "live.1_face.capture_fps"
    metrics[slower] = quick_report["metrics"][slower] / 2  # the baseline was twice as fast
    metrics[fps] = quick_report["metrics"][fps] * 2  # and sustained twice the frame rate
    report = _finish(quick_report, tmp_path, metrics)
    flagged = {line.split(":")[0] for line in report["regressions"]}
    assert flagged == {slower, fps}
    saved = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert {line.split(":")[0] for line in saved["regressions"]} == flagged
    assert saved["baseline"]["path"] == str(tmp_path / "baseline.json")
    text = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "**Regressions against" in text and slower in text and fps in text


def test_improvement_and_noise_not_flagged(quick_report, tmp_path):
    metrics = {k: v * 1.10 for k, v in quick_report["metrics"].items()}  # 10 % worse/better: under 15 %
    metrics["e2e.q4_k_m-int8.total_ms"] = quick_report["metrics"]["e2e.q4_k_m-int8.total_ms"] * 3  # now faster
    report = _finish(quick_report, tmp_path, metrics)
    assert report["regressions"] == []
    assert "No regression over 15%" in (tmp_path / "bench.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("other", [{"mode": "full"}, {"threads": 64}])
def test_baseline_of_other_mode_or_threads_not_compared(quick_report, tmp_path, other):
    metrics = {k: v / 10 for k, v in quick_report["metrics"].items()}
    report = _finish(quick_report, tmp_path, metrics, **other)
    assert report["regressions"] == [] and "baseline" not in report


@pytest.mark.parametrize("argv, message", [
    (["--full", "--inline"], "--inline is only for --quick"),
    (["--quick", "--repeats", "0"], "--repeats must be a positive integer"),
    (["--quick", "--only", "llm", "--skip", "llm"], "no section left to run"),
    (["--quick", "--threshold", "0"], "--threshold must be a fraction"),
])
def test_misuse_raises_value_error(argv, message, tmp_path):
    ns = run.parse_args([*argv, "--results", str(tmp_path)])
    with pytest.raises(ValueError, match=message):
        run.run(ns, progress=lambda m: None)


def test_unknown_section_rejected_by_parser(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_unknown_unit_lists_the_valid_ones():
    from benchmarks._child import resolve

    with pytest.raises(ValueError, match="unknown unit 'nope'; units: e2e|edge_clip"):
        resolve("nope")


def test_cosine_and_flatten():
    assert _common.cosine([1, 0], [2, 0]) == pytest.approx(1.0)
    assert _common.cosine([1, 0], [0, 3]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same size, got 2 and 3"):
        _common.cosine([1, 0], [1, 0, 0])
    assert _common.flatten_metrics({"a": {"b": 1, "c": True, "d": float("nan")}, "e": 2.5}) == {"a.b": 1.0, "e": 2.5}


def test_run_child_exit_code_and_log_tail(tmp_path):
    ok = _common.run_child([sys.executable, "-c", "print('a'); print('done')"], log_path=tmp_path / "ok.log")
    assert ok["returncode"] == 0 and ok["tail"] == "a\ndone" and ok["wall_s"] > 0
    failed = _common.run_child([sys.executable, "-c", "raise SystemExit(3)"], log_path=tmp_path / "f.log")
    assert failed["returncode"] == 3


def test_children_measure_their_own_peak_not_the_parents(tmp_path):
    """A child's ru_maxrss starts at its parent's size (Linux); VmHWM is the child's own."""
    probe = ("import sys; sys.path.insert(0, {repo!r}); import numpy as np; from benchmarks._common import hwm_mib; "
             "a = np.ones({mib} * 2**20 // 8); a += 1; print(round(hwm_mib()))")
    small = _common.run_child([sys.executable, "-c", probe.format(repo=str(REPO), mib=1)], log_path=tmp_path / "s.log")
    big = _common.run_child([sys.executable, "-c", probe.format(repo=str(REPO), mib=300)], log_path=tmp_path / "b.log")
    assert small["returncode"] == big["returncode"] == 0, (small["tail"], big["tail"])
    assert float(big["tail"]) >= 300 > float(small["tail"])


def test_heavy_lock_is_skipped_under_a_holding_parent(tmp_path, monkeypatch):
    lock_file = str(tmp_path / "heavy.lock")
    with _common.heavy_lock(lock_file):
        monkeypatch.setenv(_common.HEAVY_LOCK_HELD_ENV, "1")
        with _common.heavy_lock(lock_file) as inner:  # would deadlock if it tried to take the lock again
            assert inner._handle is None


def test_cli_bench_help_lists_the_suite_flags():
    out = subprocess.run([sys.executable, "-m", "emox_edge.cli.main", "bench", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "--quick" in out and "--full" in out and "--only SECTION" in out


def test_cli_bench_without_checkout_says_so(monkeypatch, capsys):
    from emox_edge.cli import bench
    from emox_edge.cli.main import main

    monkeypatch.setattr(bench, "find_checkout", lambda: None)
    assert main(["bench", "--quick"]) == 2
    assert "benchmarks live in the source repository" in capsys.readouterr().err


def test_unknown_flags_are_refused_outside_bench():
    from emox_edge.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "x.mp4", "--no-such-flag"])
    assert exit_info.value.code == 2


def test_find_checkout_ignores_a_folder_without_benchmarks(monkeypatch, tmp_path):
    from emox_edge.cli import bench

    monkeypatch.setenv(bench.ENV_CHECKOUT, str(tmp_path))
    assert bench.find_checkout() == REPO  # falls back to the checkout the package was installed from
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "run.py").write_text("")
    assert bench.find_checkout() == tmp_path.resolve()


def test_random_adapters_scaled_to_the_token_embedding_rms():
    """The benchmark checkpoint's injected rows get the language model's embedding RMS (as trained ones would)."""
    import torch
    from benchmarks._sources import match_output_rms
    from converters.testing.tiny_encoders import TinySizes, synthetic_checkpoint_state

    state = synthetic_checkpoint_state(TinySizes(), torch.Generator().manual_seed(0))
    before = match_output_rms(state, 0.02)
    assert min(before.values()) > 0.1  # the synthetic weights give O(1) rows
    after = match_output_rms(state, 0.02)  # measured again on the rescaled state
    assert after == pytest.approx({name: 0.02 for name in after}, rel=1e-3)


def test_splice_replaces_a_section_and_records_why(quick_report, tmp_path):
    import copy

    from benchmarks import splice

    published, partial = tmp_path / "latest.json", tmp_path / "partial.json"
    published.write_text(json.dumps(quick_report, default=str), encoding="utf-8")
    later = copy.deepcopy(json.loads(published.read_text(encoding="utf-8")))
    later["command"] = "python -m benchmarks --quick --only stages"
    later["sections"]["stages"]["metrics"]["int8_speedup"]["visual"] = 7.5
    partial.write_text(json.dumps(later), encoding="utf-8")
    splice.main([str(partial), "--sections", "stages", "--note", "the first run overlapped a test run",
                 "--report", str(published), "--markdown", str(tmp_path / "bench.md")])
    out = json.loads(published.read_text(encoding="utf-8"))
    assert out["metrics"]["stages.int8_speedup.visual"] == 7.5
    assert out["sections"]["e2e"] == json.loads(json.dumps(quick_report["sections"]["e2e"], default=str))
    assert "overlapped a test run" in out["notes"][0] and "--only stages" in out["notes"][0]
    assert "- Note: stages re-measured" in (tmp_path / "bench.md").read_text(encoding="utf-8")
    later["settings"]["threads"] = 99
    with pytest.raises(ValueError, match="thread counts"):
        splice.splice(out, later, ["stages"], "x")
    with pytest.raises(ValueError, match="no section live2"):
        splice.splice(out, {**out, "sections": {}}, ["live2"], "x")


@pytest.mark.parametrize("sections, builds", [(["memory"], False), (["memory", "serve"], False), (["llm", "memory"], True)])
def test_lite_sections_alone_build_no_benchmark_models(sections, builds, tmp_path, monkeypatch):
    """``--only memory serve`` measures the lite bundle: building the true-size models first (~35 min from
    an empty cache) would be wasted; any other section still builds them."""
    built, measured = [], []
    monkeypatch.setattr(run, "build", lambda art, **_: built.append(art) or {"built": True})
    monkeypatch.setattr(run, "run_section", lambda name, ctx: measured.append(name) or {"status": "ok"})
    monkeypatch.setattr("benchmarks._clips.materialize", lambda count, folder: None)
    report = {"sections": {}}
    ctx = run.Context(mode="quick", art=None, work=tmp_path, repeats=1, threads=1, clips=1, live_frames=1,
                      progress=lambda m: None, child_timeout=1.0)
    run.measure(report, ctx, sections, force_build=False)
    assert measured == sections
    assert bool(built) is builds
    assert ("skipped" in report["build"]) is not builds
