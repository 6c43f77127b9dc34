"""Nano-EmoX LoRA: find, validate and merge the adapter pairs into the base Qwen2 weights.

Training (spec section 6.2) wraps Qwen2.5 in PEFT with LoRA on the 7 linear layers of every block;
the checkpoint stores, per layer ``i`` and module ``m``,
``llama_model.base_model.model.model.layers.{i}.{m}.lora_{A,B}.default.weight`` with A ``[r, in]``
and B ``[out, r]``. The merge is ``W' = W + (alpha / r) * B @ A``, computed in float32 before any
rounding. Validation is strict: the released loader used ``strict=False`` and would hide typos.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from converters.checkpoint import find_config_values
from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)

LLM_PREFIX = "llama_model."
LORA_PREFIX = "llama_model.base_model.model."
TARGET_MODULES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
_LORA_RE = re.compile(
    r"^llama_model\.base_model\.model\.model\.layers\.(\d+)\."
    r"(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.default\.weight$"
)


class LoraError(BadInputError):
    """The checkpoint's LoRA tensors do not fit the base model; ``keys`` lists the offending keys."""

    def __init__(self, message: str, keys: list[str]):
        shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
        super().__init__(f"{message}: {shown}")
        self.keys = list(keys)


@dataclass(frozen=True)
class LoraSettings:
    """Rank and scaling of the adapters: ``scale = alpha / r``."""

    r: int
    alpha: float
    source: str  # "checkpoint config" | "flags"

    @property
    def scale(self) -> float:
        return self.alpha / self.r


@dataclass(frozen=True)
class LoraPair:
    """One adapter: ``target`` is the HF key of the base weight it modifies."""

    target: str
    a: Any  # torch.Tensor [r, in]
    b: Any  # torch.Tensor [out, r]


