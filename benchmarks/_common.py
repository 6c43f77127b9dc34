"""Shared benchmark machinery: machine facts, medians, peak memory, tables, JSON with regressions.

Benchmarks measure; they never assert. Ratios are taken side by side in one run, medians of
several repeats, because absolute times on shared machines move by 10-20 % run to run.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

_VERSIONED = ("emox-edge", "numpy", "onnxruntime", "llama-cpp-python", "torch", "transformers", "opencv-python")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    from emox_edge.devices import physical_cores

    versions = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    total_mem = None
    try:
        total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(total_mem / 2**30, 1) if total_mem else None,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "versions": versions,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }


def median_ms(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` in milliseconds, and every sample."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), samples


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def compare(current: Mapping[str, float], previous: Mapping[str, float], *, threshold: float = 0.15,
            higher_is_better: Iterable[str] = ()) -> list[str]:
    """Names of metrics that regressed by more than ``threshold`` (relative) against ``previous``.

    Metrics are "lower is better" (times, memory) unless named in ``higher_is_better``.
    """
    better_high = set(higher_is_better)
    regressions = []
    for name, value in current.items():
        old = previous.get(name)
        if not isinstance(old, (int, float)) or not isinstance(value, (int, float)) or old == 0:
            continue
        change = (value - old) / abs(old)
        if (name in better_high and change < -threshold) or (name not in better_high and change > threshold):
            regressions.append(f"{name}: {old:.4g} -> {value:.4g} ({change:+.0%})")
    return regressions


def write_report(path: str | os.PathLike, report: Mapping[str, Any], *, previous: str | os.PathLike | None = None,
                 metrics_key: str = "metrics", threshold: float = 0.15, higher_is_better: Iterable[str] = ()) -> list[str]:
    """Write ``report`` as JSON (atomically); return the regressions against ``previous`` if given."""
    from emox_edge._io import write_json_atomic

    regressions: list[str] = []
    if previous and Path(previous).is_file():
        old = json.loads(Path(previous).read_text(encoding="utf-8"))
        regressions = compare(report.get(metrics_key, {}), old.get(metrics_key, {}), threshold=threshold,
                              higher_is_better=higher_is_better)
    write_json_atomic(path, {**report, "regressions": regressions})
    return regressions


def memory_bandwidth_gbs(*, size_mib: int = 512, repeats: int = 5) -> float:
    """Sustained read+write bandwidth (GB/s) of a large numpy copy; understates pure reads a little."""
    import numpy as np

    src = np.ones(size_mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best, _ = median_ms(lambda: np.copyto(dst, src), repeats=repeats)
    return 2 * src.nbytes / (best / 1e3) / 1e9
