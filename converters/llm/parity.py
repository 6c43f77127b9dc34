"""Parity of a GGUF language core against the merged PyTorch model, and the tokenizer check.

Both sides see the same token ids (so tokenization differences cannot hide in the numbers); the
tokenizer itself is checked separately (``check_tokenizer``). Statistics skip position 0 of every
sequence: llama.cpp's first position differs strongly from transformers' on quantized models
(perf-anchors.md), which would swamp the averages and says nothing about later positions.

Metrics per GGUF type:
- ``max_abs_dlogit``: largest |logit_gguf - logit_torch| over the compared positions and the vocab;
- ``top1``: share of positions whose arg-max token agrees;
- ``mean_kl``: mean over positions of KL(p_torch || p_gguf) in nats;
- ``ppl`` / ``ppl_ref`` / ``ppl_change``: perplexity of ``PERPLEXITY_TEXT`` under each model
  (predictions made from position 1 on) and the relative change ``ppl / ppl_ref - 1``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from converters.llm.options import Thresholds
from converters.llm.parity_texts import PARITY_PROMPTS, PERPLEXITY_TEXT, SPECIAL_PROBES, TOKENIZER_PROBES

log = logging.getLogger(__name__)


# Defaults chosen from the real-weights run recorded in docs/llm-converter.md (Qwen2.5-1.5B
# architecture, Nano-EmoX-shaped LoRA merged, 565 positions): KL about 3x (F16 10x) the measured value,
# top-1 3-4 points below it (its standard error there is about 1 point), perplexity change 2-4x.
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    # measured: f16 99.82% / 5.4e-6 / -0.02%; f32 is held to at least the same marks
    "f32": Thresholds(min_top1=0.99, max_kl=5e-5, max_ppl_change=0.002),
    "f16": Thresholds(min_top1=0.99, max_kl=5e-5, max_ppl_change=0.002),
    "q8_0": Thresholds(min_top1=0.95, max_kl=3e-3, max_ppl_change=0.01),  # 97.52% / 7.8e-4 / -0.18%
    "q6_k": Thresholds(min_top1=0.93, max_kl=0.012, max_ppl_change=0.04),  # 96.64% / 4.2e-3 / +1.68%
    "q5_k_m": Thresholds(min_top1=0.91, max_kl=0.025, max_ppl_change=0.04),  # 95.22% / 7.9e-3 / +0.47%
    "q4_k_m": Thresholds(min_top1=0.88, max_kl=0.05, max_ppl_change=0.05),  # 92.21% / 0.0152 / +1.40%
    "q4_0": Thresholds(min_top1=0.82, max_kl=0.12, max_ppl_change=0.08),  # 87.96% / 0.0448 / +2.28%
}


@dataclass(frozen=True)
class ParityMetrics:
    """Agreement of one GGUF with the reference (see the module docstring)."""

    n_positions: int
    max_abs_dlogit: float
    top1: float
    mean_kl: float
    ppl: float
    ppl_ref: float
    ppl_change: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reference:
    """Token ids and reference logits (float32 ``[n, vocab]``) of the parity prompts and the text."""

    prompts: list[list[int]]
    prompt_logits: list[np.ndarray]
    text: list[int]
    text_logits: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def max_len(self) -> int:
        return max([len(self.text)] + [len(p) for p in self.prompts])

    @property
    def n_positions(self) -> int:
        return len(self.text) + sum(len(p) for p in self.prompts)

    @property
    def ppl(self) -> float:
        return perplexity(self.text_logits, self.text)


class TokenizerMismatchError(ValueError):
    """llama.cpp splits a probe string differently from the Hugging Face tokenizer."""


def encode_texts(tokenizer: Any) -> tuple[list[list[int]], list[int]]:
    """HF token ids of the parity prompts and the perplexity text (no special tokens added)."""
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p in PARITY_PROMPTS]
    text = tokenizer.encode(PERPLEXITY_TEXT, add_special_tokens=False)
    if min(len(p) for p in prompts + [text]) < 3:
        raise ValueError("the tokenizer turned a parity text into fewer than 3 tokens; expected a real BPE tokenizer")
    return prompts, text


def torch_reference(model: Any, tokenizer: Any) -> Reference:
    """Run the (merged, float32) torch model over the fixed texts; keep the logits as numpy."""
    import torch

    prompts, text = encode_texts(tokenizer)
    model.eval()

    def run(ids: list[int]) -> np.ndarray:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
        return out.logits[0].to(torch.float32).numpy().copy()

    prompt_logits = [run(p) for p in prompts]
    text_logits = run(text)
    return Reference(prompts, prompt_logits, text, text_logits,
                     meta={"dtype": str(next(model.parameters()).dtype).replace("torch.", "")})


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(p) || softmax(q)) over the last axis: one value per row (a scalar array for 1-D)."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def perplexity(logits: np.ndarray, ids: Sequence[int], *, skip: int = 1) -> float:
    """exp(mean NLL) of ``ids[t+1]`` given positions ``t >= skip``."""
    lp = log_softmax(logits[skip:-1])
    targets = np.asarray(ids[skip + 1:], dtype=np.int64)
    nll = -lp[np.arange(len(targets)), targets]
    return float(math.exp(nll.mean()))


def compare(ref: Reference, test_prompts: list[np.ndarray], test_text: np.ndarray, *, skip: int = 1) -> ParityMetrics:
    """Metrics of test logits against the reference, positions ``>= skip`` of every sequence."""
    pairs = list(zip(ref.prompt_logits, test_prompts)) + [(ref.text_logits, test_text)]
    max_abs = 0.0
    agree = 0
    kl_sum = 0.0
    count = 0
    for r, t in pairs:
        if r.shape != t.shape:
            raise ValueError(f"logits of shape {t.shape} cannot be compared with reference {r.shape}")
        r, t = r[skip:], t[skip:]
        max_abs = max(max_abs, float(np.abs(r.astype(np.float64) - t).max()))
        agree += int((r.argmax(-1) == t.argmax(-1)).sum())
        kl_sum += float(kl_divergence(r, t).sum())
        count += len(r)
    ppl_ref = perplexity(ref.text_logits, ref.text, skip=skip)
    ppl = perplexity(test_text, ref.text, skip=skip)
    return ParityMetrics(
        n_positions=count,
        max_abs_dlogit=max_abs,
        top1=agree / count,
        mean_kl=max(kl_sum / count, 0.0),
        ppl=ppl,
        ppl_ref=ppl_ref,
        ppl_change=ppl / ppl_ref - 1.0,
    )


def gguf_logits(core: Any, ids: list[int]) -> np.ndarray:
    """Logits at every position of ``ids`` from a ``LanguageCore``: float32 ``[len(ids), n_vocab]``.

    ``next_token_logits`` keeps the KV cache over the common prefix of consecutive calls, so asking
    for each prefix in turn decodes one new position per call (the way generation runs).
    """
    out = np.empty((len(ids), core.n_vocab), dtype=np.float32)
    for k in range(len(ids)):
        out[k] = core.next_token_logits([list(ids[: k + 1])])
    return out


def gguf_parity(core: Any, ref: Reference, *, progress: Callable[[int], None] | None = None) -> ParityMetrics:
    """Run the GGUF model over the reference's token ids and compare."""
    prompts = []
    for ids in ref.prompts:
        prompts.append(gguf_logits(core, ids))
        if progress:
            progress(len(ids))
    text = gguf_logits(core, ref.text)
    if progress:
        progress(len(ref.text))
    return compare(ref, prompts, text)


