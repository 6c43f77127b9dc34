"""LanguageCore vs plain llama-cpp-python on the same GGUF: prefill, first token, decode, cache reuse.

    python benchmarks/bench_llm.py                      # the tiny random Qwen2 (built in seconds)
    python benchmarks/bench_llm.py --gguf model.gguf    # e.g. Qwen2.5-1.5B Q4_K_M
    python benchmarks/bench_llm.py --real-qwen          # the Qwen2.5-Coder-1.5B Q4_K_M from converters.lite.sources

Prompt: the Nano-EmoX shape (spec §7.5): five text spans around 1 + 32 + 4 + 32 = 69 injected rows
(random rows scaled to the RMS of the model's own token embeddings), about 185 positions with the
real tokenizer. Plain llama-cpp-python cannot take embedding rows, so it gets a token prompt of the
same length (the text tokens, with token 0 where the rows go, as Nano-EmoX does before it splices).

Rows (medians of ``--repeats``; every repeat starts from an empty KV cache unless marked warm):
  plain      ``llama_cpp.Llama``: ``reset()`` + ``eval(tokens)``, then ``generate(temp=0)`` for N tokens
  core-tok   ``LanguageCore`` on the same token prompt
  core-emb   ``LanguageCore`` on text + injected rows (what the pipeline does)
  core-warm  the same clip again with another question: only the tail after the rows is decoded
  native     the decode loop with no Python bookkeeping (sample + decode through ``_native`` only)
  grammar    a 6-label ``label_grammar`` answer: ms per sampled token, against unconstrained tokens
Decode tok/s is (N - 1) / (time from the first to the last token), identical for every row; the
end-of-generation tokens are banned in ``LanguageCore`` (logit bias) and ignored in ``generate``.
Both sides use the same n_threads, n_batch, n_ctx and flash attention (off, ``Llama``'s default).
Python overhead: the share of ``generate``'s time spent outside llama.cpp's decode and sampling calls
(both timed inline, which stays meaningful on a busy machine). The cold rows run in a rotating
order. The load average is printed: llama.cpp with n_threads = all cores slows down several-fold
when other processes compete for them (measured 2.2 vs 7.5 tok/s for 2 vs 1 thread at load 6 on 2
cores), so compare numbers only within one run. Measures, never asserts.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    heavy_lock,
    load_average,
    machine_info,
    markdown_table,
    peak_rss_mib,
    write_report,
)

# Two copies of the model are loaded (LanguageCore + Llama; ~3.9 GB RSS for the 1.1 GB Q4_K_M, as
# llama.cpp repacks weights): hold the heavy lock only above that.
HEAVY_BYTES = 1536 * 2**20
GRAMMAR_LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise")
SPANS = (
    "###Human: The audio and video merged info is: <Multi>",
    "</Multi>. The audio content is as follows: <Audio>",
    "</Audio>. Meanwhile, We uniformly extract facial informations from video: <Video>",
    "</Video>. Meanwhile, we uniformly sample raw frames from the video: <Video>",
    "</Video>. The subtitle of this video is: <Subtitle>I can't believe you did this to me again, I am so "
    "angry right now.</Subtitle>. Now, please answer my question based on all the provided information. "
    "{question} ###Assistant: ",
)
ROWS = (1, 32, 4, 32)
QUESTIONS = (
    "[Recogn_OV] Please recognize all possible emotional states of the character.",
    "[Recogn_OV] Identify all possible emotions the character may be experiencing.",
)


def _segments(core, rows: list[np.ndarray], question: str) -> list:
    segs: list = []
    for i, span in enumerate(SPANS):
        segs.append(span.format(question=question) if "{question}" in span else span)
        if i < len(rows):
            segs.append(rows[i])
    return segs


def _token_prompt(core, question: str) -> list[int]:
    ids: list[int] = []
    for i, span in enumerate(SPANS):
        ids += core.tokenize(span.format(question=question) if "{question}" in span else span)
        if i < len(ROWS):
            ids += [0] * ROWS[i]
    return ids


def _rows(rng: np.random.Generator, width: int, rms: float) -> list[np.ndarray]:
    return [(rng.standard_normal((n, width)) * rms).astype(np.float32) for n in ROWS]


def _decode_rate(n: int, first_s: float, total_s: float) -> float:
    return (n - 1) / (total_s - first_s) if n > 1 and total_s > first_s else float("nan")


def _time_core(core, prompt, max_new: int, ban: dict[int, float]) -> dict[str, float]:
    t0 = time.perf_counter()
    result = core.generate(prompt, max_new_tokens=max_new, logit_bias=ban)
    total = time.perf_counter() - t0
    first = result.first_token_ms / 1e3
    return {"prefill_ms": result.prefill_ms, "first_token_ms": result.first_token_ms,
            "decode_tok_s": _decode_rate(result.n_generated, first, total), "n_reused": result.n_reused,
            "n_prompt": result.n_prompt, "n_generated": result.n_generated}


def _time_plain(llm, tokens: list[int], max_new: int) -> dict[str, float]:
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    prefill = time.perf_counter() - t0
    llm.reset()
    t0 = time.perf_counter()
    first = None
    for i, _tok in enumerate(llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True)):
        if first is None:
            first = time.perf_counter() - t0
        if i + 1 >= max_new:
            break
    total = time.perf_counter() - t0
    return {"prefill_ms": prefill * 1e3, "first_token_ms": first * 1e3,
            "decode_tok_s": _decode_rate(max_new, first, total), "n_prompt": len(tokens), "n_generated": max_new}


def _time_native(core, prompt, max_new: int) -> dict[str, float]:
    """The bare decode loop over the core's own context: what the Python layer could at best reach."""
    from emox_edge.llm import _native

    core.reset()
    logits = core.next_token_logits(prompt)
    assert logits.size == core.n_vocab
    ctx, batch, model = core._ctx, core._tok_batch, core._model  # noqa: SLF001 - measuring the bare loop
    sampler = _native.Sampler(model, temperature=0.0, top_k=0, top_p=1.0, repeat_penalty=1.0, seed=0,
                              grammar=None, logit_bias={t: float("-inf") for t in model.eog_ids()}, penalty_last_n=1)
    pos = core.cached_positions
    try:
        t0 = time.perf_counter()
        first = None
        for _ in range(max_new):
            tok = sampler.sample(ctx, -1)
            if first is None:
                first = time.perf_counter() - t0
            ctx.decode(batch.fill_one(tok, pos))
            pos += 1
        total = time.perf_counter() - t0
    finally:
        sampler.close()
        core.reset()  # the loop bypassed the cache bookkeeping
    return {"decode_tok_s": _decode_rate(max_new, first, total)}


