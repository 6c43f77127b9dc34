"""Options of ``convert llm`` (torch-free): ``emox-edge convert llm`` derives its flags from them.

``LLMConvertOptions`` says what ``convert_llm`` does; ``Thresholds`` are the parity pass marks of one
GGUF type (the ``--min-top1``, ``--max-kl``, ``--max-ppl-change`` and ``--max-dlogit`` flags set them per
type as TYPE=VALUE pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from converters._options import check_required, paths_as_path
from emox_edge.errors import BadInputError

DEFAULT_QUANTS = ("f16", "q8_0", "q4_k_m")
FLOAT_TYPES = ("f32", "f16")
QUANT_TYPES = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")
SUPPORTED_TYPES = FLOAT_TYPES + QUANT_TYPES


def parse_quant_list(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"f16,q8_0"`` or a sequence -> a validated tuple of unique lower-case types."""
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    if not items:
        raise BadInputError(f"no GGUF type given; expected a comma list of {', '.join(SUPPORTED_TYPES)}")
    bad = [v for v in items if v not in SUPPORTED_TYPES]
    if bad:
        raise BadInputError(f"unknown GGUF type(s) {', '.join(bad)}; valid: {', '.join(SUPPORTED_TYPES)}")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Thresholds:
    """Pass marks of one GGUF type; a mark that is None is not checked.

    Attributes:
        min_top1: the lowest share of positions (0 to 1) whose most likely token agrees with PyTorch.
        max_kl: the highest mean KL divergence from PyTorch, in nats.
        max_ppl_change: the largest relative change of perplexity, as a fraction (0.02) or a
            percentage (2%).
        max_abs_dlogit: the largest absolute difference of any logit from PyTorch.
    """

    min_top1: float | None = None
    max_kl: float | None = None
    max_ppl_change: float | None = None
    max_abs_dlogit: float | None = field(default=None, metadata={"flag": "--max-dlogit"})

    def failures(self, metrics) -> list[str]:
        """What ``metrics`` (a ``parity.ParityMetrics``) misses of these marks, one line each."""
        out = []
        if self.min_top1 is not None and not metrics.top1 >= self.min_top1:
            out.append(f"top-1 agreement {metrics.top1:.4f} < {self.min_top1}")
        if self.max_kl is not None and not metrics.mean_kl <= self.max_kl:
            out.append(f"mean KL {metrics.mean_kl:.3g} > {self.max_kl}")
        if self.max_ppl_change is not None and not abs(metrics.ppl_change) <= self.max_ppl_change:
            out.append(f"perplexity change {metrics.ppl_change:+.3%} beyond +-{self.max_ppl_change:.3%}")
        if self.max_abs_dlogit is not None and not metrics.max_abs_dlogit <= self.max_abs_dlogit:
            out.append(f"max |dlogit| {metrics.max_abs_dlogit:.3g} > {self.max_abs_dlogit}")
        return out


@dataclass(frozen=True)
class LLMConvertOptions:
    """What ``convert_llm`` does; the flags of ``emox-edge convert llm`` are these fields.

    Attributes:
        base: the Hugging Face Qwen2 directory to convert (config.json, tokenizer.json and the
            safetensors files).
        out: the output directory. It must be empty unless force (--force) is set.
        checkpoint: the Nano-EmoX training checkpoint (.pth or .safetensors) holding the LoRA weights.
            Without one the base model is converted as it is.
        quant: the GGUF types to write, a comma list of f32, f16, q8_0, q6_k, q5_k_m, q4_k_m and q4_0
            (the API also takes a tuple).
        force: write into a non-empty output directory, replacing files of the same names.
        trust_checkpoint: allow a checkpoint that needs arbitrary unpickling. Use it only for a file from
            a source you trust.
        lora_r: the LoRA rank, for a checkpoint whose config does not record it.
        lora_alpha: the LoRA alpha, for a checkpoint whose config does not record it.
        thresholds: per-type overrides of the parity pass marks; types not named keep the defaults
            that docs/llm-converter.md lists.
        n_threads: llama.cpp threads for the parity runs. By default as many as the CPU has physical
            cores.
        progress: show progress bars, on a terminal and while the log level shows INFO.
    """

    base: Path | None = field(default=None, metadata={"required": True, "metavar": "DIR"})
    out: Path | None = field(default=None, metadata={"required": True, "metavar": "DIR"})
    checkpoint: Path | None = field(default=None, metadata={"metavar": "FILE"})
    quant: str | tuple[str, ...] = field(default=",".join(DEFAULT_QUANTS), metadata={"metavar": "TYPES"})
    force: bool = False
    trust_checkpoint: bool = False
    lora_r: int | None = field(default=None, metadata={"metavar": "R"})
    lora_alpha: float | None = field(default=None, metadata={"metavar": "A"})
    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    n_threads: int | None = field(default=None, metadata={"flag": "--threads", "metavar": "N"})
    progress: bool = True

    def __post_init__(self) -> None:
        check_required(self, "convert llm")
        paths_as_path(self, "base", "out", "checkpoint")
        object.__setattr__(self, "quant", parse_quant_list(self.quant))
