"""Serving: 1, 2 and 4 concurrent WebSocket streams through the real server, sharing one bundle.

Each client is what a camera app would be: it sends 320x240 JPEG frames (10 fps) and 16 kHz PCM16
audio (100 ms chunks) of a generated clip (the astronaut's face, espeak-ng speech), paced in real time
on its own clock (``--speed`` > 1 sends faster, to load the server beyond real time), in fixed
``--window`` clips. Everything else is ``emox-edge serve``: uvicorn + FastAPI in this process, the
bounded per-session queues, the analysis worker(s) (as many, with as many threads, as ``emox-edge serve``
picks for the bundle unless ``--workers`` / ``--threads`` say otherwise).

Phase: independent cameras are not synchronised, so by default (``--phase random``) each client starts
after a random delay within one clip length (seeded, ``--seeds``: the same delays every run, listed in
the result), and its clips close at its own moments; each seed is one draw of the four cameras'
phases, and the latency depends on the draw (clips that close together queue). ``--phase together`` starts all clients at once, so every
client's clip closes at the same instant: the worst case for latency (on 2 cores, four clips arriving
at once for two single-threaded workers cannot all finish within 2x one clip's time), unless the
server spreads the sessions' clip boundaries (``ServeOptions.spread_clips``, on by default; off with
``--no-spread-clips``). The full benchmark measures both phases.

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
STAGES = ("faces", "vad", "asr", "prosody", "perceive", "answer", "total")  # per-clip timings shown


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


def _client(url: str, tasks: list[str], window_s: float, media, speed: float, out: dict[str, Any],
            delay_s: float = 0.0) -> None:
    from emox_edge.client import Client

    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    with Client(url).stream(tasks, window_s=window_s) as session:
        time.sleep(delay_s)  # this camera was switched on a little later than the others
        wall0 = time.perf_counter()

        def read() -> None:
            for result in session.results():
                due = wall0 + result["end"] / speed  # when the clip's last media was sent
                latencies.append(time.perf_counter() - due)
                timings.append(result.get("timings") or {})
            out["last_result"] = time.perf_counter()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _send(session, media, speed, wall0)
        session.end()
        reader.join(600)
    out.update(latencies=latencies, timings=timings, stats=session.stats, errors=session.errors, start=wall0)


def start_delays(clients: int, window_s: float, phase: str, seed: int = 0) -> list[float]:
    """Seconds each client waits before sending: all 0 (``together``), or uniform within one clip
    length of real time (``random``, seeded), the first client at 0 either way."""
    if phase == "together" or clients == 1:
        return [0.0] * clients
    if phase != "random":
        raise ValueError(f"phase must be 'random' or 'together', got {phase!r}")
    rng = np.random.default_rng(seed + clients)
    return [0.0] + [round(float(x), 3) for x in rng.uniform(0.0, window_s, clients - 1)]


def measure(url: str, clients: int, *, tasks: list[str], window_s: float, media, speed: float,
            phase: str = "random", seed: int = 0) -> dict[str, Any]:
    """Run ``clients`` concurrent streams of ``media`` against the server at ``url``."""
    outs = [dict() for _ in range(clients)]
    delays = [d / speed for d in start_delays(clients, window_s, phase, seed)]
    threads = [threading.Thread(target=_client, args=(url, tasks, window_s, media, speed, o, d))
               for o, d in zip(outs, delays)]
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
        "clients": clients, "phase": phase if clients > 1 else "-", "start_delays_s": delays,
        **({"seed": seed} if phase == "random" and clients > 1 else {}),
        "clips": int(latencies.size), "elapsed_s": round(elapsed, 2),
        "clips_per_s": round(latencies.size / elapsed, 3) if elapsed > 0 else None,
        "offered_clips_per_s": round(clients * speed / window_s, 3),
        "media_s_per_client": round(seconds, 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies.size else None,
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies.size else None,
        "clips_dropped": total("clips_dropped"), "frames_dropped": total("frames_dropped"),
        "audio_dropped_s": round(total("audio_dropped_s"), 2), "frames_received": total("frames_received"),
        "errors": [e for o in outs for e in o.get("errors", [])][:5],
        "clip_ms": _mean_timings([t for o in outs for t in o.get("timings", [])]),
    }


def _mean_timings(timings: list[dict[str, float]]) -> dict[str, float]:
    """Mean milliseconds per stage over the clips (the results' ``timings``): where a clip's time goes."""
    keys = sorted({k for t in timings for k, v in t.items() if k.endswith("_ms") and isinstance(v, (int, float))})
    return {k[:-3]: round(float(np.mean([t[k] for t in timings if k in t])), 1) for k in keys}


def _rounds(url: str) -> dict[str, int]:
    from emox_edge.client import Client

    return Client(url).info()["server"]["batching"]["sizes"]


def _batch_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    sizes = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    rounds = sum(sizes.values())
    clips = sum(int(k) * v for k, v in sizes.items())
    return {"batch_sizes": sizes, "clips_per_round": round(clips / rounds, 2) if rounds else None}


def _workers(args: dict[str, Any], kind: str) -> tuple[int, int | None]:
    """``(workers, threads)``: as given, else what ``emox-edge serve`` picks for a bundle of ``kind``."""
    threads = args.get("threads")
    if args.get("workers") is not None:
        return int(args["workers"]), threads
    from emox_edge.serve.options import auto_workers

    return auto_workers(kind, threads)


def unit_serve(args: dict[str, Any]) -> dict[str, Any]:
    """Open the bundle, start the server on a free loopback port, measure each client count and phase
    (one client once: its phase does not matter)."""
    from emox_edge.analyzer import Analyzer
    from emox_edge.bundle import Bundle
    from emox_edge.default_bundle import default_bundle_path
    from emox_edge.options import AnalyzerOptions
    from emox_edge.serve import ServeOptions, Server, create_app

    counts = list(args.get("clients", [1, 2, 4]))
    phases = list(args.get("phases", ["random"]))
    seeds = [int(x) for x in args.get("seeds", [0])]
    bundle = Bundle.open(args.get("bundle") or default_bundle_path())  # opened once, as emox-edge serve does
    workers, threads = _workers(args, bundle.kind)
    options = AnalyzerOptions(n_threads=threads)
    analyzers = [Analyzer.from_bundle(bundle, options) for _ in range(workers)]
    media = make_media(float(args.get("seconds", 20.0)))
    tasks = list(args.get("tasks", ["emotion", "sentiment"]))
    window_s, speed = float(args.get("window_s", 2.0)), float(args.get("speed", 1.0))
    runs = []
    try:
        serve_options = ServeOptions(port=0, max_streams=max(counts), faces_fps=float(args.get("faces_fps", 4.0)),
                                     batch_clips=int(args.get("batch_clips", 8)),
                                     spread_clips=bool(args.get("spread_clips", True)))
        with Server(create_app(analyzers, serve_options), serve_options) as server:
            measure(server.url, 1, tasks=tasks, window_s=window_s, media=make_media(2.0), speed=4.0)  # warm-up
            plan = [(c, p, seed) for i, p in enumerate(phases) for seed in (seeds if p == "random" else [0])
                    for c in counts if c > 1 or (i == 0 and seed == seeds[0])]
            for clients, phase, seed in plan:
                logging.getLogger("benchmarks").info("serve: %d client(s), phase %s", clients, phase)
                before, load0 = _rounds(server.url), os.getloadavg()[0]
                run = measure(server.url, clients, tasks=tasks, window_s=window_s, media=media, speed=speed,
                              phase=phase, seed=seed)
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
            "spread_clips": serve_options.spread_clips,
            "tasks": tasks, "window_s": window_s, "speed": speed, "phases": phases, "seeds": seeds, "runs": runs}


def section_metrics(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per client count and phase: the run's figures; over several random draws, their medians."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(f"{r['clients']}_clients" + ("_together" if r.get("phase") == "together" else ""), []).append(r)
    keys = ("clips_per_s", "latency_p50_s", "latency_p95_s", "throughput_x", "p95_over_single_p50")
    return {name: {k: round(float(np.median([r[k] for r in group])), 3) for k in keys
                   if all(isinstance(r.get(k), (int, float)) for r in group)} for name, group in groups.items()}


def run(ctx) -> dict[str, Any]:
    """The ``serve`` section of ``python -m benchmarks`` (on the default lite bundle, ``emox-edge serve``'s
    workers): clients with independent phases (three draws), then all starting together (the worst case)."""
    seconds = 20.0 if ctx.mode == "full" else 4.0
    # threads None: the workers and threads emox-edge serve picks, not the run's --threads
    result = ctx.child("serve", {"clients": [1, 2, 4], "seconds": seconds, "window_s": 2.0, "threads": None,
                                 "phases": ["random", "together"], "seeds": [0, 1, 2] if ctx.mode == "full" else [0]},
                       tag="serve")
    metrics = section_metrics(result["runs"])
    higher = [f"{k}.{m}" for k in metrics for m in ("clips_per_s", "throughput_x")]
    return {"metrics": metrics, "higher_is_better": higher, "result": result}


def _phase(run: dict[str, Any]) -> str:
    return run.get("phase", "-") + (f" (seed {run['seed']})" if "seed" in run else "")


def render(section: dict[str, Any]) -> str:
    result = section.get("result", section)
    rows = [[r["clients"], _phase(r), "/".join(f"{d:g}" for d in r.get("start_delays_s", [])), r["clips"], r["clips_per_s"], r["offered_clips_per_s"], r.get("throughput_x"),
             r["latency_p50_s"], r["latency_p95_s"], r.get("p95_over_single_p50"), r["clips_dropped"],
             r["frames_dropped"], r["audio_dropped_s"], r.get("clips_per_round"),
             "-".join(f"{x:g}" for x in r.get("load_avg", ()))] for r in result["runs"]]
    from benchmarks._report import table

    text = table(["clients", "phase", "start delays s", "clips", "clips/s", "offered clips/s", "x one client", "p50 latency s", "p95 latency s",
                  "p95 / one-client p50", "clips dropped", "frames dropped", "audio dropped s", "clips per round",
                  "load avg"], rows)
    stages = [k for k in STAGES if any(k in r.get("clip_ms", {}) for r in result["runs"])]
    if stages:
        text += "\n\nWhere a clip's time goes (mean ms over the run's clips, the results' timings):\n\n" + table(
            ["clients", "phase", *stages], [[r["clients"], _phase(r), *(r.get("clip_ms", {}).get(k) for k in stages)]
                                            for r in result["runs"]])
    return text + (f"\n\n{result['bundle']} on {result['device']}, {result['n_threads']} threads, {result['workers']} "
                   f"worker(s), up to {result.get('batch_clips', 1)} clips answered together, faces messages at "
                   f"{result.get('faces_fps', 0):g} per s, sessions' first clips {'spread' if result.get('spread_clips') else 'not spread'}; tasks {', '.join(result['tasks'])}; {result['window_s']:g} s "
                   f"clips; media sent at {result['speed']:g}x real time. Latency: from the moment a clip's last media "
                   "was sent to its result arriving. Phase: random, each client starts after a random delay within one "
                   "clip (independent cameras); together, all at once (their clips close at the same instant). "
                   "Clips per round: clips of all sessions whose tasks the language "
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
    parser.add_argument("--phase", nargs="+", choices=("random", "together"), default=["random", "together"],
                        help="client start: random delays within one clip (independent cameras) and/or together")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="random phase: one run per seed (one draw of the clients' start delays each)")
    parser.add_argument("--workers", type=int, default=None, help="analyzers (default: as emox-edge serve picks)")
    parser.add_argument("--threads", type=int, default=None, help="threads per analyzer (default: as emox-edge serve picks)")
    parser.add_argument("--faces-fps", type=float, default=4.0)
    parser.add_argument("--batch-clips", type=int, default=8, help="most clips answered together (1: batching off)")
    parser.add_argument("--no-spread-clips", dest="spread_clips", action="store_false",
                        help="the server does not spread the first clips of sessions that start together")
    parser.add_argument("--json", default=None, help="also write the result here")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = unit_serve({"bundle": ns.bundle, "clients": ns.clients, "seconds": ns.seconds, "window_s": ns.window,
                         "speed": ns.speed, "tasks": ns.tasks.split(","), "workers": ns.workers, "phases": ns.phase, "seeds": ns.seeds, "spread_clips": ns.spread_clips,
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
