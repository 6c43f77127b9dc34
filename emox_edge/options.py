"""Typed options of the analyzer; the CLI derives its flags from these dataclasses (``emox_edge.cli.flags``).

Every value is checked when the options are made, so a bad one fails before the first clip with a
``BadInputError`` naming the option, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emox_edge.devices import DEVICES
from emox_edge.errors import BadInputError
from emox_edge.speech.options import SpeechOptions

PRECISIONS = ("int8", "fp32")
LABEL_DECODINGS = ("likelihood", "grammar")
STAGES = ("all", "perception", "language")
INJECTIONS = ("text", "lexical")
MIN_CTX = 512


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise BadInputError(f"option {name}={value!r} is not allowed: {allowed}")


def _positive(name: str, value: int | None, *, minimum: int = 1) -> None:
    if value is not None:
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name, value,
               f"an integer >= {minimum}")


@dataclass(frozen=True)
class FaceOptions:
    """Face detection and tracking, a stage every bundle kind shares.

    Attributes:
        enabled: detect and track faces (boxes for the overlay and per-person results).
        model: a CenterFace ONNX graph to detect faces with. None uses the bundle's own detector, or
            OpenCV's Haar cascade when the bundle has none.
        frames: frames per clip searched for faces. None uses the bundle kind's default (8 for lite
            bundles, 4 for Nano-EmoX bundles).
    """

    enabled: bool = field(default=True, metadata={"flag": "--faces"})
    model: str | None = field(default=None, metadata={"flag": "--face-model", "metavar": "ONNX"})
    frames: int | None = field(default=None, metadata={"flag": "--face-frames", "metavar": "N"})

    def __post_init__(self) -> None:
        _positive("face frames", self.frames)


@dataclass(frozen=True)
class LiteOptions:
    """Settings only lite bundles read.

    Attributes:
        injection: how perception reaches the language core, "text" or "lexical". None uses the
            bundle's choice.
        fer_precision: the facial-expression graph to run, "fp32" or "int8". None uses the bundle's
            choice (fp32, faster for this small network on CPUs).
    """

    injection: str | None = field(default=None, metadata={"choices": INJECTIONS})
    fer_precision: str | None = field(default=None, metadata={"choices": PRECISIONS})

    def __post_init__(self) -> None:
        _check(self.injection in (None, *INJECTIONS), "lite injection", self.injection, f"one of {', '.join(INJECTIONS)}")
        _check(self.fer_precision in (None, *PRECISIONS), "lite fer_precision", self.fer_precision,
               f"one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class AnalyzerOptions:
    """How a bundle is run.

    Attributes:
        device: where to run: auto, cpu, cuda or metal. A device that is not available falls back to
            the CPU with a logged warning.
        n_threads: CPU threads for llama.cpp and ONNX Runtime. None uses the physical cores that other
            programs are not keeping busy.
        quant: which GGUF of the bundle to load, e.g. q4_k_m. None uses the bundle's default.
        precision: int8 or fp32 ONNX graphs, when the bundle has both.
        deterministic: greedy decoding with a fixed seed, so the same input gives the same answers.
            Turn it off to sample.
        seed: the sampling seed when not deterministic. None picks a random one.
        max_new_tokens: a cap on the tokens generated per task. None uses the bundle's setting.
        constrain: constrain closed-set answers so they are always a valid label.
        label_decoding: how a constrained closed-set answer is chosen: likelihood scores every
            candidate label in one batched pass and takes the most likely; grammar decodes under a
            grammar over the labels.
        n_ctx: context length of the language core, in tokens.
        repack: let llama.cpp repack the quantized weights for its CPU kernels (a second copy in
            memory beside the mapped GGUF: +590 MiB on Qwen2.5-1.5B Q4_K_M, no faster on an AVX2 host;
            see ``LanguageCore.from_file``).
        stages: which half of the analysis this analyzer runs: all; perception (faces, voice, words,
            the bundle's encoders: ``perceive_clip``; the language core is never loaded); or language
            (``answer_clips`` only: no face, voice or speech models, encoders never loaded). Scale-out
            replicas use the halves.
        faces: face detection and tracking.
        speech: speech recognition, whose words become the subtitle of every language task.
        lite: settings only lite bundles read.
    """

    device: str = field(default="auto", metadata={"choices": DEVICES})
    n_threads: int | None = field(default=None, metadata={"metavar": "N"})
    quant: str | None = None
    precision: str = field(default="int8", metadata={"choices": PRECISIONS})
    deterministic: bool = True
    seed: int | None = None
    max_new_tokens: int | None = field(default=None, metadata={"metavar": "N"})
    constrain: bool = True
    label_decoding: str = field(default="likelihood", metadata={"choices": LABEL_DECODINGS})
    n_ctx: int = field(default=4096, metadata={"metavar": "N"})
    repack: bool = False
    stages: str = field(default="all", metadata={"choices": STAGES})
    faces: FaceOptions = field(default_factory=FaceOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    lite: LiteOptions = field(default_factory=LiteOptions)

    def __post_init__(self) -> None:
        _check(self.device in DEVICES, "device", self.device, f"one of {', '.join(DEVICES)}")
        _positive("n_threads", self.n_threads)
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        _positive("max_new_tokens", self.max_new_tokens)
        _positive("n_ctx", self.n_ctx, minimum=MIN_CTX)
        _check(self.stages in STAGES, "stages", self.stages, f"one of {', '.join(STAGES)}")
        _check(self.label_decoding in LABEL_DECODINGS, "label_decoding", self.label_decoding,
               f"one of {', '.join(LABEL_DECODINGS)}")
        _positive("seed", self.seed, minimum=0)
        _check(self.quant is None or (isinstance(self.quant, str) and self.quant.strip() != ""), "quant", self.quant,
               "a quantization the bundle has, e.g. q4_k_m")
        _check(isinstance(self.faces, FaceOptions), "faces", self.faces, "a FaceOptions")
        _check(isinstance(self.lite, LiteOptions), "lite", self.lite, "a LiteOptions")
        _check(isinstance(self.speech, SpeechOptions), "speech", self.speech, "a SpeechOptions")


