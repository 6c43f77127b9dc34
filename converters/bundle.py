"""Assemble a nano-emox bundle from the outputs of ``convert llm`` and ``convert encoders``.

The bundle directory::

    bundle.json                    manifest (docs/bundle-format.md)
    llm/llm-<type>.gguf            one per quantization type found in --llm
    encoders/<graph>[.int8].onnx   the four graphs, fp32 and int8
    reports/llm-report.json, reports/encoders-report.json (+ .md)   when present
    speech/whisper-<asr>/          Whisper (CTranslate2) for transcripts, with --asr base|tiny.en

Files are hard-linked when source and bundle share a file system, copied otherwise (atomically
either way). The manifest gets every constant the runtime needs from ``emox_edge/data/nano_emox.json``;
the bundle is re-opened with sha256 verification before this returns.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters._options import check_required, paths_as_path
from converters.speech import ASR_CHOICES, add_speech_section, whisper_choice
from emox_edge._io import atomic_path
from emox_edge.bundle.manifest import MANIFEST_NAME, Bundle, write_manifest
from emox_edge.errors import BadInputError
from emox_edge.progress import progress

log = logging.getLogger(__name__)

GGUF_PATTERN = re.compile(r"^llm-([a-z0-9_]+)\.gguf$")
QUANT_PREFERENCE = ("q4_k_m", "q5_k_m", "q8_0", "q6_k", "q4_0", "f16", "f32")
ENCODERS_PART = "encoders.json"
REPORTS = ("llm-report.json", "llm-report.md", "encoders-report.json", "encoders-report.md")


@dataclass(frozen=True)
class BundleOptions:
    """What ``assemble_bundle`` does; the flags of ``emox-edge convert bundle`` are these fields.

    Attributes:
        llm: the output directory of 'emox-edge convert llm'.
        encoders: the output directory of 'emox-edge convert encoders'.
        out: the bundle directory to create.
        name: the bundle name recorded in the manifest.
        default_quant: the GGUF type the runtime loads by default. Without it q4_k_m is chosen, else
            q8_0, else f16.
        force: replace a bundle in a non-empty output directory.
        asr: the speech model the bundle carries for transcripts: base (Whisper base, 99 languages),
            tiny.en (English only) or none. Without it the bundle has none.
    """

    llm: Path | None = field(default=None, metadata={"required": True, "metavar": "DIR"})
    encoders: Path | None = field(default=None, metadata={"required": True, "metavar": "DIR"})
    out: Path | None = field(default=None, metadata={"required": True, "metavar": "DIR"})
    name: str = "nano-emox"
    default_quant: str | None = field(default=None, metadata={"metavar": "TYPE"})
    force: bool = False
    asr: str | None = field(default=None, metadata={"choices": (*ASR_CHOICES, "none"), "metavar": "MODEL"})

    def __post_init__(self) -> None:
        check_required(self, "convert bundle")
        paths_as_path(self, "llm", "encoders", "out")
        if self.asr == "none":
            object.__setattr__(self, "asr", None)
        if self.asr is not None:
            whisper_choice(self.asr)


def nano_emox_constants() -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files("emox_edge").joinpath("data/nano_emox.json").read_text(encoding="utf-8"))


def find_ggufs(llm_dir: Path) -> dict[str, Path]:
    """``{quant_type: path}`` of the ``llm-<type>.gguf`` files in a ``convert llm`` output directory."""
    if not llm_dir.is_dir():
        raise FileNotFoundError(f"--llm {llm_dir}: directory not found (expected the output of 'emox-edge convert llm')")
    found = {m.group(1): p for p in sorted(llm_dir.iterdir()) if (m := GGUF_PATTERN.match(p.name)) and p.is_file()}
    if not found:
        raise FileNotFoundError(f"--llm {llm_dir}: no llm-<type>.gguf file (expected the output of 'emox-edge convert llm')")
    return found


def read_encoders_part(enc_dir: Path) -> dict[str, Any]:
    part_path = enc_dir / ENCODERS_PART
    if not enc_dir.is_dir():
        raise FileNotFoundError(f"--encoders {enc_dir}: directory not found (expected the output of 'emox-edge convert encoders')")
    if not part_path.is_file():
        raise FileNotFoundError(f"{part_path}: missing; --encoders must be a complete 'emox-edge convert encoders' output "
                                "(a conversion whose parity gate failed writes none)")
    part = json.loads(part_path.read_text(encoding="utf-8"))
    if part.get("kind") != "nano-emox-encoders":
        raise BadInputError(f"{part_path}: kind {part.get('kind')!r}, expected 'nano-emox-encoders'")
    missing = [f for f in part["files"] if not (enc_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"--encoders {enc_dir}: files listed in {ENCODERS_PART} are missing: {', '.join(missing)}")
    return part


def assemble_bundle(options: BundleOptions) -> Path:
    """Build and verify the bundle; returns its directory."""
    from converters.llm.metadata import read_gguf_metadata

    llm_dir, enc_dir, out = Path(options.llm), Path(options.encoders), Path(options.out)
    ggufs = find_ggufs(llm_dir)
    part = read_encoders_part(enc_dir)
    default = _default_quant(ggufs, options.default_quant)
    meta = read_gguf_metadata(ggufs[default])
    arch = meta.get("general.architecture")
    width = meta.get(f"{arch}.embedding_length")
    if width != part["encoders"]["embedding_width"]:
        raise BadInputError(
            f"the encoders produce {part['encoders']['embedding_width']}-wide embeddings but {ggufs[default].name} "
            f"has embedding_length {width}: the two conversions come from different models")
    constants = nano_emox_constants()
    _check_slots(constants, part)
    _prepare_out(out, force=options.force)

    files: list[str] = []
    gguf_rel = {}
    with progress(total=len(ggufs) + len(part["files"]), desc="convert bundle", unit="file") as bar:
        for qtype, path in ggufs.items():
            gguf_rel[qtype] = _place(path, out / "llm" / path.name, out)
            files.append(gguf_rel[qtype])
            bar.update()
        for name in part["files"]:
            files.append(_place(enc_dir / name, out / "encoders" / name, out))
            bar.update()
    reports = {}
    for src_dir in (llm_dir, enc_dir):
        for name in REPORTS:
            if (src_dir / name).is_file():
                reports[name] = _place(src_dir / name, out / "reports" / name, out)
                files.append(reports[name])

    graphs = {}
    for gname, graph in part["graphs"].items():
        graphs[gname] = {**graph, **{k: f"encoders/{graph[k]}" for k in ("file", "fp32", "int8") if k in graph}}
    generation = dict(constants["generation"])
    if meta.get("nano_emox.stop_token_ids"):
        generation["eos_token_ids"] = [int(i) for i in meta["nano_emox.stop_token_ids"]]
    generation["stop_strings"] = sorted(set(generation["stop_strings"]) | set(meta.get("nano_emox.stop_strings") or []))
    body = {
        "kind": "nano-emox",
        "name": options.name,
        "model": constants["model"],
        "language_core": {
            "gguf": gguf_rel,
            "default": default,
            "architecture": arch,
            "embedding_width": int(width),
            "context_length": int(meta.get(f"{arch}.context_length", 0)),
            "lora_merged": bool(meta.get("nano_emox.lora_merged", False)),
        },
        "graphs": graphs,
        "encoders": part["encoders"],
        "preprocess": part["preprocess"],
        "prompt": constants["prompt"],
        "tasks": constants["tasks"],
        "generation": generation,
        "sources": {"encoders": part.get("sources", {}), "constants": constants["source"]},
        "reports": reports,
    }
    if options.asr is not None:
        body["speech"] = add_speech_section(out, options.asr)
        files += list(body["speech"]["files"].values())
    write_manifest(out, body, files=files)
    Bundle.open(out, verify="sha256")
    log.info("bundle %s: %d files, language core %s (%s), embedding width %d", out, len(files), default,
             ", ".join(ggufs), width)
    return out


def _default_quant(ggufs: dict[str, Path], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in ggufs:
            raise BadInputError(f"--default-quant {wanted!r} is not among the GGUFs found: {', '.join(sorted(ggufs))}")
        return wanted
    for qtype in QUANT_PREFERENCE:
        if qtype in ggufs:
            return qtype
    return sorted(ggufs)[0]


def _check_slots(constants: dict, part: dict) -> None:
    by_name = {p["embeddings"]: p["slots"] for p in constants["prompt"]["placeholders"]}
    got = part["encoders"]["slots"]
    bad = [f"{k}: adapters give {got.get(k)}, prompt expects {v}" for k, v in by_name.items() if got.get(k) != v]
    if bad:
        raise BadInputError("the encoders' slot counts do not match the Nano-EmoX prompt: " + "; ".join(bad))


def _prepare_out(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"--out {out} is not empty; pass --force to replace the bundle in it")
        (out / MANIFEST_NAME).unlink(missing_ok=True)  # an interrupted rebuild never looks complete
        for sub in ("llm", "encoders", "reports", "speech"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _place(src: Path, dst: Path, root: Path) -> str:
    """Hard-link (same file system) or copy ``src`` to ``dst`` atomically; return the path relative to root."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst.relative_to(root).as_posix()
