"""Serving: 1, 2 and 4 concurrent WebSocket streams through the real server, sharing one bundle.

Each client is what a camera app would be: it sends 320x240 JPEG frames (10 fps) and 16 kHz PCM16
audio (100 ms chunks) of a generated clip (the astronaut's face, espeak-ng speech), paced in real time
on its own clock (``--speed`` > 1 sends faster, to load the server beyond real time), in fixed
``--window`` clips. Everything else is ``emox-edge serve``: uvicorn + FastAPI in this process, the
bounded per-session queues, the analysis worker(s).

Reported per number of clients: clips analysed per second (all clients), the offered rate (clips the
clients' media makes per second), p50/p95 latency from a clip's end (the moment its last media was
sent) to its result arriving, the media the server dropped because analysis could not keep up, how
many clips the language core answered together (the server's rounds: clips per round), and the
machine's load average over the run (the benchmark shares the CPU with whatever else runs).

    python -m benchmarks.bench_serve                              # the default lite bundle
    python -m benchmarks.bench_serve --bundle DIR --clients 1 2 4 --seconds 20 --json out.json
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from typing import Any, Sequence

import numpy as np

TITLE = "Serving: 1, 2 and 4 concurrent WebSocket streams, one bundle"
FPS = 10
SIZE = (320, 240)


def make_media(seconds: float) -> list[tuple[float, int, bytes]]:
    """``(t, kind, payload)`` in time order: ``seconds`` of the astronaut's face at 10 fps as JPEG (kind 1)
    and espeak-ng speech (a tone without espeak-ng), looped, in 100 ms PCM16 chunks (kind 2). Encoded
    once, here, so the clients spend no CPU the server could use."""
    import shutil

    import cv2

    from converters.testing import media

    base = media.astronaut_rgb()
    n = int(seconds * FPS)
    frames = np.stack([cv2.resize(np.roll(base, 3 * (k % 60), axis=1), SIZE) for k in range(n)])
    if shutil.which("espeak-ng"):
        speech, rate = media.espeak_samples("I am so happy to see you again, this is wonderful news.")
        one = np.interp(np.arange(int(speech.size * 16000 / rate)) * rate / 16000, np.arange(speech.size), speech)
        one = np.concatenate([one, np.zeros(8000)])
    else:
        one = 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)
    audio = np.resize(one.astype(np.float32), int(seconds * 16000))
    from emox_edge.client import jpeg, pcm16

    items = [(k / FPS, 1, jpeg(frame)) for k, frame in enumerate(frames)]
    items += [(i / 16000, 2, pcm16(audio[i:i + 1600])) for i in range(0, audio.size, 1600)]
    return sorted(items, key=lambda item: (item[0], item[1]))


def _send(session, media, speed: float, wall0: float) -> None:
    for t, kind, payload in media:
        delay = t / speed - (time.perf_counter() - wall0)
        if delay > 0:
            time.sleep(delay)
        (session.send_frame if kind == 1 else session.send_audio)(payload, t)


def _client(url: str, tasks: list[str], window_s: float, media, speed: float, out: dict[str, Any]) -> None:
    from emox_edge.client import Client

    latencies: list[float] = []
    with Client(url).stream(tasks, window_s=window_s) as session:
        wall0 = time.perf_counter()

        def read() -> None:
            for result in session.results():
                due = wall0 + result["end"] / speed  # when the clip's last media was sent
                latencies.append(time.perf_counter() - due)
            out["last_result"] = time.perf_counter()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _send(session, media, speed, wall0)
        session.end()
        reader.join(600)
    out.update(latencies=latencies, stats=session.stats, errors=session.errors, start=wall0)


def measure(url: str, clients: int, *, tasks: list[str], window_s: float, media, speed: float) -> dict[str, Any]:
    """Run ``clients`` concurrent streams of ``media`` against the server at ``url``."""
    outs = [dict() for _ in range(clients)]
    threads = [threading.Thread(target=_client, args=(url, tasks, window_s, media, speed, o)) for o in outs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = np.array([x for o in outs for x in o.get("latencies", [])], np.float64)
    elapsed = max(o.get("last_result", o.get("start", 0)) for o in outs) - min(o.get("start", 0) for o in outs)
    seconds = max(t for t, _, _ in media)
    stats = [o.get("stats", {}) for o in outs]
    total = lambda key: sum(s.get(key, 0) for s in stats)  # noqa: E731
    return {
        "clients": clients, "clips": int(latencies.size), "elapsed_s": round(elapsed, 2),
        "clips_per_s": round(latencies.size / elapsed, 3) if elapsed > 0 else None,
        "offered_clips_per_s": round(clients * speed / window_s, 3),
        "media_s_per_client": round(seconds, 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies.size else None,
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies.size else None,
        "clips_dropped": total("clips_dropped"), "frames_dropped": total("frames_dropped"),
        "audio_dropped_s": round(total("audio_dropped_s"), 2), "frames_received": total("frames_received"),
        "errors": [e for o in outs for e in o.get("errors", [])][:5],
    }


def _rounds(url: str) -> dict[str, int]:
    from emox_edge.client import Client

    return Client(url).info()["server"]["batching"]["sizes"]


def _batch_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    sizes = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    rounds = sum(sizes.values())
    clips = sum(int(k) * v for k, v in sizes.items())
    return {"batch_sizes": sizes, "clips_per_round": round(clips / rounds, 2) if rounds else None}


def unit_serve(args: dict[str, Any]) -> dict[str, Any]:
    """Open the bundle, start the server on a free loopback port, measure each client count."""
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions
    from emox_edge.serve import ServeOptions, Server, create_app

    counts = list(args.get("clients", [1, 2, 4]))
    options = AnalyzerOptions(n_threads=args.get("threads"))
    analyzers = [Analyzer.from_bundle(args.get("bundle"), options) for _ in range(int(args.get("workers", 1)))]
    media = make_media(float(args.get("seconds", 20.0)))
    tasks = list(args.get("tasks", ["emotion", "sentiment"]))
    window_s, speed = float(args.get("window_s", 2.0)), float(args.get("speed", 1.0))
    runs = []
    try:
        serve_options = ServeOptions(port=0, max_streams=max(counts), faces_fps=float(args.get("faces_fps", 4.0)),
                                     batch_clips=int(args.get("batch_clips", 8)))
        with Server(create_app(analyzers, serve_options), serve_options) as server:
            measure(server.url, 1, tasks=tasks, window_s=window_s, media=make_media(2.0), speed=4.0)  # warm-up
            for clients in counts:
                logging.getLogger("benchmarks").info("serve: %d client(s)", clients)
                before, load0 = _rounds(server.url), os.getloadavg()[0]
                run = measure(server.url, clients, tasks=tasks, window_s=window_s, media=media, speed=speed)
                run.update(_batch_delta(before, _rounds(server.url)),
                           load_avg=[round(load0, 2), round(os.getloadavg()[0], 2)])
                runs.append(run)
        info = analyzers[0].info()
    finally:
        for analyzer in analyzers:
            analyzer.close()
    base = next((r for r in runs if r["clients"] == 1), None)
    for r in runs:
        if base and base["clips_per_s"] and r["clips_per_s"]:
            r["throughput_x"] = round(r["clips_per_s"] / base["clips_per_s"], 2)
        if base and base["latency_p50_s"] and r["latency_p95_s"] is not None:
            r["p95_over_single_p50"] = round(r["latency_p95_s"] / base["latency_p50_s"], 2)
    return {"bundle": info["name"], "device": info["device"]["name"], "n_threads": info["n_threads"],
            "workers": len(analyzers), "batch_clips": serve_options.batch_clips, "faces_fps": serve_options.faces_fps,
            "tasks": tasks, "window_s": window_s, "speed": speed, "runs": runs}


def run(ctx) -> dict[str, Any]:
    """The ``serve`` section of ``python -m benchmarks`` (on the default lite bundle)."""
    seconds = 20.0 if ctx.mode == "full" else 4.0
    result = ctx.child("serve", {"clients": [1, 2, 4], "seconds": seconds, "window_s": 2.0}, tag="serve")
    metrics = {f"{r['clients']}_clients": {k: r[k] for k in ("clips_per_s", "latency_p50_s", "latency_p95_s")
                                           if isinstance(r.get(k), (int, float))} for r in result["runs"]}
    return {"metrics": metrics, "higher_is_better": [f"{k}.clips_per_s" for k in metrics], "result": result}


def render(section: dict[str, Any]) -> str:
    result = section.get("result", section)
    rows = [[r["clients"], r["clips"], r["clips_per_s"], r["offered_clips_per_s"], r.get("throughput_x"),
             r["latency_p50_s"], r["latency_p95_s"], r.get("p95_over_single_p50"), r["clips_dropped"],
             r["frames_dropped"], r["audio_dropped_s"], r.get("clips_per_round"),
             "-".join(f"{x:g}" for x in r.get("load_avg", ()))] for r in result["runs"]]
    from benchmarks._report import table

    text = table(["clients", "clips", "clips/s", "offered clips/s", "x one client", "p50 latency s", "p95 latency s",
                  "p95 / one-client p50", "clips dropped", "frames dropped", "audio dropped s", "clips per round",
                  "load avg"], rows)
    return text + (f"\n\n{result['bundle']} on {result['device']}, {result['n_threads']} threads, {result['workers']} "
                   f"worker(s), up to {result.get('batch_clips', 1)} clips answered together, faces messages at "
                   f"{result.get('faces_fps', 0):g} per s; tasks {', '.join(result['tasks'])}; {result['window_s']:g} s "
                   f"clips; media sent at {result['speed']:g}x real time. Latency: from the moment a clip's last media "
                   "was sent to its result arriving. Clips per round: clips of all sessions whose tasks the language "
                   "core answered in one batch (a clip whose tasks need no language core is answered alone). Load "
                   "avg: the 1-minute load average before and after the run.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=20.0, help="media per client (default 20)")
    parser.add_argument("--window", type=float, default=2.0, help="clip length in seconds (default 2)")
    parser.add_argument("--speed", type=float, default=1.0, help="media sent at this multiple of real time")
    parser.add_argument("--tasks", default="emotion,sentiment")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--faces-fps", type=float, default=4.0)
    parser.add_argument("--batch-clips", type=int, default=8, help="most clips answered together (1: batching off)")
    parser.add_argument("--json", default=None, help="also write the result here")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = unit_serve({"bundle": ns.bundle, "clients": ns.clients, "seconds": ns.seconds, "window_s": ns.window,
                         "speed": ns.speed, "tasks": ns.tasks.split(","), "workers": ns.workers,
                         "threads": ns.threads, "faces_fps": ns.faces_fps, "batch_clips": ns.batch_clips})
    return print_result(result, render, ns.json)


def print_result(result: dict[str, Any], render_section, json_path: str | None) -> int:
    """Print a standalone run's table with the machine's CPU and SIMD set; write its JSON when asked."""
    from benchmarks._common import machine_info

    machine = machine_info()
    result["machine"] = {k: machine.get(k) for k in ("cpu", "cpu_simd", "physical_cores", "logical_cpus")}
    print(render_section({"result": result}))
    print(f"\nCPU: {machine.get('cpu')}; SIMD: {', '.join(machine.get('cpu_simd') or []) or 'unknown'}")
    if json_path:
        from emox_edge._io import write_json_atomic

        write_json_atomic(json_path, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
