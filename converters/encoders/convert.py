"""``convert_encoders``: base encoders + a Nano-EmoX checkpoint -> four gated ONNX graphs + report + manifest part.

Graphs (a clip has T = 8 frames and 8 audio windows):
- ``visual``: ``pixel_values [F,3,224,224]`` -> ``visual_main [F,Dv]``, ``visual_multi [F,3Dv]``
- ``audio``: ``waveforms [F,32000]`` -> ``audio_main [F,Da]``, ``audio_multi [F,3Da]``
- ``facial``: ``frames [F,3,224,224]`` (0..255) -> ``face_features [F,Df]``
- ``adapters``: the five tensors above, F = 8 -> ``audio_embeds [32,W]``, ``frame_embeds [32,W]``,
  ``face_embeds [4,W]``, ``fusion_embeds [1,W]``
F is the symbolic ``frames`` axis of the per-frame graphs (each frame or window is encoded alone), so
the runtime may run a clip in chunks or frame by frame; the adapters mix the 8 and stay fixed.
Each graph is exported in fp32 and (by default) int8, and each file is checked against the PyTorch
reference on real inputs, the per-frame graphs twice: the 8 rows in one run, then in uneven chunks
(3 + 3 + 2; dynamic int8 then quantizes each chunk with its own scale). A file that misses its
threshold in either is not written; the conversion then raises ``ParityError`` after writing the
report (so the numbers are visible).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters._torch import require_torch
from converters.encoders import parity as P
from converters.encoders.options import EncoderConvertOptions  # noqa: F401 - re-exported: the converter's API
from converters.encoders.report import write_reports
from emox_edge._io import sha256_file, write_json_atomic
from emox_edge.encoders import run_in_rows
from emox_edge.progress import progress

log = logging.getLogger(__name__)

GRAPHS = ("visual", "audio", "facial", "adapters")
FRAME_GRAPHS = ("visual", "audio", "facial")  # exported with a symbolic leading frames axis
CHUNK_CHECK = 3  # rows per run in the chunked parity check (8 = 3 + 3 + 2: an uneven last chunk)
MANIFEST_PART = "encoders.json"
REPORT_JSON = "encoders-report.json"
REPORT_MD = "encoders-report.md"
PART_KIND = "nano-emox-encoders"


@dataclass
class EncoderConversion:
    out: Path
    graphs: dict[str, dict[str, str]]  # name -> {"fp32": file, "int8": file}
    report: dict[str, Any] = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


class _Steps:
    """Numbered steps: each call starts the next one, logs it at INFO and moves the progress bar."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.bar = progress(total=total, desc="convert encoders", unit="step")

    def __call__(self, what: str) -> None:
        if self.done:
            self.bar.update()
        self.done += 1
        self.bar.set_postfix_str(what)
        log.info("[%d/%d %6.1fs] %s", self.done, self.total, time.perf_counter() - self.start, what)

    def __enter__(self) -> "_Steps":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None and self.done:
            self.bar.update()
        self.bar.close()


def convert_encoders(options: EncoderConvertOptions) -> EncoderConversion:
    """Run the whole conversion. Raises ``ParityError`` (after writing the report) when a graph fails."""
    torch = require_torch()
    opts = _checked(options)
    out = Path(opts.out)
    _prepare_out(out, force=opts.force, dry_run=True)  # refuse early, create only once the inputs have loaded
    with _Steps(total=4 + len(GRAPHS) * (3 if opts.int8 else 2)) as steps:
        return _convert(opts, out, steps, torch)


