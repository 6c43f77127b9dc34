"""``NanoEmoxPipeline``: a nano-emox bundle answering the six tasks on a ``Clip``.

Per clip: preprocessing exactly as trained (``emox_edge.preprocess``) -> ONNX Runtime encoders
(``emox_edge.encoders``) -> one language-core generation per task, the encoder outputs spliced in at
the placeholder runs of the manifest's prompt template (spec §7.5). All tasks of a clip share the
prompt up to the subtitle, so the language core reuses that prefix from its KV cache.

Faces are detected (and tracked over the 8 sampled frames) for the overlay and per-person records
only: the Nano-EmoX facial branch itself gets the full frames, as it was trained (spec §2.2).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from emox_edge.bundle.manifest import Bundle, BundleError
from emox_edge.encoders import EncoderSuite, placeholder_embeddings
from emox_edge.llm.segments import UntrustedText
from emox_edge.media import Clip
from emox_edge.options import PipelineOptions
from emox_edge.preprocess import PreprocessConfig, preprocess_clip, sample_indices
from emox_edge.results import ClipResult, Face, TaskResult
from emox_edge.tasks import TaskBook, TaskRequest, parse_tasks
from emox_edge.tasks.book import packaged_spec

log = logging.getLogger(__name__)

DETERMINISTIC_SEED = 0


class NanoEmoxPipeline:
    """Analyse clips with a nano-emox bundle (create with ``from_bundle``; close to free memory)."""

    def __init__(self, bundle: Bundle, options: PipelineOptions | None = None) -> None:
        from emox_edge.llm import LanguageCore

        options = options or PipelineOptions()
        if bundle.kind != "nano-emox":
            raise BundleError(f"{bundle.root}: a {bundle.kind!r} bundle, expected 'nano-emox'")
        self.bundle = bundle
        self.options = options
        self.preprocess = PreprocessConfig.from_manifest(bundle.manifest.get("preprocess"))
        self.book = TaskBook.from_manifest(bundle.manifest)
        self.generation = dict(bundle.manifest.get("generation") or packaged_spec()["generation"])
        self.encoders = EncoderSuite(bundle, device=options.device, precision=options.precision, n_threads=options.n_threads)
        lc = bundle.section("language_core")
        quant = options.quant or lc.get("default")
        ggufs = lc.get("gguf", {})
        if quant not in ggufs:
            raise ValueError(f"quant {quant!r} is not in bundle {bundle.root}; it has {', '.join(ggufs) or 'none'}")
        gpu_layers = -1 if self.encoders.device.llama_gpu_offload and self.encoders.device.name != "cpu" else 0
        self.core = LanguageCore.from_file(bundle.path(ggufs[quant]), n_ctx=options.n_ctx,
                                           n_threads=options.n_threads, n_gpu_layers=gpu_layers)
        self._embedding_names = [name for _, _, name in self.book.placeholders]
        self._faces = _FaceStage(options)

    @classmethod
    def from_bundle(cls, path: "str | os.PathLike | Bundle", options: PipelineOptions | None = None) -> "NanoEmoxPipeline":
        bundle = path if isinstance(path, Bundle) else Bundle.open(path)
        return cls(bundle, options)

    @property
    def name(self) -> str:
        return f"{self.bundle.kind}:{self.bundle.name}"

    # ------------------------------------------------------------------ analysis
    def encode(self, clip: Clip) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Encoder outputs of ``clip`` (placeholder name -> [slots, width]) and ms per stage."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs = preprocess_clip(clip, self.preprocess)
        timings["preprocess"] = _ms(t0)
        values, per_graph = self.encoders.run(
            {"pixel_values": inputs.pixel_values, "frames": inputs.face_frames, "waveforms": inputs.waveforms}
        )
        timings.update({f"encoder_{name}": ms for name, ms in per_graph.items()})
        return placeholder_embeddings(values, self._embedding_names), timings

    def check_tasks(self, tasks: Sequence[str | TaskRequest]) -> list[TaskRequest]:
        """Parse and validate tasks and their variants (ValueError listing the valid ones)."""
        requests = parse_tasks(tasks)
        for request in requests:
            self.book.question(request)
        return requests

    def analyze(self, clip: Clip, tasks: Sequence[str | TaskRequest], *, history: Sequence[str] = ()) -> ClipResult:
        """Answer ``tasks`` on ``clip``.

        Args:
            clip: the clip (its ``subtitle`` is the transcript; for ``empathize`` the current user input).
            tasks: task names, optionally with a variant ("intent:mintrec2"; see ``TaskRequest``).
            history: earlier dialogue turns for ``empathize`` ("role: utterance" lines).

        Raises:
            ValueError: unknown task or variant (the message lists the valid ones).
        """
        requests = self.check_tasks(tasks)
        t_start = time.perf_counter()
        embeddings, timings = self.encode(clip)
        t0 = time.perf_counter()
        frame_faces = self._faces.detect(clip)
        # the faces reported for the clip: those of the last analysed frame that has any
        faces = next((found for _, found in reversed(frame_faces) if found), ())
        if self._faces.active:
            timings["faces"] = _ms(t0)
        results: dict[str, TaskResult] = {}
        prefill = decode = 0.0
        for request in requests:
            question, segments = self._prompt(request, clip.subtitle, history, embeddings)
            grammar = self.book.grammar(question) if self.options.constrain else None
            sampling = self._sampling(question)
            if grammar is not None:  # room for the longest valid answer, whatever max_new_tokens says
                sampling["max_new_tokens"] = max(sampling["max_new_tokens"], self._answer_tokens(question))
            gen = self.core.generate(segments, grammar=grammar, **sampling)
            task_timings = {"prefill": gen.prefill_ms, "decode": gen.decode_ms,
                            "n_prompt": float(gen.n_prompt), "n_generated": float(gen.n_generated)}
            prefill += gen.prefill_ms
            decode += gen.decode_ms
            key = question.request.task if question.request.task not in results else str(question.request)
            results[key] = self.book.parse(question, gen.text, timings=task_timings)
        timings.update(prefill=prefill, decode=decode, total=_ms(t_start))
        return ClipResult(source=clip.source, start=clip.start, end=clip.end, bundle=self.name, tasks=results,
                          faces=tuple(faces), timings=timings, frame_faces=tuple(frame_faces))

    def _prompt(self, request: TaskRequest, subtitle: str, history: Sequence[str], embeddings):
        """The question and prompt segments, trimmed to the prompt budget.

        Nano-EmoX cut the *front* of an over-long prompt (breaking its placeholders); we keep the
        template whole and drop the oldest dialogue turns, then the start of the subtitle, instead.
        """
        budget = min(int(self.book.prompt.get("prompt_budget_tokens", 800)), self.core.n_ctx - 16)
        history = list(history)
        while True:
            user = UntrustedText(self.core.has_special)  # a subtitle must not inject <|im_end|>
            said, turns = user(subtitle), [user(turn) for turn in history]
            question = self.book.question(request, subtitle=said, history=turns)
            segments = user.resolve(self.book.segments(question, subtitle=said, history=turns, embeddings=embeddings))
            size = sum(len(self.core.tokenize(s, special=False)) if isinstance(s, str) else s.shape[0] for s in segments)
            if size <= budget:
                return question, segments
            if history:
                log.warning("prompt of %d tokens exceeds %d: dropping the oldest dialogue turn", size, budget)
                history = history[1:]
            elif len(subtitle) > 16:
                log.warning("prompt of %d tokens exceeds %d: shortening the subtitle from the front", size, budget)
                subtitle = subtitle[len(subtitle) // 4 :]
            else:
                return question, segments  # the core reports a prompt that cannot fit

    @staticmethod
    def _answer_tokens(question) -> int:
        # a grammar lets the model spell an answer with any tokens, at worst one per byte
        longest = max((len(label.encode()) for label in question.labels), default=0)
        return len((question.answer_prefix + question.answer_suffix).encode()) + longest + 4

    def _sampling(self, question) -> dict[str, Any]:
        g = self.generation
        max_new = self.options.max_new_tokens or int(g.get("max_new_tokens", 1200))
        stop = list(g.get("stop_strings", ["###", "<|im_end|>", "<|endoftext|>"]))
        if self.options.deterministic:
            return dict(max_new_tokens=max_new, temperature=0.0, top_p=1.0, top_k=0, repeat_penalty=1.0,
                        seed=self.options.seed if self.options.seed is not None else DETERMINISTIC_SEED, stop=stop)
        return dict(max_new_tokens=max_new, temperature=float(g.get("temperature", 1.0)), top_p=float(g.get("top_p", 0.9)),
                    top_k=int(g.get("top_k", 20)), repeat_penalty=float(g.get("repetition_penalty", 1.0)),
                    seed=self.options.seed, stop=stop)

    def close(self) -> None:
        self._faces.close()
        self.encoders.close()
        self.core.close()

    def __enter__(self) -> "NanoEmoxPipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _FaceStage:
    """Faces on ``n_frames`` uniformly sampled frames (default 4), tracked, with each frame's time.

    Uses ``emox_edge.faces.FaceDetector`` (Haar by default; ``options.extra["face_model"]`` names a
    CenterFace ONNX). ``options.extra["faces"] = False`` turns detection off; ``extra["face_frames"]``
    sets ``n_frames``.
    """

    def __init__(self, options: PipelineOptions) -> None:
        self._detector = None
        self.n_frames = int(options.extra.get("face_frames", 4))
        self.active = bool(options.extra.get("faces", True))
        if not self.active:
            return
        try:
            from emox_edge.faces import FaceDetector, FaceDetectorOptions

            self._detector = FaceDetector(FaceDetectorOptions(model_path=options.extra.get("face_model")))
        except (ImportError, FileNotFoundError, ValueError) as exc:
            log.warning("face detection off: %s", exc)
            self.active = False

    def detect(self, clip: Clip) -> list[tuple[float, tuple[Face, ...]]]:
        if self._detector is None or clip.frames.shape[0] == 0:
            return []
        from emox_edge.faces import FaceTracker

        tracker = FaceTracker()
        frame_faces = []
        for index in sorted(set(sample_indices(clip.frames.shape[0], self.n_frames))):
            tracked = tracker.update(self._detector.detect(np.ascontiguousarray(clip.frames[index])))
            frame_faces.append((float(clip.frame_times[index]), tuple(tracked)))
        return frame_faces

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
