"""``convert llm``: base Qwen2 (HF layout) + Nano-EmoX LoRA checkpoint -> parity-gated GGUF files.

Order of work (every check that can refuse the input runs before anything is written):
1. validate the options, the base directory (a Qwen2 HF model) and --out;
2. read the checkpoint and validate its LoRA tensors against the base config;
3. load the base in float32 with torch, merge ``W + (alpha/r)·B·A`` in float32;
4. reference logits of the merged torch model on the fixed parity texts;
5. write the F16/F32 GGUF, quantize the others with llama.cpp's ``llama_model_quantize``;
6. per type: load it with ``LanguageCore``, check its metadata and tokenizer, run the parity
   check, and move it to its final name only if it meets its thresholds;
7. write ``llm-report.json`` and ``llm-report.md``; raise ``ParityGateError`` if a type failed.

Files are produced in a hidden staging folder inside --out and renamed into place, so --out never
holds a half-written GGUF.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from converters._torch import require_torch
from converters.checkpoint import load_checkpoint
from converters.llm import lora as lora_mod
from converters.llm import parity
from converters.llm.metadata import check_gguf_metadata, gguf_metadata
from converters.llm.options import (  # noqa: F401 - re-exported: the converter's API
    DEFAULT_QUANTS,
    FLOAT_TYPES,
    QUANT_TYPES,
    SUPPORTED_TYPES,
    LLMConvertOptions,
    parse_quant_list,
)
from converters.llm.report import build_report, write_reports
from emox_edge.errors import BadInputError
from emox_edge.progress import progress

log = logging.getLogger(__name__)

REPORT_JSON = "llm-report.json"
REPORT_MD = "llm-report.md"


def gguf_filename(qtype: str) -> str:
    """The file name of one GGUF type in --out, e.g. ``llm-q4_k_m.gguf``."""
    return f"llm-{qtype}.gguf"


@dataclass(frozen=True)
class TypeResult:
    """Outcome of one GGUF type; ``path`` is None when it failed its gate."""

    qtype: str
    passed: bool
    path: Path | None
    size_bytes: int
    convert_s: float
    parity_s: float
    tokenizer_probes: int
    metrics: parity.ParityMetrics
    thresholds: parity.Thresholds
    failures: tuple[str, ...]


@dataclass(frozen=True)
class LLMConvertResult:
    out: Path
    types: tuple[TypeResult, ...]
    report_json: Path
    report_md: Path
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.types)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(t.qtype for t in self.types if not t.passed)


class ParityGateError(ValueError):
    """At least one GGUF type missed its parity thresholds; ``result`` holds the full outcome."""

    def __init__(self, result: LLMConvertResult):
        lines = [f"{t.qtype}: {'; '.join(t.failures)}" for t in result.types if not t.passed]
        super().__init__(
            f"parity gate failed for {', '.join(result.failed)} ({' | '.join(lines)}); "
            f"those GGUF files were not written, see {result.report_md}"
        )
        self.result = result


def read_base_config(base: Path) -> dict[str, Any]:
    """config.json of the base directory, checked to be a Qwen2 causal LM with a tokenizer.json."""
    if not base.exists():
        raise FileNotFoundError(f"base model directory not found: {base} (expected a Hugging Face Qwen2 directory)")
    if not base.is_dir():
        raise NotADirectoryError(f"--base {base} is a file; expected a Hugging Face Qwen2 model directory")
    path = base / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; --base must be a Hugging Face model directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path} is not valid JSON: {exc}") from exc
    archs = config.get("architectures") or []
    if config.get("model_type") != "qwen2" or (archs and "Qwen2ForCausalLM" not in archs):
        raise BadInputError(
            f"{path}: model_type {config.get('model_type')!r}, architectures {archs}; expected a Qwen2 causal LM "
            "(model_type 'qwen2', Qwen2ForCausalLM) such as Qwen2.5-1.5B-Instruct"
        )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not (base / name).is_file():
            raise FileNotFoundError(f"{base / name} not found; the GGUF tokenizer is built from it")
    return config


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; expected a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} exists and is not empty; pass --force to write into it")


def _check_thresholds(options: LLMConvertOptions, quant: tuple[str, ...]) -> None:
    extra = sorted(set(options.thresholds) - set(quant))
    if extra:
        raise BadInputError(f"thresholds given for {', '.join(extra)}, which are not requested (--quant {','.join(quant)})")


def convert_llm(options: LLMConvertOptions) -> LLMConvertResult:
    """Convert, verify and gate; see the module docstring.

    Raises:
        FileNotFoundError / NotADirectoryError: missing base, config, tokenizer or checkpoint.
        FileExistsError: ``out`` is not empty and ``force`` is False.
        ValueError: not a Qwen2 base, bad options, LoRA problems (``LoraError``), unreadable or
            untrusted checkpoint (``CheckpointError``), tokenizer mismatch.
        ParityGateError: a type missed its thresholds (after the report and passing types are written).
    """
    t_start = time.perf_counter()
    base, out = Path(options.base), Path(options.out)
    quant = parse_quant_list(options.quant)
    _check_thresholds(options, quant)
    hf_cfg = read_base_config(base)
    _check_out(out, options.force)
    checkpoint = Path(options.checkpoint) if options.checkpoint is not None else None

    torch = require_torch()
    from transformers import AutoConfig, AutoTokenizer, Qwen2ForCausalLM

    config = AutoConfig.from_pretrained(str(base))
    pairs: list[lora_mod.LoraPair] = []
    settings = None
    ckpt_info: dict[str, Any] | None = None
    if checkpoint is not None:
        state, ckpt_config = load_checkpoint(checkpoint, trust=options.trust_checkpoint)
        if not lora_mod.has_lora(state):
            raise lora_mod.LoraError(
                f"checkpoint {checkpoint} holds no '{lora_mod.LLM_PREFIX}' tensors (expected Nano-EmoX LoRA pairs; "
                "a checkpoint of a run with a frozen LLM has none: then convert without --checkpoint); "
                "first keys found", sorted(state)[:12])
        settings = lora_mod.resolve_settings(ckpt_config, r=options.lora_r, alpha=options.lora_alpha)
        pairs = lora_mod.collect_lora(state, config, settings)
        ignored = sum(1 for k in state if not k.startswith(lora_mod.LLM_PREFIX))
        del state  # the pairs keep the LoRA tensors; the rest (adapters, optimizer) is not needed here
        log.info("ignoring %d non-LLM checkpoint tensors (adapters: the encoders converter reads them)", ignored)
        ckpt_info = {"path": str(checkpoint), "size_bytes": checkpoint.stat().st_size, "lora_pairs": len(pairs),
                     "lora_r": settings.r, "lora_alpha": settings.alpha, "lora_scale": settings.scale,
                     "lora_settings_from": settings.source, "ignored_tensors": ignored}
    elif options.lora_r is not None or options.lora_alpha is not None:
        raise BadInputError("--lora-r/--lora-alpha need --checkpoint (they describe the checkpoint's LoRA)")

    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".llm-convert-", dir=out))
    try:
        with _native_log_quiet(), progress(total=_n_steps(quant, pairs), desc="convert llm", unit="step",
                                           enabled=options.progress) as bar:
            return _convert(options, base, out, staging, quant, hf_cfg, pairs, settings, ckpt_info, t_start,
                            torch, Qwen2ForCausalLM, AutoTokenizer, bar)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _convert(options, base, out, staging, quant, hf_cfg, pairs, settings, ckpt_info, t_start,
             torch, model_cls, tokenizer_cls, bar) -> LLMConvertResult:
    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.llm.quantize import quantize_gguf

    stages: dict[str, float] = {}
    floats = _float_types(quant)
    t0 = time.perf_counter()
    log.info("loading base model %s in float32", base)
    bar.set_postfix_str("load base")
    model = model_cls.from_pretrained(str(base), torch_dtype=torch.float32)
    tokenizer = tokenizer_cls.from_pretrained(str(base))
    stages["load_base_s"] = time.perf_counter() - t0
    bar.update()
    if pairs:
        t0 = time.perf_counter()
        bar.set_postfix_str("merge LoRA")
        n = lora_mod.merge_lora(model, pairs, settings)
        stages["merge_s"] = time.perf_counter() - t0
        log.info("merged %d LoRA pairs in float32 (%.1f s)", n, stages["merge_s"])
        pairs.clear()
        bar.update()

    t0 = time.perf_counter()
    log.info("reference logits of the merged torch model (%d prompts + perplexity text)", len(parity.PARITY_PROMPTS))
    bar.set_postfix_str("torch reference")
    ref = parity.torch_reference(model, tokenizer)
    stages["reference_s"] = time.perf_counter() - t0
    log.info("torch reference: perplexity %.3f over %d tokens (%.1f s)", ref.ppl, len(ref.text), stages["reference_s"])
    bar.update()

    metadata = gguf_metadata(base, tokenizer, settings=settings)
    source_type = "f16" if "f16" in floats else floats[0]
    staged: dict[str, Path] = {}
    convert_s: dict[str, float] = {}
    state_dict = model.state_dict()
    for ftype in floats:
        t0 = time.perf_counter()
        staged[ftype] = staging / gguf_filename(ftype)
        log.info("writing %s GGUF", ftype.upper())
        bar.set_postfix_str(f"write {ftype}")
        write_qwen2_gguf(base, staged[ftype], out_type=ftype, state_dict=state_dict, metadata=metadata)
        convert_s[ftype] = time.perf_counter() - t0
        bar.update()
    del model, state_dict
    gc.collect()
    stages["write_float_s"] = sum(convert_s.values())
    source = staged[source_type]
    for qtype in quant:
        if qtype in staged:
            continue
        t0 = time.perf_counter()
        log.info("quantizing %s to %s", source_type.upper(), qtype.upper())
        bar.set_postfix_str(f"quantize {qtype}")
        staged[qtype] = quantize_gguf(source, staging / gguf_filename(qtype), qtype)
        convert_s[qtype] = time.perf_counter() - t0
        bar.update()

    # Verify every type before moving any into place: an error (tokenizer, metadata) leaves --out untouched.
    results = []
    for qtype in quant:
        bar.set_postfix_str(f"parity {qtype}")
        results.append(_verify_type(qtype, staged[qtype], out, convert_s[qtype], ref, tokenizer, hf_cfg, options))
        bar.update()
    for res in results:
        final = out / gguf_filename(res.qtype)
        if res.passed:
            os.replace(staged[res.qtype], final)
        elif final.exists():
            log.warning("removing %s left by an earlier run: %s failed its gate now", final, res.qtype)
            final.unlink()
    for qtype in SUPPORTED_TYPES:
        stale = out / gguf_filename(qtype)
        if qtype not in quant and stale.exists():
            log.warning("removing %s from an earlier run (not requested now, so not in the new report)", stale)
            stale.unlink()
    stages["total_s"] = time.perf_counter() - t_start

    report = build_report(base=base, hf_config=hf_cfg, checkpoint=ckpt_info, reference=ref, types=results,
                          stages=stages, source_type=source_type)
    report_json, report_md = write_reports(out, report, json_name=REPORT_JSON, md_name=REPORT_MD)
    result = LLMConvertResult(out=out, types=tuple(results), report_json=report_json, report_md=report_md,
                              report=report)
    if not result.passed:
        raise ParityGateError(result)
    log.info("done in %.1f s: %s", stages["total_s"], ", ".join(str(t.path) for t in results))
    return result


def _float_types(quant: tuple[str, ...]) -> list[str]:
    """The float GGUFs written from the torch weights (the quantized types are made from the first)."""
    return [t for t in FLOAT_TYPES if t in quant] or ["f16"]


def _n_steps(quant: tuple[str, ...], pairs: list) -> int:
    """Steps of the progress bar: load, merge, reference, one write or quantization and one parity per type."""
    floats = _float_types(quant)
    return 2 + bool(pairs) + len(floats) + len(set(quant) - set(floats)) + len(quant)


def _verify_type(qtype, staged, out, convert_s, ref, tokenizer, hf_cfg, options) -> TypeResult:
    from emox_edge.llm import LanguageCore

    size = staged.stat().st_size
    check_gguf_metadata(staged, hf_cfg)
    log.info("%s: parity run through llama.cpp (%.1f MB)", qtype, size / 1e6)
    t0 = time.perf_counter()
    with LanguageCore.from_file(staged, n_ctx=_ctx_for(ref), n_threads=options.n_threads) as core:
        n_probes = parity.check_tokenizer(core, tokenizer, label=f"{qtype} GGUF")
        log.debug("%s: tokenizer matches on %d probes", qtype, n_probes)
        with progress(total=ref.n_positions, desc=f"parity {qtype}", unit="tok", enabled=options.progress,
                      leave=False) as bar:
            metrics = parity.gguf_parity(core, ref, progress=bar.update)
    parity_s = time.perf_counter() - t0
    limits = parity.thresholds_for(qtype, options.thresholds)
    failures = tuple(limits.failures(metrics))
    log.info("%s: top-1 %.2f%%, mean KL %.3g, max |dlogit| %.3g, perplexity %.3f (%+.2f%%)%s", qtype,
             100 * metrics.top1, metrics.mean_kl, metrics.max_abs_dlogit, metrics.ppl, 100 * metrics.ppl_change,
             "" if not failures else " FAILED: " + "; ".join(failures))
    path = out / gguf_filename(qtype) if not failures else None
    return TypeResult(qtype, not failures, path, size, convert_s, parity_s, n_probes, metrics, limits, failures)


@contextlib.contextmanager
def _native_log_quiet() -> Iterator[None]:
    """llama.cpp logs every tensor of a quantization at INFO: keep that for -v (DEBUG) only."""
    native = logging.getLogger("emox_edge.llm.llama_cpp")
    before = native.level
    if not native.isEnabledFor(logging.DEBUG):
        native.setLevel(logging.WARNING)
    try:
        yield
    finally:
        native.setLevel(before)


def _ctx_for(ref: parity.Reference) -> int:
    return max(256, ((ref.max_len + 64) // 256 + 1) * 256)
