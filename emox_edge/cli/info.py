"""``emox-edge info DIR``: what a bundle holds, readably (or the raw manifest with ``--json``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

_KNOWN = ("format", "format_version", "kind", "name", "created", "producer", "files", "language_core", "graphs",
          "encoders", "preprocess", "prompt", "tasks", "generation")


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show what a bundle holds (files, graphs, prompts, label sets)")
    parser.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory (holding bundle.json)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument("--verify", choices=("none", "size", "sha256"), default="size",
                        help="how to check the listed files (default: size; sha256 reads every byte)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emox_edge.bundle.manifest import Bundle

    bundle = Bundle.open(args.bundle, verify=args.verify)
    if args.json:
        print(json.dumps(bundle.manifest, indent=2, ensure_ascii=False))
    else:
        print(describe(bundle.manifest, root=bundle.root, verified=args.verify))
    return 0


def describe(m: Mapping[str, Any], *, root: Path, verified: str = "size") -> str:
    """The readable summary printed by ``emox-edge info``."""
    files = m.get("files", {})
    total = sum(int(f["size"]) for f in files.values())
    lines = [
        f"{m.get('kind')} bundle {m.get('name', '')!r} at {root}",
        f"  format {m.get('format')} v{m.get('format_version')}, created {m.get('created', '?')} by {m.get('producer', '?')}",
        f"  {len(files)} files, {_mb(total)} (checked: {verified})",
    ]
    core = m.get("language_core")
    if isinstance(core, Mapping):
        lines.append("language core:")
        for qtype, rel in core.get("gguf", {}).items():
            mark = " (default)" if qtype == core.get("default") else ""
            lines.append(f"  {qtype:<8} {rel}  {_mb(files.get(rel, {}).get('size', 0))}{mark}")
        extras = {k: v for k, v in core.items() if k not in ("gguf", "default")}
        if extras:
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in extras.items()))
    graphs = m.get("graphs")
    if isinstance(graphs, Mapping):
        lines.append("graphs:")
        for name, g in graphs.items():
            ins = ", ".join(f"{io['name']} {_shape(io)}" for io in g.get("inputs", []))
            outs = ", ".join(f"{io['name']} {_shape(io)}" for io in g.get("outputs", []))
            variants = ", ".join(f"{p} {_mb(files.get(g[p], {}).get('size', 0))}" for p in ("fp32", "int8") if p in g)
            parity = ", ".join(f"{p} cos {v['min_cosine']:.5f}" for p, v in g.get("parity", {}).items())
            lines.append(f"  {name}: {ins} -> {outs}")
            lines.append(f"    files: {variants or g.get('file')}" + (f"; parity {parity}" if parity else ""))
    enc = m.get("encoders")
    if isinstance(enc, Mapping) and "slots" in enc:
        lines.append(f"embeddings: width {enc.get('embedding_width')}, slots "
                     + ", ".join(f"{k} {v}" for k, v in enc["slots"].items()))
    pre = m.get("preprocess")
    if isinstance(pre, Mapping) and "frames" in pre:
        fr, au = pre["frames"], pre.get("audio", {})
        lines.append(f"preprocess: {fr.get('count')} frames {fr.get('width')}x{fr.get('height')} RGB; audio "
                     f"{au.get('sample_rate')} Hz, {au.get('windows')} x {au.get('window_seconds')} s windows, "
                     f"normalisation {au.get('normalize', {}).get('mode')}")
    prompt = m.get("prompt")
    if isinstance(prompt, Mapping) and "placeholders" in prompt:
        lines.append("prompt slots: " + ", ".join(f"{p['token']} x{p['slots']}" for p in prompt["placeholders"]))
    tasks = m.get("tasks")
    if isinstance(tasks, Mapping):
        lines.append("tasks:")
        for name, task in tasks.items():
            lines.append(f"  {name}: {_task_summary(task)}")
    gen = m.get("generation")
    if isinstance(gen, Mapping):
        keys = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")
        lines.append("generation: " + ", ".join(f"{k} {gen[k]}" for k in keys if k in gen)
                     + (f"; stop {gen['stop_strings']}" if "stop_strings" in gen else ""))
    others = [k for k in m if k not in _KNOWN]
    if others:
        lines.append("other sections: " + ", ".join(others))
    return "\n".join(lines)


def _task_summary(task: Any) -> str:
    if not isinstance(task, Mapping):
        return str(task)
    parts = []
    sets = task.get("label_sets")
    if isinstance(sets, Mapping):
        sizes = {k: len(v.get("labels", ()) if isinstance(v, Mapping) else v) for k, v in sets.items()}
        parts.append("label sets " + ", ".join(f"{k} ({n})" for k, n in sizes.items()))
    elif "labels" in task:
        parts.append(f"labels {', '.join(task['labels'])}")
    prompts = task.get("prompts")
    if isinstance(prompts, (list, Mapping)):
        parts.append(f"{len(prompts)} prompts")
    elif "prompt" in task:
        parts.append("1 prompt")
    return "; ".join(parts) or ", ".join(task)


def _shape(io: Mapping[str, Any]) -> str:
    return "[" + ",".join(str(d) for d in io.get("shape", [])) + "]"


def _mb(size: int) -> str:
    return f"{int(size) / 2**20:.1f} MB"