def module_shapes(hf_config: Any) -> dict[str, tuple[int, int]]:
    """``(out, in)`` of every LoRA target module, from a Qwen2 config (never hard-coded)."""
    hidden = int(hf_config.hidden_size)
    heads = int(hf_config.num_attention_heads)
    kv_heads = int(getattr(hf_config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(hf_config, "head_dim", None) or hidden // heads)
    ffn = int(hf_config.intermediate_size)
    return {
        "self_attn.q_proj": (heads * head_dim, hidden),
        "self_attn.k_proj": (kv_heads * head_dim, hidden),
        "self_attn.v_proj": (kv_heads * head_dim, hidden),
        "self_attn.o_proj": (hidden, heads * head_dim),
        "mlp.gate_proj": (ffn, hidden),
        "mlp.up_proj": (ffn, hidden),
        "mlp.down_proj": (hidden, ffn),
    }


def lora_key(layer: int, module: str, which: str) -> str:
    """The checkpoint key of one LoRA matrix (``which`` is "A" or "B")."""
    return f"{LORA_PREFIX}model.layers.{layer}.{module}.lora_{which}.default.weight"


def has_lora(state_dict: Mapping[str, Any]) -> bool:
    return any(k.startswith(LLM_PREFIX) for k in state_dict)


def resolve_settings(
    config: Mapping[str, Any] | None, *, r: int | None = None, alpha: float | None = None
) -> LoraSettings:
    """Rank and alpha: from the checkpoint's saved config (``lora_r``/``lora_alpha`` anywhere in it)
    when present, else from the flags.

    Raises:
        ValueError: neither source gives both values, the config holds conflicting values, or the
            flags contradict the config.
    """
    cfg_r = _unique(find_config_values(config or {}, "lora_r"), "lora_r")
    cfg_alpha = _unique(find_config_values(config or {}, "lora_alpha"), "lora_alpha")
    if cfg_r is not None and cfg_alpha is not None:
        for name, flag, saved in (("--lora-r", r, cfg_r), ("--lora-alpha", alpha, cfg_alpha)):
            if flag is not None and float(flag) != float(saved):
                raise BadInputError(
                    f"{name} {flag} contradicts the checkpoint's saved config ({name[2:].replace('-', '_')}="
                    f"{saved}); drop the flag or fix the checkpoint"
                )
        return _checked(cfg_r, cfg_alpha, "checkpoint config")
    r = r if r is not None else cfg_r
    alpha = alpha if alpha is not None else cfg_alpha
    if r is None or alpha is None:
        missing = [n for n, v in (("--lora-r", r), ("--lora-alpha", alpha)) if v is None]
        raise BadInputError(
            "the checkpoint holds LoRA weights but its config does not say lora_r/lora_alpha; "
            f"pass {' and '.join(missing)} (the released Nano-EmoX config uses r=16, alpha=32)"
        )
    return _checked(r, alpha, "flags" if cfg_r is None and cfg_alpha is None else "checkpoint config + flags")


def _unique(values: list[Any], name: str) -> Any:
    distinct = {str(v) for v in values if v is not None}
    if len(distinct) > 1:
        raise BadInputError(f"the checkpoint's config holds conflicting {name} values {sorted(distinct)}")
    return next((v for v in values if v is not None), None)


def _checked(r: Any, alpha: Any, source: str) -> LoraSettings:
    try:
        r_int, alpha_f = int(r), float(alpha)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"LoRA r={r!r} alpha={alpha!r} ({source}): expected a positive integer and a number") from exc
    if r_int <= 0 or r_int != float(r) or not math.isfinite(alpha_f):
        raise BadInputError(f"LoRA r={r!r} alpha={alpha!r} ({source}): expected a positive integer r and a finite alpha")
    return LoraSettings(r=r_int, alpha=alpha_f, source=source)


def collect_lora(state_dict: Mapping[str, Any], hf_config: Any, settings: LoraSettings) -> list[LoraPair]:
    """Validate the checkpoint's ``llama_model.*`` tensors against the base config; return the pairs.

    Every layer of the base must carry all 7 adapters (A and B), with A ``[r, in]`` and B ``[out, r]``.
    Keys outside ``llama_model.`` belong to the encoders converter and are ignored here.

    Raises:
        LoraError: missing, unexpected or misshaped LoRA keys (all of them listed).
    """
    n_layers = int(hf_config.num_hidden_layers)
    shapes = module_shapes(hf_config)
    found: dict[tuple[int, str, str], str] = {}
    unknown: list[str] = []
    for key in state_dict:
        if not key.startswith(LLM_PREFIX):
            continue
        match = _LORA_RE.match(key)
        if match is None or int(match.group(1)) >= n_layers:
            unknown.append(key)
            continue
        found[(int(match.group(1)), match.group(2), match.group(3))] = key
    if unknown:
        raise LoraError(
            f"unexpected keys under '{LLM_PREFIX}' (expected only LoRA pairs "
            f"'{LORA_PREFIX}model.layers.{{0..{n_layers - 1}}}.<module>.lora_{{A,B}}.default.weight')",
            sorted(unknown),
        )
    missing = [
        lora_key(i, m, w)
        for i in range(n_layers)
        for m in TARGET_MODULES
        for w in "AB"
        if (i, m, w) not in found
    ]
    if missing:
        raise LoraError(
            f"missing LoRA keys (every one of the {n_layers} layers needs A and B for {len(TARGET_MODULES)} modules)",
            missing,
        )
    misshaped: list[str] = []
    pairs: list[LoraPair] = []
    for i in range(n_layers):
        for module in TARGET_MODULES:
            out_f, in_f = shapes[module]
            a, b = state_dict[found[(i, module, "A")]], state_dict[found[(i, module, "B")]]
            if tuple(a.shape) != (settings.r, in_f):
                misshaped.append(f"{found[(i, module, 'A')]} {list(a.shape)} != [{settings.r}, {in_f}]")
            if tuple(b.shape) != (out_f, settings.r):
                misshaped.append(f"{found[(i, module, 'B')]} {list(b.shape)} != [{out_f}, {settings.r}]")
            pairs.append(LoraPair(target=f"model.layers.{i}.{module}.weight", a=a, b=b))
    if misshaped:
        raise LoraError(f"misshaped LoRA tensors (r={settings.r} from {settings.source})", misshaped)
    bad_values = [p.target for p in pairs if not (_finite(p.a) and _finite(p.b))]
    if bad_values:
        raise LoraError("LoRA tensors holding NaN or Inf for targets", bad_values)
    log.info("LoRA: %d pairs (r=%d, alpha=%g, scale=%g, from %s)", len(pairs), settings.r, settings.alpha,
             settings.scale, settings.source)
    return pairs


def _finite(tensor: Any) -> bool:
    import torch

    return bool(torch.isfinite(tensor).all())


def merge_lora(model: Any, pairs: list[LoraPair], settings: LoraSettings) -> int:
    """Add ``scale * B @ A`` to each target weight of ``model`` (a torch module) in float32, in place.

    The model's parameters must already be float32 (load the base with ``torch_dtype=float32``), so
    nothing is rounded before the GGUF writer. Returns the number of merged tensors.

    Raises:
        LoraError: a target weight is absent from the model or has another shape.
    """
    import torch

    params = dict(model.named_parameters())
    absent = [p.target for p in pairs if p.target not in params]
    if absent:
        raise LoraError("LoRA targets not found in the base model", absent)
    wrong = [p.target for p in pairs if tuple(params[p.target].shape) != (p.b.shape[0], p.a.shape[1])]
    if wrong:
        raise LoraError("base weights whose shape does not match their LoRA pair", wrong)
    with torch.no_grad():
        for pair in pairs:
            weight = params[pair.target]
            if weight.dtype != torch.float32:
                raise TypeError(f"{pair.target} is {weight.dtype}; load the base model in float32 before merging")
            delta = pair.b.to(torch.float32) @ pair.a.to(torch.float32)
            weight.add_(delta, alpha=settings.scale)
    return len(pairs)
