"""The live loop: a 30 fps camera with one or four faces while the language core is busy.

The camera and the microphone are the things faked (this machine has neither): ``PacedCapture``
stands in for ``cv2.VideoCapture`` at the OS edge and delivers 640x480 frames on a 30 fps wall clock
with a one-frame buffer, like a driver: a frame that is not read before the next one is due is lost
and counted. Its 60 generated frames cycle, each stamped with its number (``stamped``): before the
stamp, every 4 s clip was the same bytes as the one before, and llama.cpp reused the whole prompt of
the previous clip (~4 s of the first token, flattering this row up to 2026-12-01). The 1-face run
has a microphone (``PacedMicrophone``: the benchmark clips' speech with a -60 dB noise floor, in
100 ms blocks on the wall clock); the 4-face run is camera-only (silent audio). Everything else is the runtime as ``emox-edge run --camera 0 --save out.mp4`` runs it:
``LiveSource`` (its camera thread, fixed 4 s windows) -> ``Analyzer.iter_clips`` with the default
Q4_K_M + int8 bundle answering ``emotion`` (constrained) on every clip -> ``ClipResult.plot`` on every
frame of the clip (the overlay a saved or shown video gets).

Reported per run: frames the camera thread sustained per second, frames lost at the source, frames
no clip took (the reader's ``dropped``), clips skipped because analysis is slower than real time,
overlay frames per second, and RSS sampled every 100 frames: after 100 frames, after the camera
history has filled (30 s), and at the end (10,000 frames in the full run), with the slope over the
second half (MiB per 1,000 frames: flat means no leak).

First token after the clip closes: for every clip, from the later of the moment its window closed
(the source's clock at the clip's end) and the moment the loop asked for it (the analyzer was still
busy with an earlier clip), to the moment its ``emotion`` label came back; medians over the clips
after the first. The reference's figure is its first token on a clip (encoders + prefill + first
token, ``e2e``'s PyTorch fp32 row when this run measured it, else measured here): it can start only
when the clip has closed. Each clip carries the same kind of subtitle as the e2e clips, so the
prompts match.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from benchmarks import _report

TITLE = "Live loop: 30 fps camera, 1 and 4 faces, language core busy"
FPS = 30.0
SIZE = (640, 480)
WINDOW_S = 4.0


class PacedMicrophone:
    """A ``sounddevice.InputStream`` stand-in: ``audio`` (16 kHz mono, cycled) delivered in blocks on the
    wall clock from a thread, as PortAudio's callback thread does."""

    def __init__(self, audio: np.ndarray, *, device, channels, dtype, samplerate, blocksize, callback) -> None:
        assert channels == 1 and dtype == "float32" and samplerate == 16000
        self._audio, self._block, self._callback = audio, blocksize, callback
        self._stop = threading.Event()
        self._noise = np.random.default_rng(0)
        self.active = False

    def start(self) -> None:
        self.active = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        t0, n = time.perf_counter(), 0
        while not self._stop.is_set():
            due = t0 + (n + 1) * self._block / 16000
            time.sleep(max(due - time.perf_counter(), 0.0))
            lo = (n * self._block) % self._audio.size
            block = np.take(self._audio, np.arange(lo, lo + self._block), mode="wrap")
            block = block + self._noise.normal(0.0, 1e-3, block.size)  # a microphone's floor: no block repeats
            self._callback(block[:, None].astype(np.float32), self._block, None, None)
            n += 1

    def stop(self) -> None:
        self._stop.set()
        self.active = False

    def close(self) -> None:
        self._stop.set()