def _convert(opts: EncoderConvertOptions, out: Path, steps: _Steps, torch) -> EncoderConversion:
    thresholds = P.Thresholds(fp32_cosine=opts.fp32_cosine, int8_cosine=opts.int8_cosine)
    started = time.perf_counter()

    from converters.checkpoint import load_checkpoint
    from converters.encoders.build import build_adapters, check_widths

    steps(f"reading checkpoint {opts.checkpoint}")
    state, ckpt_config = load_checkpoint(opts.checkpoint, trust=opts.trust_checkpoint)
    adapters, keys = build_adapters(state, source=str(opts.checkpoint))
    del state

    from converters.encoders.facexformer import FaceXFormerEncoder
    from converters.encoders.towers import AudioReference, VisualReference, VisualTower, load_clip_vision, load_hubert

    steps(f"reading FaceXFormer {opts.facexformer}")
    face = FaceXFormerEncoder.from_file(opts.facexformer, trust=opts.trust_checkpoint)
    steps(f"reading CLIP {opts.clip} and HuBERT {opts.hubert}")
    clip = load_clip_vision(opts.clip)
    hubert = load_hubert(opts.hubert)
    check_widths(adapters.cfg, clip_width=clip.config.hidden_size, hubert_width=hubert.config.hidden_size,
                 face_width=face.out_dim)

    _prepare_out(out, force=opts.force)
    steps("building parity inputs (astronaut frames, espeak-ng speech) and PyTorch references")
    normalize = hubert_normalizes(opts.hubert)
    frames = P.parity_frames()
    inputs = {
        "visual": {"pixel_values": P.clip_pixels(frames)},
        "audio": {"waveforms": P.audio_windows(P.speech_wave(), normalize=normalize)},
        "facial": {"frames": P.face_pixels(frames)},
    }
    with torch.no_grad():
        vm, vx = VisualReference(clip)(torch.from_numpy(inputs["visual"]["pixel_values"]))
        am, ax = AudioReference(hubert)(torch.from_numpy(inputs["audio"]["waveforms"]))
        ff = face(torch.from_numpy(inputs["facial"]["frames"]))
        enc = {"visual_main": vm, "visual_multi": vx, "audio_main": am, "audio_multi": ax, "face_features": ff}
        adapter_out = adapters(*enc.values())
    from converters.encoders.adapters import OUTPUT_NAMES

    inputs["adapters"] = {k: v.numpy() for k, v in enc.items()}
    references = {
        "visual": {"visual_main": vm.numpy(), "visual_multi": vx.numpy()},
        "audio": {"audio_main": am.numpy(), "audio_multi": ax.numpy()},
        "facial": {"face_features": ff.numpy()},
        "adapters": dict(zip(OUTPUT_NAMES, (t.numpy() for t in adapter_out))),
    }
    held = {"clip": clip, "hubert": hubert, "face": face}
    del clip, hubert, face
    modules: dict[str, Callable[[], tuple]] = {
        "visual": lambda: (VisualTower(held["clip"]), (torch.from_numpy(inputs["visual"]["pixel_values"]),)),
        "audio": lambda: (AudioReference(held["hubert"]), (torch.from_numpy(inputs["audio"]["waveforms"]),)),
        "facial": lambda: (held["face"], (torch.from_numpy(inputs["facial"]["frames"]),)),
        "adapters": lambda: (adapters, tuple(enc.values())),
    }
    releases = {"visual": ("clip",), "audio": ("hubert",), "facial": ("face",)}

    staging = out / f".staging-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    written: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    try:
        for name in GRAPHS:
            results[name], files = _convert_graph(
                name, modules[name], inputs[name], references[name], staging, out, opts, thresholds, steps,
                input_names=list(inputs[name]), output_names=list(references[name]))
            failures += [r["message"] for r in results[name].values() if not r["passed"]]
            written[name] = files
            for key in releases.get(name, ()):
                held.pop(key, None)  # free the torch tower before the next export
            modules[name] = None  # type: ignore[assignment]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    chain = _chain_parity(out, written, inputs, references)

    report = {
        "command": "emox-edge convert encoders",
        "sources": _sources(opts, ckpt_config),
        "settings": {"int8": opts.int8, "per_channel": opts.per_channel,
                     "thresholds": {"fp32_cosine": opts.fp32_cosine, "int8_cosine": opts.int8_cosine}},
        "checkpoint_keys": keys.summary(),
        "adapters": {"embedding_width": adapters.cfg.llm_width, "slots": adapters.cfg.slots()},
        "parity_inputs": {"frames": "skimage.data.astronaut(), 8 crops stretched to 224x224",
                          "audio": f"espeak-ng: {P.SPEECH_TEXT!r}, 16 kHz, 8 x 2 s windows, joint normalisation"},
        "graphs": results,
        "chain": chain,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": _peak_rss_mb(),
        "failures": failures,
        "passed": not failures,
    }
    complete = all(len(files) == (2 if opts.int8 else 1) for files in written.values()) and not failures
    if complete:
        write_manifest_part(out, written, adapters.cfg, report, normalize_audio=normalize)
    write_reports(out / REPORT_JSON, out / REPORT_MD, report)
    log.info("encoders: %s in %.0f s, peak RSS %.0f MB", "passed" if not failures else "FAILED",
             report["seconds"], report["peak_rss_mb"])
    if failures:
        raise P.ParityError("parity gate failed, graphs not written: " + "; ".join(failures)
                            + f" (see {out / REPORT_MD})")
    return EncoderConversion(out=out, graphs=written, report=report)


