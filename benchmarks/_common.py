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


SIMD_FLAGS = ("avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
              "asimd", "asimddp", "i8mm", "bf16")  # x86 and aarch64 names in /proc/cpuinfo


def cpu_simd() -> list[str] | None:
    """The SIMD extensions int8/bf16 kernels depend on, as the kernel reports them (Linux; else None).

    A VM may hide some of its host's (same CPU model, no AVX-512): int8 GEMMs then run at half speed
    and bf16 is emulated, so a report must say which ones the run had.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in SIMD_FLAGS if f in have]
    except OSError:
        pass
    return None


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
        "cpu_simd": cpu_simd(),
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


# --- added for the benchmark suite (benchmarks/run.py) -------------------------------------------

HEAVY_LOCK = "/tmp/emox-heavy.lock"
# Set (to "1") in the environment of children started while this process tree holds the heavy lock:
# a child taking the lock again would wait for its own parent forever.
HEAVY_LOCK_HELD_ENV = "EMOX_EDGE_HEAVY_LOCK_HELD"


def rss_mib() -> float:
    """Current resident memory of this process (MiB), from /proc (0.0 where /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def hwm_mib() -> float | None:
    """Peak resident memory of this process's *own* address space (``VmHWM``, MiB), or None off Linux.

    Unlike ``getrusage``'s ``ru_maxrss``, it does not inherit the parent's peak: on Linux a child's
    ``ru_maxrss`` starts at its parent's resident size at fork (kept across exec), so a child spawned
    by a 1 GiB parent reports at least 1 GiB. Measurement children report this value instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two arrays taken as flat vectors (float64)."""
    import numpy as np

    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"cosine needs arrays of the same size, got {x.size} and {y.size}")
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / denom) if denom else float("nan")


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (shows how busy a shared machine was during a run)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


class heavy_lock:
    """``with heavy_lock():`` holds ``/tmp/emox-heavy.lock`` (flock) so two multi-GB jobs never overlap.

    ``enabled=False`` makes it a no-op (tiny models), and so does ``$EMOX_EDGE_HEAVY_LOCK_HELD=1`` (an
    ancestor process holds the lock for us). The time spent waiting is kept in ``waited_s``.
    """

    def __init__(self, path: str = HEAVY_LOCK, *, enabled: bool = True):
        self.path, self.enabled, self.waited_s, self._handle = path, enabled, 0.0, None

    def __enter__(self) -> "heavy_lock":
        if self.enabled and os.environ.get(HEAVY_LOCK_HELD_ENV) != "1":
            import fcntl

            start = time.perf_counter()
            self._handle = open(self.path, "a+")  # noqa: SIM115 - closed in __exit__
            fcntl.flock(self._handle, fcntl.LOCK_EX)
            self.waited_s = time.perf_counter() - start
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def run_child(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
              timeout: float | None = None, log_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run ``argv`` as a child process and return its exit code, wall time and peak RSS.

    ``peak_rss_mib`` comes from ``os.wait4`` (that one child's rusage). On Linux it is at least the
    parent's resident size when the child was spawned (``ru_maxrss`` is inherited across fork and
    exec), so it is exact only from a small parent; children that can should report ``hwm_mib()``.
    stdout and stderr go to ``log_path`` (or are discarded); the last lines of the log come back as
    ``tail``. A child running past ``timeout`` seconds is killed.
    """
    import signal
    import subprocess
    import threading

    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        timer = None
        if timeout:
            timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log_file.close()
    wall = time.perf_counter() - start
    peak = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    tail = ""
    if log_path and Path(log_path).is_file():
        lines = Path(log_path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = "\n".join(lines[-15:])
    return {"returncode": proc.returncode, "wall_s": wall, "peak_rss_mib": peak, "tail": tail,
            "timed_out": bool(timeout) and wall >= timeout and proc.returncode < 0}


def flatten_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"a": {"b": 1.0}}`` -> ``{"a.b": 1.0}``: the numeric leaves of a nested result (bools skipped)."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:  # not NaN
            flat[name] = float(value)
    return flat


class LoadSampler:
    """Samples the 1-minute load average every ``every_s`` seconds in a daemon thread (shared-machine record)."""

    def __init__(self, every_s: float = 15.0):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            load = load_average()
            if load:
                self.samples.append(load[0])
            if self._stop.wait(self._every):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        return {"max": max(self.samples), "mean": round(statistics.fmean(self.samples), 2), "n": len(self.samples)}
