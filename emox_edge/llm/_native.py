"""Every llama.cpp call of the SDK, through llama-cpp-python's ctypes bindings, with owning wrappers.

Nothing else in ``emox_edge`` touches ``llama_cpp``'s low-level functions. Each wrapper owns one
native object and frees it in ``close()`` (idempotent; also run on garbage collection). Methods of
a closed wrapper raise ``ValueError``. The numbers of rows handed to one ``decode`` must not exceed
the context's ``n_batch`` (llama.cpp aborts the process otherwise): callers chunk, ``decode`` checks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from emox_edge.errors import BadInputError, BundleError

logger = logging.getLogger(__name__)
_native_log = logging.getLogger("emox_edge.llm.llama_cpp")

GGUF_MAGIC = b"GGUF"
# ggml_log_level (NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4; CONT 5 continues the previous message).
# llama.cpp warns about harmless model quirks on every load (e.g. Qwen2.5's "</s> was not
# control-type") and logs errors right before returning a failure that we raise as an exception,
# so its WARN goes to INFO and its ERROR to WARNING; the SDK logs what matters itself.
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.WARNING}
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # llama_flash_attn_type
QUANT_FTYPES = {"f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}

_init_lock = threading.Lock()
_state: dict[str, object] = {}


def lib():
    """Import llama_cpp once, initialise the backend and route its log into ``logging``."""
    if "lib" in _state:
        return _state["lib"]
    with _init_lock:
        if "lib" not in _state:
            import llama_cpp

            llama_cpp.llama_backend_init()
            pending: list[str] = []
            last = [logging.DEBUG]

            @llama_cpp.llama_log_callback
            def _on_log(level: int, text: bytes, _user):  # pragma: no cover - called from C
                lvl = last[0] if level == 5 else _LOG_LEVELS.get(level, logging.DEBUG)
                last[0] = lvl
                pending.append(text.decode("utf-8", errors="replace"))
                if pending[-1].endswith("\n"):
                    message = "".join(pending).rstrip()
                    pending.clear()
                    if message and _native_log.isEnabledFor(lvl):
                        _native_log.log(lvl, "%s", message)

            llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
            _state["log_callback"] = _on_log  # keep the ctypes thunk alive
            _state["lib"] = llama_cpp
    return _state["lib"]


def check_gguf(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a whole, well-formed GGUF file *before* llama.cpp sees it (it may abort on junk).

    Raises:
        FileNotFoundError: no such file.
        BundleError: not GGUF, or a damaged header or tensor table (``gguf_file.validate_gguf``).
    """
    from emox_edge.llm.gguf_file import validate_gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model not found: {path}")
    return validate_gguf(path)