def _convert_graph(name, make, inputs, reference, staging, out, opts, thresholds, steps, *, input_names, output_names):
    from converters.encoders.export import export_onnx, quantize_int8

    results: dict[str, dict] = {}
    files: dict[str, str] = {}
    module, args = make()
    fp32 = staging / f"{name}.onnx"
    steps(f"exporting {name} (fp32 ONNX)")
    t0 = time.perf_counter()
    frame_axis = name in FRAME_GRAPHS
    export_onnx(module, args, fp32, input_names=input_names, output_names=output_names,
                output_shapes=[reference[n].shape for n in output_names], frame_axis=frame_axis)
    export_s = time.perf_counter() - t0
    del module, args
    precisions = [("fp32", fp32)]
    if opts.int8:
        int8 = staging / f"{name}.int8.onnx"
        steps(f"quantizing {name} to int8")
        t0 = time.perf_counter()
        quant = quantize_int8(fp32, int8, per_channel=opts.per_channel)
        quant_s = time.perf_counter() - t0
        precisions.append(("int8", int8))
    steps(f"checking {name} ({', '.join(p for p, _ in precisions)}) against PyTorch")
    for precision, path in precisions:
        session = open_session(path)
        t0 = time.perf_counter()
        got = dict(zip(output_names, session.run(output_names, inputs)))
        ms = (time.perf_counter() - t0) * 1000
        io = session_io(session)
        metrics = P.compare(reference, got)
        ok, message = P.gate(name, precision, metrics, thresholds)
        entry = {"file": path.name, "bytes": path.stat().st_size, "outputs": metrics, "passed": ok,
                 "message": message, "ort_ms": round(ms, 1), "io": io}
        if frame_axis:
            try:
                joined = run_in_rows(session, output_names, inputs, CHUNK_CHECK)  # the runtime's own chunking
                chunked = P.compare(reference, dict(zip(output_names, joined)))
                chunk_ok, chunk_message = P.gate(f"{name} in chunks of {CHUNK_CHECK}", precision, chunked, thresholds)
            except Exception as exc:  # ONNX Runtime's own error types: a size the tracer kept as a constant
                chunked, chunk_ok = {}, False
                chunk_message = (f"{name} {precision} does not run in chunks of {CHUNK_CHECK} frames: "
                                 f"{str(exc).splitlines()[0][:200]}")
            entry["chunked"] = {"rows_per_run": CHUNK_CHECK, "outputs": chunked, "passed": chunk_ok}
            ok, message = ok and chunk_ok, f"{message}; {chunk_message}"
            entry.update(passed=ok, message=message)
        (log.info if ok else log.error)("%s", message)
        entry["export_s" if precision == "fp32" else "quantize_s"] = round(export_s if precision == "fp32" else quant_s, 2)
        if precision == "int8":
            entry["quantization"] = quant
        del session
        results[precision] = entry
        if ok:
            os.replace(path, out / path.name)
            files[precision] = path.name
    return results, files


def open_session(path: str | os.PathLike, *, threads: int | None = None):
    """A CPU ONNX Runtime session (intra-op threads = physical cores, inter-op 1)."""
    import onnxruntime as ort

    from emox_edge.devices import physical_cores

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or physical_cores()
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def session_io(session) -> dict:
    """``{"inputs": [io], "outputs": [io]}``, ``io = {"name", "shape", "dtype"}`` (dtype as numpy names it)."""
    def describe(arg) -> dict:
        dtype = arg.type[len("tensor("):-1] if arg.type.startswith("tensor(") else arg.type
        return {"name": arg.name, "shape": list(arg.shape), "dtype": "float32" if dtype == "float" else dtype}

    return {"inputs": [describe(a) for a in session.get_inputs()], "outputs": [describe(a) for a in session.get_outputs()]}


