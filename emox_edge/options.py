"""Options shared by every pipeline kind; the CLI derives its flags from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from emox_edge.media import Clip
from emox_edge.results import ClipResult


@dataclass(frozen=True)
class PipelineOptions:
    """How a bundle is run.

    Attributes:
        device: "auto" | "cpu" | "cuda" | "metal" (see ``emox_edge.devices.resolve_device``).
        n_threads: CPU threads for llama.cpp and ONNX Runtime (None: the physical cores not kept busy by
            other programs, see ``emox_edge.devices.default_threads``).
        quant: which GGUF of the bundle to load (e.g. "q4_k_m"); None: the bundle's default.
        precision: "int8" or "fp32" ONNX graphs, when the bundle has both.
        deterministic: greedy decoding with a fixed seed (tests, evaluation).
        seed: sampling seed when not deterministic (None: random).
        max_new_tokens: cap on generated tokens per task (None: the bundle's setting).
        constrain: grammar-constrain closed-set answers so they are always a valid label.
        n_ctx: context length for the language core.
    """

    device: str = "auto"
    n_threads: int | None = None
    quant: str | None = None
    precision: str = "int8"
    deterministic: bool = False
    seed: int | None = None
    max_new_tokens: int | None = None
    constrain: bool = True
    n_ctx: int = 4096
    extra: Mapping[str, object] = field(default_factory=dict)


class ClipAnalyzer(Protocol):
    """What every pipeline kind (nano-emox, lite) offers the runtime and the CLI."""

    def analyze(self, clip: Clip, tasks: Sequence[str], *, history: Sequence[str] = ()) -> ClipResult: ...

    def close(self) -> None: ...