def _time_python_share(core, prompt, max_new: int, ban: dict[int, float]) -> dict[str, float]:
    """Share of ``generate``'s decode phase spent outside llama.cpp's decode and sampling calls.

    Robust on a busy machine (unlike comparing two loops): both native calls are timed inline.
    """
    from emox_edge.llm import _native

    spent = [0.0]
    orig_decode, orig_sample = _native.Context.decode, _native.Sampler.sample

    def decode(self, batch):
        t = time.perf_counter()
        try:
            return orig_decode(self, batch)
        finally:
            spent[0] += time.perf_counter() - t

    def sample(self, ctx, index=-1):
        t = time.perf_counter()
        try:
            return orig_sample(self, ctx, index)
        finally:
            spent[0] += time.perf_counter() - t

    core.reset()
    core.next_token_logits(prompt)  # cached: generate below decodes only the last position
    _native.Context.decode, _native.Sampler.sample = decode, sample
    try:
        result = core.generate(prompt, max_new_tokens=max_new, logit_bias=ban)
    finally:
        _native.Context.decode, _native.Sampler.sample = orig_decode, orig_sample
    total = (result.decode_ms + result.prefill_ms) / 1e3
    outside = max(total - spent[0], 0.0)
    return {"python_share": outside / total, "python_us_per_token": outside / max(result.n_generated, 1) * 1e6}


def _time_grammar(core, prompt) -> dict[str, float]:
    """Cost of a 6-label grammar per sampled token, against the same number of free tokens."""
    from emox_edge.llm import label_grammar

    core.next_token_logits(prompt)
    constrained = core.generate(prompt, grammar=label_grammar(GRAMMAR_LABELS), max_new_tokens=16)
    n = constrained.n_generated + 1  # the end-of-generation token is sampled too
    free = core.generate(prompt, max_new_tokens=n, logit_bias={t: float("-inf") for t in core.eog_token_ids})
    return {"grammar_ms_per_token": constrained.decode_ms / n, "free_ms_per_token": free.decode_ms / n}