class _Owned:
    """Base of the owning wrappers: one native pointer, freed once."""

    _kind = "object"

    def __init__(self, ptr) -> None:
        self._ptr = ptr

    @property
    def ptr(self):
        if self._ptr is None:
            raise BadInputError(f"llama.cpp {self._kind} is closed")
        return self._ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _free(self, ptr) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._free(ptr)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class Model(_Owned):
    """A loaded GGUF model (weights + vocabulary)."""

    _kind = "model"

    def __init__(self, path: str | os.PathLike, *, n_gpu_layers: int = 0, repack: bool = False) -> None:
        path = check_gguf(path)
        ll = lib()
        params = ll.llama_model_default_params()
        params.n_gpu_layers = int(n_gpu_layers)
        if hasattr(params, "use_extra_bufts"):  # CPU weight repacking: a second, anonymous copy of the weights
            params.use_extra_bufts = bool(repack)
        ptr = ll.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not ptr:
            raise BundleError(f"llama.cpp could not load {path} (a GGUF header but an unsupported or damaged model)")
        super().__init__(ptr)
        self._ll = ll
        self.path = path
        self.vocab = ll.llama_model_get_vocab(ptr)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        fn = getattr(ll, "llama_model_n_embd_inp", None)
        self.n_embd_inp = int(fn(ptr) if fn is not None else ll.llama_model_n_embd(ptr))
        self.n_ctx_train = int(ll.llama_model_n_ctx_train(ptr))
        self._eog = np.array([bool(ll.llama_vocab_is_eog(self.vocab, t)) for t in range(self.n_vocab)])
        self._piece_buf = ctypes.create_string_buffer(256)

    def _free(self, ptr) -> None:
        self._ll.llama_model_free(ptr)

    def eog_ids(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self._eog)]

    def is_eog(self, token: int) -> bool:
        return bool(self._eog[token])

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of ``text``; never adds BOS/EOS. ``special`` parses ``<|im_end|>``-style tokens."""
        ll, _ = self._ll, self.ptr
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (ll.llama_token * cap)()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:  # pragma: no cover - cap is an upper bound for byte-level BPE
            cap = -n
            buf = (ll.llama_token * cap)()
            n = ll.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        return list(buf[:n])

    def token_piece(self, token: int, *, special: bool = True) -> bytes:
        """The raw bytes of one token (may be a partial UTF-8 sequence)."""
        ll, _ = self._ll, self.ptr
        n = ll.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, special)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n + 1)
            n = ll.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, special)
        return self._piece_buf.raw[:n]


class Batch(_Owned):
    """A ``llama_batch`` of up to ``capacity`` tokens (``width == 0``) or embedding rows.

    ``fill``/``fill_one`` put every row in sequence 0 (set once, at creation: use them only on a
    batch that ``fill_rows`` never fills); ``fill_rows`` gives each row its own set of up to
    ``n_seq_max`` sequences (a row shared by several sequences is computed once).
    """

    _kind = "batch"

    def __init__(self, capacity: int, width: int = 0, n_seq_max: int = 1) -> None:
        ll = lib()
        batch = ll.llama_batch_init(int(capacity), int(width), int(n_seq_max))
        super().__init__(batch)
        self._ll = ll
        self.capacity = int(capacity)
        self.width = int(width)
        self.n_seq_max = int(n_seq_max)
        self._pos = np.ctypeslib.as_array(batch.pos, shape=(capacity,))
        self._n_seq = np.ctypeslib.as_array(batch.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(ctypes.cast(batch.logits, ctypes.POINTER(ctypes.c_int8)), (capacity,))
        for i in range(capacity):  # llama_batch_init leaves everything uninitialised
            batch.seq_id[i][0] = 0
        self._n_seq[:] = 1
        self._logits[:] = 0
        if width:
            self._embd = np.ctypeslib.as_array(batch.embd, shape=(capacity, width))
        else:
            self._token = np.ctypeslib.as_array(batch.token, shape=(capacity,))

    def _free(self, ptr) -> None:
        self._ll.llama_batch_free(ptr)

    def _load(self, items, pos, logits) -> int:
        """Copy rows, positions and logit flags into the batch; returns the row count."""
        n = len(items)
        if not 0 < n <= self.capacity:
            raise ValueError(f"a batch holds 1..{self.capacity} items; got {n}")
        if self.width:
            self._embd[:n] = items
        else:
            self._token[:n] = items
        self._pos[:n] = pos
        self._logits[:n] = logits
        return n

    def fill(self, items: np.ndarray | Sequence[int], pos0: int, *, want_last: bool):
        """Load tokens (or embedding rows) at positions ``pos0...`` of sequence 0; logits on the last one."""
        batch = self.ptr
        n = len(items)
        flags = np.zeros(n, np.int8)
        flags[-1:] = int(want_last)
        self._load(items, np.arange(pos0, pos0 + n, dtype=np.int32), flags)
        batch.n_tokens = n
        return batch

    def fill_rows(self, items: np.ndarray | Sequence[int], pos: Sequence[int], seqs: Sequence[Sequence[int]],
                  logits: Sequence[bool]):
        """Load rows at the given positions, each in its sequences, logits where asked."""
        batch = self.ptr
        n = self._load(items, np.asarray(pos, dtype=np.int32), np.asarray(logits, dtype=np.int8))
        for i, ids in enumerate(seqs):
            if not 0 < len(ids) <= self.n_seq_max:
                raise ValueError(f"a row belongs to 1..{self.n_seq_max} sequences; got {len(ids)}")
            self._n_seq[i] = len(ids)
            row = batch.seq_id[i]
            for k, s in enumerate(ids):
                row[k] = s
        batch.n_tokens = n
        return batch

    def fill_one(self, token: int, pos: int):
        """Load a single token at ``pos`` with logits requested (the decode-loop fast path)."""
        batch = self.ptr
        batch.token[0] = token  # plain ctypes stores: ~10x cheaper than numpy scalar writes
        batch.pos[0] = pos
        batch.logits[0] = 1
        batch.n_tokens = 1
        return batch


class Context(_Owned):
    """A llama.cpp context (KV cache + compute buffers) over one ``Model``.

    Up to ``n_seq_max`` sequences share one unified KV cache of ``n_ctx`` cells: a position held by
    several sequences (a shared prompt prefix) takes one cell and is computed once.
    """

    _kind = "context"

    def __init__(self, model: Model, *, n_ctx: int, n_batch: int, n_threads: int, flash_attn: str = "auto",
                 n_seq_max: int = 1) -> None:
        ll = lib()
        params = ll.llama_context_default_params()
        params.flash_attn_type = FLASH_ATTN[flash_attn]
        params.n_ctx = int(n_ctx)
        params.n_batch = int(n_batch)
        params.n_ubatch = int(n_batch)
        params.n_seq_max = int(n_seq_max)
        params.kv_unified = True  # sequences branch from shared prefixes: one cache, n_ctx cells in all
        params.n_threads = int(n_threads)
        params.n_threads_batch = int(n_threads)
        params.embeddings = False
        params.no_perf = True
        ptr = ll.llama_init_from_model(model.ptr, params)
        if not ptr:
            raise ValueError(
                f"llama.cpp could not create a context (n_ctx={n_ctx}, n_batch={n_batch}) for {model.path}"
            )
        super().__init__(ptr)
        self._ll = ll
        self.model = model
        self.n_ctx = int(ll.llama_n_ctx(ptr))
        self.n_batch = int(ll.llama_n_batch(ptr))
        self.n_seq_max = int(n_seq_max)
        self._mem = ll.llama_get_memory(ptr)

    def _free(self, ptr) -> None:
        self._ll.llama_free(ptr)

    def decode(self, batch) -> None:
        if batch.n_tokens > self.n_batch:
            raise ValueError(f"batch of {batch.n_tokens} rows exceeds n_batch={self.n_batch}")
        rc = int(self._ll.llama_decode(self.ptr, batch))
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc} ({batch.n_tokens} rows)")

    def logits(self, index: int = -1) -> np.ndarray:
        """A copy of the float32 logits of output ``index`` of the last decode (-1: the last)."""
        ptr = self._ll.llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise RuntimeError(f"llama.cpp has no logits for output {index}")
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).copy()

    def truncate(self, n_keep: int, seq: int = 0) -> bool:
        """Drop positions >= ``n_keep`` of sequence ``seq``; False if the memory cannot drop a partial sequence."""
        return bool(self._ll.llama_memory_seq_rm(self._mem, int(seq), int(n_keep), -1))

    def copy_seq(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Let sequence ``dst`` also hold ``src``'s positions in [p0, p1) (no copy in a unified cache)."""
        self._ll.llama_memory_seq_cp(self._mem, int(src), int(dst), int(p0), int(p1))

    def clear(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)

    def pos_max(self) -> int:
        return int(self._ll.llama_memory_seq_pos_max(self._mem, 0))


