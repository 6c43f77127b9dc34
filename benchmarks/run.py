"""The emox-edge benchmark suite: one command, a markdown table and a JSON report.

    python -m benchmarks --full            # true Nano-EmoX sizes, real language-core weights (~1 h, ~20 GB disk)
    python -m benchmarks --quick           # tiny models: every code path in about a minute
    emox-edge bench [--quick|--full] ...   # the same, from a source checkout

Sections (``--only`` / ``--skip`` pick some): ``stages`` (each encoder graph: PyTorch fp32 vs ONNX
Runtime fp32 vs int8, cosines), ``llm`` (prefill, first token, decode tok/s per quantization,
LanguageCore vs plain llama-cpp-python, the memory-bandwidth ceiling), ``e2e`` (a whole clip:
emox-edge variants vs the PyTorch reference pipeline, latency and peak RSS ratios), ``fidelity``
(label agreement edge vs reference on generated clips, the converter's parity table), ``live``
(frames per second and drops on a 30 fps source with 1 and 4 faces while the language core is busy,
memory growth over 10,000 frames), ``overlap`` (the next clip's perception during the current answer, threads
split, against the sequential loop), ``serve`` (the HTTP server), ``memory`` (``analyze`` on a 60 s file over
a 4 s one, the live camera history's memory).

Every measurement runs in its own child process (peak RSS per pipeline, taken with ``os.wait4``);
full-size children hold ``/tmp/emox-heavy.lock``. A complete full run writes ``benchmarks/results/latest.json``
after comparing it with the previous one there (metrics worse by more than ``--threshold`` are
flagged) and the markdown ``docs/benchmarks.md``; partial (``--only``/``--skip``) and quick runs write
under ``out/bench-<mode>/`` (partial full runs are still compared with the published JSON).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks import _report
from benchmarks._artifacts import REPO, Artifacts, _child_env, artifacts, build
from benchmarks._common import (
    LoadSampler,
    flatten_metrics,
    heavy_lock,
    load_average,
    machine_info,
    run_child,
    write_report,
)
from benchmarks.flags import SECTIONS, add_arguments

log = logging.getLogger("benchmarks")

MODULES = {"stages": "benchmarks.bench_stages", "llm": "benchmarks.bench_core", "e2e": "benchmarks.bench_e2e",
           "fidelity": "benchmarks.bench_fidelity", "live": "benchmarks.bench_live",
           "overlap": "benchmarks.bench_overlap", "serve": "benchmarks.bench_serve",
           "memory": "benchmarks.bench_memory"}
LITE_SECTIONS = {"memory", "serve"}  # measured on the default lite bundle: no benchmark models needed
SCHEMA = 1


@dataclass
class Context:
    """What a section needs: the models, the settings, and a way to run a measurement unit in a child."""

    mode: str
    art: Artifacts
    work: Path
    repeats: int
    threads: int
    clips: int
    live_frames: int
    progress: Callable[[str], None]
    child_timeout: float
    inline: bool = False
    pipelines: tuple[str, ...] | None = None  # e2e rows to run (None: all)
    children: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)  # sections measured so far in this run, by name

    @property
    def clips_dir(self) -> Path:
        return self.work / "clips"

    @property
    def heavy(self) -> bool:
        return self.mode == "full"

    def child(self, unit: str, args: dict[str, Any], *, tag: str | None = None) -> dict[str, Any]:
        """Run ``unit`` in a fresh process; return its JSON with ``child`` = wall time and peak RSS.

        Raises:
            RuntimeError: the child failed; the message carries the end of its log.
        """
        tag = tag or unit
        out = self.work / f"{tag}.json"
        log_path = self.work / f"{tag}.log"
        out.unlink(missing_ok=True)
        base = {"mode": self.mode, "root": str(self.art.root), "work": str(self.work), "repeats": self.repeats,
                "threads": self.threads, "clips_dir": str(self.clips_dir)}
        if self.inline:
            return self._inline(unit, {**base, **args}, tag)
        argv = [sys.executable, "-m", "benchmarks._child", unit, "--args", json.dumps({**base, **args}),
                "--out", str(out)]
        self.progress(f"  {tag} ...")
        with heavy_lock(enabled=self.heavy) as lock:
            info = run_child(argv, cwd=REPO, env=_child_env(lock_held=self.heavy), log_path=log_path,
                             timeout=self.child_timeout)
        info = {"tag": tag, "wall_s": round(info["wall_s"], 2), "peak_rss_mib": round(info["peak_rss_mib"], 1),
                "returncode": info["returncode"], "lock_wait_s": round(lock.waited_s, 1), "tail": info["tail"],
                "timed_out": info["timed_out"]}
        self.children.append({k: v for k, v in info.items() if k != "tail"})
        if info["returncode"] != 0 or not out.is_file():
            last = [line for line in info["tail"].splitlines() if line.strip()]
            reason = last[-1] if last else f"exit {info['returncode']}"
            if info["timed_out"]:
                reason = f"timed out after {self.child_timeout:.0f} s"
            raise RuntimeError(f"{tag}: {reason} (log: {log_path})")
        result = json.loads(out.read_text(encoding="utf-8"))
        if isinstance(result.get("unit_peak_rss_mib"), (int, float)):  # the child's own VmHWM (see hwm_mib)
            info["peak_rss_mib"] = result["unit_peak_rss_mib"]
            self.children[-1]["peak_rss_mib"] = info["peak_rss_mib"]
        result["child"] = {k: info[k] for k in ("wall_s", "peak_rss_mib", "lock_wait_s")}
        self.progress(f"  {tag}: {info['wall_s']:.1f} s, peak {info['peak_rss_mib']:.0f} MiB")
        return result

    def _inline(self, unit: str, args: dict[str, Any], tag: str) -> dict[str, Any]:
        """Run ``unit`` in this process (``--inline``: fast smoke runs; peak RSS is then the whole run's)."""
        from benchmarks._child import resolve
        from benchmarks._common import hwm_mib

        self.progress(f"  {tag} (inline) ...")
        start = time.perf_counter()
        try:
            result = resolve(unit)(args)
        except Exception as exc:
            self.children.append({"tag": tag, "returncode": 1, "inline": True})
            raise RuntimeError(f"{tag}: {type(exc).__name__}: {exc}") from exc
        info = {"wall_s": round(time.perf_counter() - start, 2), "peak_rss_mib": round(hwm_mib() or 0.0, 1),
                "lock_wait_s": 0.0}
        self.children.append({"tag": tag, "returncode": 0, "inline": True, **info})
        return {**result, "unit": unit, "child": info}


def parse_args(argv: Sequence[str] | None, *, prog: str = "python -m benchmarks") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(ns: argparse.Namespace, *, progress: Callable[[str], None] = _progress) -> dict[str, Any]:
    """Run the suite as ``ns`` says; return the report (also written to disk)."""
    from emox_edge.devices import physical_cores

    mode = "quick" if ns.quick else "full"
    for name in ("repeats", "clips", "live_frames", "threads"):
        value = getattr(ns, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if ns.inline and mode != "quick":
        raise ValueError("--inline is only for --quick runs: full-size peak memory must be measured per pipeline")
    if not 0 < ns.threshold < 10:
        raise ValueError(f"--threshold must be a fraction in (0, 10), e.g. 0.15, got {ns.threshold}")
    sections = [s for s in (ns.only or SECTIONS) if s not in ns.skip]
    if not sections:
        raise ValueError(f"no section left to run (--only {ns.only} minus --skip {ns.skip}); sections: {', '.join(SECTIONS)}")
    complete = mode == "full" and list(sections) == list(SECTIONS)
    published = REPO / "benchmarks" / "results"
    # Only a complete full run replaces the published table and JSON; partial and quick runs go to out/.
    results_dir = Path(ns.results) if ns.results else (published if complete else REPO / "out" / f"bench-{mode}")
    markdown = Path(ns.markdown) if ns.markdown else (REPO / "docs" / "benchmarks.md" if complete
                                                      else results_dir / "benchmarks.md")
    latest = results_dir / "latest.json"
    # logs, clips, arrays: never under the published benchmarks/results (they would be committed)
    work = (REPO / "out" / f"bench-{mode}" if results_dir.resolve() == published.resolve() else results_dir) / "work"
    work.mkdir(parents=True, exist_ok=True)
    art = artifacts(mode, ns.models)
    ctx = Context(mode=mode, art=art, work=work, repeats=ns.repeats or (3 if mode == "full" else 2),
                  threads=ns.threads or physical_cores(), clips=ns.clips or (8 if mode == "full" else 2),
                  live_frames=ns.live_frames or (10_000 if mode == "full" else 300), progress=progress,
                  child_timeout=ns.child_timeout, inline=ns.inline,
                  pipelines=tuple(ns.pipelines) if getattr(ns, "pipelines", None) else None)
    load_start = load_average()
    started = time.perf_counter()
    progress(f"emox-edge benchmarks ({mode}): sections {', '.join(sections)}; models in {art.root}")
    report: dict[str, Any] = {
        "suite": "emox-edge benchmarks", "schema": SCHEMA, "mode": mode, "machine": machine_info(),
        "command": getattr(ns, "command_line", None) or f"python -m benchmarks --{mode}",
        "settings": {"repeats": ctx.repeats, "threads": ctx.threads, "clips": ctx.clips, "live_frames": ctx.live_frames,
                     "threshold": ns.threshold, "sections": sections, "inline": ctx.inline,
                     **({"pipelines": list(ctx.pipelines)} if ctx.pipelines else {})},
        "sections": {},
    }
    with LoadSampler() as sampler:
        measure(report, ctx, sections, force_build=ns.rebuild)
    report["children"] = ctx.children
    report["load_average"] = {"start": load_start, "end": load_average(), "during": sampler.summary()}
    report["contention_note"] = contention_note(report["load_average"], ctx.threads)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["reproduce"] = reproduce_lines(mode, sections)
    baseline = Path(ns.baseline) if ns.baseline else (published / "latest.json" if mode == "full" else latest)
    finish_report(report, latest=latest, baseline=baseline, markdown=markdown, threshold=ns.threshold)
    progress(f"wrote {latest} and {markdown} in {report['wall_s']:.0f} s"
             + (f"; {len(report['regressions'])} regression(s)" if report["regressions"] else ""))
    return report


def measure(report: dict[str, Any], ctx: Context, sections: Sequence[str], *, force_build: bool) -> None:
    """Build (or reuse) the models, generate the clips, run each section into ``report["sections"]``.
    Sections on the default lite bundle alone (``LITE_SECTIONS``) need neither: a run of only those
    skips the build (a full-size build from an empty cache takes ~35 min)."""
    if set(sections) <= LITE_SECTIONS:
        report["build"] = {"skipped": f"{', '.join(sections)} run on the default lite bundle"}
        _run_sections(report, ctx, sections)
        return
    try:
        report["build"] = build(ctx.art, log_dir=ctx.work, force=force_build, progress=ctx.progress)
    except RuntimeError as exc:  # the models could not be built: report that, measure nothing
        report["build"] = {"error": str(exc)}
        for name in sections:
            report["sections"][name] = {"title": name, "status": "not run", "reason": f"benchmark models not built: {exc}"}
        return
    from benchmarks._clips import materialize

    count = max(ctx.clips, ctx.repeats + 1)
    ctx.progress(f"generating {count} benchmark clips in {ctx.clips_dir}")
    materialize(count, ctx.clips_dir)
    _run_sections(report, ctx, sections)


def _run_sections(report: dict[str, Any], ctx: Context, sections: Sequence[str]) -> None:
    from emox_edge._io import write_json_atomic

    ctx.done = report["sections"]  # a later section may use an earlier one's rows (live: e2e's reference)
    for name in sections:
        report["sections"][name] = run_section(name, ctx)
        write_json_atomic(ctx.work / "partial-report.json", report)  # survives a run killed later on


def finish_report(report: dict[str, Any], *, latest: Path, baseline: Path | None, markdown: Path,
                  threshold: float) -> dict[str, Any]:
    """Collect the metrics, compare with ``baseline`` (same mode only), write ``latest`` and ``markdown``."""
    report["metrics"], report["higher_is_better"] = collect_metrics(report["sections"])
    report.pop("baseline", None)
    base_info = baseline_info(baseline, report["mode"], report["settings"].get("threads")) if baseline else None
    if base_info:
        report["baseline"] = base_info
    report["regressions"] = write_report(latest, {k: v for k, v in report.items() if k != "paths"},
                                         previous=baseline if base_info else None, threshold=threshold,
                                         higher_is_better=report["higher_is_better"])
    write_markdown(report, markdown)
    report["paths"] = {"json": str(latest), "markdown": str(markdown)}
    return report


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """Render ``report`` with each section's own renderer into ``path`` (atomically)."""
    from emox_edge._io import write_text_atomic

    renderers = {name: importlib.import_module(MODULES[name]).render for name in report["sections"]}
    write_text_atomic(path, _report.render(report, renderers))


def run_section(name: str, ctx: Context) -> dict[str, Any]:
    module = importlib.import_module(MODULES[name])
    ctx.progress(f"[{name}] {module.TITLE}")
    start = time.perf_counter()
    try:
        section = module.run(ctx)
    except Exception as exc:  # a section that cannot run is reported, the others still run
        log.debug("section %s failed", name, exc_info=True)
        section = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    section.setdefault("status", _report.STATUS_OK)
    section["title"] = module.TITLE
    section["commands"] = [f"python -m benchmarks --{ctx.mode} --only {name}", *section.pop("extra_commands", [])]
    section["wall_s"] = round(time.perf_counter() - start, 1)
    return section


def collect_metrics(sections: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    higher: list[str] = []
    for name, section in sections.items():
        prefix = section.get("metrics_prefix", f"{name}.")  # memory's metrics name their own parts (analyze.*)
        flat = flatten_metrics(section.get("metrics", {}), prefix=prefix)
        metrics.update(flat)
        higher += [f"{prefix}{m}" for m in section.get("higher_is_better", [])]
    return metrics, sorted(set(higher) & set(metrics))


def baseline_info(path: Path, mode: str, threads: int | None = None) -> dict[str, Any] | None:
    """Date and machine of the baseline report when it exists and was run in the same mode and thread count."""
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("baseline %s is unreadable; not comparing", path)
        return None
    if old.get("mode") != mode:
        log.warning("baseline %s is a %s run, this is %s; not comparing", path, old.get("mode"), mode)
        return None
    old_threads = old.get("settings", {}).get("threads")
    if threads is not None and old_threads is not None and old_threads != threads:
        log.warning("baseline %s ran with %s threads, this run with %s; not comparing", path, old_threads, threads)
        return None
    return {"path": str(path), "date": old.get("machine", {}).get("date"), "cpu": old.get("machine", {}).get("cpu")}


def contention_note(load: dict[str, Any], threads: int) -> str:
    values = [v for pair in (load.get("start"), load.get("end")) if pair for v in pair[:1]]
    during = load.get("during") or {}
    peak = max(values + ([during["max"]] if during.get("max") is not None else []), default=None)
    if peak is not None and peak > threads + 0.5:
        mean = f", mean {during['mean']}" if during.get("mean") is not None else ""
        return (f"the machine was shared (1-min load up to {peak:.1f}{mean} against the {threads} threads used), "
                "so absolute times are pessimistic; ratios were taken side by side and are less affected.")
    return "the machine was otherwise idle."


def reproduce_lines(mode: str, sections: Sequence[str]) -> str:
    only = "" if list(sections) == list(SECTIONS) else " --only " + " ".join(sections)
    return "\n".join([
        "bash scripts/install.sh --dev          # runtime + converters + test tools",
        f".venv/bin/python -m benchmarks --{mode}{only}",
        f"# or: .venv/bin/emox-edge bench --{mode}{only}",
    ])


def render_only(report_path: Path, markdown: Path) -> Path:
    """Write ``markdown`` from an existing JSON report (no measurement, no comparison)."""
    write_markdown(json.loads(Path(report_path).read_text(encoding="utf-8")), markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--render"]:  # python -m benchmarks --render REPORT.json [OUT.md]
        if len(argv) not in (2, 3):
            raise SystemExit("usage: python -m benchmarks --render REPORT.json [OUT.md]")
        out = render_only(Path(argv[1]), Path(argv[2]) if len(argv) == 3 else REPO / "docs" / "benchmarks.md")
        print(out)
        return 0
    ns = parse_args(argv)
    ns.command_line = shlex.join(["python", "-m", "benchmarks", *argv])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    report = run(ns)
    failed = [n for n, s in report["sections"].items() if s.get("status") != _report.STATUS_OK]
    print(Path(report["paths"]["markdown"]).read_text(encoding="utf-8"))
    return 1 if failed and len(failed) == len(report["sections"]) else 0


if __name__ == "__main__":
    sys.exit(main())
