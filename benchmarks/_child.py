"""Run one measurement unit in this (fresh) process and write its JSON result.

    python -m benchmarks._child UNIT --args '{"...": ...}' --out result.json

Units are functions ``unit(args: dict) -> dict`` named in ``UNITS`` (``module:function``). Each runs in
its own process so that its peak RSS belongs to it alone.
The result records this process's own peak (``VmHWM``, which unlike ``ru_maxrss`` does not start at
the parent's size) as ``unit_peak_rss_mib``, and the RSS after loading when the unit reports it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time

UNITS = {
    "stages_torch": "benchmarks.bench_stages:unit_torch",
    "stages_onnx": "benchmarks.bench_stages:unit_onnx",
    "stages_levers_build": "benchmarks.bench_int8_levers:unit_build",
    "stages_levers_time": "benchmarks.bench_int8_levers:unit_time",
    "llm_core": "benchmarks.bench_core:unit_core",
    "llm_transformers": "benchmarks.bench_core:unit_transformers",
    "llm_overhead": "benchmarks.bench_core:unit_overhead",
    "llm_bandwidth": "benchmarks.bench_core:unit_bandwidth",
    "edge_clip": "benchmarks.bench_e2e:unit_edge",
    "reference_clip": "benchmarks.bench_e2e:unit_reference",
    "fidelity_reference": "benchmarks.bench_fidelity:unit_reference",
    "fidelity_edge": "benchmarks.bench_fidelity:unit_edge",
    "live": "benchmarks.bench_live:unit_live",
    "overlap": "benchmarks.bench_overlap:unit_overlap",
    "serve": "benchmarks.bench_serve:unit_serve",
    "memory_analyze": "benchmarks.bench_memory:unit_analyze",
    "memory_live": "benchmarks.bench_memory:unit_live",
}


def resolve(name: str):
    if name not in UNITS:
        raise ValueError(f"unknown unit {name!r}; units: {', '.join(sorted(UNITS))}")
    module, func = UNITS[name].split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import hwm_mib, peak_rss_mib
    from emox_edge._io import write_json_atomic

    parser = argparse.ArgumentParser(prog="python -m benchmarks._child")
    parser.add_argument("unit", choices=sorted(UNITS))
    parser.add_argument("--args", default="{}", help="JSON object of unit arguments")
    parser.add_argument("--out", required=True)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    start = time.perf_counter()
    result = resolve(ns.unit)(json.loads(ns.args))
    own_peak = hwm_mib()
    result = {**result, "unit": ns.unit, "unit_wall_s": round(time.perf_counter() - start, 2),
              "unit_peak_rss_mib": round(own_peak if own_peak is not None else peak_rss_mib(), 1)}
    write_json_atomic(ns.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
