"""The converters' flags come from their options dataclasses and never clash with the global -v/-q."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from converters.bundle import BundleOptions
from converters.encoders.options import EncoderConvertOptions
from converters.llm.options import LLMConvertOptions, Thresholds
from emox_edge.cli.flags import from_args
from emox_edge.cli.main import build_parser
from emox_edge.errors import BadInputError

REQUIRED = {
    "llm": ["--base", "b", "--out", "o"],
    "encoders": ["--checkpoint", "c.pth", "--clip", "c", "--hubert", "h", "--facexformer", "f.pt", "--out", "o"],
    "bundle": ["--llm", "l", "--encoders", "e", "--out", "o"],
}
OPTIONS = {"llm": LLMConvertOptions, "encoders": EncoderConvertOptions, "bundle": BundleOptions}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, path: str = "emox-edge"):
    for name, sub in _subparsers(parser).items():
        yield f"{path} {name}", sub
        yield from _walk(sub, f"{path} {name}")


def _converter(name: str) -> argparse.ArgumentParser:
    return _subparsers(_subparsers(build_parser())["convert"])[name]


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("flag, dest", [("-q", "quiet"), ("--quiet", "quiet"), ("-v", "verbose")])
def test_global_flags_survive_a_converter_sub_command(name, flag, dest):
    args = build_parser().parse_args([flag, "convert", name, *REQUIRED[name]])
    assert getattr(args, dest) is True


def test_no_sub_command_redefines_a_global_dest():
    clashes = [f"{path}: {action.dest}" for path, sub in _walk(build_parser()) for action in sub._actions
               if action.dest in ("quiet", "verbose")]
    assert clashes == []


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_options_field_is_a_flag(name):
    parser = _converter(name)
    dests = {action.dest for action in parser._actions}
    fields = {f.name for f in dataclasses.fields(OPTIONS[name])}
    if name == "llm":  # per-type marks: one TYPE=VALUE flag per Thresholds field
        fields = (fields - {"thresholds"}) | {f.name for f in dataclasses.fields(Thresholds)}
    assert fields - dests == set()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_help_reads_as_plain_sentences(name):
    for action in _converter(name)._actions:
        if action.help in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        assert "`" not in action.help and ":class:" not in action.help, action.help
        assert action.help.rstrip().endswith((".", ")")), f"{action.option_strings}: {action.help!r}"
    _converter(name).format_help()  # every help string formats (no stray % signs)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_missing_required_flag_exits_2(name, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["convert", name, *REQUIRED[name][2:]])
    assert info.value.code == 2
    assert REQUIRED[name][0] in capsys.readouterr().err


def test_flags_build_the_options():
    args = build_parser().parse_args(["convert", "encoders", *REQUIRED["encoders"], "--no-int8",
                                      "--int8-cosine", "0.5", "--per-channel"])
    options = from_args(EncoderConvertOptions, args)
    assert options.out.name == "o" and options.clip.name == "c"
    assert (options.int8, options.int8_cosine, options.per_channel, options.fp32_cosine) == (False, 0.5, True, 0.9999)
    llm = from_args(LLMConvertOptions, build_parser().parse_args(["convert", "llm", *REQUIRED["llm"], "--threads", "3",
                                                                  "--quant", "F16,q8_0"]))
    assert llm.n_threads == 3 and llm.quant == ("f16", "q8_0") and llm.progress is True


@pytest.mark.parametrize("make, flag", [
    (lambda: LLMConvertOptions(out="o"), "--base"),
    (lambda: EncoderConvertOptions(checkpoint="c", clip="c", hubert="h", out="o"), "--facexformer"),
    (lambda: BundleOptions(llm="l", out="o"), "--encoders"),
])
def test_options_without_a_required_value_are_refused(make, flag):
    with pytest.raises(BadInputError, match=flag):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: LLMConvertOptions(base="b", out="o", quant="f16,q3_k"), "unknown GGUF type"),
    (lambda: EncoderConvertOptions(checkpoint="c", clip="c", hubert="h", facexformer="f", out="o", fp32_cosine=1.5),
     r"fp32 cosine threshold must be in \[-1, 1\]"),
])
def test_bad_option_values_are_refused(make, match):
    with pytest.raises(BadInputError, match=match):
        make()
