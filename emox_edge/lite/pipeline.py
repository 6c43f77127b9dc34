"""``LitePipeline``: the six tasks on a lite bundle (face expression + voice prosody + a small LLM).

``emotion`` and ``sentiment`` come from the fused perception alone (no language model is loaded for
them). ``open_vocab_emotion``, ``intent``, ``reason`` and ``empathize`` ask the bundle's language core,
with the perception injected as text or as lexical embeddings (``lite.injection`` in the manifest).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Sequence

import numpy as np

from emox_edge.bundle import Bundle, BundleError
from emox_edge.devices import default_threads, resolve_device
from emox_edge.faces import FaceDetector, FaceDetectorOptions, FaceTracker
from emox_edge.lite.expression import ExpressionModel
from emox_edge.lite.injection import INJECTION_MODES, PromptBuilder
from emox_edge.llm.segments import UntrustedText
from emox_edge.lite.perception import Perception, fuse
from emox_edge.lite.prosody import estimate_affect, prosody_features
from emox_edge.lite.perception import DEFAULT_LABEL_SET, label_sets
from emox_edge.lite.tables import SENTIMENT_LABELS, intent_labels, nano_task, table
from emox_edge.media import Clip
from emox_edge.options import PipelineOptions
from emox_edge.results import ClipResult, Face, TaskResult
from emox_edge.tasks import TaskRequest, parse_empathy, parse_label, parse_open_vocab, parse_tasks, postprocess_reply
from emox_edge.vad import SileroVAD, VADOptions

log = logging.getLogger(__name__)

LLM_TASKS = ("open_vocab_emotion", "intent", "reason", "empathize")
DEFAULT_FRAMES = 8
FREE_TEXT_REPEAT_PENALTY = 1.2


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)


class LitePipeline:
    """Runs a lite bundle. Create with ``LitePipeline.from_bundle(bundle, options)``; ``close()`` after use.

    ``options.extra`` may hold ``lite_frames`` (frames analysed per clip, default 8), ``injection``
    ("text" | "lexical", default: the bundle's) and ``fer_precision`` ("fp32" | "int8", default: the
    bundle's ``runtime_precision``).
    """

    def __init__(self, bundle: Bundle, options: PipelineOptions) -> None:
        if bundle.kind != "lite":
            raise BundleError(f"{bundle.root}: bundle kind {bundle.kind!r}; LitePipeline runs 'lite' bundles")
        self.bundle = bundle
        self.options = options
        lite = bundle.section("lite")
        graphs = bundle.section("graphs")
        self._device = resolve_device(options.device)
        providers = self._device.ort_providers
        threads = options.n_threads or default_threads()
        self.injection = str(options.extra.get("injection", lite.get("injection", "text")))
        if self.injection not in INJECTION_MODES:
            raise ValueError(f"injection must be one of {INJECTION_MODES}, got {self.injection!r}")
        self.frames_per_clip = int(options.extra.get("lite_frames", DEFAULT_FRAMES))
        if self.frames_per_clip < 1:
            raise ValueError(f"lite_frames must be >= 1, got {self.frames_per_clip}")
        self._detector = FaceDetector(FaceDetectorOptions(
            model_path=bundle.path(graphs["face_detector"]["file"]), providers=providers, n_threads=threads))
        fer = graphs["expression"]
        # The bundle says which FER graph to run ("runtime_precision": fp32, because int8 is slower for
        # this 64x64 network on CPU); options.extra["fer_precision"] overrides it.
        fer_precision = str(options.extra.get("fer_precision", fer.get("runtime_precision", options.precision)))
        if fer_precision not in ("fp32", "int8"):
            raise ValueError(f"fer_precision must be 'fp32' or 'int8', got {fer_precision!r}")
        fer_file = fer["fp32"] if fer_precision == "fp32" else fer["file"]
        self._expression = ExpressionModel(bundle.path(fer_file), providers=providers, n_threads=threads)
        self._vad = SileroVAD(bundle.path(graphs["vad"]["file"]), n_threads=1)
        self._tracker = FaceTracker()
        self._core = None
        self._builder = None
        self.tasks_config: Mapping[str, Any] = bundle.manifest.get("tasks", {})
        self.name = f"lite:{bundle.name}"

    @classmethod
    def from_bundle(cls, bundle: Bundle, options: PipelineOptions | None = None) -> "LitePipeline":
        if not isinstance(bundle, Bundle):
            bundle = Bundle.open(bundle)
        return cls(bundle, options or PipelineOptions())

    # ------------------------------------------------------------------------------ language core
    @property
    def core(self):
        """The language core, loaded on first use."""
        if self._core is None:
            from emox_edge.llm import LanguageCore

            section = self.bundle.section("language_core")
            quant = self.options.quant or section["default"]
            if quant not in section["gguf"]:
                raise ValueError(f"quant {quant!r} not in this bundle; available: {', '.join(section['gguf'])}")
            t0 = time.perf_counter()
            self._core = LanguageCore.from_file(
                self.bundle.path(section["gguf"][quant]), n_ctx=min(int(self.options.n_ctx), 4096),
                n_threads=self.options.n_threads, n_gpu_layers=-1 if self._device.llama_gpu_offload else 0)
            self._builder = PromptBuilder(self._core, mode=self.injection, chat_format=section.get("chat_format"))
            log.info("language core %s loaded in %.0f ms", section["gguf"][quant], _ms(t0))
        return self._core

    # ------------------------------------------------------------------------------ perception
    def perceive(self, clip: Clip) -> tuple[Perception, tuple[tuple[float, tuple[Face, ...]], ...], dict[str, float]]:
        """Faces, expressions and voice of one clip, fused.

        Returns (perception, (frame time, faces) per analysed frame, timings ms).
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        n = len(clip.frames)
        picks = np.unique(np.linspace(0, n - 1, min(n, self.frames_per_clip)).round().astype(int)) if n else []
        main_probs = []
        frame_faces: list[tuple[float, tuple[Face, ...]]] = []
        t_expr = 0.0
        for idx in picks:
            frame = clip.frames[idx]
            faces = self._tracker.update(self._detector.detect(frame))
            t1 = time.perf_counter()
            faces = self._expression.annotate(frame, faces)
            t_expr += time.perf_counter() - t1
            if faces:
                main = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) * f.score)
                main_probs.append([main.expression[c] for c in self._expression.classes])
            frame_faces.append((float(clip.frame_times[idx]), tuple(faces)))
        timings["faces_ms"] = round(_ms(t0) - t_expr * 1000.0, 2)
        timings["expression_ms"] = round(t_expr * 1000.0, 2)
        expression = None
        if main_probs:
            mean = np.mean(main_probs, axis=0)
            expression = {c: float(p) for c, p in zip(self._expression.classes, mean)}
        t0 = time.perf_counter()
        voice = features = None
        segments: list[tuple[float, float]] = []
        if clip.audio.size >= clip.sample_rate // 4:
            segments = self._vad.speech_segments(clip.audio, clip.sample_rate, VADOptions(min_speech_s=0.2))
            timings["vad_ms"] = _ms(t0)
            if segments:
                t0 = time.perf_counter()
                sr = clip.sample_rate
                speech = np.concatenate([clip.audio[int(s * sr): int(e * sr)] for s, e in segments])
                features = prosody_features(speech, sr)
                voice = estimate_affect(features)
                timings["prosody_ms"] = _ms(t0)
        perception = fuse(expression, voice, prosody=features, face_frames=(len(main_probs), len(picks)))
        perception = Perception(**{**perception.__dict__, "extra": {
            "speech_segments": [[round(s, 3), round(e, 3)] for s, e in segments]}})
        return perception, tuple(frame_faces), timings

    # ------------------------------------------------------------------------------ tasks
    def analyze(self, clip: Clip, tasks: Sequence[str | TaskRequest], *, history: Sequence[str] = ()) -> ClipResult:
        """Run ``tasks`` ("emotion", "intent:mintrec2", ``TaskRequest``s ...) on ``clip``.

        Raises:
            TypeError: ``clip`` is not a ``Clip``.
            ValueError: an unknown task or variant (the message lists the valid ones).
        """
        if not isinstance(clip, Clip):
            raise TypeError(f"analyze() takes an emox_edge.media.Clip, got {type(clip).__name__}")
        requests = parse_tasks(tasks)
        for request in requests:
            self._check_variant(request)
        t_all = time.perf_counter()
        perception, frame_faces, timings = self.perceive(clip)
        faces = frame_faces[-1][1] if frame_faces else ()
        results: dict[str, TaskResult] = {}
        for request in dict.fromkeys(requests):
            t0 = time.perf_counter()
            result = getattr(self, f"_task_{request.task}")(perception, clip, tuple(history), request.variant)
            results[request.task] = TaskResult(**{**result.__dict__, "timings": {**result.timings, "total_ms": _ms(t0)}})
        timings["total_ms"] = _ms(t_all)
        return ClipResult(source=clip.source, start=clip.start, end=clip.end, bundle=self.name, tasks=results,
                          faces=faces, perception=perception.to_dict(), timings=timings, frame_faces=frame_faces)

    @staticmethod
    def _check_variant(request: TaskRequest) -> None:
        variant = request.variant
        if variant is None:
            return
        if request.task == "emotion" and variant not in label_sets():
            raise ValueError(f"emotion variant {variant!r} is not supported by the lite bundle; "
                             f"use one of: {', '.join(label_sets())}")
        if request.task == "intent":
            intent_labels(variant)  # raises ValueError listing the known sets
        if request.task == "sentiment":
            mode, _, rng = variant.partition(":")
            ranges = nano_task("sentiment")["valence_ranges"]
            if mode not in ("three_way", "valence") or (rng and rng not in ranges):
                raise ValueError(f"sentiment variant {variant!r}: use three_way, valence or valence:<range> with "
                                 f"range one of {', '.join(ranges)}")

    def _task_emotion(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        label_set = variant or DEFAULT_LABEL_SET
        probs = p.emotion(label_set)
        label = max(probs, key=probs.get)
        return TaskResult("emotion", f"The most likely label is {label}.", label=label, labels=(label,),
                          valid=True, score=round(float(probs[label]), 4))

    def _task_sentiment(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        label = p.sentiment_label
        mode, _, rng = (variant or "three_way").partition(":")
        if mode == "valence":
            spec = nano_task("sentiment")
            low, high = spec["valence_ranges"][rng or spec["default_valence_range"]]
            score = round(p.valence * (high - low) / 2 + (high + low) / 2, 2)
            return TaskResult("sentiment", f"The valence score is {score:.2f}.", label=label, labels=(label,),
                              valid=True, score=score)
        return TaskResult("sentiment", f"The character's sentiment state is {label}.", label=label, labels=(label,),
                          valid=label in SENTIMENT_LABELS, score=round(p.valence, 4))

    def _gen_kwargs(self, max_new_tokens: int, *, greedy: bool = False, repeat_penalty: float = 1.0) -> dict[str, Any]:
        cap = self.options.max_new_tokens
        kwargs: dict[str, Any] = {"max_new_tokens": min(max_new_tokens, cap) if cap else max_new_tokens,
                                  "repeat_penalty": repeat_penalty}
        if greedy or self.options.deterministic:
            kwargs.update(temperature=0.0, seed=0)
        else:
            kwargs.update(temperature=0.7, top_p=0.9, top_k=40, seed=self.options.seed)
        return kwargs

    def _ask(self, p: Perception, clip: Clip, history, question: str, *, max_new_tokens: int,
             grammar: str | None = None, greedy: bool = False, prefix: str = "", stop=(),
             repeat_penalty: float = FREE_TEXT_REPEAT_PENALTY):
        """Generate an answer. Small models loop under greedy decoding, so free text gets a repeat penalty."""
        core = self.core
        user = UntrustedText(core.has_special)  # a transcript must not inject <|im_end|>
        segments = user.resolve(self._builder.segments(p, question, subtitle=user(clip.subtitle),
                                                       history=[user(turn) for turn in history],
                                                       assistant_prefix=prefix))
        return core.generate(segments, grammar=grammar, stop=stop,
                             **self._gen_kwargs(max_new_tokens, greedy=greedy, repeat_penalty=repeat_penalty))

    @staticmethod
    def _timings(*results) -> dict[str, float]:
        return {"prefill_ms": round(sum(r.prefill_ms for r in results), 2),
                "decode_ms": round(sum(r.decode_ms for r in results), 2),
                "n_prompt": float(sum(r.n_prompt for r in results)),
                "n_generated": float(sum(r.n_generated for r in results))}

    def _task_open_vocab_emotion(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        cfg = table("tasks")["open_vocab_emotion"]
        grammar = cfg["grammar"] if self.options.constrain else None
        out = self._ask(p, clip, history, cfg["question"], max_new_tokens=cfg["max_new_tokens"], grammar=grammar,
                        stop=["\n", "."], repeat_penalty=1.5)
        text = postprocess_reply(out.text)
        labels = parse_open_vocab(text, empty_label="")
        return TaskResult("open_vocab_emotion", text, label=labels[0] if labels else None, labels=labels,
                          valid=bool(labels), timings=self._timings(out))

    def _task_intent(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        from emox_edge.llm import label_grammar

        cfg = table("tasks")["intent"]
        labels, candidates = intent_labels(variant or cfg["label_set"])
        grammar = label_grammar(labels) if self.options.constrain else None
        out = self._ask(p, clip, history, cfg["question"].format(candidate_labels=candidates),
                        max_new_tokens=cfg["max_new_tokens"], grammar=grammar, greedy=True, stop=["\n"],
                        repeat_penalty=1.0)
        text = postprocess_reply(out.text)
        answer = parse_label(text, labels)
        return TaskResult("intent", text, label=answer.label, labels=(answer.label,) if answer.label else (),
                          valid=answer.valid, timings=self._timings(out))

    def _task_reason(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        cfg = table("tasks")["reason"]
        out = self._ask(p, clip, history, cfg["question"], max_new_tokens=cfg["max_new_tokens"])
        text = postprocess_reply(out.text)
        label = p.emotion_label()
        return TaskResult("reason", text, label=label, labels=(label,), valid=bool(text), timings=self._timings(out))

    def _task_empathize(self, p: Perception, clip: Clip, history, variant) -> TaskResult:
        cfg = table("tasks")["empathize"]
        opened, closed = cfg["think_open"], cfg["think_close"]
        think = self._ask(p, clip, history, cfg["question"], max_new_tokens=cfg["max_think_tokens"], prefix=opened,
                          stop=["</think>"])
        chain = postprocess_reply(think.text).replace("<think>", "").strip()
        reply = self._ask(p, clip, history, cfg["question"], max_new_tokens=cfg["max_new_tokens"],
                          prefix=f"{opened}{chain}\n{closed}", stop=["<think>"])
        text = f"<think>{chain}</think>\n{postprocess_reply(reply.text)}"
        answer = parse_empathy(text)
        return TaskResult("empathize", text, label=answer.emotion, think=answer.think, reply=answer.reply,
                          valid=bool(answer.reply), timings=self._timings(think, reply))

    def close(self) -> None:
        for part in (self._detector, self._expression, self._vad, self._core):
            if part is not None:
                part.close()
        self._core = None

    def __enter__(self) -> "LitePipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
