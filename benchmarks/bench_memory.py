"""Memory: ``analyze`` on a long file against a short one, and the live camera's resident frames.

- ``analyze``: generated files (the astronaut's face at 640x480, 25 fps, espeak-ng speech looped) of
  4 s and 60 s, each answered by ``Analyzer.analyze(path, ["emotion"])`` with the default bundle in a
  fresh process; its own peak resident memory (``VmHWM``, not inherited from this process) ->
  ``analyze.rss_60s_over_4s`` (issue 14 goal: <= 1.10, memory must not grow with the file's length).
  With ``--long`` (and in the full benchmark) also a 240 s file -> ``analyze.rss_240s_over_60s``:
  whether memory still grows past the 60 s file (speech recognition's windows are at most 30 s, so a
  file longer than one window should cost no more than the 60 s one).
- ``live_memory``: ``LiveSource`` over a synthetic 30 fps camera (640x480 and 1280x720, paced on the
  wall clock, a fresh frame per read as a driver gives) for ``--seconds``, fixed 4 s clips, and a
  consumer that holds each clip for ``--delay`` seconds (the analysis time; Nano-EmoX took 9-10 s).
  Each size runs twice in fresh processes: with the default settings (history sized from the
  segmentation, frames downscaled to 640 px in the camera thread) and with the legacy ones (30 s of
  frames as captured: ``history_s=30, max_side=None``). Reported: the peak resident memory above the
  process's own before capture started (``VmHWM`` reset through ``/proc/self/clear_refs``), the most
  frames the history held, and legacy / default.

    python -m benchmarks.bench_memory                      # both parts, default lite bundle
    python -m benchmarks.bench_memory --only live --seconds 40 --delay 9 --json out.json

Nothing here is a test: numbers go in the JSON and the table, and nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TITLE = "Memory: analyze on a 60 s file over a 4 s one; live camera history"
SIZES = ((640, 480), (1280, 720))
LEGACY = {"history_s": 30.0, "max_side": None}  # what the camera kept before issue 14
FILE_SECONDS = (4.0, 60.0)
LONG_SECONDS = 240.0  # with ``long``: does memory grow past 60 s?
FILE_FPS, FILE_SIZE = 25, (640, 480)

log = logging.getLogger("benchmarks.memory")


# ----------------------------------------------------------------------------- media
def make_file(folder: Path, seconds: float) -> Path:
    """``folder/face-<seconds>s.mp4``: a moving face and speech (a tone without espeak-ng), made once."""
    import shutil

    from benchmarks._clips import SENTENCES, speech
    from converters.testing import media

    path = folder / f"face-{seconds:g}s.mp4"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    video = media.make_face_video(folder / f"video-{seconds:g}s.mp4", seconds, FILE_FPS, FILE_SIZE)
    n = int(seconds * 16000)
    if shutil.which("espeak-ng"):
        parts, total, k = [], 0, 0
        while total < n:
            parts += [speech(SENTENCES[k % len(SENTENCES)]), np.zeros(8000, np.float32)]
            total += parts[-2].size + 8000
            k += 1
        audio = np.concatenate(parts)[:n]
    else:
        audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000)).astype(np.float32)
    wav = media.write_wav(folder / f"speech-{seconds:g}s.wav", audio, 16000)
    media.mux(video, wav, path)
    video.unlink()
    wav.unlink()
    return path


class SyntheticCamera:
    """A ``cv2.VideoCapture`` stand-in: BGR frames cycled from ``frames`` at ``fps`` on the wall clock,
    each read a fresh array (as a driver's), for ``seconds``; then nothing (an unplugged camera)."""

    def __init__(self, frames: np.ndarray, *, fps: float, seconds: float) -> None:
        self._frames, self._period = frames, 1.0 / fps
        self.total = int(seconds * fps)
        self.served = 0
        self.t0: float | None = None

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 API
        return True

    def set(self, *_: Any) -> bool:
        return True

    def release(self) -> None:
        pass

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        if self.served >= self.total:
            time.sleep(self._period)
            return False, None
        delay = self.t0 + self.served * self._period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        frame = self._frames[self.served % len(self._frames)].copy()
        self.served += 1
        return True, frame

    @property
    def done(self) -> bool:
        return self.served >= self.total


# ----------------------------------------------------------------------------- measurement units
def _reset_peak() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def unit_analyze(args: dict[str, Any]) -> dict[str, Any]:
    """``analyze(args["path"])`` with the bundle ``args.get("bundle")`` (None: the default) in this process."""
    from benchmarks._common import hwm_mib, rss_mib
    from emox_edge.api import load

    t0 = time.perf_counter()
    with load(args.get("bundle"), n_threads=args.get("threads")) as analyzer:
        loaded = rss_mib()
        t1 = time.perf_counter()
        result = analyzer.analyze(args["path"], list(args.get("tasks", ["emotion"])))
        analyze_s = time.perf_counter() - t1
        bundle = analyzer.name
    return {"path": args["path"], "bundle": bundle, "load_s": round(t1 - t0, 2), "analyze_s": round(analyze_s, 2),
            "rss_after_load_mib": round(loaded, 1), "peak_rss_mib": round(hwm_mib() or 0.0, 1),
            "error": result.error, "answer": {k: v.label for k, v in result.tasks.items()}}


def unit_live(args: dict[str, Any]) -> dict[str, Any]:
    """The live source over a synthetic camera of ``args["size"]`` for ``args["seconds"]``; see the module doc."""
    import cv2

    from benchmarks._clips import face_frames
    from benchmarks._common import hwm_mib, rss_mib
    from emox_edge.capture import LiveSource, Segmentation

    width, height = args["size"]
    fps, delay = float(args.get("fps", 30.0)), float(args.get("delay_s", 9.0))
    pool = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in face_frames(8, size=(width, height))])
    camera = SyntheticCamera(pool, fps=fps, seconds=float(args["seconds"]))
    settings = dict(LEGACY) if args.get("legacy") else {}
    base = rss_mib()
    reset = _reset_peak()
    source = LiveSource(camera=0, mic=None, segmentation=Segmentation(mode="fixed", window_s=float(args.get("window_s", 4.0))),
                        camera_factory=lambda index: camera, **settings)
    clips, frames_per_clip = 0, []
    try:
        for clip in source.clips():
            clips += 1
            frames_per_clip.append(int(clip.frames.shape[0]))
            deadline = time.perf_counter() + delay  # "analysing": the clip is held meanwhile
            while time.perf_counter() < deadline and not camera.done:
                time.sleep(0.05)
            del clip
            if camera.done:
                break
        end = rss_mib()
        stats = source.stats()
    finally:
        source.close()
    peak = hwm_mib()
    shape = kept_shape(pool[0], settings.get("max_side", 640))
    held = getattr(source.camera, "peak_held", None)  # None: a tree from before issue 14 (PYTHONPATH=...)
    return {"size": f"{width}x{height}", "settings": "legacy" if args.get("legacy") else "default",
            "history_s": stats.get("camera_history_s", settings.get("history_s")),
            "frame_shape": list(shape),
            "seconds": args["seconds"], "delay_s": delay, "clips": clips, "frames_per_clip": frames_per_clip,
            "frames_read": stats.get("frames_read"), "frames_dropped": stats.get("frames_dropped"),
            "skipped_clips": stats.get("skipped_clips"), "frames_held_peak": held,
            "history_peak_mib": None if held is None else round(held * int(np.prod(shape)) / 2**20, 1), "rss_before_capture_mib": round(base, 1),
            "capture_peak_mib": round(peak - base, 1) if reset and peak is not None else None,
            "capture_end_mib": round(end - base, 1), "peak_rss_mib": round(peak or 0.0, 1), "peak_reset": reset}