def run_graph(path: str | os.PathLike, inputs: dict[str, np.ndarray], *, threads: int | None = None) -> tuple[dict, float]:
    """Run an ONNX file once on CPU; returns (outputs by name, milliseconds of the run)."""
    session = open_session(path, threads=threads)
    names = [o.name for o in session.get_outputs()]
    t0 = time.perf_counter()
    values = session.run(names, inputs)
    ms = (time.perf_counter() - t0) * 1000
    return dict(zip(names, values)), ms


def _chain_parity(out: Path, written: dict, inputs: dict, references: dict) -> dict:
    """Encoders -> adapters entirely in ONNX Runtime vs entirely in PyTorch (reported, not gated)."""
    chain = {}
    for precision in ("fp32", "int8"):
        if not all(precision in written.get(g, {}) for g in GRAPHS):
            continue
        feats: dict[str, np.ndarray] = {}
        for graph in ("visual", "audio", "facial"):
            got, _ = run_graph(out / written[graph][precision], inputs[graph])
            feats.update(got)
        got, _ = run_graph(out / written["adapters"][precision], feats)
        chain[precision] = P.compare(references["adapters"], got)
    return chain


def hubert_normalizes(hubert_dir: Path) -> bool:
    """``do_normalize`` of the HuBERT directory's feature extractor (upstream loads it from there)."""
    path = Path(hubert_dir) / "preprocessor_config.json"
    if not path.is_file():
        log.warning("%s: no preprocessor_config.json; assuming do_normalize=true (chinese-hubert-* ship it so)", hubert_dir)
        return True
    return bool(json.loads(path.read_text(encoding="utf-8")).get("do_normalize", True))


def write_manifest_part(out: Path, written: dict, cfg, report: dict, *, normalize_audio: bool = True) -> Path:
    """``encoders.json``: what ``convert bundle`` copies into the bundle manifest (graphs, slots, preprocess)."""
    constants = P.constants()
    if not normalize_audio:
        constants["preprocess"]["audio"]["normalize"] = {"mode": "none", "eps": 0.0,
                                                         "formula": "raw waveform (feature extractor has do_normalize=false)"}
    graphs = {}
    for name in GRAPHS:
        files = written[name]
        io = report["graphs"][name]["fp32"]["io"]
        graphs[name] = {"file": files.get("int8", files["fp32"]), "fp32": files["fp32"], **({"int8": files["int8"]} if "int8" in files else {}),
                        **io, "parity": {p: {"min_cosine": min(m["cosine"] for m in r["outputs"].values())}
                                         for p, r in report["graphs"][name].items()}}
    part = {
        "kind": PART_KIND,
        "format_version": 1,
        "graphs": graphs,
        "encoders": {"order": list(GRAPHS), "frames": constants["preprocess"]["frames"]["count"],
                     "embedding_width": cfg.llm_width, "slots": cfg.slots()},
        "preprocess": constants["preprocess"],
        "sources": report["sources"],
        "files": sorted({f for files in written.values() for f in files.values()}),
    }
    return write_json_atomic(out / MANIFEST_PART, part)


def _checked(opts: EncoderConvertOptions) -> EncoderConvertOptions:
    for label, path in (("checkpoint", opts.checkpoint), ("FaceXFormer checkpoint", opts.facexformer)):
        if not Path(path).is_file():
            kind = "is a directory, expected a file" if Path(path).is_dir() else "not found"
            raise FileNotFoundError(f"{label} {path}: {kind}")
    for label, path in (("CLIP", opts.clip), ("HuBERT", opts.hubert)):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{label} model directory not found: {path} (expected a Hugging Face model directory)")
    return opts


def _prepare_out(out: Path, *, force: bool, dry_run: bool = False) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"--out {out} is not empty; pass --force to overwrite the encoder outputs in it")
        if dry_run:
            return out
        for name in [MANIFEST_PART, REPORT_JSON, REPORT_MD] + [f"{g}{s}" for g in GRAPHS for s in (".onnx", ".int8.onnx")]:
            (out / name).unlink(missing_ok=True)
    if not dry_run:
        out.mkdir(parents=True, exist_ok=True)
    return out


def _sources(opts: EncoderConvertOptions, ckpt_config: dict) -> dict:
    def file_info(path: Path) -> dict:
        return {"name": Path(path).name, "bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}

    return {"checkpoint": file_info(opts.checkpoint), "facexformer": file_info(opts.facexformer),
            "clip": {"name": Path(opts.clip).name}, "hubert": {"name": Path(opts.hubert).name},
            "checkpoint_config_keys": sorted(ckpt_config)[:20]}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
