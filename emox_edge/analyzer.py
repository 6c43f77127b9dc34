"""``Analyzer``: one analyzer for every bundle kind.

It owns the stages every bundle shares: opening the bundle and checking its manifest, the device and
thread budget, face detection + tracking, voice activity and speech recognition (the words become
the subtitle of every language task), the language core (one GPU-offload rule), sampling defaults,
task parsing and variant checks, timing keys, result assembly and the live loop. A bundle kind
(``emox_edge.kinds``) contributes only its perception and its prompts.

    import emox_edge

    with emox_edge.load() as analyzer:                      # the default lite bundle
        result = analyzer.analyze("talk.mp4", ["emotion", "intent"])
        for result in analyzer.stream(0, ["emotion"]):     # camera 0
            print(result.line())
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from emox_edge.bundle import Bundle
from emox_edge.devices import default_threads, resolve_device
from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.faces.persons import persons
from emox_edge.faces.speaker import choose_speaker  # the face whose mouth moves while speech is heard, else the largest
from emox_edge.faces.stage import FaceStage
from emox_edge.kinds import kind_class
from emox_edge.media import Clip
from emox_edge.options import AnalyzerOptions
from emox_edge.results import ClipResult, TaskResult
from emox_edge.tasks import TaskRequest, parse_tasks

log = logging.getLogger(__name__)

DEFAULT_GENERATION = {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.0, "max_new_tokens": 256}


class Analyzer:
    """Analyse clips, files, arrays and live sources with one bundle.

    Create with ``Analyzer.from_bundle(path, options)`` or ``emox_edge.load()``; ``close()`` (or a
    ``with`` block) frees the models.

    Raises (on construction):
        FileNotFoundError: no bundle at ``path``.
        BundleError: a corrupt bundle, an unknown kind, a manifest missing an entry its kind needs.
        BadInputError: an option the bundle cannot honour (e.g. a quantization it does not have).
    """

    def __init__(self, bundle: Bundle, options: AnalyzerOptions | None = None) -> None:
        options = options or AnalyzerOptions()
        if not isinstance(options, AnalyzerOptions):
            raise InputTypeError(f"options must be an AnalyzerOptions, got {type(options).__name__}")
        self.bundle = bundle
        self.options = options
        self.device = resolve_device(options.device)
        self.n_threads = options.n_threads or default_threads()
        self._core = None
        self._faces: FaceStage | None = None
        self._kind = None
        self._vad = None
        self._transcriber = None
        self._gguf = self._choose_gguf()
        perceive = options.stages != "language"
        try:
            self._vad = _open_vad(bundle) if perceive else None
            if options.speech.enabled and perceive:
                from emox_edge.speech import Transcriber

                self._transcriber = Transcriber.from_bundle(bundle, n_threads=self.n_threads, device=self.device)
                if self._transcriber is not None:
                    self._transcriber.check_options(options.speech)  # e.g. a language the model lacks
            self._kind = kind_class(bundle.kind, where=bundle.root)(bundle, self)
            if perceive:
                self._faces = FaceStage(bundle, options.faces, default_frames=self._kind.default_face_frames,
                                        providers=self.device.ort_providers, n_threads=self.n_threads,
                                        fer_precision=options.lite.fer_precision)
            if self._kind.eager_core and options.stages != "perception":
                _ = self.core
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bundle(cls, path: "str | os.PathLike | Bundle | None" = None,
                    options: AnalyzerOptions | None = None) -> "Analyzer":
        """Open the bundle at ``path`` (None: the default lite bundle, built on first use)."""
        if path is None:
            from emox_edge.default_bundle import default_bundle_path

            path = default_bundle_path()
        bundle = path if isinstance(path, Bundle) else Bundle.open(path)
        return cls(bundle, options)

    @property
    def name(self) -> str:
        return f"{self.bundle.kind}:{self.bundle.name}"

    @property
    def kind(self) -> str:
        return self.bundle.kind

    @property
    def bundle_kind(self):
        """The kind's part of the analyzer (``emox_edge.kinds``): its perception and prompts."""
        return self._kind

    # ------------------------------------------------------------------ shared services for the kinds
    def _choose_gguf(self) -> str:
        section = self.bundle.require("language_core")
        ggufs = self.bundle.require("language_core.gguf")
        quant = self.options.quant or section.get("default")
        if quant not in ggufs:
            raise BadInputError(f"option quant={quant!r}: bundle {self.bundle.root} has {', '.join(ggufs) or 'none'}")
        return ggufs[quant]

    @property
    def core(self):
        """The language core (llama.cpp), loaded on first use; all its layers on the GPU whenever
        llama.cpp has a GPU backend and the device is not "cpu" (``ResolvedDevice.llama_gpu_offload``)."""
        if self._core is None and self.options.stages == "perception":
            raise BadInputError("this analyzer runs the perception stages only (options.stages='perception'): "
                                "answer with an analyzer opened with stages 'all' or 'language'")
        if self._core is None:
            from emox_edge.llm import LanguageCore

            n_ctx = self.options.n_ctx
            if self._kind is not None and self._kind.max_ctx:
                n_ctx = min(n_ctx, self._kind.max_ctx)
            t0 = time.perf_counter()
            self._core = LanguageCore.from_file(self.bundle.path(self._gguf), n_ctx=n_ctx, n_threads=self.n_threads,
                                                n_gpu_layers=-1 if self.device.llama_gpu_offload else 0,
                                                repack=self.options.repack)
            log.info("language core %s loaded in %.0f ms", self._gguf, (time.perf_counter() - t0) * 1000.0)
        return self._core

    def sampling(self, *, max_new_tokens: int | None = None, greedy: bool = False,
                 repeat_penalty: float | None = None) -> dict[str, Any]:
        """Sampling arguments for ``LanguageCore.generate``, the same rule for every kind.

        ``max_new_tokens`` is the task's own budget (None: the bundle's ``generation.max_new_tokens``);
        ``options.max_new_tokens`` caps it. Deterministic options (the default) or ``greedy`` give
        greedy decoding with a fixed seed; otherwise the bundle's ``generation`` settings sample.
        """
        g = {**DEFAULT_GENERATION, **dict(getattr(self._kind, "generation", None) or {})}
        cap = self.options.max_new_tokens
        if max_new_tokens is None:
            n = cap or int(g["max_new_tokens"])
        else:
            n = min(max_new_tokens, cap) if cap else max_new_tokens
        seed = self.options.seed
        if greedy or self.options.deterministic:
            return dict(max_new_tokens=n, temperature=0.0, top_p=1.0, top_k=0,
                        repeat_penalty=1.0 if repeat_penalty is None else repeat_penalty,
                        seed=0 if seed is None else seed)
        return dict(max_new_tokens=n, temperature=float(g["temperature"]), top_p=float(g["top_p"]),
                    top_k=int(g["top_k"]),
                    repeat_penalty=float(g["repetition_penalty"]) if repeat_penalty is None else repeat_penalty,
                    seed=seed)

    # ------------------------------------------------------------------ tasks
    def check_tasks(self, tasks: "Sequence[str | TaskRequest] | str") -> list[TaskRequest]:
        """Parse tasks ("emotion", "intent:mintrec2", ...) and check their variants against this bundle.

        The same request twice is answered once; the same task with another variant is answered
        under the key "task:variant".

        Raises:
            BadInputError: an unknown task or variant (the message lists the valid ones).
        """
        requests = list(dict.fromkeys(parse_tasks(tasks)))  # parse_tasks raises the typed errors itself
        for request in requests:
            self._kind.check_variant(request)
        return requests

    def info(self) -> dict[str, Any]:
        """What this analyzer runs: bundle, kind, tasks and their variants, device, versions."""
        import llama_cpp
        import onnxruntime

        from emox_edge._version import __version__

        return {"bundle": str(self.bundle.root), "kind": self.kind, "name": self.name,
                "tasks": self._kind.variants(), "device": {"requested": self.device.requested, "name": self.device.name,
                                                           "ort_providers": list(self.device.ort_providers),
                                                           "llama_gpu_offload": self.device.llama_gpu_offload},
                "n_threads": self.n_threads,
                "versions": {"emox_edge": __version__, "llama_cpp_python": llama_cpp.__version__,
                             "onnxruntime": onnxruntime.__version__}}

    # ------------------------------------------------------------------ analysis
    def analyze(self, item: Any, tasks: "Sequence[str | TaskRequest] | str" = ("emotion",), *,
                history: Sequence[str] = (), subtitle: str = "", tracker: Any = None) -> "ClipResult | list[ClipResult]":
        """Answer ``tasks`` on a ``Clip``, a file, an image array or a directory.

        A ``Clip``, an array or a file gives one ``ClipResult`` (a file is one clip); a directory gives
        a list, one per file (a file that cannot be read gives a result with ``error`` set).

        Args:
            item: a ``Clip``; a path (video, audio, image, directory); a uint8 RGB image [H, W, 3].
            tasks: task names, optionally with a variant ("intent:mintrec2").
            history: earlier dialogue turns for ``empathize`` ("user: ..." lines).
            subtitle: the transcript, for clips that carry none.
            tracker: an ``emox_edge.faces.FaceTracker`` for the face ids (one per stream of clips);
                None: the analyzer's own.

        Raises:
            BadInputError / InputTypeError: an unknown task or variant, an unsupported item.
            FileNotFoundError: no such file.
            MediaError: a file that is not readable media.
        """
        requests = self.check_tasks(tasks)
        if isinstance(item, Clip):
            clip = item if item.subtitle or not subtitle else dataclasses.replace(item, subtitle=subtitle)
            return self.analyze_clip(clip, requests, history=history, tracker=tracker)
        from pathlib import Path

        from emox_edge.capture import Segmentation

        directory = isinstance(item, (str, os.PathLike)) and Path(item).expanduser().is_dir()
        results = list(self.stream(item, requests, history=history, subtitle=subtitle,
                                   segmentation=Segmentation(mode="whole")))
        if directory:
            return results
        if len(results) == 1:
            return results[0]
        return results

    def speech_stage(self):
        """A new ``SpeechStage`` for one stream (carry-over and dialogue memory), or None when the
        bundle has no speech model or speech recognition is off."""
        if self._transcriber is None:
            return None
        from emox_edge.speech import SpeechStage

        return SpeechStage(self._transcriber, self.options.speech)

    def analyze_clip(self, clip: Clip, requests: Sequence[TaskRequest], *, history: Sequence[str] = (),
                     tracker: Any = None, speech: Any = None, live: bool = False) -> ClipResult:
        """Answer checked ``requests`` (see ``check_tasks``) on one clip.

        ``speech`` is the stream's ``SpeechStage`` (None: a fresh one for this clip alone); ``live``
        turns its carry-over of words cut by the clip's end on (fixed windows of a stream).
        """
        if not isinstance(clip, Clip):
            raise InputTypeError(f"analyze_clip() takes an emox_edge.media.Clip, got {type(clip).__name__}")
        if clip.error:
            return self._failed(clip, clip.error, {})
        perceived = self.perceive_clip(clip, history=history, tracker=tracker, speech=speech, live=live)
        return self.answer_clips([perceived], requests)[0]

    def perceive_clip(self, clip: Clip, *, history: Sequence[str] = (), tracker: Any = None, speech: Any = None,
                      live: bool = False, known_faces: Sequence[tuple] | None = None) -> PerceivedClip:
        """The first half of ``analyze_clip``: faces, voice activity, words and the kind's perception.

        The result holds no more of the clip than its last analysed frame, so it can be queued or
        sent to another process; ``answer_clips`` answers the tasks of several of them together.
        ``known_faces``: (time, faces) of frames of the clip already analysed with ``tracker`` (the
        server's faces overlay): sampled frames they cover are not detected again (``FaceStage.detect``).
        """
        if self._faces is None:
            raise BadInputError("this analyzer answers only (options.stages='language'): perceive with an "
                                "analyzer opened with stages 'all' or 'perception'")
        t_start = time.perf_counter()
        frame_faces, timings = self._faces.detect(clip.frames, clip.frame_times, tracker=tracker,
                                                   known=known_faces)
        clip, transcript, segments, said_before = self._hear(clip, speech or self.speech_stage(), live, timings)
        evidence = None
        if clip.frames.shape[0] or clip.audio.size:
            evidence = self._kind.perceive(clip, frame_faces, speech_segments=segments)
            timings.update(evidence.timings)
        frame, frame_time = _last_frame(clip, frame_faces)
        timings["perceive_ms"] = _ms(t_start)
        return PerceivedClip(source=clip.source, start=clip.start, end=clip.end, frame_faces=tuple(frame_faces),
                             timings=timings, transcript=transcript, speech_segments=segments, evidence=evidence,
                             history=tuple(history), dialogue=(*history, *said_before), frame=frame,
                             frame_time=frame_time)

    def answer_clips(self, perceived: Sequence[PerceivedClip],
                     requests: "Sequence[TaskRequest] | Sequence[Sequence[TaskRequest]]") -> list[ClipResult]:
        """The second half of ``analyze_clip``, for several perceived clips at once.

        Every task of every clip goes to the language core in one batch (``kinds.plans``): prompt
        prefixes they share are decoded once and all answers are decoded together. ``requests``: one
        list for every clip, or one list per clip. A task whose answer cannot be read fails its clip
        alone (``ClipResult.error``), not the others.
        """
        per_clip = [list(r) for r in requests] if requests and not isinstance(requests[0], TaskRequest) \
            else [list(requests)] * len(perceived)
        if len(per_clip) != len(perceived):
            raise BadInputError(f"{len(per_clip)} request lists for {len(perceived)} clips")
        from emox_edge.kinds.plans import run_plans

        steps, owners = [], []
        for n, (item, reqs) in enumerate(zip(perceived, per_clip)):
            for request in reqs:
                if item.evidence is None:
                    steps.append(TaskResult.abstain(request.task, "the clip holds no frames and no audio"))
                else:
                    turns = item.dialogue if request.task == "empathize" else item.history
                    steps.append(self._kind.plan(request, item.evidence, turns))
                owners.append(n)
        errors: dict[int, str] = {}

        def failed(i: int, exc: BaseException) -> TaskResult:
            errors.setdefault(owners[i], f"{type(exc).__name__}: {exc}")
            return TaskResult.abstain(per_clip[owners[i]][0].task, "failed")

        t0 = time.perf_counter()
        answers = run_plans(lambda: self.core, steps, failed)
        answer_ms = _ms(t0)
        out, k = [], 0
        for n, (item, reqs) in enumerate(zip(perceived, per_clip)):
            results: dict[str, TaskResult] = {}
            for request in reqs:
                results[_key(request, results)] = answers[k]
                k += 1
            out.append(self._finish(item, results, answer_ms, errors.get(n)))
        return out

    def _finish(self, item: PerceivedClip, results: dict[str, TaskResult], answer_ms: float,
                error: str | None) -> ClipResult:
        timings = dict(item.timings)
        if error is not None:
            return ClipResult(source=item.source, start=item.start, end=item.end, bundle=self.name, tasks={},
                              timings=timings, error=error)
        for key in ("prefill_ms", "decode_ms"):  # the tasks ran together: the longest, not the sum
            spent = [r.timings[key] for r in results.values() if key in r.timings]
            if spent:
                timings[key] = float(max(spent))
        if any("prefill_ms" in r.timings for r in results.values()):
            timings["answer_ms"] = answer_ms
        timings["total_ms"] = timings["perceive_ms"] + answer_ms
        frame_faces = item.frame_faces
        faces = next((found for _, found in reversed(frame_faces) if found), ())
        perception = dict(item.evidence.perception) if item.evidence else {}
        segments = item.speech_segments
        if segments is not None:
            perception.setdefault("speech_segments", [[round(s, 3), round(e, 3)] for s, e in segments])
        # the voiced spans on the frames' clock (seconds from the source's start)
        speaker = choose_speaker(list(frame_faces), [(s + item.start, e + item.start) for s, e in segments or ()])
        return ClipResult(source=item.source, start=item.start, end=item.end, bundle=self.name, tasks=results,
                          faces=tuple(faces), perception=perception, timings=timings, frame_faces=tuple(frame_faces),
                          transcript=item.transcript, speaker=speaker,
                          persons=tuple(p.to_dict() for p in persons(frame_faces, speaker=speaker)),
                          frame=item.frame, frame_time=item.frame_time)

    def _hear(self, clip: Clip, stage: Any, live: bool, timings: dict[str, float]):
        """Voice activity and, for a clip with audio and no subtitle, speech recognition.

        Returns (the clip, its subtitle set to the words heard; the transcript record or None; the
        voiced spans or None when the bundle has no VAD; the dialogue turns said before this clip).
        """
        segments = None
        if self._vad is not None and clip.audio.size >= clip.sample_rate // 4:
            from emox_edge.vad import VADOptions

            t0 = time.perf_counter()
            segments = self._vad.speech_segments(clip.audio, clip.sample_rate, VADOptions(min_speech_s=0.2))
            timings["vad_ms"] = _ms(t0)
        if clip.subtitle:
            before = stage.memory.turns() if stage is not None else []
            if stage is not None:
                stage.memory.add(clip.subtitle)
            return clip, {"text": clip.subtitle, "source": "subtitle"}, segments, before
        if stage is None or clip.audio.size == 0:
            return clip, None, segments, []
        t0 = time.perf_counter()
        heard = stage.transcribe_clip(clip.audio, clip.sample_rate, segments, live=live, clip_start=clip.start,
                                      clip_end=clip.end)
        timings["asr_ms"] = _ms(t0)
        if heard.text:
            clip = dataclasses.replace(clip, subtitle=heard.text)
        return clip, {**heard.to_dict(), "source": "asr"}, segments, list(stage.history)

    def _failed(self, clip: Clip, error: str, timings: dict[str, float]) -> ClipResult:
        return ClipResult(source=clip.source, start=clip.start, end=clip.end, bundle=self.name, tasks={},
                          timings=timings, error=error)

    def detect_faces(self, frame: np.ndarray, *, t: float | None = None, tracker: Any = None):
        """Tracked faces of one uint8 RGB frame, with expressions when the bundle has an expression model.

        ``tracker`` (an ``emox_edge.faces.FaceTracker``) keeps ids per caller, e.g. one per stream;
        None uses the analyzer's own.
        """
        return self._faces.detect_frame(frame, tracker=tracker, t=t)

    # ------------------------------------------------------------------ streams
    def stream(self, source: Any, tasks: "Sequence[str | TaskRequest] | str" = ("emotion",), **kwargs: Any
               ) -> Iterator[ClipResult]:
        """Yield one ``ClipResult`` per clip of ``source`` (see ``iter_clips`` for the arguments)."""
        for _, result in self.iter_clips(source, tasks, **kwargs):
            yield result

    def iter_clips(self, source: Any, tasks: "Sequence[str | TaskRequest] | str" = ("emotion",), *,
                   window_s: float = 4.0, vad: bool = False, segmentation: Any = None, history: Sequence[str] = (),
                   max_clips: int | None = None, callback: Callable[[ClipResult], Any] | None = None,
                   source_options: dict[str, Any] | None = None, subtitle: str = "",
                   ) -> Iterator[tuple[Clip, ClipResult]]:
        """Yield ``(clip, result)`` per clip of ``source`` (anything ``resolve_source`` accepts: a camera
        index, a file, a directory, a URL, arrays).

        A clip whose analysis fails yields a result with ``error`` set and the loop goes on. ``callback``
        (if given) gets every result before it is yielded. The source is closed when the generator ends
        or is closed (Ctrl-C included). ``subtitle`` is given to clips that carry none.

        Raises:
            BadInputError: an unknown task or variant; ``max_clips`` < 1; a bad ``window_s``.
            InputTypeError / FileNotFoundError / ConnectionError: from ``resolve_source``.
        """
        from emox_edge.capture import resolve_source

        requests = self.check_tasks(tasks)  # bad variants fail before any clip
        if max_clips is not None and max_clips < 1:
            raise BadInputError(f"max_clips must be >= 1, got {max_clips}")
        if segmentation is None:
            segmentation = self._segmentation(window_s, vad)
        src = resolve_source(source, segmentation=segmentation, **(source_options or {}))
        speech = self.speech_stage()  # one per stream: words cut by a window border are carried over
        live = getattr(segmentation, "mode", "fixed") == "fixed"
        count = 0
        try:
            picks = self._kind.ahead_frames() if hasattr(src, "encode_ahead") else 0
            if picks and src.encode_ahead(self._kind.encode_ahead, picks):
                log.info("%s: the %d frames each clip samples are encoded as they are captured", src.name, picks)
            clips = src.clips()
            while max_clips is None or count < max_clips:
                t0 = time.perf_counter()
                try:
                    clip = next(clips)
                except StopIteration:
                    break
                capture_ms = _ms(t0)
                if subtitle and not clip.subtitle:
                    clip = dataclasses.replace(clip, subtitle=subtitle)
                try:
                    result = self.analyze_clip(clip, requests, history=history, speech=speech, live=live)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # the live loop survives one bad clip
                    log.error("clip %.1f-%.1f s of %s failed: %s: %s", clip.start, clip.end, clip.source,
                              type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                    result = self._failed(clip, f"{type(exc).__name__}: {exc}", {})
                result = dataclasses.replace(result, timings={"capture_ms": capture_ms, **dict(result.timings)})
                count += 1
                if callback is not None:
                    callback(result)
                yield clip, result
                del clip, result  # the next clip fills while nothing holds this one
            if speech is not None:
                rest = speech.flush()
                if rest.text:
                    log.info("words after the last clip of %s were not analysed: %r", src.name, rest.text)
        finally:
            stats = src.stats()
            if stats:
                log.info("source %s: %s", src.name, ", ".join(f"{k}={v}" for k, v in stats.items()))
            src.close()

    def _segmentation(self, window_s: float, vad: bool):
        from emox_edge.capture import Segmentation
        from emox_edge.capture.segment import default_vad, vad_from_bundle

        if not isinstance(window_s, (int, float)) or not window_s > 0:
            raise BadInputError(f"window_s must be a number of seconds > 0, got {window_s!r}")
        if not vad:
            return Segmentation(mode="fixed", window_s=float(window_s))
        return Segmentation(mode="vad", window_s=float(window_s), vad=vad_from_bundle(self.bundle) or default_vad())

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free the models (idempotent)."""
        for part in (self._faces, self._kind, self._core, self._vad, self._transcriber):
            if part is not None:
                part.close()
        self._faces = self._kind = self._core = self._vad = self._transcriber = None

    def __enter__(self) -> "Analyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class PerceivedClip:
    """A clip after perception, before its tasks are answered (``Analyzer.perceive_clip``).

    Attributes:
        source, start, end: the clip's source and span (seconds).
        frame_faces: (time, faces) per analysed frame.
        timings: ms per perception stage, and ``perceive_ms`` for all of them.
        transcript: the words' record (``ClipResult.transcript``) or None.
        speech_segments: voiced spans (seconds from the clip's start), None without a VAD.
        evidence: the kind's ``Evidence``; None when the clip held no frames and no audio.
        history: dialogue turns given by the caller; dialogue: those plus the stream's earlier turns.
        frame, frame_time: the last analysed frame (for ``plot``/``save``).
    """

    source: str
    start: float
    end: float
    frame_faces: tuple
    timings: dict
    transcript: dict | None
    speech_segments: list | None
    evidence: Any
    history: tuple
    dialogue: tuple
    frame: np.ndarray | None = None
    frame_time: float | None = None


def _open_vad(bundle: Bundle):
    """The bundle's Silero VAD (``graphs.vad.file``), or None."""
    entry = (bundle.manifest.get("graphs") or {}).get("vad")
    if not isinstance(entry, dict):
        return None
    from emox_edge.vad import SileroVAD

    return SileroVAD(bundle.path(bundle.require("graphs.vad.file")), n_threads=1)


def _last_frame(clip: Clip, frame_faces) -> tuple[np.ndarray | None, float | None]:
    if clip.frames.shape[0] == 0:
        return None, None
    if frame_faces:
        t = frame_faces[-1][0]
        index = int(np.argmin(np.abs(clip.frame_times - t)))
    else:
        index = clip.frames.shape[0] - 1
    return clip.frames[index].copy(), float(clip.frame_times[index])  # a copy: the clip's frames can go


def _key(request: TaskRequest, results: dict) -> str:
    """A task's key in ``ClipResult.tasks``: its name, or "task:variant" when the name is taken."""
    return request.task if request.task not in results else str(request)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