def kept_shape(frame: np.ndarray, max_side: int | None) -> tuple[int, int, int]:
    """The shape the camera thread keeps a frame at."""
    from emox_edge.capture.decode import display_size

    width, height = display_size(frame.shape[1], frame.shape[0], max_side)
    return height, width, 3


# ----------------------------------------------------------------------------- running
def in_child(unit, args: dict[str, Any]) -> dict[str, Any]:
    """``unit(args)`` in a fresh (spawned) process, so that its peak memory is its own."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(unit, (args,))


def measure(*, parts: Sequence[str], work: Path, seconds: float, delay: float, bundle: str | None,
            threads: int | None, long: bool = False, child=in_child) -> dict[str, Any]:
    """Both parts (or those in ``parts``), each run in its own process by ``child(unit, args)``;
    ``long``: analyze a 240 s file too."""
    result: dict[str, Any] = {}
    if "analyze" in parts:
        runs = {}
        for length in FILE_SECONDS + ((LONG_SECONDS,) if long else ()):
            path = make_file(work, length)
            log.info("analyze: %s", path)
            runs[f"{length:g}s"] = child(unit_analyze, {"path": str(path), "bundle": bundle, "threads": threads})
        peak = {k: r["peak_rss_mib"] for k, r in runs.items()}
        result["analyze"] = {"runs": runs, "rss_60s_over_4s": _ratio(peak["60s"], peak["4s"])}
        if long:
            result["analyze"]["rss_240s_over_60s"] = _ratio(peak[f"{LONG_SECONDS:g}s"], peak["60s"])
    if "live" in parts:
        runs = []
        for size in SIZES:
            for legacy in (True, False):
                log.info("live: %dx%d, %s settings, %g s", *size, "legacy" if legacy else "default", seconds)
                runs.append(child(unit_live, {"size": list(size), "seconds": seconds, "delay_s": delay, "legacy": legacy}))
        result["live"] = {"runs": runs, "saving": savings(runs)}
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def savings(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per size: the capture's peak memory with the legacy and the default settings, and their ratio."""
    out: dict[str, dict[str, float | None]] = {}
    for size in {r["size"] for r in runs}:
        by = {r["settings"]: r for r in runs if r["size"] == size}
        legacy, default = (by.get(k, {}).get("capture_peak_mib") for k in ("legacy", "default"))
        out[size] = {"capture_legacy_mib": legacy, "capture_mib": default,
                     "legacy_over_default": round(legacy / default, 2) if legacy and default else None}
    return out


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The report's metrics: ``analyze.rss_60s_over_4s`` (issue 14) and ``live_memory.<size>.*``."""
    metrics: dict[str, Any] = {}
    if "analyze" in result:
        a = result["analyze"]
        metrics["analyze"] = {**{k: a[k] for k in ("rss_60s_over_4s", "rss_240s_over_60s") if k in a},
                              **{f"peak_rss_{k}_mib": r["peak_rss_mib"] for k, r in a["runs"].items()}}
    if "live" in result:
        metrics["live_memory"] = result["live"]["saving"]
    return metrics