def probe_strings(tokenizer: Any) -> list[tuple[str, bool]]:
    """``(text, parse_special)`` probes; special probes only when all their special tokens exist."""
    probes = [(p, False) for p in TOKENIZER_PROBES]
    vocab = tokenizer.get_vocab()
    for text in SPECIAL_PROBES:
        specials = [s for s in ("<|im_start|>", "<|im_end|>", "<|endoftext|>") if s in text]
        if all(s in vocab for s in specials):
            probes.append((text, True))
    return probes


def check_tokenizer(core: Any, tokenizer: Any, *, label: str) -> int:
    """Compare llama.cpp's tokenization with the HF tokenizer on the fixed probes.

    Returns the number of probes compared.

    Raises:
        TokenizerMismatchError: naming the first probe that differs and both id lists.
    """
    probes = probe_strings(tokenizer)
    for text, special in probes:
        want = tokenizer.encode(text, add_special_tokens=False)
        got = list(core.tokenize(text, special=special))
        if got != want:
            raise TokenizerMismatchError(
                f"{label}: llama.cpp tokenizes {text!r} as {got[:24]}, the Hugging Face tokenizer as {want[:24]}; "
                "the GGUF vocabulary/merges/pre-tokenizer do not match the base model's tokenizer"
            )
    return len(probes)


def thresholds_for(qtype: str, overrides: Mapping[str, Thresholds] | None = None) -> Thresholds:
    """The thresholds of ``qtype``: an override when given, else the default."""
    if overrides and qtype in overrides:
        return overrides[qtype]
    return DEFAULT_THRESHOLDS.get(qtype, Thresholds())
