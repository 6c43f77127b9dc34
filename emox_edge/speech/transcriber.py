"""Whisper on CTranslate2: the voiced parts of a clip -> a ``Transcript``.

Engine: CTranslate2's own ``ctranslate2.models.Whisper``, not faster-whisper (both run the same
CTranslate2 kernels). Measured here (docs/speech.md): faster-whisper 1.2.1 adds ``huggingface_hub``
(+ hf-xet, httpx, fsspec: ~25 MB and a network client in an offline runtime) and ``tokenizers`` to
the runtime and ~0.16 s to a warm import; more to the point, it always feeds the encoder Whisper's
full 30 s window, and when the language is to be detected it encodes the audio twice (once to
detect, once to decode). Here one encoder pass per window serves both, and the window is only as
long as the speech (below). Features (``features.py``) and token decoding (``tokens.py``) are small
numpy/stdlib modules, checked against faster-whisper and ``tokenizers`` in the tests.

Encoder context: the encoder sees the voiced audio plus ``context_pad_s`` (3 s) of silence, rounded
up to 2 s, instead of a fixed 30 s (CTranslate2 accepts any even frame count up to 3,000; the
positional embedding is simply cut). For a 3 s utterance that is a 6 s context: Whisper base's
real-time factor per sentence on one thread went from 2.33 to 0.46 here, with the same word error
rate on the benchmark's 12 sentences (0.084 both), and noise hallucinations ("Thank you for
watching") now score avg_logprob < -1.3 where the full window let them pass at -0.8.
``context_pad_s=None`` restores the 30 s window.

Decoding: beam search (``beam_size``, default 2) with Whisper's timestamp tokens, the model's own
suppressed tokens, blank suppression and a token budget that grows with the voiced duration (a
hallucination loop cannot run far). Only the voiced spans are decoded (``spans.py``).

Never hallucinated text: a window gives no words when (1) there are no voiced spans (the VAD said
nothing was spoken) or they are digital silence, (2) with VAD spans, Whisper's own rule: no-speech
probability > 0.6 and avg_logprob < -1; with no spans given (nothing else vouches for speech) either
sign alone: Whisper base says "I'm going to make the sauce" over white noise with no_speech_prob
0.51-0.65 but avg_logprob -1.3 to -1.7, against about -0.4 for espeak's English (translations of
espeak German score down to -1.3, so without VAD spans they can be dropped too), (3) the text
repeats itself (gzip compression ratio > 2.4) even after a retry that forbids repeated 3-grams.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from emox_edge.devices import ResolvedDevice, warn_once
from emox_edge.errors import BadInputError, BundleError, InputTypeError
from emox_edge.speech import features
from emox_edge.speech.options import SpeechOptions
from emox_edge.speech.spans import Piece, clean_spans, pack, to_audio_time, window_end
from emox_edge.speech.tokens import WhisperTokens, read_vocabulary
from emox_edge.speech.transcript import Transcript, TranscriptSegment

log = logging.getLogger(__name__)

ENGINE = "ctranslate2-whisper"
FILE_ROLES = ("model", "config", "tokenizer", "vocabulary")
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4
SILENCE_RMS = 1e-4  # below this the voiced audio is digital silence: nothing to decode
CONTEXT_PAD_S = 3.0  # see the module docstring: encoder context = voiced audio + this, not always 30 s
# After a window this long, the freed heap goes back to the OS (``_release_freed_heap``, ~5 ms): a long
# window's attention buffers (8 x 1,500^2 float32 scores a layer at 30 s) left glibc holding ~100 MiB
# after eight 30 s windows of a 240 s file (20 MiB with the trim). Live clips (2-4 s) skip it.
TRIM_AFTER_S = 10.0


class Transcriber:
    """A Whisper model (CTranslate2 format) and the decoding rules around it.

    Use ``Transcriber.from_bundle`` (or ``from_dir``); ``close()`` or a ``with`` block frees the model.
    """

    def __init__(self, model_dir: str | os.PathLike, *, n_threads: int = 1, device: "str | ResolvedDevice" = "cpu",
                 beam_size: int = 2, context_pad_s: float | None = CONTEXT_PAD_S, name: str | None = None,
                 vocabulary: str | os.PathLike | None = None) -> None:
        """Load the model in ``model_dir`` (model.bin, config.json, vocabulary.json or .txt).

        Args:
            model_dir: the CTranslate2 model directory.
            n_threads: CPU threads of the model (CTranslate2's intra_threads; one worker). Set it to
                what llama.cpp and ONNX Runtime use: the stages run one after the other.
            device: "cpu", "cuda", "auto" or "metal" (or a ``ResolvedDevice``): CUDA runs float16 when
                CTranslate2 sees a GPU; anything else runs int8 on the CPU (logged once when asked otherwise).
            beam_size: beams of the search (1 = greedy).
            context_pad_s: the encoder sees the voiced audio plus this much silence, rounded up to
                2 s (at most 30 s); None gives it Whisper's full 30 s window always (see the module doc).
            name: the model's name for messages (default: the directory name).
            vocabulary: the vocabulary file (default: the one in ``model_dir``).

        Raises:
            BundleError: a file is missing or CTranslate2 cannot load the model (the message names the file).
            BadInputError: ``n_threads`` or ``beam_size`` is not a positive integer.
        """
        for key, value in (("n_threads", n_threads), ("beam_size", beam_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInputError(f"Transcriber {key}={value!r} is not allowed: an integer >= 1")
        model_dir = Path(model_dir)
        self.name = name or model_dir.name
        self.beam_size = beam_size
        if context_pad_s is not None and not 0 <= context_pad_s <= features.CHUNK_S:
            raise BadInputError(f"Transcriber context_pad_s={context_pad_s!r} is not allowed: seconds in [0, 30] or None")
        self.context_pad_s = context_pad_s
        vocab_path = Path(vocabulary) if vocabulary is not None else _find_vocabulary(model_dir)
        for path in (model_dir / "model.bin", model_dir / "config.json", vocab_path):
            if not path.is_file():
                raise BundleError(f"{path}: speech model file is missing")
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BundleError(f"{model_dir / 'config.json'}: corrupt speech model config ({exc})") from exc
        try:
            self.tokens = WhisperTokens.from_vocabulary(read_vocabulary(vocab_path), source=vocab_path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BundleError(f"{vocab_path}: corrupt speech model vocabulary ({exc})") from exc
        self.device, compute_type = _device_and_compute(device)
        self.n_threads = n_threads
        try:
            import ctranslate2
        except ImportError as exc:  # a runtime dependency; only a broken install gets here
            raise ImportError("the speech stage needs CTranslate2: pip install 'ctranslate2>=4.5'") from exc
        started = time.perf_counter()
        try:
            self._model = ctranslate2.models.Whisper(str(model_dir), device=self.device, compute_type=compute_type,
                                                     inter_threads=1, intra_threads=n_threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise BundleError(f"{model_dir / 'model.bin'}: CTranslate2 cannot load this Whisper model ({exc})") from exc
        _release_freed_heap()
        self.multilingual = bool(self._model.is_multilingual)
        lang_ids = [i for i in config.get("lang_ids", []) if isinstance(i, int) and i < len(self.tokens.vocabulary)]
        codes = [self.tokens.vocabulary[i][2:-2] for i in lang_ids] or list(self.tokens.languages)
        self.languages: tuple[str, ...] = tuple(codes[: self._model.num_languages]) if self.multilingual else ("en",)
        self.n_mels = int(self._model.n_mels)
        log.info("speech model %s loaded in %.2f s (%s, %s, %d thread(s), %s)", self.name,
                 time.perf_counter() - started, self.device, compute_type, n_threads,
                 f"{len(self.languages)} languages" if self.multilingual else "English only")

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike, *, n_threads: int = 1, device: "str | ResolvedDevice" = "cpu",
                 beam_size: int = 2, context_pad_s: float | None = CONTEXT_PAD_S) -> "Transcriber":
        """A model directory as ``converters.speech.fetch_whisper`` returns it."""
        return cls(model_dir, n_threads=n_threads, device=device, beam_size=beam_size, context_pad_s=context_pad_s)

    @classmethod
    def from_bundle(cls, bundle: Any, *, n_threads: int = 1, device: "str | ResolvedDevice" = "cpu",
                    beam_size: int = 2, context_pad_s: float | None = CONTEXT_PAD_S) -> "Transcriber | None":
        """The bundle's speech model, or None when its manifest has no ``speech`` section.

        Every file goes through ``bundle.path`` (which refuses paths outside the bundle) and must be
        present with the size the manifest records; the files must share one directory.

        Raises:
            BundleError: the section is malformed, names another engine, or names a file that is not
                listed, lies outside the bundle, is missing, has the wrong size or cannot be loaded.
        """
        section = bundle.manifest.get("speech")
        if section is None:
            return None
        where = f"{bundle.root / 'bundle.json'}: speech section"
        if not isinstance(section, Mapping) or not isinstance(section.get("files"), Mapping):
            raise BundleError(f"{where} is not an object with a 'files' object")
        if section.get("engine") != ENGINE:
            raise BundleError(f"{where} names engine {section.get('engine')!r}; this emox-edge runs {ENGINE!r}")
        files = section["files"]
        missing = [role for role in ("model", "config", "vocabulary") if role not in files]
        if missing:
            raise BundleError(f"{where} lists no {', '.join(missing)} file")
        paths = {role: bundle.path(rel) for role, rel in files.items()}
        listed = bundle.manifest.get("files", {})
        for role, path in paths.items():
            if not path.is_file():
                raise BundleError(f"{path}: speech model file ({role}) is missing")
            expected = int(listed[files[role]]["size"])
            if path.stat().st_size != expected:
                raise BundleError(f"{path}: corrupt speech model file ({role}), {path.stat().st_size} bytes, "
                                  f"manifest expects {expected}")
        model_dir = paths["model"].parent
        strays = [str(p) for p in paths.values() if p.parent != model_dir]
        if strays or paths["model"].name != "model.bin" or paths["config"].name != "config.json":
            raise BundleError(f"{where}: model.bin, config.json and the vocabulary must lie in one directory "
                              f"under these names; got {', '.join(str(p) for p in paths.values())}")
        name = str(section.get("model") or model_dir.name)
        return cls(model_dir, n_threads=n_threads, device=device, beam_size=beam_size, context_pad_s=context_pad_s,
                   name=name, vocabulary=paths["vocabulary"])

    # -- transcription ---------------------------------------------------------------------------

    def check_options(self, options: SpeechOptions) -> None:
        """Raise BadInputError when ``options`` ask for something this model cannot do."""
        if not isinstance(options, SpeechOptions):
            raise InputTypeError(f"options must be a SpeechOptions, got {type(options).__name__}")
        if options.language is not None and options.language not in self.languages:
            shown = ", ".join(self.languages[:12]) + (", ..." if len(self.languages) > 12 else "")
            raise BadInputError(f"option language={options.language!r} is not allowed: {self.name} knows "
                                f"{len(self.languages)} language(s): {shown}")

    def transcribe(self, audio: np.ndarray, *, segments: Sequence[tuple[float, float]] | None = None,
                   options: SpeechOptions | None = None) -> Transcript:
        """Transcribe (or translate) 16 kHz mono float audio.

        Args:
            audio: float32 samples at 16 kHz, 1-D.
            segments: the voiced spans in seconds, e.g. from the VAD; only these are decoded. An
                empty list means nothing was said (an empty transcript, the model is not run); None
                decodes the whole audio.
            options: language and task (default ``SpeechOptions()``). An English-only model
                (tiny.en) always transcribes.

        Returns:
            A ``Transcript`` whose segment times are seconds from the start of ``audio``.

        Raises:
            InputTypeError / BadInputError: ``audio`` is not a 1-D numpy array, or the options ask for
                a language the model does not know.
            RuntimeError: CTranslate2 failed while decoding (``SpeechStage`` turns it into an empty
                transcript with ``error`` set).
        """
        options = options or SpeechOptions()
        self.check_options(options)
        audio = _mono16k(audio)
        if self._model is None:
            raise BadInputError(f"Transcriber {self.name} is closed")
        spans = clean_spans(segments, len(audio) / features.SAMPLE_RATE)
        if not options.enabled or not spans:
            return Transcript.empty()
        timings = {"features": 0.0, "encode": 0.0, "language": 0.0, "decode": 0.0}
        results = []
        for pieces in pack(spans):
            results.append(self._window(audio, pieces, options, timings, vad=segments is not None))
            if window_end(pieces) >= TRIM_AFTER_S:
                _release_freed_heap()
        kept = [r for r in results if r["segments"]]
        if not kept:
            return Transcript(text="", language=None, language_probability=0.0, task=None, timings=timings)
        main = max(kept, key=lambda r: r["duration"])
        segs = tuple(s for r in kept for s in r["segments"])
        return Transcript(text=" ".join(s.text for s in segs), language=main["language"],
                          language_probability=main["language_probability"], task=main["task"], segments=segs,
                          timings=timings)

    def _window(self, audio: np.ndarray, pieces: list[Piece], options: SpeechOptions, timings: dict[str, float],
                *, vad: bool) -> dict[str, Any]:
        import ctranslate2

        sr = features.SAMPLE_RATE
        started = time.perf_counter()
        offsets = [int(round(p.at * sr)) for p in pieces]
        parts = [audio[int(round(p.start * sr)): int(round(p.end * sr))] for p in pieces]
        chunk = np.zeros(max(o + len(x) for o, x in zip(offsets, parts)), np.float32)
        for offset, part in zip(offsets, parts):
            chunk[offset: offset + len(part)] = part
        duration = sum(p.end - p.start for p in pieces)
        nothing = {"segments": [], "duration": duration}
        if float(np.sqrt(np.mean(chunk ** 2))) < SILENCE_RMS:
            return nothing
        mel = features.log_mel(chunk, n_mels=self.n_mels, n_frames=self._frames(len(chunk)))[None]
        timings["features"] += _ms(started)
        started = time.perf_counter()
        encoded = self._model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=False)
        timings["encode"] += _ms(started)
        started = time.perf_counter()
        language, probability = self._language(encoded, options)
        timings["language"] += _ms(started)
        task = options.task_for(language) if self.multilingual else "transcribe"
        prompt = self.tokens.prompt(multilingual=self.multilingual, language=language, task=task)
        started = time.perf_counter()
        budget = len(prompt) + 16 + int(10 * duration)
        ids, avg_logprob, no_speech = self._generate(encoded, prompt, budget, repeat_guard=False)
        text = self.tokens.decode(ids).strip()
        if text and _compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD:
            log.info("%s: repetitive output %r; decoding again without repeated 3-grams", self.name, text[:80])
            ids, avg_logprob, no_speech = self._generate(encoded, prompt, budget, repeat_guard=True)
            text = self.tokens.decode(ids).strip()
        timings["decode"] += _ms(started)
        if vad:  # the VAD heard speech: Whisper's own rule
            unsure = no_speech > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD
        else:  # nothing else vouches for speech: either sign of doubt drops the window
            unsure = no_speech > NO_SPEECH_THRESHOLD or avg_logprob < LOGPROB_THRESHOLD
        if not text or unsure or _compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD:
            if text:
                log.info("%s: dropped %r (no_speech_prob %.2f, avg_logprob %.2f)", self.name, text[:80], no_speech,
                         avg_logprob)
            return nothing
        segments = []
        end_of_speech = window_end(pieces)
        for t0, t1, token_ids in self.tokens.split_timestamped(ids):
            words = self.tokens.decode(token_ids).strip()
            if words:
                t1 = end_of_speech if t1 < 0 else t1
                segments.append(TranscriptSegment(to_audio_time(t0, pieces), to_audio_time(max(t0, t1), pieces),
                                                  words, no_speech, avg_logprob))
        return {"segments": segments, "duration": duration, "language": language,
                "language_probability": probability, "task": task}

    def _frames(self, n_samples: int) -> int:
        if self.context_pad_s is None:
            return features.N_FRAMES
        seconds = n_samples / features.SAMPLE_RATE + self.context_pad_s
        step = 200  # 2 s
        return int(min(features.N_FRAMES, -(-seconds * 100 // step) * step))

    def _language(self, encoded: Any, options: SpeechOptions) -> tuple[str, float]:
        if options.language is not None:
            return options.language, 1.0
        if not self.multilingual:
            return "en", 1.0
        ranked = self._model.detect_language(encoded)[0]
        for token, probability in ranked:
            code = token[2:-2]
            if code in self.languages:
                return code, float(probability)
        raise RuntimeError(f"{self.name}: language detection returned no known language ({ranked[:3]})")

    def _generate(self, encoded: Any, prompt: list[int], budget: int, *, repeat_guard: bool) -> tuple[list[int], float, float]:
        result = self._model.generate(
            encoded, [prompt], beam_size=self.beam_size, max_length=min(448, budget), return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1],
            no_repeat_ngram_size=3 if repeat_guard else 0, repetition_penalty=1.1 if repeat_guard else 1.0)[0]
        ids = list(result.sequences_ids[0])
        # CTranslate2's score is the cumulative log-probability divided by the length (length_penalty 1);
        # Whisper's avg_logprob also counts the end-of-text token.
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        return ids, avg_logprob, float(result.no_speech_prob)

    def close(self) -> None:
        """Free the model (idempotent)."""
        self._model = None

    def __enter__(self) -> "Transcriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transcriber({self.name!r}, device={self.device!r}, n_threads={self.n_threads})"


def _release_freed_heap() -> None:
    """Give the heap CTranslate2 freed back to the OS (glibc only; else nothing): after loading, and
    after a long window (``TRIM_AFTER_S``).

    Loading converts the float16 file to int8 through temporary buffers; glibc keeps their pages:
    measured 43 MiB of Whisper base's resident memory (201 -> 158 MiB) is released by this.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _find_vocabulary(model_dir: Path) -> Path:
    for name in ("vocabulary.json", "vocabulary.txt"):
        if (model_dir / name).is_file():
            return model_dir / name
    return model_dir / "vocabulary.json"


def _device_and_compute(device: "str | ResolvedDevice") -> tuple[str, str]:
    name = device.name if isinstance(device, ResolvedDevice) else device
    if name not in ("auto", "cpu", "cuda", "metal"):
        raise BadInputError(f"device must be one of auto, cpu, cuda, metal; got {name!r}")
    if name in ("cuda", "auto"):
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return "cuda", "float16"
        if name == "cuda":
            warn_once("device 'cuda': CTranslate2 sees no CUDA GPU: speech recognition runs int8 on the CPU")
    elif name == "metal":
        warn_once("device 'metal': CTranslate2 has no Metal backend: speech recognition runs int8 on the CPU")
    return "cpu", "int8"


def _mono16k(audio: Any) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise InputTypeError(f"audio must be a numpy array of float samples at 16 kHz, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise BadInputError(f"audio must be mono (1-D) at 16 kHz, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise BadInputError(f"audio must hold float samples in [-1, 1], got dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