def run(ctx) -> dict[str, Any]:
    """The section of ``python -m benchmarks`` (see the report of issue 14 for its wiring). Its metrics
    carry their own prefixes (``analyze.rss_60s_over_4s`` is the issue's key): ``metrics_prefix``."""
    seconds = 40.0 if ctx.mode == "full" else 12.0

    def child(unit, args):  # units registered in benchmarks._child.UNITS under these names
        name = "memory_analyze" if unit is unit_analyze else "memory_live"
        what = Path(args["path"]).stem if "path" in args else \
            f"{'x'.join(map(str, args['size']))}-{'legacy' if args['legacy'] else 'default'}"
        tag = f"{name}-{what}"
        return ctx.child(name, args, tag=tag)  # the units report their own peak (VmHWM)

    result = measure(parts=("analyze", "live"), work=ctx.work / "memory", seconds=seconds, delay=9.0, bundle=None,
                     threads=ctx.threads, long=ctx.mode == "full", child=child)
    return {"metrics": metrics_of(result), "metrics_prefix": "", "result": result}


def render(section: dict[str, Any]) -> str:
    result = section.get("result", section)
    parts = []
    if "analyze" in result:
        a = result["analyze"]
        rows = [[k, r["bundle"], r["analyze_s"], r["rss_after_load_mib"], r["peak_rss_mib"]] for k, r in a["runs"].items()]
        parts.append(_table(["file", "bundle", "analyze s", "RSS after load MiB", "peak RSS MiB"], rows)
                     + f"\n\n`analyze.rss_60s_over_4s` = **{a['rss_60s_over_4s']}** (goal <= 1.10)."
                     + (f" `analyze.rss_240s_over_60s` = **{a['rss_240s_over_60s']}** (growth past 60 s)."
                        if "rss_240s_over_60s" in a else ""))
    if "live" in result:
        rows = [[r["size"], r["settings"], r["history_s"], "x".join(map(str, r["frame_shape"][:2])), r["frames_held_peak"],
                 r["history_peak_mib"], r["capture_peak_mib"], r["capture_end_mib"], r["clips"], r["skipped_clips"],
                 r["frames_dropped"]] for r in result["live"]["runs"]]
        saving = "; ".join(f"{size}: {s['legacy_over_default']}x less" for size, s in result["live"]["saving"].items())
        parts.append(_table(["camera", "settings", "history s", "frames kept HxW", "frames held (peak)",
                             "history MiB (peak)", "capture peak MiB", "capture at end MiB", "clips", "skipped",
                             "frames dropped"], rows)
                     + f"\n\nCapture memory, legacy (30 s as captured) over default: {saving}. Capture MiB: peak "
                     "resident memory above the process's own before the camera opened.")
    return "\n\n".join(parts)


def _table(headers, rows) -> str:
    from benchmarks._report import table

    return table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("analyze", "live"), default=["analyze", "live"])
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds of live capture per run (default 40)")
    parser.add_argument("--delay", type=float, default=9.0, help="seconds the live consumer holds each clip (default 9)")
    parser.add_argument("--bundle", default=None, help="bundle directory for analyze (default: the lite bundle)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--long", action="store_true", help="also analyze a 240 s file (analyze.rss_240s_over_60s)")
    parser.add_argument("--work", default="out/bench-memory", help="where the generated files go")
    parser.add_argument("--json", default=None, help="also write the result here")
    ns = parser.parse_args(argv)
    if ns.seconds <= 0 or ns.delay < 0:
        parser.error(f"--seconds must be > 0 and --delay >= 0, got {ns.seconds} and {ns.delay}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = measure(parts=ns.only, work=Path(ns.work), seconds=ns.seconds, delay=ns.delay, bundle=ns.bundle,
                     threads=ns.threads, long=ns.long)
    result["metrics"] = metrics_of(result)
    from benchmarks.bench_serve import print_result

    return print_result(result, render, ns.json)


if __name__ == "__main__":
    raise SystemExit(main())
