"""The language core alone: prefill, first token and decode speed per quantization, against
transformers float32, plain llama-cpp-python and the memory-bandwidth ceiling.

Prompt: the Nano-EmoX prompt of the open-vocabulary task with a one-sentence subtitle (about 200
positions, 69 of them injected rows of the language model's token-embedding RMS), built by the
runtime's ``TaskBook``. Each repeat starts from an empty KV cache (``reset()``), as transformers does;
``warm`` then asks another task about the same clip (what the pipeline reuses between a clip's tasks). Decode: 64 greedy tokens, end-of-generation banned.

Overhead of ``LanguageCore`` vs plain llama-cpp-python on the same GGUF comes from
``benchmarks/bench_llm.py`` (the language-core helper's benchmark), called as is.
Ceiling: decode reads every weight once per token, so tokens/s <= bandwidth / bytes of weights read
per token (all tensors but the token-embedding table, of which one row is read; the table counts
fully when it doubles as the output matrix). Bandwidth is a numpy copy on this machine.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _report

TITLE = "Language core: prefill, first token, decode vs transformers, plain llama.cpp and the bandwidth ceiling"
QUANTS = ("q4_k_m", "q8_0", "f16")
MAX_NEW = 64
SUBTITLE = "I can't believe you did this to me again, I am so angry right now."


def prompt_segments(book, width: int, rms: float, seed: int, *, task: str = "open_vocab_emotion") -> list:
    """The Nano-EmoX prompt of ``task`` with random injected rows (``rms`` like the model's embeddings)."""
    from emox_edge.tasks import TaskRequest

    rng = np.random.default_rng(seed)
    embeds = {name: (rng.standard_normal((slots, width)) * rms).astype(np.float32)
              for _, slots, name in book.placeholders}
    question = book.question(TaskRequest.parse(task), subtitle=SUBTITLE)
    return book.segments(question, subtitle=SUBTITLE, history=(), embeddings=embeds)


def weight_bytes_per_token(gguf_path: str | Path) -> dict[str, float]:
    """Bytes of weights one decode step reads, from the GGUF's tensor table."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    embd = sizes.get("token_embd.weight", 0)
    total = sum(sizes.values())
    per_token = total - embd if "output.weight" in sizes else total
    return {"file_tensor_bytes": float(total), "bytes_per_token": float(per_token)}


def _book(art):
    import json

    from emox_edge.tasks import TaskBook

    manifest = json.loads((art.bundle / "bundle.json").read_text(encoding="utf-8"))
    return TaskBook.from_manifest(manifest), manifest


def unit_core(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._common import rss_mib
    from emox_edge.llm import LanguageCore

    art = artifacts(args["mode"], args["root"])
    book, _ = _book(art)
    path = art.gguf(args["quant"])
    t0 = time.perf_counter()
    core = LanguageCore.from_file(path, n_ctx=2048, n_threads=args["threads"])
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    rms = float(args.get("rms", 0.02))
    ban = {int(t): float("-inf") for t in core.eog_token_ids}
    samples: dict[str, list[float]] = {}
    for rep in range(args["repeats"] + 1):
        segments = prompt_segments(book, core.embedding_width, rms, seed=100 + rep)
        core.reset()  # cold: nothing reused from the previous repeat (transformers has no cache either)
        cold = core.generate(segments, max_new_tokens=MAX_NEW, temperature=0.0, logit_bias=ban, stop=())
        warm_segments = prompt_segments(book, core.embedding_width, rms, seed=100 + rep, task="reason")
        warm = core.generate(warm_segments, max_new_tokens=1, temperature=0.0)
        if rep == 0:
            continue
        for key, value in (("prefill_ms", cold.prefill_ms), ("first_token_ms", cold.first_token_ms),
                           ("decode_tok_s", cold.decode_tokens_per_s), ("n_prompt", cold.n_prompt),
                           ("n_generated", cold.n_generated), ("n_reused_cold", cold.n_reused),
                           ("warm_prefill_ms", warm.prefill_ms), ("warm_n_reused", warm.n_reused),
                           ("warm_n_prompt", warm.n_prompt)):
            samples.setdefault(key, []).append(float(value))
    core.close()
    out = {k: statistics.median(v) for k, v in samples.items()}
    return {"load_ms": load_ms, "rss_after_load_mib": loaded, **out, **weight_bytes_per_token(path),
            "gguf": str(path), "gguf_bytes": path.stat().st_size}


def unit_transformers(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._artifacts import artifacts
    from benchmarks._common import rss_mib
    from benchmarks._reference import TorchLanguageCore, torch

    torch.set_num_threads(args["threads"])
    art = artifacts(args["mode"], args["root"])
    book, manifest = _book(art)
    t0 = time.perf_counter()
    core = TorchLanguageCore(art.qwen_hf, generation=manifest.get("generation"), dtype=args.get("dtype", "float32"))
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mib()
    width = core.embed.embedding_dim
    rms = float(args.get("rms", 0.02))
    samples: dict[str, list[float]] = {}
    for rep in range(args["repeats"] + 1):
        gen = core.generate(prompt_segments(book, width, rms, seed=100 + rep), max_new_tokens=MAX_NEW, ban_eog=True)
        if rep == 0:
            continue
        for key, value in (("prefill_ms", gen.prefill_ms), ("first_token_ms", gen.first_token_ms),
                           ("decode_tok_s", gen.decode_tokens_per_s), ("n_prompt", gen.n_prompt),
                           ("n_generated", gen.n_generated)):
            samples.setdefault(key, []).append(float(value))
    return {"load_ms": load_ms, "rss_after_load_mib": loaded, **{k: statistics.median(v) for k, v in samples.items()}}


def unit_bandwidth(args: dict[str, Any]) -> dict[str, Any]:
    """Memory bandwidth (numpy copy) in its own process, so the 1 GiB of buffers inflates no other figure."""
    from benchmarks._common import memory_bandwidth_gbs

    return {"gbs": memory_bandwidth_gbs(size_mib=256 if args["mode"] == "quick" else 512)}


def unit_overhead(args: dict[str, Any]) -> dict[str, Any]:
    """LanguageCore vs plain llama-cpp-python, through the language-core helper's bench_llm."""
    from benchmarks import bench_llm
    from benchmarks._artifacts import artifacts

    art = artifacts(args["mode"], args["root"])
    result = bench_llm.measure(art.gguf(args["quant"]), threads=args["threads"], repeats=args["repeats"])
    return {k: v for k, v in result.items() if k != "samples"}


def run(ctx) -> dict[str, Any]:
    stamp_rms = _injected_rms(ctx.art)
    results: dict[str, Any] = {}
    problems: list[str] = []
    for quant in QUANTS:
        try:
            results[quant] = ctx.child("llm_core", {"quant": quant, "rms": stamp_rms}, tag=f"llm-{quant}")
        except RuntimeError as exc:
            problems.append(f"{quant}: {exc}")
    try:
        results["transformers"] = ctx.child("llm_transformers", {"rms": stamp_rms}, tag="llm-transformers-fp32")
    except RuntimeError as exc:
        problems.append(f"transformers fp32: {exc}")
    overhead: dict[str, Any] = {}
    for quant in ("q4_k_m",):
        try:
            overhead[quant] = ctx.child("llm_overhead", {"quant": quant}, tag=f"llm-overhead-{quant}")
        except RuntimeError as exc:
            problems.append(f"LanguageCore vs plain llama-cpp-python ({quant}): {exc}")
    try:
        bandwidth = ctx.child("llm_bandwidth", {}, tag="llm-bandwidth")["gbs"]
    except RuntimeError as exc:
        problems.append(f"memory bandwidth: {exc}")
        bandwidth = float("nan")
    if not results:
        return {"status": "failed", "reason": "; ".join(problems)}
    metrics: dict[str, Any] = {"bandwidth_gbs": bandwidth}
    higher = ["bandwidth_gbs"]
    for key, res in results.items():
        entry = {k: res.get(k) for k in ("prefill_ms", "first_token_ms", "decode_tok_s", "load_ms")}
        entry["peak_rss_mib"] = res["child"]["peak_rss_mib"]
        if res.get("bytes_per_token") and bandwidth == bandwidth:
            entry["ceiling_tok_s"] = bandwidth * 1e9 / res["bytes_per_token"]
            entry["fraction_of_ceiling"] = res["decode_tok_s"] / entry["ceiling_tok_s"]
            higher.append(f"{key}.fraction_of_ceiling")
        if res.get("warm_prefill_ms") is not None:
            entry["warm_prefill_ms"] = res["warm_prefill_ms"]
        higher.append(f"{key}.decode_tok_s")
        metrics[key] = {k: v for k, v in entry.items() if v is not None}
    for quant, res in overhead.items():
        ratios = {k: v for k, v in res.items() if isinstance(v, (int, float)) and ("ratio" in k or "overhead" in k)}
        metrics[f"overhead_{quant}"] = ratios
    section = {"metrics": metrics, "higher_is_better": higher, "rows": results, "overhead": overhead,
               "extra_commands": ["python benchmarks/bench_llm.py --gguf FILE"]}
    if problems:
        section.update(status="partial", partial=True, reason="; ".join(problems))
    return section


def _injected_rms(art) -> float:
    try:
        from benchmarks._reference import torch

        ckpt = torch.load(art.checkpoint, weights_only=True)
        return float(ckpt.get("config", {}).get("injected_rms", 0.02))
    except Exception:  # noqa: BLE001 - a default RMS is fine for timing
        return 0.02


def render(section: dict[str, Any]) -> str:
    rows = section.get("rows", {})
    m = section.get("metrics", {})
    lines = []
    ref = rows.get("transformers")
    for key in (*QUANTS, "transformers"):
        if key not in rows:
            continue
        res, met = rows[key], m.get(key, {})
        name = "transformers fp32 (reference)" if key == "transformers" else f"LanguageCore {key.upper()}"
        speed = (res["decode_tok_s"] / ref["decode_tok_s"]) if ref and key != "transformers" and ref.get("decode_tok_s") else None
        lines.append([name, int(res.get("n_prompt", 0)), _report.ms(res.get("prefill_ms")),
                      _report.ms(res.get("first_token_ms")), f"{res.get('decode_tok_s', 0):.1f}", _report.ratio(speed),
                      f"{met['ceiling_tok_s']:.1f}" if "ceiling_tok_s" in met else None,
                      _report.pct(met.get("fraction_of_ceiling")),
                      _report.ms(res.get("warm_prefill_ms")), _report.mib(res["child"]["peak_rss_mib"])])
    text = _report.table(["language core", "prompt positions", "prefill", "first token", "decode tok/s",
                          "decode vs transformers", "ceiling tok/s", "of ceiling", "prefill, same clip 2nd task",
                          "peak RSS"], lines)
    text += (f"\n\nMemory bandwidth (numpy copy, read + write): {m.get('bandwidth_gbs', 0):.1f} GB/s. Ceiling = "
             "bandwidth / bytes of weights read per decoded token (it understates pure-read bandwidth by ~15 %, "
             "so a result slightly above 100 % is possible).")
    for quant, res in (section.get("overhead") or {}).items():
        text += "\n\n" + overhead_table(quant, res)
    return text


OVERHEAD_ROWS = (
    ("prefill_ratio_core_tok_vs_plain", "prefill, same token prompt: LanguageCore / plain"),
    ("prefill_ratio_core_emb_vs_plain", "prefill with 69 injected rows: LanguageCore / plain (tokens)"),
    ("first_token_ratio_core_vs_plain", "first token: LanguageCore / plain"),
    ("decode_ratio_core_vs_plain", "decode tok/s: LanguageCore / plain"),
    ("decode_ratio_core_vs_native_loop", "decode tok/s: LanguageCore / bare native loop"),
    ("python_overhead_fraction", "Python share of generate() time (outside llama.cpp calls)"),
    ("warm_prefill_ratio", "prefill, same clip 2nd task / cold prefill"),
    ("grammar_cost_ratio", "decode ms per token with the 6-label grammar / without"),
)


def overhead_table(quant: str, res: dict[str, Any]) -> str:
    """The language-core helper's bench_llm result as a table (target: overhead <= 5 %)."""
    rows = [[label, f"{res[key]:.3f}"] for key, label in OVERHEAD_ROWS if isinstance(res.get(key), (int, float))]
    med = res.get("medians", {})
    plain, core = med.get("plain", {}), med.get("core-emb", {})
    head = (f"LanguageCore vs plain llama-cpp-python on the same {quant.upper()} GGUF (`benchmarks/bench_llm.py`, "
            f"{res.get('n_prompt', 0):.0f} positions, {res.get('max_new')} tokens, same threads / n_batch / n_ctx): "
            f"plain decodes {plain.get('decode_tok_s', 0):.1f} tok/s, LanguageCore {core.get('decode_tok_s', 0):.1f} tok/s.")
    return head + "\n\n" + _report.table(["ratio", "value"], rows)
