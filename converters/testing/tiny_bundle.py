"""A complete, tiny nano-emox bundle built by the real converters (seconds, a few MB).

``build_tiny_bundle(out_dir)`` runs exactly what a user runs, at toy sizes:
tiny encoders + synthetic checkpoint (``tiny_encoders``) -> ``convert_encoders`` (ONNX fp32 + int8,
parity-gated on a real face and real speech) ; tiny Qwen2 (``tiny_qwen``) -> GGUF f16 and q8_0 with the
Nano-EmoX metadata ; ``assemble_bundle`` -> ``out_dir/bundle.json`` verified with sha256. The language
core's width equals the adapters' output width (64), and the slot counts are the real ones (32/32/4/1).

Calling it again with the same arguments on a finished bundle returns at once (the arguments are
stamped in the manifest under ``"tiny"``), so a session fixture or a CI cache can share it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_VERSION = 1
LLM_WIDTH = 64


def build_tiny_bundle(out_dir: str | Path, *, seed: int = 0, int8: bool = True) -> Path:
    """Build (or reuse) the tiny nano-emox bundle in ``out_dir``; returns ``Path(out_dir)``."""
    from emox_edge.bundle.manifest import Bundle, BundleError

    out = Path(out_dir)
    stamp = {"version": _VERSION, "seed": seed, "int8": int8}
    if (out / "bundle.json").is_file():
        try:
            if dict(Bundle.open(out, verify="size").manifest.get("tiny", {})) == stamp:
                return out
        except (BundleError, FileNotFoundError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=out.parent))
    try:
        enc_dir = _encoders(work, seed=seed, int8=int8)
        llm_dir = _language_core(work, seed=seed)
        _assemble(llm_dir, enc_dir, out, stamp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _encoders(work: Path, *, seed: int, int8: bool) -> Path:
    from converters.encoders.convert import EncoderConvertOptions, convert_encoders
    from converters.testing.tiny_encoders import TinySizes, build_tiny_encoders

    src = build_tiny_encoders(work / "src", seed=seed, sizes=TinySizes(llm_width=LLM_WIDTH))
    out = work / "encoders"
    convert_encoders(EncoderConvertOptions(checkpoint=src.checkpoint, clip=src.clip, hubert=src.hubert,
                                           facexformer=src.facexformer, out=out, int8=int8))
    return out


def _language_core(work: Path, *, seed: int) -> Path:
    from transformers import AutoTokenizer

    from converters.llm.gguf_writer import write_qwen2_gguf
    from converters.llm.metadata import gguf_metadata
    from converters.llm.quantize import quantize_gguf
    from converters.testing.tiny_qwen import build_tiny_qwen2

    hf_dir = build_tiny_qwen2(work / "qwen", seed=seed, hidden_size=LLM_WIDTH)
    meta = gguf_metadata(hf_dir, AutoTokenizer.from_pretrained(hf_dir), settings=None)
    out = work / "llm"
    f16 = write_qwen2_gguf(hf_dir, out / "llm-f16.gguf", out_type="f16", metadata=meta)
    quantize_gguf(f16, out / "llm-q8_0.gguf", "q8_0")
    return out


def _assemble(llm_dir: Path, enc_dir: Path, out: Path, stamp: dict) -> None:
    from converters.bundle import BundleOptions, assemble_bundle
    from emox_edge.bundle.manifest import MANIFEST_NAME, write_manifest

    assemble_bundle(BundleOptions(llm=llm_dir, encoders=enc_dir, out=out, name="tiny-nano-emox",
                                  default_quant="f16", force=True))
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    body = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "created", "producer", "files")}
    body["tiny"] = stamp
    write_manifest(out, body, files=list(manifest["files"]))