class PacedCapture:
    """A ``cv2.VideoCapture`` stand-in delivering ``frames`` (BGR, cycled) at ``fps`` wall-clock rate."""

    def __init__(self, frames_bgr: np.ndarray, *, fps: float, total: int, rss_every: int = 100) -> None:
        from benchmarks._common import rss_mib

        self._frames, self._fps, self.total = frames_bgr, fps, total
        self._rss, self._every = rss_mib, rss_every
        self.t0: float | None = None
        self.served = 0
        self.lost = 0
        self.last_index = -1
        self.t_last: float | None = None
        self.rss: list[tuple[int, float]] = []
        self.done = threading.Event()
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 API
        return self._open

    def set(self, *_: Any) -> bool:
        return True

    def release(self) -> None:
        self._open = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        if self.last_index + 1 >= self.total:
            self.done.set()
            time.sleep(1 / self._fps)
            return False, None
        due = int((time.perf_counter() - self.t0) * self._fps)
        if due <= self.last_index:  # early: wait for the next frame
            time.sleep(max(self.t0 + (self.last_index + 1) / self._fps - time.perf_counter(), 0.0))
            due = self.last_index + 1
        due = min(due, self.total - 1)
        self.lost += due - self.last_index - 1
        self.last_index = due
        self.served += 1
        self.t_last = time.perf_counter()
        if (due + 1) % self._every == 0 or due + 1 == self.total:
            self.rss.append((due + 1, self._rss()))
        return True, stamped(self._frames[due % len(self._frames)], due)

    @property
    def elapsed(self) -> float:
        """Seconds from the first read to the last frame served."""
        return self.t_last - self.t0 if self.t0 is not None and self.t_last is not None else 0.0


def stamped(frame: np.ndarray, n: int) -> np.ndarray:
    """``frame`` with frame number ``n`` stamped in its top-left corner, as a camera's counter overlay: the
    frames cycle, but no two are the same bytes (a sensor never repeats a frame exactly), so nothing the
    runtime keeps by content (the encoders' row cache, llama.cpp's prompt prefix) is found again."""
    out = frame.copy()
    out[:16, :16] = n % 251
    out[:16, 16:32] = (n // 251) % 251
    return out


def unit_live(args: dict[str, Any]) -> dict[str, Any]:
    import cv2

    from benchmarks._artifacts import artifacts
    from benchmarks._clips import face_frames
    from benchmarks._common import rss_mib
    from benchmarks._clips import SENTENCES, load_clip
    from emox_edge.analyzer import Analyzer
    from emox_edge.capture import LiveSource, Segmentation
    from emox_edge.options import AnalyzerOptions

    art = artifacts(args["mode"], args["root"])
    faces, total = int(args["faces"]), int(args["frames"])
    frames = face_frames(60, size=SIZE, faces=faces, seed=3)
    bgr = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames])
    del frames
    options = AnalyzerOptions(device="cpu", n_threads=args["threads"], quant="q4_k_m", precision="int8",
                              deterministic=True, max_new_tokens=16, constrain=True)
    analyzer = Analyzer.from_bundle(art.bundle, options)
    loaded = rss_mib()
    capture = PacedCapture(bgr, fps=FPS, total=total)
    speech = None
    if args.get("mic"):  # the spoken sentences of the benchmark clips, one after the other
        speech = np.concatenate([load_clip(k, args["clips_dir"]).audio for k in range(4)])
    source = LiveSource(camera=0, mic=True if speech is not None else None,
                        segmentation=Segmentation(mode="fixed", window_s=WINDOW_S),
                        camera_factory=lambda index: capture, mic_factory=lambda **kw: PacedMicrophone(speech, **kw))
    clips = overlay_frames = errors = 0
    overlay_s = analyze_s = 0.0
    faces_seen: list[int] = []
    pairs = analyzer.iter_clips(source, ["emotion"], subtitle=SENTENCES[1])
    after_close: list[float] = []  # ms from max(clip closed, loop asked) to the label
    answer_age: list[float] = []  # ms from the clip's close to its label, waiting for a busy analyzer included
    t_prev = time.perf_counter()
    asked = time.monotonic()  # LiveSource's clock
    try:
        for clip, result in pairs:
            done = time.monotonic()
            analyze_s += time.perf_counter() - t_prev
            closed = source.t0 + clip.end
            after_close.append((done - max(closed, asked)) * 1e3)
            answer_age.append((done - closed) * 1e3)
            clips += 1
            errors += result.error is not None
            faces_seen.append(len(result.faces))
            t0 = time.perf_counter()
            for frame in clip.frames:
                result.plot(frame)
            overlay_s += time.perf_counter() - t0
            overlay_frames += clip.frames.shape[0]
            if capture.done.is_set():
                break
            t_prev = time.perf_counter()
            asked = time.monotonic()
    finally:
        pairs.close()
        analyzer.close()
    stats = source.stats()
    elapsed = capture.elapsed
    rss = capture.rss
    return {
        "faces": faces, "microphone": speech is not None, "frames_encoded_ahead": stats.get("frames_encoded_ahead"),
        "frames_target": total, "frames_served": capture.served, "frames_lost_at_source": capture.lost,
        "camera_frames_read": stats.get("frames_read"), "frames_not_taken": stats.get("frames_dropped"),
        "skipped_clips": stats.get("skipped_clips"), "clips": clips, "clip_errors": errors,
        "camera_history_s": stats.get("camera_history_s"),
        "elapsed_s": elapsed, "capture_fps": (capture.served - 1) / elapsed if elapsed else 0.0,
        "overlay_fps": overlay_frames / overlay_s if overlay_s else None, "overlay_frames": overlay_frames,
        "analyze_s_per_clip": analyze_s / clips if clips else None, "faces_per_clip": faces_seen,
        "rss_after_load_mib": loaded, "rss_curve": rss, **growth(rss),
        "first_token_after_clip_ms_per_clip": after_close, "answer_age_ms_per_clip": answer_age,
        **_after_close(after_close, answer_age),
    }


