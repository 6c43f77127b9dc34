"""``BundleKind``: the part of the analyzer a bundle kind supplies, and ``Services``, what it may use.

Per clip the analyzer runs the shared stages (faces, then the kind's ``perceive``), then asks the kind
to ``plan`` each task: a finished result, or an ``Ask`` of language-core requests that the analyzer
runs together with the other tasks' (``kinds.plans``). A kind never loads the language core itself:
``Services.core`` does, with the one GPU-offload rule, and ``Services.sampling`` gives the one set of
sampling defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from emox_edge.bundle import Bundle
from emox_edge.media import Clip
from emox_edge.options import AnalyzerOptions
from emox_edge.results import TaskResult
from emox_edge.tasks import TaskRequest

if TYPE_CHECKING:
    from emox_edge.kinds.plans import Step


class Services(Protocol):
    """What the analyzer offers a kind."""

    options: AnalyzerOptions
    device: Any  # emox_edge.devices.ResolvedDevice
    n_threads: int

    @property
    def core(self) -> Any: ...  # emox_edge.llm.LanguageCore, loaded on first use

    def sampling(self, *, max_new_tokens: int | None = None, greedy: bool = False,
                 repeat_penalty: float | None = None) -> dict[str, Any]: ...


@dataclass
class Evidence:
    """What a kind perceived in one clip.

    Attributes:
        perception: the JSON-able record the result carries (``ClipResult.perception``).
        timings: ms per stage (keys end in ``_ms``).
        state: the kind's own data for ``answer`` (embeddings, a ``Perception`` ...).
        transcript: the words of the clip (subtitle or speech recognition), "" when none.
    """

    perception: Mapping[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    state: Any = None
    transcript: str = ""


class BundleKind:
    """Base of the bundle kinds. Subclasses set ``kind`` and ``default_face_frames`` and implement
    ``perceive`` and ``answer``; ``check_variant`` and ``variants`` describe the task variants."""

    kind: str = ""
    default_face_frames: int = 4
    eager_core: bool = False  # load the language core when the analyzer opens (every task needs it)
    max_ctx: int | None = None  # cap on n_ctx for this kind's language core

    def __init__(self, bundle: Bundle, services: Services) -> None:
        self.bundle = bundle
        self.services = services

    def variants(self) -> dict[str, list[str]]:
        """Task -> the variants this kind accepts (for ``Analyzer.info`` and error messages)."""
        return {}

    def check_variant(self, request: TaskRequest) -> None:
        """Raise ``BadInputError`` listing the valid variants when ``request.variant`` is not one."""

    def perceive(self, clip: Clip, frame_faces: Sequence[tuple[float, tuple]], *,
                 speech_segments: Sequence[tuple[float, float]] | None = None) -> Evidence:
        """Perceive one clip. ``frame_faces``: the face stage's (time, faces) per analysed frame;
        ``speech_segments``: the voiced spans (seconds from the clip's start), None when the bundle has
        no voice-activity model. ``clip.subtitle`` holds the words (given or recognised)."""
        raise NotImplementedError

    def ahead_frames(self) -> int:
        """How many frames, evenly spread in time (``preprocess.time_picks``), this kind samples from a
        live clip and can encode before the clip closes (``encode_ahead``); 0: none."""
        return 0

    def encode_ahead(self, frames: Sequence[np.ndarray]) -> int:
        """Encode uint8 RGB ``frames`` that the next clip will sample, while it is still being captured,
        so that ``perceive`` finds them done. Returns the frames encoded now (0: nothing to do)."""
        return 0

    def plan(self, request: TaskRequest, evidence: Evidence, history: Sequence[str]) -> "Step":
        """A task's answer: a ``TaskResult`` now, or an ``Ask`` for the language core (``kinds.plans``)."""
        raise NotImplementedError

    def answer(self, request: TaskRequest, evidence: Evidence, history: Sequence[str] = ()) -> TaskResult:
        """One task alone (the analyzer batches all tasks of a clip instead)."""
        from emox_edge.kinds.plans import run_plans

        return run_plans(lambda: self.services.core, [self.plan(request, evidence, history)])[0]

    def close(self) -> None:
        """Release what the kind opened (the analyzer closes the shared stages)."""
