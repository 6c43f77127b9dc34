"""``LanguageCore``: a GGUF language model driven through llama.cpp, with embedding injection.

The prompt is a list of segments (text, token ids, float32 embedding rows; see ``segments``). The
prefill decodes them in order with contiguous positions, in chunks of at most ``n_batch`` rows
(llama.cpp aborts the process on larger ones), asking for logits only on the last prompt position.
llama.cpp cannot mix tokens and embeddings in one batch; rather than one batch per run (9 for the
Nano-EmoX prompt), the text of a mixed prompt is fed as its own dequantized embedding rows, the
same computation in fewer, larger batches (12% less prefill time on Qwen2.5-1.5B Q4_K_M, 1 thread).
Consecutive calls reuse the KV cache over their common prefix (same token ids, bit-identical
embedding rows): only the rest is decoded (at least one position, to get fresh logits).

Not thread-safe: use one ``LanguageCore`` per thread.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Generator, Mapping, Sequence

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.devices import default_threads
from emox_edge.llm import _native
from emox_edge.llm.gguf_file import GGUFFile
from emox_edge.llm.batching import BatchRequest, Scores
from emox_edge.llm.generation import GenerationResult, Stream, TextAssembler
from emox_edge.llm.segments import Literal, Run, Segment, common_prefix, to_runs
from emox_edge.llm.settings import Settings, check_generation

logger = logging.getLogger(__name__)

_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp: pick a random seed


def _positive_int(name: str, value, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BadInputError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


class LanguageCore:
    """A loaded GGUF model plus one llama.cpp context (a single sequence with a reusable KV cache).

    Create with ``LanguageCore.from_file``; close with ``close()`` or a ``with`` block.
    """

    def __init__(self, model: _native.Model, ctx: _native.Context, batches: tuple, n_threads: int) -> None:
        self._model = model
        self._ctx = ctx
        self._tok_batch, self._emb_batch = batches
        self._file: GGUFFile | None = None  # opened on first use (metadata, token_embeddings)
        self._keys: list = []  # one cache key per position held in the KV cache
        self._open_stream: Stream | None = None
        self._merge_rows = True  # decode text of mixed prompts as embedding rows (one batch)
        self.prefix_cache = True
        self._metadata: dict[str, str] | None = None
        self.n_threads = n_threads
        self._multi: dict[str, _native.Batch] = {}  # run_batch's batches, by kind
        self._parked: dict[int, list] = {}  # sequence id -> cache keys of answers run_batch kept
        self.rows_decoded = 0  # prompt positions evaluated so far (what prefix sharing saves shows here)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        flash_attn: str = "auto",
        prefix_cache: bool = True,
        n_seq: int = 64,
        repack: bool = False,
    ) -> "LanguageCore":
        """Load a GGUF model.

        Args:
            path: the GGUF file.
            n_ctx: context length (prompt + generated positions).
            n_threads: CPU threads (None: ``emox_edge.devices.default_threads()``: free physical cores).
            n_batch: most rows decoded in one llama.cpp call; longer prompts are chunked.
            n_gpu_layers: layers offloaded to a GPU when llama.cpp was built with one (-1: all).
            flash_attn: "auto" (llama.cpp decides), "on" or "off". On CPU, flash attention rounds
                the attention inputs to F16, so logits then depend slightly (~1e-3) on how the
                prompt was split into batches; "off" makes chunking and cache reuse bit-stable.
            prefix_cache: reuse the KV cache over the prefix shared with the previous call (see
                ``prefix_cache`` for the rounding this implies on quantized weights).
            n_seq: most sequences ``run_batch`` decodes together (answers plus scored candidates);
                they share the one KV cache of ``n_ctx`` cells, so this costs no memory. At most
                ``n_batch`` (llama.cpp aborts the process on more) and 256.
            repack: let llama.cpp's CPU backend repack the quantized weights into its interleaved
                layouts (its default). The repacked copy lives in anonymous memory *beside* the
                mmap'd GGUF, whose pages stay resident from loading. Off by default: on Qwen2.5-1.5B
                Q4_K_M (AMD EPYC, AVX2 only, 2 threads, 3 alternated runs each) it cost 590 MiB more
                RSS (1922 vs 1333 MiB) for the same speed (prefill of ~200 positions 3.3-4.2 s vs
                3.2-3.6 s; decode 15.3-17.0 vs 14.4-18.2 tok/s). Hosts where it pays (wider SIMD,
                ARM) can turn it on.

        Raises:
            FileNotFoundError: no such file.
            BundleError: not a GGUF file, a damaged header or tensor table (checked in Python before
                llama.cpp sees the file, since llama.cpp aborts the process on some), or a model
                llama.cpp cannot load; the message names the file. A ``ValueError``.
            ValueError: a bad argument.
        """
        n_ctx = _positive_int("n_ctx", n_ctx)
        n_batch = _positive_int("n_batch", n_batch)
        n_seq = _positive_int("n_seq", n_seq)
        n_threads = _positive_int("n_threads", n_threads, allow_none=True) or default_threads()
        if not isinstance(n_gpu_layers, int):
            raise BadInputError(f"n_gpu_layers must be an integer; got {n_gpu_layers!r}")
        if flash_attn not in _native.FLASH_ATTN:
            raise BadInputError(f"flash_attn must be one of {', '.join(_native.FLASH_ATTN)}; got {flash_attn!r}")
        model = _native.Model(path, n_gpu_layers=n_gpu_layers, repack=repack)
        ctx = tok_batch = None
        try:
            if n_ctx > model.n_ctx_train:
                logger.warning("n_ctx=%d exceeds the %d positions %s was trained for", n_ctx, model.n_ctx_train, path)
            ctx = _native.Context(model, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, flash_attn=flash_attn,
                                  n_seq_max=min(n_seq, 256, n_batch))  # llama.cpp aborts above n_batch
            tok_batch = _native.Batch(ctx.n_batch)
            emb_batch = _native.Batch(ctx.n_batch, model.n_embd_inp)
        except BaseException:
            _native.close_all([tok_batch, ctx, model])
            raise
        logger.info("loaded %s: n_vocab=%d width=%d n_ctx=%d n_batch=%d threads=%d",
                    path, model.n_vocab, model.n_embd_inp, ctx.n_ctx, ctx.n_batch, n_threads)
        core = cls(model, ctx, (tok_batch, emb_batch), n_threads)
        core.prefix_cache = bool(prefix_cache)
        return core

    # ----------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Free the context and the model (idempotent)."""
        if self._open_stream is not None:
            self._open_stream.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        _native.close_all([self._tok_batch, self._emb_batch, *self._multi.values(), self._ctx, self._model])
        self._multi = {}
        self._keys = []

    prefix_cache: bool
    """Reuse the KV cache over the prefix shared with the previous call (default True).

    Reuse is the same computation, but llama.cpp's CPU kernels round differently depending on how
    positions are grouped into batches (tiles of 4 rows vs single rows on repacked K-quants), so
    on quantized weights a warm call's logits can differ slightly from a cold one's: measured on
    Qwen2.5-1.5B Q4_K_M, max |Δlogit| up to 0.49, KL up to 0.009, argmax unchanged (13 splits of a
    34-token prompt). Set False for results that never depend on the previous call (evaluation).
    """

    def reset(self) -> None:
        """Empty the KV cache, so the next call evaluates its whole prompt (nothing is reused)."""
        self._begin()
        self._forget()

    def _forget(self) -> None:
        self._ctx.clear()
        self._keys = []
        self._parked = {}

    def _drop_parked(self) -> None:
        for seq in self._parked:
            self._ctx.truncate(0, seq)
        self._parked = {}

    @property
    def cached_positions(self) -> int:
        """Positions currently held in the KV cache (what the next call may reuse)."""
        return len(self._keys)

    @property
    def closed(self) -> bool:
        return self._model.closed

    def __enter__(self) -> "LanguageCore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._model.closed:
            raise BadInputError("this LanguageCore is closed")

    # ----------------------------------------------------------------------------- model facts
    @property
    def path(self) -> Path:
        return self._model.path

    @property
    def embedding_width(self) -> int:
        """Width of the rows that can be injected (``llama_model_n_embd_inp``)."""
        return self._model.n_embd_inp

    @property
    def n_vocab(self) -> int:
        return self._model.n_vocab

    @property
    def n_ctx(self) -> int:
        """Context length llama.cpp actually allocated (prompt + generation must fit)."""
        return self._ctx.n_ctx

    @property
    def n_batch(self) -> int:
        return self._ctx.n_batch

    @property
    def n_seq_max(self) -> int:
        """Most sequences decoded together by ``run_batch``."""
        return self._ctx.n_seq_max

    def _multi_batch(self, kind: str) -> _native.Batch:
        if kind not in self._multi:
            width = self.embedding_width if kind == "embd" else 0
            self._multi[kind] = _native.Batch(self.n_batch, width, self.n_seq_max)
        return self._multi[kind]

    def _gguf(self) -> GGUFFile:
        self._check_open()
        if self._file is None:
            self._file = GGUFFile(self._model.path)
        return self._file

    @property
    def metadata(self) -> dict[str, str]:
        """The GGUF key/values as strings: scalars as text, arrays of up to 256 items as JSON
        (e.g. ``json.loads(core.metadata["emox_edge.stop_strings"])``), longer ones as
        ``arr[TYPE,LENGTH]``."""
        self._check_open()
        if self._metadata is None:
            self._metadata = self._gguf().metadata_str()
        return dict(self._metadata)

    @property
    def eog_token_ids(self) -> list[int]:
        """Every end-of-generation token of the vocabulary (``<|im_end|>``, ``<|endoftext|>``, ...)."""
        return self._model.eog_ids()

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids of ``text`` (``special``: parse ``<|im_start|>``-style tokens). Never adds a BOS."""
        self._check_open()
        if not isinstance(text, str):
            raise InputTypeError(f"text must be str; got {type(text).__name__}")
        return self._model.tokenize(text, special=special)

    def has_special(self, text: str) -> bool:
        """Whether ``text`` holds a special-token string (``<|im_end|>``) that a ``str`` segment would parse."""
        return self.tokenize(text, special=True) != self.tokenize(text, special=False)

    def detokenize(self, ids: Sequence[int], *, special: bool = True) -> str:
        """Text of token ids (``special``: render control tokens such as ``<|im_end|>``)."""
        self._check_open()
        ids = self._check_ids(ids)
        data = b"".join(self._model.token_piece(int(t), special=special) for t in ids)
        return data.decode("utf-8", errors="replace")

    def token_embeddings(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), embedding_width]: the model's own (dequantized) input rows for ``ids``."""
        return self._gguf().rows("token_embd.weight", self._check_ids(ids))

    def _check_ids(self, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.size == 0:
            return arr.astype(np.int64).reshape(0)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputTypeError(f"token ids must be a 1-D list of int; got {arr.dtype} with shape {arr.shape}")
        if arr.min() < 0 or arr.max() >= self.n_vocab:
            raise BadInputError(f"token ids must be in [0, {self.n_vocab}); got min {arr.min()}, max {arr.max()}")
        return arr

    # ----------------------------------------------------------------------------- prefill
    def _runs(self, segments: Segment | Sequence[Segment]) -> list[Run]:
        return to_runs(segments, tokenize=lambda s: self._model.tokenize(s, special=not isinstance(s, Literal)),
                       n_vocab=self.n_vocab, width=self.embedding_width)

    def _begin(self) -> None:
        self._check_open()
        if self._open_stream is not None:
            logger.debug("closing an unfinished stream before a new call")
            self._open_stream.close()
            self._open_stream = None

    def _check_fits(self, runs: list[Run]) -> int:
        n_prompt = sum(len(run) for run in runs)
        if n_prompt > self.n_ctx:
            raise BadInputError(f"the prompt has {n_prompt} positions but the context holds n_ctx={self.n_ctx}")
        return n_prompt

    def _decode_plan(self, runs: list[Run], keep: int) -> list[tuple[str, np.ndarray, int]]:
        """What to decode after the first ``keep`` positions: (kind, rows or ids, first position).

        llama.cpp cannot mix tokens and embeddings in one batch, and every batch costs a graph
        evaluation with small, inefficient matrix products. So when the prompt has injected rows,
        its text tokens are turned into their own (dequantized) embedding rows, which is the same
        computation (see ``token_embeddings``), and the whole suffix goes in as few batches as
        n_batch allows. Cache keys stay token ids, so prefix reuse is unaffected.
        """
        parts, start = [], 0
        for run in runs:
            end = start + len(run)
            if end > keep:
                lo = max(start, keep)
                parts.append((run.kind, run.data[lo - start:], lo))
            start = end
        if self._merge_rows and len(parts) > 1 and any(kind == "embd" for kind, _, _ in parts):
            try:
                rows = [d if kind == "embd" else self.token_embeddings(d) for kind, d, _ in parts]
            except NotImplementedError as exc:  # a type the numpy dequantizers do not know
                logger.info("decoding text and embedding runs separately: %s", exc)
                self._merge_rows = False
            else:
                return [("embd", np.concatenate(rows), parts[0][2])]
        return parts

    def _prefill(self, runs: list[Run]) -> tuple[int, int]:
        """Bring the KV cache to exactly the prompt; returns (n_prompt, n_reused)."""
        self._drop_parked()
        keys = [k for run in runs for k in run.keys()]
        n_prompt = self._check_fits(runs)
        keep = min(common_prefix(self._keys, keys), n_prompt - 1) if self.prefix_cache else 0
        if keep < len(self._keys) and not self._ctx.truncate(keep):
            self._ctx.clear()
            keep = 0
        del self._keys[keep:]
        try:
            for kind, data, pos in self._decode_plan(runs, keep):
                batch = self._tok_batch if kind == "tokens" else self._emb_batch
                for a in range(0, len(data), self.n_batch):
                    chunk = data[a:a + self.n_batch]
                    end = pos + a + len(chunk)
                    self._ctx.decode(batch.fill(chunk, pos + a, want_last=end == n_prompt))
                    self.rows_decoded += len(chunk)
                    self._keys.extend(keys[pos + a:end])
        except BaseException:
            self._ctx.clear()
            self._keys = []
            raise
        return n_prompt, keep

    def next_token_logits(self, segments: Segment | Sequence[Segment]) -> np.ndarray:
        """float32 [n_vocab] logits of the position after the prompt.

        Raises:
            TypeError / ValueError: see ``segments.to_runs``; ValueError when the prompt exceeds n_ctx.
        """
        self._begin()
        self._prefill(self._runs(segments))
        return self._ctx.logits(-1)

    # ----------------------------------------------------------------------------- batches
    def run_batch(self, requests: Sequence[BatchRequest], *,
                  on_piece: Callable[[int, str], None] | None = None) -> list[GenerationResult | Scores]:
        """Answer several requests together: shared prompt prefixes decoded once, every answer
        decoded in the same llama.cpp batch step, candidates scored by likelihood (``batching``).

        ``on_piece(i, text)`` receives request i's text as it is generated. Results come in the
        order of ``requests``: a ``GenerationResult`` or, for a request with ``candidates``, ``Scores``.
        """
        from emox_edge.llm.batching import run_batch

        self._begin()
        return run_batch(self, requests, on_piece=on_piece)

    def score(self, segments: Segment | Sequence[Segment], candidates: Sequence[str]) -> Scores:
        """Log-likelihood of each candidate continuation of the prompt, in one batched pass."""
        return self.run_batch([BatchRequest(segments, candidates=tuple(candidates))])[0]

    # ----------------------------------------------------------------------------- generation
    def generate(
        self,
        segments: Segment | Sequence[Segment],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        repeat_penalty: float = 1.0,
        seed: int | None = None,
        stop: str | Sequence[str] = (),
        grammar: str | None = None,
        logit_bias: Mapping[int, float] | None = None,
        stream: bool = False,
    ) -> GenerationResult | Stream:
        """Generate a continuation of the prompt.

        Args:
            segments: the prompt (see ``segments``).
            max_new_tokens: most tokens to sample (0: prefill only).
            temperature: 0 picks the most likely token (greedy); > 0 samples.
            top_p, top_k: nucleus / top-k filtering when sampling (1.0 / 0 disable them).
            repeat_penalty: > 1 discourages tokens already generated (1.0 disables it).
            seed: sampling seed (None: random).
            stop: strings that end generation; they are removed from the text and never streamed.
            grammar: a GBNF grammar (root rule ``root``) the answer must follow, e.g. ``label_grammar``.
            logit_bias: token id -> value added to its logit (``-inf`` bans a token).
            stream: return a ``Stream`` of text pieces instead of the finished result.

        Generation ends on any end-of-generation token of the vocabulary, a stop string,
        ``max_new_tokens`` or a full context.

        Raises:
            TypeError / ValueError: a bad prompt (see ``segments``) or argument; ValueError when
            the prompt exceeds n_ctx or llama.cpp rejects the grammar.
        """
        settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                        repeat_penalty=repeat_penalty, grammar=grammar, stop=stop, logit_bias=logit_bias)
        stops, bias = check_generation(self, Settings(**settings))
        self._begin()
        runs = self._runs(segments)
        self._check_fits(runs)
        sampler = _native.Sampler(
            self._model, temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
            repeat_penalty=float(repeat_penalty), seed=_RANDOM_SEED if seed is None else int(seed),
            grammar=grammar, logit_bias=bias, penalty_last_n=max(int(max_new_tokens), 1),
        )
        gen = self._run(runs, sampler, int(max_new_tokens), stops, grammar is not None)
        if stream:
            self._open_stream = Stream(gen)
            return self._open_stream
        return Stream(gen).result

    def _run(
        self, runs: list[Run], sampler: _native.Sampler, max_new: int, stops: tuple[str, ...], grammar: bool
    ) -> Generator[str, None, GenerationResult]:
        t0 = time.perf_counter()
        try:
            n_prompt, n_reused = self._prefill(runs)
            t_prefill = time.perf_counter()
            text = TextAssembler(stops)
            tokens: list[int] = []
            reason, t_first, pos = "length", None, n_prompt
            model, ctx, batch = self._model, self._ctx, self._tok_batch
            for i in range(max_new):
                tok = sampler.sample(ctx, -1)
                if t_first is None:
                    t_first = time.perf_counter()
                if model.is_eog(tok):
                    reason = "grammar" if grammar else "eos"
                    break
                tokens.append(tok)
                piece, stopped = text.push(model.token_piece(tok))
                if piece:
                    yield piece
                if stopped:
                    reason = "stop"
                    break
                if i == max_new - 1 or pos >= self.n_ctx:
                    break
                ctx.decode(batch.fill_one(tok, pos))
                self._keys.append(tok)
                pos += 1
            if reason != "stop":
                tail = text.finish()
                if tail:
                    yield tail
            t_end = time.perf_counter()
        finally:
            sampler.close()
        decode_s = t_end - t_prefill
        return GenerationResult(
            text=text.text, token_ids=tuple(tokens), stop_reason=reason, n_prompt=n_prompt,
            n_generated=len(tokens), n_reused=n_reused, prefill_ms=(t_prefill - t0) * 1e3,
            decode_ms=decode_s * 1e3, decode_tokens_per_s=len(tokens) / decode_s if tokens and decode_s > 0 else 0.0,
            first_token_ms=((t_first or t_end) - t0) * 1e3,
        )