def _median(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = samples[0].keys()
    return {k: statistics.median(s[k] for s in samples) for k in keys}


def measure(gguf: str | Path, *, threads: int | None = None, repeats: int = 5, n_ctx: int = 4096,
            n_batch: int = 512, max_new: int = 64, flash_attn: str = "off") -> dict[str, Any]:
    """Run every row on ``gguf``; returns medians, ratios and the raw samples (JSON-ready)."""
    import llama_cpp

    from emox_edge.devices import physical_cores
    from emox_edge.llm import LanguageCore

    threads = threads or physical_cores()
    gguf = Path(gguf)
    heavy = gguf.stat().st_size > HEAVY_BYTES
    with heavy_lock(enabled=heavy) as lock:
        load_before = load_average()
        t0 = time.perf_counter()
        core = LanguageCore.from_file(gguf, n_ctx=n_ctx, n_threads=threads, n_batch=n_batch, flash_attn=flash_attn)
        load_core_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        llm = llama_cpp.Llama(str(gguf), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=threads,
                              n_threads_batch=threads, flash_attn=(flash_attn == "on"), verbose=False)
        load_plain_ms = (time.perf_counter() - t0) * 1e3
        try:
            rng = np.random.default_rng(0)
            sample = core.token_embeddings(rng.integers(0, core.n_vocab, 512))
            rms = float(np.sqrt(np.mean(sample.astype(np.float64) ** 2)))
            ban = {t: float("-inf") for t in core.eog_token_ids}
            tokens = _token_prompt(core, QUESTIONS[0])
            rows: dict[str, list] = {k: [] for k in ("plain", "core-tok", "core-emb", "core-warm", "native", "python",
                                                     "grammar")}
            for rep in range(repeats + 1):  # the first round warms caches and is dropped
                clip_rows = _rows(rng, core.embedding_width, rms)
                cold = {
                    "plain": lambda: _time_plain(llm, tokens, max_new),
                    "core-tok": lambda: (core.reset(), _time_core(core, [tokens], max_new, ban))[1],
                    "core-emb": lambda: (core.reset(), _time_core(
                        core, _segments(core, clip_rows, QUESTIONS[0]), max_new, ban))[1],
                }
                order = list(cold)[rep % 3:] + list(cold)[:rep % 3]  # rotate: no row always runs first
                got = {key: cold[key]() for key in order}
                # warm: the clip of core-emb again, with another question
                core.reset()
                core.next_token_logits(_segments(core, clip_rows, QUESTIONS[0]))
                got["core-warm"] = _time_core(core, _segments(core, clip_rows, QUESTIONS[1]), max_new, ban)
                got["native"] = _time_native(core, _segments(core, clip_rows, QUESTIONS[0]), max_new)
                got["python"] = _time_python_share(core, _segments(core, clip_rows, QUESTIONS[0]), max_new, ban)
                got["grammar"] = _time_grammar(core, _segments(core, clip_rows, QUESTIONS[0]))
                if rep:
                    for key, value in got.items():
                        rows[key].append(value)
        finally:
            core.close()
            llm.close()
    load_after = load_average()
    med = {k: _median(v) for k, v in rows.items()}
    python, grammar = med.pop("python"), med.pop("grammar")
    return {
        "gguf": str(gguf), "gguf_bytes": gguf.stat().st_size, "threads": threads, "n_ctx": n_ctx,
        "n_batch": n_batch, "max_new": max_new, "flash_attn": flash_attn, "repeats": repeats,
        "lock_wait_s": lock.waited_s, "load_core_ms": load_core_ms, "load_plain_ms": load_plain_ms,
        "n_prompt": med["core-emb"]["n_prompt"], "n_injected": sum(ROWS), "embedding_rms": rms,
        "medians": med,
        "prefill_ratio_core_tok_vs_plain": med["core-tok"]["prefill_ms"] / med["plain"]["prefill_ms"],
        "prefill_ratio_core_emb_vs_plain": med["core-emb"]["prefill_ms"] / med["plain"]["prefill_ms"],
        "decode_ratio_core_vs_plain": med["core-emb"]["decode_tok_s"] / med["plain"]["decode_tok_s"],
        "first_token_ratio_core_vs_plain": med["core-emb"]["first_token_ms"] / med["plain"]["first_token_ms"],
        "warm_prefill_ratio": med["core-warm"]["prefill_ms"] / med["core-emb"]["prefill_ms"],
        "warm_n_reused": med["core-warm"]["n_reused"],
        "decode_ratio_core_vs_native_loop": med["core-emb"]["decode_tok_s"] / med["native"]["decode_tok_s"],
        "python_overhead_fraction": python["python_share"],
        "python_us_per_token": python["python_us_per_token"],
        "grammar_ms_per_token": grammar["grammar_ms_per_token"],
        "free_ms_per_token": grammar["free_ms_per_token"],
        "grammar_cost_ratio": grammar["grammar_ms_per_token"] / grammar["free_ms_per_token"],
        "peak_rss_mib": peak_rss_mib(),
        "load_average_before": load_before, "load_average_after": load_after,
        "samples": rows,
    }


def _table(res: dict[str, Any]) -> str:
    med = res["medians"]
    names = {"plain": "plain llama-cpp-python (tokens)", "core-tok": "LanguageCore (tokens)",
             "core-emb": f"LanguageCore ({res['n_injected']} injected rows)",
             "core-warm": "LanguageCore warm (same clip, new question)", "native": "bare native decode loop"}
    body = [(names[k], m.get("prefill_ms"), m.get("first_token_ms"), m.get("decode_tok_s"), m.get("n_reused"))
            for k, m in med.items()]
    table = markdown_table(["path", "prefill ms", "first token ms", "decode tok/s", "reused positions"], body)
    ratios = markdown_table(["ratio", "value"], [
        ("prefill core (tokens) / plain", res["prefill_ratio_core_tok_vs_plain"]),
        ("prefill core (injected) / plain", res["prefill_ratio_core_emb_vs_plain"]),
        ("decode tok/s core / plain", res["decode_ratio_core_vs_plain"]),
        ("first token core / plain", res["first_token_ratio_core_vs_plain"]),
        ("warm prefill / cold prefill", res["warm_prefill_ratio"]),
        ("decode tok/s core / bare native loop", res["decode_ratio_core_vs_native_loop"]),
        ("Python share of generate time (outside llama.cpp calls)", res["python_overhead_fraction"]),
        ("Python µs per generated token", res["python_us_per_token"]),
        (f"{len(GRAMMAR_LABELS)}-label grammar: ms per token (free: {res['free_ms_per_token']:.3g})",
         res["grammar_ms_per_token"]),
    ])
    return table + "\n\n" + ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--gguf", type=Path, help="GGUF to measure (default: build the tiny random Qwen2)")
    src.add_argument("--real-qwen", action="store_true", help="fetch/use Qwen2.5-Coder-1.5B Q4_K_M (1.1 GB)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--max-new", type=int, default=64)
    parser.add_argument("--flash-attn", choices=("off", "on", "auto"), default="off")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.real_qwen:
        from converters.lite.sources import fetch_qwen25_coder_gguf

        gguf = fetch_qwen25_coder_gguf()
    elif args.gguf:
        gguf = args.gguf
    else:
        from converters.testing.tiny_qwen import tiny_qwen2_gguf

        gguf = tiny_qwen2_gguf(Path(tempfile.gettempdir()) / "emox-bench-llm")
    info = machine_info()
    res = measure(gguf, threads=args.threads, repeats=args.repeats, n_ctx=args.n_ctx, n_batch=args.n_batch,
                  max_new=args.max_new, flash_attn=args.flash_attn)
    print(f"# bench_llm: {Path(gguf).name} ({res['gguf_bytes'] / 2**20:.0f} MiB)")
    print(f"machine: {info['cpu']}, {info['physical_cores']} physical cores; threads {res['threads']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    print(f"command: {info['command']}")
    print(f"prompt: {res['n_prompt']} positions ({res['n_injected']} injected), {res['max_new']} new tokens, "
          f"median of {res['repeats']}, n_batch {res['n_batch']}, flash attention {res['flash_attn']}")
    print(f"load average before/after: {res['load_average_before']} / {res['load_average_after']}; "
          f"peak RSS {res['peak_rss_mib']:.0f} MiB\n")
    print(_table(res))
    if args.json:
        write_report(args.json, {"machine": info, "metrics": {k: v for k, v in res.items()
                                                           if "ratio" in k or "fraction" in k}, "result": res})
        print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
