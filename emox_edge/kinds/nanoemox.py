"""The Nano-EmoX bundle kind: ONNX Runtime encoders spliced into the language core's prompt.

Per clip: preprocessing exactly as trained (``emox_edge.preprocess``) -> the encoders
(``emox_edge.encoders``) -> one language-core generation per task, the encoder outputs injected at
the placeholder runs of the manifest's prompt template (spec §7.5). All tasks of a clip share the
prompt up to the question, so the analyzer's batch decodes that prefix once for all of them; closed-set
labels are scored by likelihood over the candidate answers (``label_decoding``), or decoded under a
grammar.

The analyzer's face stage runs for the overlay and per-person records only: the Nano-EmoX facial
branch itself gets the full frames, as it was trained (spec §2.2).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from emox_edge.encoders import EncoderSuite, placeholder_embeddings
from emox_edge.errors import BadInputError
from emox_edge.kinds.base import BundleKind, Evidence
from emox_edge.kinds.plans import Ask, Step, timings_of
from emox_edge.llm.batching import BatchRequest
from emox_edge.llm.segments import UntrustedText
from emox_edge.media import Clip
from emox_edge.preprocess import PreprocessConfig, clip_normalize, preprocess_clip, raw_float, resize_rgb
from emox_edge.results import TaskResult
from emox_edge.tasks import TaskBook, TaskRequest
from emox_edge.tasks.book import packaged_spec
from emox_edge.tasks.budget import trim_text_to_tokens

log = logging.getLogger(__name__)


class NanoEmoxKind(BundleKind):
    """Nano-EmoX: encoders + Q-Formers + the Qwen2.5 language core, six tasks from one model."""

    kind = "nano-emox"
    default_face_frames = 4
    eager_core = True

    def __init__(self, bundle, services) -> None:
        super().__init__(bundle, services)
        options = services.options
        self.preprocess = PreprocessConfig.from_manifest(bundle.manifest.get("preprocess"))
        self.book = TaskBook.from_manifest(bundle.manifest)
        self.generation = dict(bundle.manifest.get("generation") or packaged_spec()["generation"])
        self._encoders: EncoderSuite | None = None
        self._embedding_names = [name for _, _, name in self.book.placeholders]
        if options.stages != "language":
            _ = self.encoders  # a damaged graph fails when the analyzer opens, naming the file

    @property
    def encoders(self) -> EncoderSuite:
        """The ONNX encoders, opened on first use (an analyzer that only answers never opens them)."""
        if self._encoders is None:
            options = self.services.options
            self._encoders = EncoderSuite(self.bundle, device=self.services.device, precision=options.precision,
                                          n_threads=self.services.n_threads)
        return self._encoders

    def variants(self) -> dict[str, list[str]]:
        sentiment = self.book.tasks.get("sentiment", {})
        ranges = list(sentiment.get("valence_ranges", {}))
        return {
            "sentiment": ["three_way", "valence", *(f"valence:{r}" for r in ranges)],
            "emotion": [*self.book.label_sets("emotion"), "none"],
            "intent": self.book.label_sets("intent"),
            "open_vocab_emotion": [str(i) for i in range(len(self.book.tasks.get("open_vocab_emotion", {}).get("prompts", [])))],
            "reason": [str(i) for i in range(len(self.book.tasks.get("reason", {}).get("prompts", [])))],
            "empathize": [],
        }

    def check_variant(self, request: TaskRequest) -> None:
        try:
            self.book.question(request)
        except BadInputError:
            raise
        except (ValueError, KeyError, IndexError) as exc:
            raise BadInputError(f"task {request}: {exc}") from exc

    # ------------------------------------------------------------------ perception
    def encode(self, clip: Clip) -> tuple[dict[str, Any], dict[str, float]]:
        """Encoder outputs of ``clip`` (placeholder name -> [slots, width]) and ms per stage."""
        evidence = self.perceive(clip, ())
        return evidence.state, evidence.timings

    def ahead_frames(self) -> int:
        if self.services.options.stages == "language":
            return 0
        return self.preprocess.n_frames if self.encoders.encodes_by_row() else 0

    def encode_ahead(self, frames) -> int:
        """The visual and facial rows of live frames the next clip samples (``Clip.even_in_time``), built
        exactly as ``preprocess_clip`` builds them, so ``perceive`` finds them in the encoders' row cache."""
        p = self.preprocess
        model = np.stack([resize_rgb(np.asarray(f), p.image_size) for f in frames])
        return self.encoders.encode_ahead({"pixel_values": clip_normalize(model, p.mean, p.std),
                                           "frames": raw_float(model)})

    def perceive(self, clip: Clip, frame_faces, *, speech_segments=None) -> Evidence:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs = preprocess_clip(clip, self.preprocess)
        timings["preprocess_ms"] = _ms(t0)
        values, per_graph = self.encoders.run(
            {"pixel_values": inputs.pixel_values, "frames": inputs.face_frames, "waveforms": inputs.waveforms})
        timings.update({f"encoder_{name}_ms": ms for name, ms in per_graph.items()})
        embeddings = placeholder_embeddings(values, self._embedding_names)
        return Evidence(perception={}, timings=timings, state=embeddings, transcript=clip.subtitle)

    # ------------------------------------------------------------------ tasks
    def plan(self, request: TaskRequest, evidence: Evidence, history: Sequence[str]) -> Step:
        core = self.services.core
        question, segments = self._prompt(core, request, evidence.transcript, history, evidence.state)
        options = self.services.options
        candidates = self.book.candidates(question) if options.constrain else None
        if candidates and options.label_decoding == "likelihood":
            stop = self.generation.get("stop_strings", ["###"])
            ends = [f"{c}{stop[0]}" if stop else c for c in candidates]

            def scored(outputs) -> TaskResult:
                scores = outputs[0]
                return self.book.parse(question, candidates[scores.best], timings={
                    **timings_of(scores), "label_probability": round(scores.probabilities()[ends[scores.best]], 4)})

            return Ask([BatchRequest(segments, candidates=ends)], scored)
        grammar = self.book.grammar(question) if options.constrain else None
        request_ = BatchRequest(segments, grammar=grammar, **self._sampling(question, grammar is not None))
        return Ask([request_], lambda outputs: self.book.parse(question, outputs[0].text, timings=timings_of(outputs[0])))

    def _sampling(self, question, constrained: bool) -> dict[str, Any]:
        g = self.generation
        sampling = self.services.sampling(max_new_tokens=None)
        sampling["stop"] = tuple(g.get("stop_strings", ["###", "<|im_end|>", "<|endoftext|>"]))
        if constrained:  # room for the longest valid answer, whatever max_new_tokens says
            sampling["max_new_tokens"] = max(sampling["max_new_tokens"], _answer_tokens(question))
        return sampling

    def _prompt(self, core, request: TaskRequest, subtitle: str, history: Sequence[str], embeddings):
        """The question and prompt segments, trimmed to the prompt budget.

        Nano-EmoX cut the *front* of an over-long prompt (breaking its placeholders); we keep the
        template whole and drop the oldest dialogue turns, then the start of the subtitle, instead.
        """
        budget = min(int(self.book.prompt.get("prompt_budget_tokens", 800)), core.n_ctx - 16)
        history = list(history)
        # the most recent words of an over-long subtitle first, in O(log n) tokenizations
        subtitle = trim_text_to_tokens(subtitle, lambda text: len(core.tokenize(text, special=False)), budget // 2)
        while True:
            user = UntrustedText(core.has_special)  # a subtitle must not inject <|im_end|>
            said, turns = user(subtitle), [user(turn) for turn in history]
            question = self.book.question(request, subtitle=said, history=turns)
            segments = user.resolve(self.book.segments(question, subtitle=said, history=turns, embeddings=embeddings))
            size = sum(len(core.tokenize(s, special=False)) if isinstance(s, str) else s.shape[0] for s in segments)
            if size <= budget:
                return question, segments
            if history:
                log.warning("prompt of %d tokens exceeds %d: dropping the oldest dialogue turn", size, budget)
                history = history[1:]
            elif len(subtitle) > 16:
                log.warning("prompt of %d tokens exceeds %d: shortening the subtitle from the front", size, budget)
                subtitle = subtitle[len(subtitle) // 4:]
            else:
                return question, segments  # the core reports a prompt that cannot fit

    def close(self) -> None:
        if self._encoders is not None:
            self._encoders.close()
            self._encoders = None


def _answer_tokens(question) -> int:
    # a grammar lets the model spell an answer with any tokens, at worst one per byte
    longest = max((len(label.encode()) for label in question.labels), default=0)
    return len((question.answer_prefix + question.answer_suffix).encode()) + longest + 4


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