def _after_close(after_close: list[float], answer_age: list[float]) -> dict[str, float]:
    """Medians over the clips after the first (which also pays for first-run allocations)."""
    timed = after_close[1:] or after_close
    ages = answer_age[1:] or answer_age
    out = {}
    if timed:
        out["first_token_after_clip_ms"] = float(np.median(timed))
    if ages:
        out["answer_age_ms"] = float(np.median(ages))
    return out


def growth(rss: list[tuple[int, float]]) -> dict[str, Any]:
    """RSS after 100 frames, after 30 s (the camera history is full by then), at the end, and the late slope."""
    if not rss:
        return {}
    history_frames = int(30 * FPS) + 100
    at = dict(rss)
    first = rss[0][1]
    full = next((v for n, v in rss if n >= history_frames), None)
    last_n, last = rss[-1]
    half = [(n, v) for n, v in rss if n >= max(last_n / 2, history_frames)]
    slope = None
    if len(half) >= 3:
        n, v = np.array(half, dtype=np.float64).T
        slope = float(np.polyfit(n, v, 1)[0] * 1000.0)
    return {"rss_at_100_mib": at.get(100, first), "rss_history_full_mib": full, "rss_end_mib": last,
            "rss_end_frames": last_n, "rss_slope_mib_per_1000_frames": slope}


def reference_first_token(ctx) -> tuple[float | None, str]:
    """The PyTorch reference's first token on a clip (ms): e2e's row of this run, else measured now."""
    ref = ((getattr(ctx, "done", None) or {}).get("e2e") or {}).get("rows", {}).get("pytorch")
    where = "the e2e section's PyTorch fp32 row (same run)"
    if ref is None:
        ref = ctx.child("reference_clip", {}, tag="live-pytorch")
        where = "a PyTorch fp32 reference child run by this section"
    return ref["timings"].get("first_token"), where


def run(ctx) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    problems = []
    short = min(ctx.live_frames, int(60 * FPS)) if ctx.mode == "full" else ctx.live_frames
    for faces, frames in ((1, ctx.live_frames), (4, short)):  # the 1-face camera has a microphone
        try:
            runs[f"{faces}_face"] = ctx.child("live", {"faces": faces, "frames": frames, "mic": faces == 1},
                                              tag=f"live-{faces}face")
        except RuntimeError as exc:
            problems.append(f"{faces} face(s): {exc}")
    if not runs:
        return {"status": "failed", "reason": "; ".join(problems)}
    metrics = {key: {k: r[k] for k in ("capture_fps", "frames_lost_at_source", "overlay_fps", "rss_end_mib",
                                        "rss_slope_mib_per_1000_frames") if isinstance(r.get(k), (int, float))}
               for key, r in runs.items()}
    for key, r in runs.items():
        if isinstance(r.get("first_token_after_clip_ms"), (int, float)):
            metrics[key]["first_token_after_clip_ms"] = r["first_token_after_clip_ms"]
    higher = [f"{key}.{k}" for key in runs for k in ("capture_fps", "overlay_fps")]
    section = {"metrics": metrics, "higher_is_better": higher, "runs": runs}
    first = (runs.get("1_face") or {}).get("first_token_after_clip_ms")
    if first is not None:
        metrics["first_token_after_clip_ms"] = first
        try:
            ref_ms, where = reference_first_token(ctx)
        except RuntimeError as exc:
            problems.append(f"reference first token: {exc}")
        else:
            if ref_ms:
                metrics["reference_first_token_ms"] = ref_ms
                metrics["speedup_first_token_after_clip"] = ref_ms / first
                higher.append("speedup_first_token_after_clip")
                section["reference"] = where
    if problems:
        section.update(status="partial", partial=True, reason="; ".join(problems))
    return section


