"""The lite bundle kind: face expression + voice prosody fused, and a small language core for words.

``emotion`` comes from the fused perception (face expression + voice prosody) and ``sentiment`` from
the fused valence of face, voice and the words (VADER on the transcript; no language model is loaded
for either); with no face and no speech they abstain. ``open_vocab_emotion``, ``intent``, ``reason``
and ``empathize`` ask the bundle's language core, with the perception injected as text or as lexical
embeddings (``lite.injection`` in the manifest); ``open_vocab_emotion`` is decoded under a grammar
over a list of English emotion words (never a non-word); ``intent`` abstains when there are no words.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Sequence

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.kinds.base import BundleKind, Evidence
from emox_edge.kinds.plans import Ask, Step, timings_of
from emox_edge.lite.explain import evidence_chain, evidence_reason, reply_messages
from emox_edge.lite.injection import PromptBuilder
from emox_edge.lite.perception import DEFAULT_LABEL_SET, Perception, fuse, label_sets
from emox_edge.lite.prosody import estimate_affect, prosody_features
from emox_edge.lite.tables import SENTIMENT_LABELS, intent_labels, nano_task, table
from emox_edge.lite.text_sentiment import fuse_valence, sentiment_of, text_valence
from emox_edge.lite.vocabulary import load_emotion_words, open_vocab_grammar, parse_open_vocab_words
from emox_edge.llm.batching import BatchRequest
from emox_edge.llm.segments import UntrustedText
from emox_edge.media import Clip
from emox_edge.results import TaskResult
from emox_edge.tasks import TaskRequest, parse_empathy, parse_label, postprocess_reply
from emox_edge.tasks.budget import trim_text_to_tokens

log = logging.getLogger(__name__)

FREE_TEXT_REPEAT_PENALTY = 1.2
NO_EVIDENCE = "no face and no speech in the clip"
NO_WORDS = "no words: the clip has no transcript or subtitle"
REASON_VARIANTS = ("evidence", "generated")


class LiteKind(BundleKind):
    """Lite bundles: CenterFace + mini-Xception FER + Silero VAD + prosody, and a small GGUF core."""

    kind = "lite"
    default_face_frames = 8
    max_ctx = 4096

    def __init__(self, bundle, services) -> None:
        super().__init__(bundle, services)
        for entry in ("language_core.gguf", "language_core.default", "graphs.face_detector.file",
                      "graphs.expression.file", "graphs.vad.file"):
            bundle.require(entry)  # a damaged manifest fails here, naming the entry
        lite = bundle.manifest.get("lite") or {}
        self.injection = services.options.lite.injection or str(lite.get("injection", "text"))
        self._builder = None
        self._small_core: bool | None = None
        self._intent = None

    def variants(self) -> dict[str, list[str]]:
        ranges = list(nano_task("sentiment")["valence_ranges"])
        return {"sentiment": ["three_way", "valence", *(f"valence:{r}" for r in ranges)],
                "emotion": list(label_sets()), "intent": ["mintrec", "mintrec2"],
                "open_vocab_emotion": [], "reason": list(REASON_VARIANTS), "empathize": []}

    def check_variant(self, request: TaskRequest) -> None:
        variant = request.variant
        if variant is None:
            return
        if request.task == "emotion" and variant not in label_sets():
            raise BadInputError(f"emotion variant {variant!r} is not supported by the lite bundle; "
                                f"use one of: {', '.join(label_sets())}")
        if request.task == "reason" and variant not in REASON_VARIANTS:
            raise BadInputError(f"reason variant {variant!r}: use one of {', '.join(REASON_VARIANTS)}")
        if request.task == "intent":
            try:
                intent_labels(variant)
            except ValueError as exc:
                raise BadInputError(str(exc)) from exc
        if request.task == "sentiment":
            mode, _, rng = variant.partition(":")
            ranges = nano_task("sentiment")["valence_ranges"]
            if mode not in ("three_way", "valence") or (rng and rng not in ranges):
                raise BadInputError(f"sentiment variant {variant!r}: use three_way, valence or valence:<range> with "
                                    f"range one of {', '.join(ranges)}")

    # ------------------------------------------------------------------ perception
    def perceive(self, clip: Clip, frame_faces, *, speech_segments=None) -> Evidence:
        """Fuse the main face's expression over the analysed frames with the voice's prosody over the
        voiced spans (the analyzer's VAD, from the bundle's ``graphs.vad``)."""
        timings: dict[str, float] = {}
        main_probs = []
        for _, faces in frame_faces:
            scored = [f for f in faces if f.expression]
            if scored:
                main = max(scored, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) * f.score)
                main_probs.append([main.expression[c] for c in main.expression])
                classes = list(main.expression)
        expression = {c: float(p) for c, p in zip(classes, np.mean(main_probs, axis=0))} if main_probs else None
        voice = features = None
        segments = list(speech_segments or [])
        if clip.audio.size >= clip.sample_rate // 4:
            if segments:
                t0 = time.perf_counter()
                sr = clip.sample_rate
                speech = np.concatenate([clip.audio[int(s * sr): int(e * sr)] for s, e in segments])
                features = prosody_features(speech, sr)
                voice = estimate_affect(features)
                timings["prosody_ms"] = _ms(t0)
        perception = fuse(expression, voice, prosody=features, face_frames=(len(main_probs), len(frame_faces)))
        perception = Perception(**{**perception.__dict__, "extra": {
            "speech_segments": [[round(s, 3), round(e, 3)] for s, e in segments]}})
        return Evidence(perception=perception.to_dict(), timings=timings, state=perception, transcript=clip.subtitle)

    # ------------------------------------------------------------------ tasks
    def plan(self, request: TaskRequest, evidence: Evidence, history: Sequence[str]) -> Step:
        return getattr(self, f"_task_{request.task}")(evidence.state, evidence.transcript, tuple(history), request.variant)

    @staticmethod
    def _no_evidence(p: Perception) -> bool:
        return p.expression is None and p.voice is None

    def _task_emotion(self, p: Perception, words: str, history, variant) -> TaskResult:
        if self._no_evidence(p):
            return TaskResult.abstain("emotion", NO_EVIDENCE)
        probs = p.emotion(variant or DEFAULT_LABEL_SET)
        label = max(probs, key=probs.get)
        return TaskResult("emotion", f"The most likely label is {label}.", label=label, labels=(label,),
                          valid=True, score=round(float(probs[label]), 4))

    def _task_sentiment(self, p: Perception, words: str, history, variant) -> TaskResult:
        if self._no_evidence(p) and not words.strip():
            return TaskResult.abstain("sentiment", NO_EVIDENCE)
        valence = _fused_valence(p, words)
        label = sentiment_of(valence, float(table("fusion")["sentiment_threshold"]))
        mode, _, rng = (variant or "three_way").partition(":")
        if mode == "valence":
            spec = nano_task("sentiment")
            low, high = spec["valence_ranges"][rng or spec["default_valence_range"]]
            score = round(valence * (high - low) / 2 + (high + low) / 2, 2)
            return TaskResult("sentiment", f"The valence score is {score:.2f}.", label=label, labels=(label,),
                              valid=True, score=score)
        return TaskResult("sentiment", f"The character's sentiment state is {label}.", label=label, labels=(label,),
                          valid=label in SENTIMENT_LABELS, score=round(valence, 4))

    @property
    def builder(self) -> PromptBuilder:
        if self._builder is None:
            section = self.bundle.section("language_core")
            self._builder = PromptBuilder(self.services.core, mode=self.injection, chat_format=section.get("chat_format"))
        return self._builder

    def _intent_classifier(self, label_set: str):
        """The bundle's sentence-encoder intent classifier for ``label_set``, opened on first use; None when
        the bundle has none or its examples do not cover that label set (then the language core answers)."""
        entry = self.bundle.section("graphs").get("intent_encoder")
        if not entry or label_set != entry.get("label_set", "mintrec"):
            return None
        if self._intent is None:
            from emox_edge.lite.intent_model import IntentClassifier

            self._intent = IntentClassifier.from_bundle(self.bundle, labels=intent_labels(label_set)[0], n_threads=1)
        return self._intent

    def close(self) -> None:
        if self._intent is not None:
            self._intent.close()
            self._intent = None
        super().close()

    @property
    def small_core(self) -> bool:
        """Whether the bundle's language core has fewer parameters than ``tasks.small_core_params`` of
        lite.json (read from the GGUF's tensor table; the core is not loaded). Small cores explain
        from the evidence instead of generating a reason."""
        if self._small_core is None:
            from emox_edge.llm.gguf_file import GGUFFile

            section = self.bundle.section("language_core")
            gguf = GGUFFile(self.bundle.path(section["gguf"][section["default"]]))
            try:
                n_params = sum(int(np.prod(t.shape)) for t in gguf.tensors.values())
            finally:
                gguf.close()
            self._small_core = n_params < int(table("tasks")["small_core_params"])
        return self._small_core

    def _ask(self, p: Perception, words: str, history, question: str, *, max_new_tokens: int = 0,
             grammar: str | None = None, greedy: bool = False, prefix: str = "", stop=(),
             repeat_penalty: float = FREE_TEXT_REPEAT_PENALTY, candidates=None) -> BatchRequest:
        """A language-core request. Small models loop under greedy decoding, so free text gets a repeat penalty."""
        core = self.services.core
        words, history = self._fitted(words, history)
        user = UntrustedText(core.has_special)  # a transcript must not inject <|im_end|>
        segments = user.resolve(self.builder.segments(p, question, subtitle=user(words),
                                                      history=[user(turn) for turn in history],
                                                      assistant_prefix=prefix))
        if candidates is not None:
            return BatchRequest(segments, candidates=tuple(candidates))
        return BatchRequest(segments, grammar=grammar, stop=tuple(stop),
                            **self.services.sampling(max_new_tokens=max_new_tokens, greedy=greedy,
                                                     repeat_penalty=repeat_penalty))

    def _task_open_vocab_emotion(self, p: Perception, words: str, history, variant) -> Step:
        if self._no_evidence(p) and not words.strip():
            return TaskResult.abstain("open_vocab_emotion", NO_EVIDENCE)
        cfg = table("tasks")["open_vocab_emotion"]
        vocabulary = load_emotion_words()
        grammar = open_vocab_grammar(vocabulary) if self.services.options.constrain else None
        ask = self._ask(p, words, history, cfg["question"], max_new_tokens=cfg["max_new_tokens"], grammar=grammar,
                        stop=["\n", "."], repeat_penalty=1.5)

        def finish(outputs) -> TaskResult:
            text = postprocess_reply(outputs[0].text)
            labels = parse_open_vocab_words(text, vocabulary)
            return TaskResult("open_vocab_emotion", text, label=labels[0] if labels else None, labels=labels,
                              valid=bool(labels), timings=timings_of(*outputs))

        return Ask([ask], finish)

    def _task_intent(self, p: Perception, words: str, history, variant) -> Step:
        from emox_edge.llm import label_grammar

        if not words.strip():
            return TaskResult.abstain("intent", NO_WORDS)
        cfg = table("tasks")["intent"]
        label_set = variant or cfg["label_set"]
        labels, candidates = intent_labels(label_set)
        classifier = self._intent_classifier(label_set)
        if classifier is not None:  # the sentence encoder: 0.59 on the eval set vs 0.20 for SmolLM2's likelihood
            t0 = time.perf_counter()
            label, scores = classifier.classify(words)
            return TaskResult("intent", label, label=label, labels=(label,), valid=True, score=scores[label],
                              timings={"intent_encoder_ms": _ms(t0)})
        options = self.services.options
        question = cfg["question"].format(candidate_labels=candidates)
        if options.constrain and options.label_decoding == "likelihood":
            end = "<|im_end|>" if self.builder.chat_format == "chatml" else "\n"
            ask = self._ask(p, words, history, question, candidates=[f"{label}{end}" for label in labels])

            def scored(outputs) -> TaskResult:
                scores = outputs[0]
                label = labels[scores.best]
                return TaskResult("intent", label, label=label, labels=(label,), valid=True,
                                  score=round(scores.probabilities()[scores.text], 4), timings=timings_of(scores))

            return Ask([ask], scored)
        grammar = label_grammar(labels) if options.constrain else None
        ask = self._ask(p, words, history, question, max_new_tokens=cfg["max_new_tokens"], grammar=grammar,
                        greedy=True, stop=["\n"], repeat_penalty=1.0)

        def finish(outputs) -> TaskResult:
            text = postprocess_reply(outputs[0].text)
            answer = parse_label(text, labels)
            return TaskResult("intent", text, label=answer.label, labels=(answer.label,) if answer.label else (),
                              valid=answer.valid, timings=timings_of(*outputs))

        return Ask([ask], finish)

    def _task_reason(self, p: Perception, words: str, history, variant) -> Step:
        if self._no_evidence(p) and not words.strip():
            return TaskResult.abstain("reason", NO_EVIDENCE)
        cfg = table("tasks")["reason"]
        variant = variant or cfg["variants"]["default_small" if self.small_core else "default"]
        if variant == "evidence":
            text, label = evidence_reason(p, words, text_valence(words))
            return TaskResult("reason", text, label=label, labels=(label,) if label else (), valid=True)
        ask = self._ask(p, words, history, cfg["question"], max_new_tokens=cfg["max_new_tokens"])

        def finish(outputs) -> TaskResult:
            text = postprocess_reply(outputs[0].text)
            label = p.emotion_label()
            return TaskResult("reason", text, label=label, labels=(label,), valid=bool(text),
                              timings=timings_of(*outputs))

        return Ask([ask], finish)

    def _task_empathize(self, p: Perception, words: str, history, variant) -> Step:
        """The chain from the evidence (``lite.explain``), then the reply to the person's words as a chat
        turn, the emotion seen in the system turn; never empty, cut at its last whole sentence when capped."""
        cfg = table("tasks")["empathize"]
        chain = evidence_chain(p, words, text_valence(words))
        ask = self._reply_request(p, words, history, max_new_tokens=cfg["max_new_tokens"])

        def finish(replies) -> Step:
            said_back = _clean_reply(replies[-1].text)
            if not said_back and len(replies) == 1:
                # the model ended its turn at once: ask again with the end of turn banned
                banned = {t: float("-inf") for t in self.services.core.eog_token_ids}
                again = dataclasses.replace(ask, logit_bias=banned)
                return Ask([again], lambda more: finish([*replies, *more]))
            if len(replies) > 1 or replies[-1].stop_reason == "length":
                said_back = _whole_sentences(said_back)
            text = f"<think>{chain}</think>\n{said_back}"
            answer = parse_empathy(text)
            return TaskResult("empathize", text, label=p.emotion_label() if not self._no_evidence(p) else None,
                              think=answer.think, reply=answer.reply, valid=bool(answer.reply),
                              timings=timings_of(*replies))

        return Ask([ask], finish)

    def _reply_request(self, p: Perception, words: str, history, *, max_new_tokens: int) -> BatchRequest:
        words, history = self._fitted(words, history)
        user = UntrustedText(self.services.core.has_special)  # the words must not inject <|im_end|>
        system, said = reply_messages(p, words, [user(turn) for turn in history])
        stop = ("<|im_start|>", "\n\n") if self.builder.chat_format == "chatml" else ("\nUser:", "\n\n")
        return BatchRequest(user.resolve(self.builder.chat(system, [user(said)])), stop=stop,
                            **self.services.sampling(max_new_tokens=max_new_tokens,
                                                     repeat_penalty=FREE_TEXT_REPEAT_PENALTY))

    def _fitted(self, words: str, history) -> tuple[str, list[str]]:
        """The words and the most recent dialogue turns, each within a quarter of the context (an
        over-long transcript keeps its most recent words)."""
        core = self.services.core
        budget = max(64, core.n_ctx // 4)
        count = lambda text: len(core.tokenize(text, special=False))  # noqa: E731
        return trim_text_to_tokens(words, count, budget), _recent_turns(history, count, budget)


def _clean_reply(text: str) -> str:
    """The reply without tags a small model may write around it (``<reply>``, ``</answer>``...)."""
    return re.sub(r"\s+", " ", _TAG.sub(" ", postprocess_reply(text))).strip()


def _whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end (a reply cut by the token cap), or all of it when it has none."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[:ends[-1]] if ends else text


_TAG = re.compile(r"</?[A-Za-z_]{1,20}>")


def _fused_valence(p: Perception, words: str) -> float:
    """Valence of face, voice and words together (weights face 0.5, voice 0.2, text 0.3, measured on
    benchmarks/data/lite_eval.json; docs/lite-bundle.md); 0.0 when there is no evidence at all."""
    valences = table("expression_valence")
    face = sum(prob * float(valences[c]) for c, prob in p.expression.items()) if p.expression else None
    voice = p.voice.valence if p.voice is not None else None
    fused = fuse_valence(face, voice, text_valence(words))
    return 0.0 if fused is None else float(fused)


def _recent_turns(turns, count, budget: int) -> list[str]:
    """The most recent dialogue turns that fit ``budget`` tokens together (the last one trimmed to fit)."""
    kept: list[str] = []
    left = budget
    for turn in reversed(list(turns)):
        size = count(turn)
        if size > left:
            if not kept:
                kept.append(trim_text_to_tokens(turn, count, left))
            break
        kept.append(turn)
        left -= size
    return kept[::-1]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)
