"""Scale-out: the same 4-stream load on the single-process server and on Ray Serve replicas.

Every configuration gets the same load as ``benchmarks/bench_serve.py`` (its ``measure`` and
``make_media``): 4 concurrent WebSocket clients, each sending a generated face video (320x240 JPEG,
10 fps) with speech, paced in real time, in 2 s clips. Measured per configuration: clips analysed per
second (all clients), p50/p95 latency from a clip's end to its result, and clips dropped because
analysis could not keep up.

Configurations: ``emox-edge serve`` with 1 (and 2) local workers; ``emox-edge serve --ray`` on a
local Ray instance with perception and language replicas (``--replicas`` specs; each replica 1 CPU
and 1 thread unless ``--cpus-per-replica`` says otherwise, as the local workers). The language
replicas answer the clips of all streams in batches (``--batch-size``); the mean batch size of the
run is reported. On one machine Ray adds its own processes and a copy of each clip per request; the
point of Ray is adding machines, and the per-replica gain measured here is what each added replica
brings while there are free cores for it.

    python -m benchmarks.bench_scaleout                                # the default lite bundle
    python -m benchmarks.bench_scaleout --bundle DIR --workers 1 2 --json out.json \
        --replicas perception=1,language=1 perception=2,language=1
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Any, Sequence

from benchmarks.bench_serve import make_media, measure, print_result

TITLE = "Scale-out: 4 streams on the single-process server vs Ray Serve perception and language replicas"
DEFAULT_REPLICAS = ["perception=1,language=1", "perception=2,language=1"]
log = logging.getLogger("benchmarks.scaleout")


def _load(url: str, args: dict[str, Any], media) -> dict[str, Any]:
    tasks = list(args.get("tasks", ["emotion", "sentiment"]))
    window_s, speed = float(args.get("window_s", 2.0)), float(args.get("speed", 1.0))
    measure(url, 1, tasks=tasks, window_s=window_s, media=make_media(2.0), speed=4.0)  # warm-up
    return measure(url, int(args.get("clients", 4)), tasks=tasks, window_s=window_s, media=media, speed=speed)


def _serve_options(args: dict[str, Any]):
    from emox_edge.serve import ServeOptions

    return ServeOptions(port=0, max_streams=int(args.get("clients", 4)), faces_fps=float(args.get("faces_fps", 4.0)))


def _local(args: dict[str, Any], workers: int, media) -> dict[str, Any]:
    from emox_edge.analyzer import Analyzer
    from emox_edge.options import AnalyzerOptions
    from emox_edge.serve import Server, create_app

    options = AnalyzerOptions(n_threads=int(args.get("threads", 1)))
    analyzers = [Analyzer.from_bundle(args.get("bundle"), options) for _ in range(workers)]
    try:
        serve_options = _serve_options(args)
        with Server(create_app(analyzers, serve_options), serve_options) as server:
            run = _load(server.url, args, media)
        name = analyzers[0].name
    finally:
        for analyzer in analyzers:
            analyzer.close()
    return {"backend": "single process", "analyzers": workers, "bundle": name, **run}


def _ray(args: dict[str, Any], n: int, replicas: str, media) -> dict[str, Any]:
    from emox_edge.options import AnalyzerOptions
    from emox_edge.scaleout import RayAnalysis, ScaleoutOptions
    from emox_edge.serve import Server, create_app

    options = AnalyzerOptions(n_threads=int(args.get("threads", 1)))
    scaleout = ScaleoutOptions(replicas=replicas, cpus_per_replica=str(args.get("cpus_per_replica", "1")),
                               batch_size=int(args.get("batch_size", 8)), app_name=f"bench-{n}")
    with RayAnalysis.start(args.get("bundle"), options, scaleout) as analysis:
        serve_options = _serve_options(args)
        with Server(create_app(analysis.analyzers(), serve_options), serve_options) as server:
            run = _load(server.url, args, media)
        name = analysis.info()["name"]
        batches = analysis.batch_sizes()  # of one language replica (the one asked)
    counts = scaleout.replica_counts
    return {"backend": "Ray Serve", "analyzers": replicas, "replicas": sum(counts.values()), "bundle": name,
            "mean_batch": round(sum(batches) / len(batches), 2) if batches else None, **run}


def unit_scaleout(args: dict[str, Any]) -> dict[str, Any]:
    """Measure each configuration in turn (one at a time, so they never share the cores)."""
    from emox_edge.scaleout.cluster import start_ray
    from emox_edge.scaleout.options import ScaleoutOptions, parse_replicas

    media = make_media(float(args.get("seconds", 20.0)))
    runs = []
    for workers in args.get("workers", [1]):
        log.info("single-process server, %d worker(s)", workers)
        runs.append(_local(args, int(workers), media))
    specs = list(args.get("replicas", DEFAULT_REPLICAS))
    if specs:
        import ray

        cpus = int(args.get("ray_cpus") or os.cpu_count() or 2)
        need = max(sum(ScaleoutOptions(replicas=spec, cpus_per_replica=str(args.get("cpus_per_replica", "1")))
                       .cpus[role] * n for role, n in parse_replicas(spec).items()) for spec in specs)
        started = start_ray(ScaleoutOptions(num_cpus=max(cpus, math.ceil(need)), object_store_mb=200))
        try:
            for n, replicas in enumerate(specs):
                log.info("Ray Serve, %s", replicas)
                runs.append(_ray(args, n, replicas, media))
        finally:
            if started:
                from ray import serve

                serve.shutdown()
                ray.shutdown()
    base = runs[0]
    for run in runs:
        if base["clips_per_s"] and run["clips_per_s"]:
            run["x_single_1"] = round(run["clips_per_s"] / base["clips_per_s"], 2)
    ray_runs = sorted((r for r in runs if r["backend"] == "Ray Serve"), key=lambda r: r["replicas"])
    gain = None
    if len(ray_runs) > 1 and ray_runs[0]["clips_per_s"] and ray_runs[-1]["replicas"] > ray_runs[0]["replicas"]:
        first, top = ray_runs[0], ray_runs[-1]
        gain = round((top["clips_per_s"] / first["clips_per_s"] - 1) / (top["replicas"] - first["replicas"]), 2)
    return {"bundle": base["bundle"], "clients": int(args.get("clients", 4)), "threads": int(args.get("threads", 1)),
            "window_s": float(args.get("window_s", 2.0)), "faces_fps": float(args.get("faces_fps", 4.0)),
            "tasks": list(args.get("tasks", ["emotion", "sentiment"])), "runs": runs, "gain_per_added_replica": gain}


def render(section: dict[str, Any]) -> str:
    result = section.get("result", section)
    rows = [[r["backend"], r["analyzers"], r["clips"], r["clips_per_s"], r["offered_clips_per_s"], r.get("x_single_1"),
             r["latency_p50_s"], r["latency_p95_s"], r["clips_dropped"], r.get("mean_batch")] for r in result["runs"]]
    from benchmarks._report import table

    text = table(["backend", "workers / replicas", "clips", "clips/s", "offered clips/s", "x single, 1 worker",
                  "p50 latency s", "p95 latency s", "clips dropped", "mean language batch"], rows)
    gain = result.get("gain_per_added_replica")
    return text + (f"\n\n{result['bundle']}; {result['clients']} clients in real time, {result['window_s']:g} s clips, "
                   f"tasks {', '.join(result['tasks'])}, faces messages at {result['faces_fps']:g} per s; each worker "
                   f"or replica {result['threads']} thread(s); mean language batch: clips per batched "
                   "language-core call."
                   + ("" if gain is None else f" Throughput change per added Ray replica: {gain:+.0%}."))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaleout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="media per client (default 20)")
    parser.add_argument("--window", type=float, default=2.0, help="clip length in seconds (default 2)")
    parser.add_argument("--tasks", default="emotion,sentiment")
    parser.add_argument("--workers", type=int, nargs="*", default=[1], help="local worker counts (default 1)")
    parser.add_argument("--replicas", nargs="*", default=DEFAULT_REPLICAS,
                        help=f"Ray replicas, perception=N,language=M each (default {' '.join(DEFAULT_REPLICAS)})")
    parser.add_argument("--cpus-per-replica", default="1", help="CPUs Ray reserves per replica (default 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="most clips per language batch (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker or replica (default 1)")
    parser.add_argument("--faces-fps", type=float, default=4.0)
    parser.add_argument("--json", default=None, help="also write the result here")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if ns.bundle is None:
        from emox_edge.default_bundle import default_bundle_path

        ns.bundle = str(default_bundle_path())
    result = unit_scaleout({"bundle": ns.bundle, "clients": ns.clients, "seconds": ns.seconds, "window_s": ns.window,
                            "tasks": ns.tasks.split(","), "workers": ns.workers, "replicas": ns.replicas,
                            "cpus_per_replica": ns.cpus_per_replica, "batch_size": ns.batch_size,
                            "threads": ns.threads, "faces_fps": ns.faces_fps})
    return print_result(result, render, ns.json)


if __name__ == "__main__":
    raise SystemExit(main())
