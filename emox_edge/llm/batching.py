"""Several prompts answered together in one llama.cpp context: shared prefixes once, answers in lockstep.

``run_batch(core, requests)`` is what ``LanguageCore.run_batch`` does. Every request is a prompt
plus either sampling settings (generate an answer) or ``candidates`` (score each continuation by
its likelihood, teacher-forced, and pick the most likely). Each answer and each candidate is one
llama.cpp sequence in the core's unified KV cache; their prompts are laid out as a prefix tree, so a
position several prompts share (the system prompt, the clip's perception, the subtitle) is decoded
once, in one row that belongs to all of their sequences. The rows of every prompt go through
llama.cpp in as few batches as ``n_batch`` allows; then the answers of all generating requests are
decoded together, one ``llama_decode`` per step for every live sequence.

Batched and alone give the same answers up to the CPU kernels' rounding (tested: greedy tokens
equal, logits within 1e-3 on an F32 model with flash attention off).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.llm import _native
from emox_edge.llm.generation import GenerationResult, TextAssembler
from emox_edge.llm.segments import common_prefix
from emox_edge.llm.settings import check_generation

_RANDOM_SEED = 0xFFFFFFFF
PARKED = 8  # answers kept in the cache after a batch (empathize's reply continues its chain of thought)


def parked_capacity(n_seq_max: int) -> int:
    """How many sequence ids at the top are kept for parked answers."""
    return min(PARKED, n_seq_max // 4)


@dataclass(frozen=True)
class BatchRequest:
    """One question of a batch: a prompt and how to answer it.

    ``candidates`` set: score each continuation (text; special tokens such as ``<|im_end|>`` are
    parsed, so a candidate can end with the end-of-turn token) and answer with a ``Scores``.
    Otherwise generate, with the same settings as ``LanguageCore.generate``.
    """

    segments: Any
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repeat_penalty: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    grammar: str | None = None
    logit_bias: Mapping[int, float] | None = None
    candidates: Sequence[str] | None = None


@dataclass(frozen=True)
class Scores:
    """The candidates of a scoring request, by likelihood.

    Attributes:
        candidates: the continuations, as given.
        logprobs: natural-log probability of each continuation's tokens after the prompt (summed).
        n_tokens: tokens of each continuation.
        best: index of the most likely continuation.
        n_prompt / n_reused / prefill_ms: as in ``GenerationResult`` (the prefill is the whole batch's).
    """

    candidates: tuple[str, ...]
    logprobs: tuple[float, ...]
    n_tokens: tuple[int, ...]
    best: int
    n_prompt: int
    n_reused: int
    prefill_ms: float

    @property
    def text(self) -> str:
        return self.candidates[self.best]

    def probabilities(self) -> dict[str, float]:
        """The candidates' likelihoods normalised over the candidates (they sum to 1)."""
        lp = np.asarray(self.logprobs, np.float64)
        p = np.exp(lp - lp.max())
        p /= p.sum()
        return {c: float(x) for c, x in zip(self.candidates, p)}


@dataclass
class _Node:
    """One position of the prefix tree: its item, the sequences that hold it, its children by key."""

    key: Any
    kind: str  # "tokens" | "embd"
    item: Any
    pos: int
    seqs: list[int] = field(default_factory=list)
    children: dict = field(default_factory=dict)
    want: set = field(default_factory=set)  # token ids whose log-probability is read here


@dataclass
class _Gen:
    """A generating request while it decodes."""

    index: int
    seq: int
    request: BatchRequest
    sampler: Any
    text: TextAssembler
    pos: int  # the next position to write (starts at the prompt's length)
    n_prompt: int = 0
    tokens: list[int] = field(default_factory=list)
    reason: str = "length"
    t_first: float | None = None
    t_end: float | None = None
    next_token: int | None = None
    decoded: int = 0  # generated tokens that went into the KV cache


def run_batch(core, requests: Sequence[BatchRequest], *,
              on_piece: Callable[[int, str], None] | None = None) -> list[GenerationResult | Scores]:
    """Answer ``requests`` together (see the module docstring); results in the order of the requests.

    Requests that do not fit the context's cells or sequences together are run in several waves.

    Raises:
        TypeError / ValueError: a bad prompt or setting (as ``LanguageCore.generate``); ValueError
        when one prompt alone exceeds n_ctx.
    """
    if not requests:
        return []
    prepared = [_prepare(core, i, r) for i, r in enumerate(requests)]
    results: list[Any] = [None] * len(requests)
    for wave in _waves(core, prepared):
        for index, result in _run_wave(core, wave, on_piece).items():
            results[index] = result
    return results


@dataclass
class _Prepared:
    index: int
    request: BatchRequest
    keys: list
    items: list  # (kind, item) per position
    candidates: list[list[int]]  # token ids per candidate (scoring requests)
    stops: tuple[str, ...]
    bias: dict[int, float]

    @property
    def leaves(self) -> int:
        return len(self.candidates) if self.request.candidates is not None else 1

    @property
    def cells(self) -> int:
        extra = sum(len(c) for c in self.candidates) if self.request.candidates is not None else \
            int(self.request.max_new_tokens) + 1
        return len(self.keys) + extra


def _prepare(core, index: int, request: BatchRequest) -> _Prepared:
    if not isinstance(request, BatchRequest):
        raise BadInputError(f"run_batch takes BatchRequest items; item {index} is {type(request).__name__}")
    stops, bias = check_generation(core, request)
    runs = core._runs(request.segments)
    n_prompt = core._check_fits(runs)
    keys, items = [], []
    for run in runs:
        keys.extend(run.keys())
        items.extend((run.kind, x) for x in run.data)
    candidates: list[list[int]] = []
    if request.candidates is not None:
        if isinstance(request.candidates, str) or not request.candidates:
            raise BadInputError(f"request {index}: candidates must be a non-empty list of strings")
        for text in request.candidates:
            if not isinstance(text, str) or not text:
                raise BadInputError(f"request {index}: every candidate must be a non-empty string; got {text!r}")
            candidates.append(core.tokenize(text, special=True))
        if n_prompt + max(len(c) for c in candidates) > core.n_ctx:
            raise BadInputError(f"request {index}: prompt and candidate exceed n_ctx={core.n_ctx}")
    return _Prepared(index, request, keys, items, candidates, stops, bias)


def _waves(core, prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """Group requests, in order, so each group fits the context's sequences and KV cells (a prompt
    counts only the positions it does not share with an earlier prompt of its group)."""
    waves: list[list[_Prepared]] = [[]]
    leaves = cells = 0
    capacity = core.n_seq_max - parked_capacity(core.n_seq_max)
    for p in prepared:
        if p.leaves > capacity:
            raise BadInputError(f"request {p.index} has {p.leaves} candidates; at most {capacity} can be scored "
                                f"together (n_seq={core.n_seq_max}, {core.n_seq_max - capacity} kept for cached answers)")
        shared = max((common_prefix(q.keys, p.keys) for q in waves[-1]), default=0)
        if waves[-1] and (leaves + p.leaves > capacity or cells + p.cells - shared > core.n_ctx):
            waves.append([])
            leaves = cells = shared = 0
        waves[-1].append(p)
        leaves += p.leaves
        cells += p.cells - shared
    return waves


def _run_wave(core, wave: list[_Prepared], on_piece) -> dict[int, Any]:
    ctx = core._ctx
    t0 = time.perf_counter()
    # leaves: one per generating request, one per candidate; leaf j is sequence j
    leaves: list[tuple[_Prepared, int | None]] = []
    for p in wave:
        if p.request.candidates is None:
            leaves.append((p, None))
        else:
            leaves.extend((p, k) for k in range(len(p.candidates)))
    try:
        keeps = _reuse(core, [p.keys for p, _ in leaves])
        root = _Node(None, "", None, -1)
        final_rows = []  # the last prompt position of each generating request: decoded last, own row
        for seq, ((p, k), keep) in enumerate(zip(leaves, keeps)):
            if k is None:
                _insert(root, p.keys[:-1], p.items[:-1], seq, keep)
                kind, item = p.items[-1]
                final_rows.append((kind, item, len(p.keys) - 1, (seq,), True))
            else:
                cand = p.candidates[k]
                node = _insert(root, p.keys, p.items, seq, keep)
                node.want.add(cand[0])
                _insert(node, cand[:-1], [("tokens", t) for t in cand[:-1]], seq, len(p.keys), base=len(p.keys),
                        want=cand[1:])
        rows = []
        _collect(root, rows)
        logprobs = _decode_rows(core, rows + final_rows, len(rows))
        t_prefill = time.perf_counter()
        reused = {}
        for (p, _), keep in zip(leaves, keeps):
            reused[p.index] = min(reused.get(p.index, keep), keep)
        out: dict[int, Any] = {}
        for p in wave:
            if p.request.candidates is not None:
                out[p.index] = _scores(p, logprobs, root, reused[p.index], (t_prefill - t0) * 1e3)
        gens = [_start(core, seq, p, len(p.keys)) for seq, (p, k) in enumerate(leaves) if k is None]
        _generate(core, gens, len(rows), on_piece)
        for g in gens:
            out[g.index] = _result(g, reused[g.index], t0, t_prefill)
        _park(core, leaves, gens)
        return out
    except BaseException:
        core._forget()
        raise


def _reuse(core, leaf_keys: list[list]) -> list[int]:
    """Give each leaf sequence the longest prefix of its prompt that some cached sequence holds
    (sequence 0, or one parked by the previous batch); returns the reused length per leaf.

    Every leaf decodes at least its last prompt position (fresh logits). The parked sequences are
    dropped afterwards; cells a leaf reuses stay.
    """
    ctx = core._ctx
    sources = {0: core._keys, **core._parked} if core.prefix_cache else {}
    plan = []
    for keys in leaf_keys:
        best, size = 0, 0
        for seq, cached in sources.items():
            n = min(common_prefix(cached, keys), len(keys) - 1)
            if n > size:
                best, size = seq, n
        plan.append((best, size))
    for j in range(1, len(leaf_keys)):  # leaf 0 is sequence 0 itself: it is filled last
        ctx.truncate(0, j)
        src, n = plan[j]
        if n:
            ctx.copy_seq(src, j, 0, n)
    src, n = plan[0]
    if src == 0:
        ctx.truncate(n, 0)
    else:
        ctx.truncate(0, 0)
        if n:
            ctx.copy_seq(src, 0, 0, n)
    core._drop_parked()
    core._keys = list(leaf_keys[0][:plan[0][1]])
    return [n for _, n in plan]


def _insert(node: _Node, keys, items, seq: int, start: int, *, base: int = 0, want=()) -> _Node:
    """Walk/extend the tree along ``keys`` (positions ``base...``), adding ``seq`` to positions >= ``start``
    (the ones it does not hold in the cache already)."""
    for i in range(len(keys)):
        key = keys[i]
        child = node.children.get(key)
        if child is None:
            kind, item = items[i]
            child = node.children[key] = _Node(key, kind, item, base + i)
        if base + i >= start:
            child.seqs.append(seq)
        if want:
            child.want.add(want[i])
        node = child
    return node


def _collect(node: _Node, rows: list) -> None:
    """Rows of the tree in preorder: (kind, item, pos, seqs, logits?, node); positions every
    sequence through them already holds are not rows."""
    stack = list(reversed(list(node.children.values())))
    while stack:
        child = stack.pop()
        if child.seqs:
            rows.append((child.kind, child.item, child.pos, tuple(child.seqs), bool(child.want), child))
        stack.extend(reversed(list(child.children.values())))


def _decode_rows(core, rows: list, n_tree: int) -> dict[int, dict[int, float]]:
    """Decode rows in order, in batches of one kind of at most n_batch rows; the rows after
    ``n_tree`` (the generating requests' last positions) go in the final batch, so their logits
    are the context's current ones. Returns id(node) -> {token: log-probability} where asked."""
    if len({row[0] for row in rows}) > 1 and core._merge_rows:
        text = [i for i, row in enumerate(rows) if row[0] == "tokens"]
        try:  # text as its own embedding rows: the same computation, in fewer batches
            embedded = core.token_embeddings([int(rows[i][1]) for i in text])
        except NotImplementedError:
            core._merge_rows = False
        else:
            rows = list(rows)
            for i, row in zip(text, embedded):
                rows[i] = ("embd", row, *rows[i][2:])
    tree, final = rows[:n_tree], rows[n_tree:]
    chunks = []
    for part in (tree, final):
        chunk: list = []
        for row in part:
            if chunk and (row[0] != chunk[0][0] or len(chunk) == core.n_batch):
                chunks.append(chunk)
                chunk = []
            chunk.append(row)
        if chunk:
            chunks.append(chunk)
    if final and len(chunks[-1]) < len(final):
        raise BadInputError(f"{len(final)} answers at once exceed n_batch={core.n_batch}")
    logprobs: dict[int, dict[int, float]] = {}
    core.rows_decoded += len(rows)
    for chunk in chunks:
        kind = chunk[0][0]
        batch = core._multi_batch(kind)
        items = np.stack([r[1] for r in chunk]) if kind == "embd" else [int(r[1]) for r in chunk]
        core._ctx.decode(batch.fill_rows(items, [r[2] for r in chunk], [r[3] for r in chunk], [r[4] for r in chunk]))
        for i, row in enumerate(chunk):
            node = row[5] if len(row) > 5 else None
            if node is not None and node.want:
                logits = core._ctx.logits(i).astype(np.float64)
                top = logits.max()
                lse = top + np.log(np.exp(logits - top).sum())
                logprobs[id(node)] = {t: float(logits[t] - lse) for t in node.want}
    return logprobs


def _scores(p: _Prepared, logprobs, root: _Node, keep: int, prefill_ms: float) -> Scores:
    totals = []
    node_path = _path(root, p.keys)
    for cand in p.candidates:
        node, total = node_path, 0.0
        for t in cand:
            total += logprobs[id(node)][t]
            node = node.children.get(t, node)
        totals.append(total)
    best = int(np.argmax(totals))
    return Scores(tuple(p.request.candidates), tuple(totals), tuple(len(c) for c in p.candidates), best,
                  len(p.keys), keep, prefill_ms)


def _path(root: _Node, keys) -> _Node:
    node = root
    for key in keys:
        node = node.children[key]
    return node


def _start(core, seq: int, p: _Prepared, n_prompt: int) -> _Gen:
    r = p.request
    sampler = _native.Sampler(
        core._model, temperature=float(r.temperature), top_k=int(r.top_k), top_p=float(r.top_p),
        repeat_penalty=float(r.repeat_penalty), seed=_RANDOM_SEED if r.seed is None else int(r.seed),
        grammar=r.grammar, logit_bias=p.bias, penalty_last_n=max(int(r.max_new_tokens), 1))
    return _Gen(p.index, seq, r, sampler, TextAssembler(p.stops), n_prompt, n_prompt)


def _generate(core, gens: list[_Gen], n_tree: int, on_piece) -> None:
    """Decode every generating request together; the final prefill batch holds their last positions,
    in order, so request i's logits are output i of that batch."""
    model, ctx = core._model, core._ctx
    live = [g for g in gens if g.request.max_new_tokens > 0]
    for g in gens:
        if g.request.max_new_tokens == 0:
            g.t_end = time.perf_counter()
            g.sampler.close()
    index = {g.seq: i for i, g in enumerate(gens)}  # row of each request in the final prefill batch
    try:
        while live:
            still = []
            for g in live:
                tok = g.sampler.sample(ctx, index[g.seq])
                g.t_first = g.t_first or time.perf_counter()
                done = False
                if model.is_eog(tok):
                    g.reason = "grammar" if g.request.grammar is not None else "eos"
                    done = True
                else:
                    g.tokens.append(tok)
                    piece, stopped = g.text.push(model.token_piece(tok))
                    if piece and on_piece is not None:
                        on_piece(g.index, piece)
                    if stopped:
                        g.reason = "stop"
                        done = True
                    elif len(g.tokens) >= g.request.max_new_tokens or g.pos >= core.n_ctx:
                        done = True
                if done:
                    if g.reason != "stop":
                        tail = g.text.finish()
                        if tail and on_piece is not None:
                            on_piece(g.index, tail)
                    g.t_end = time.perf_counter()
                    g.sampler.close()
                else:
                    g.next_token = tok
                    still.append(g)
            live = still
            if not live:
                break
            batch = core._multi_batch("tokens")
            ctx.decode(batch.fill_rows([g.next_token for g in live], [g.pos for g in live],
                                       [(g.seq,) for g in live], [True] * len(live)))
            index = {g.seq: i for i, g in enumerate(live)}
            for g in live:
                g.pos += 1
                g.decoded += 1
    finally:
        for g in gens:
            g.sampler.close()


def _result(g: _Gen, keep: int, t0: float, t_prefill: float) -> GenerationResult:
    t_end = g.t_end or time.perf_counter()
    decode_s = t_end - t_prefill
    return GenerationResult(
        text=g.text.text, token_ids=tuple(g.tokens), stop_reason=g.reason, n_prompt=g.n_prompt,
        n_generated=len(g.tokens), n_reused=keep, prefill_ms=(t_prefill - t0) * 1e3, decode_ms=decode_s * 1e3,
        decode_tokens_per_s=len(g.tokens) / decode_s if g.tokens and decode_s > 0 else 0.0,
        first_token_ms=((g.t_first or t_end) - t0) * 1e3)


def _park(core, leaves, gens: list[_Gen]) -> None:
    """Keep what the answers decoded for the next call to reuse: sequence 0 as it is, the other
    generating sequences parked at the top sequence ids (at most ``PARKED``); scored candidates go."""
    ctx = core._ctx
    decoded = {g.seq: g for g in gens}
    g0 = decoded.get(0)
    core._keys = list(leaves[0][0].keys) + (list(g0.tokens[:g0.decoded]) if g0 else [])
    if leaves[0][1] is not None:  # a candidate: keep its prompt only
        ctx.truncate(len(leaves[0][0].keys), 0)
    parked_ids = iter(range(core.n_seq_max - 1, core.n_seq_max - 1 - parked_capacity(core.n_seq_max), -1))
    for seq in range(1, len(leaves)):
        g = decoded.get(seq)
        target = next(parked_ids, None) if g is not None and core.prefix_cache else None
        if target is not None:
            ctx.truncate(0, target)
            ctx.copy_seq(seq, target, -1, -1)
            core._parked[target] = list(leaves[seq][0].keys) + list(g.tokens[:g.decoded])
        ctx.truncate(0, seq)