class Sampler(_Owned):
    """A sampler chain: logit bias -> repeat penalty -> grammar -> temperature/top-k/top-p -> pick."""

    _kind = "sampler"

    def __init__(
        self,
        model: Model,
        *,
        temperature: float,
        top_k: int,
        top_p: float,
        repeat_penalty: float,
        seed: int,
        grammar: str | None,
        logit_bias: Mapping[int, float],
        penalty_last_n: int,
    ) -> None:
        ll = lib()
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        super().__init__(chain)
        self._ll = ll

        def add(sampler, what: str) -> None:
            if not sampler:
                raise ValueError(what)
            ll.llama_sampler_chain_add(chain, sampler)

        if logit_bias:
            arr = (ll.llama_logit_bias * len(logit_bias))()
            for i, (tok, bias) in enumerate(logit_bias.items()):
                arr[i].token, arr[i].bias = int(tok), float(bias)
            add(ll.llama_sampler_init_logit_bias(model.n_vocab, len(logit_bias), arr), "bad logit_bias")
        if repeat_penalty != 1.0:
            add(ll.llama_sampler_init_penalties(model.n_vocab, penalty_last_n, repeat_penalty, 0.0, 0.0), "bad penalty")
        if grammar is not None:
            sampler = ll.llama_sampler_init_grammar(model.vocab, grammar.encode("utf-8"), b"root")
            add(sampler, f"llama.cpp rejected the GBNF grammar (expected a 'root' rule): {grammar[:200]!r}")
        if temperature <= 0.0:
            add(ll.llama_sampler_init_greedy(), "greedy")
        else:
            add(ll.llama_sampler_init_temp(float(temperature)), "temperature")
            if top_k > 0:
                add(ll.llama_sampler_init_top_k(int(top_k)), "top_k")
            if top_p < 1.0:
                add(ll.llama_sampler_init_top_p(float(top_p), 1), "top_p")
            add(ll.llama_sampler_init_dist(int(seed) & 0xFFFFFFFF), "dist")

    def _free(self, ptr) -> None:
        self._ll.llama_sampler_free(ptr)

    def sample(self, ctx: Context, index: int = -1) -> int:
        """Pick (and accept) a token from output ``index`` of the context's last decode."""
        return int(self._ll.llama_sampler_sample(self.ptr, ctx.ptr, index))


def quantize_file(src: Path, dst: Path, ftype: int, nthread: int) -> None:
    """Run ``llama_model_quantize(src -> dst)``; raises RuntimeError on a non-zero status."""
    ll = lib()
    params = ll.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.nthread = int(nthread)
    rc = int(ll.llama_model_quantize(str(src).encode("utf-8"), str(dst).encode("utf-8"), ctypes.byref(params)))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src} -> {dst}) failed with status {rc}")


def close_all(objects: Iterable[_Owned | None]) -> None:
    """Close wrappers in order, ignoring None."""
    for obj in objects:
        if obj is not None:
            obj.close()