def render(section: dict[str, Any]) -> str:
    rows = []
    for key, r in section.get("runs", {}).items():
        slope = r.get("rss_slope_mib_per_1000_frames")
        rows.append([f"{r['faces']} face{'s' if r['faces'] > 1 else ''}", r["frames_served"] + r["frames_lost_at_source"],
                     f"{r['capture_fps']:.1f}", r["frames_lost_at_source"], r.get("frames_not_taken"),
                     f"{r['clips']} ({r.get('skipped_clips')} skipped)",
                     _report.ms((r.get("analyze_s_per_clip") or 0) * 1e3),
                     f"{r['overlay_fps']:.0f}" if r.get("overlay_fps") else None,
                     _report.mib(r.get("rss_at_100_mib")), _report.mib(r.get("rss_history_full_mib")),
                     f"{_report.mib(r.get('rss_end_mib'))} @ {r.get('rss_end_frames')}",
                     f"{slope:+.2f}" if slope is not None else None])
    text = _report.table(["source", "frames", "camera fps sustained", "lost at source", "not taken by a clip",
                          "clips analysed", "analysis per clip", "overlay fps", "RSS @100 frames",
                          "RSS @30 s (history full by then)", "RSS at end", "MiB / 1,000 frames (2nd half)"], rows)
    text += _render_first_token(section)
    text += ("\n\n30 fps, 640x480 RGB (1 face: with a microphone delivering the benchmark clips' speech; 4 faces: "
             "camera only, silent audio; every frame stamped with its number, so no clip repeats another); fixed "
             "4 s clips, the 8 frames each clip samples encoded as they arrive; `emotion` (closed-set, the "
             "analyzer's default label decoding, "
             "Q4_K_M + int8) on each clip while the camera thread keeps reading. The camera reader keeps "
             f"{_history(section)} of frames for clip assembly (≈26 MiB per second of 640x480 video), so memory rises "
             "until that history is full and must be flat after that.")
    return text


def _render_first_token(section: dict[str, Any]) -> str:
    m = section.get("metrics", {})
    if m.get("first_token_after_clip_ms") is None:
        return ""
    runs = section.get("runs", {})
    per = "; ".join(f"{r['faces']} face{'s' if r['faces'] > 1 else ''}{' + microphone' if r.get('microphone') else ''}: "
                    f"{_report.ms(r.get('first_token_after_clip_ms'))} "
                    f"(answer age incl. waiting for a busy analyzer {_report.ms(r.get('answer_age_ms'))})"
                    for r in runs.values() if r.get("first_token_after_clip_ms") is not None)
    text = f"\n\nFirst token (the `emotion` label) after a clip closes, median over the clips after the first: {per}."
    if m.get("speedup_first_token_after_clip"):
        text += (f" The PyTorch fp32 reference can start only when the clip has closed: its first token takes "
                 f"{_report.ms(m.get('reference_first_token_ms'))} ({section.get('reference')}), "
                 f"{m['speedup_first_token_after_clip']:.2f}× ours.")
    return text


def _history(section: dict[str, Any]) -> str:
    seconds = {r.get("camera_history_s") for r in section.get("runs", {}).values()} - {None}
    return " / ".join(f"{v:g} s" for v in sorted(seconds)) if seconds else "a bounded history (30 s before issue 14)"
