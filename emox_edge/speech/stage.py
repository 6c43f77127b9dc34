"""The speech stage of one stream: clips -> transcripts, words cut by window borders carried over.

Live capture cuts the microphone into fixed windows (clips), and a window border can fall inside a
word. Transcribing each clip on its own would then lose the word, or garble it twice (its first half
ending one clip, its second half starting the next). The stage uses **carry-over**:

- when the last voiced span of a live clip touches the clip's end (within ``touch_s``), the words in
  it are not finished: that span's audio (from 0.2 s before it, the transcriber's lead-in) is held
  back, not transcribed with this clip;
- the next clip's audio is appended to the held audio and its voiced spans are shifted behind it,
  the held audio counting as voiced; the utterance is transcribed once, whole, with the next clip,
  and its segment times stay true stream times (``clip_start`` minus the held length);
- the held audio is capped (``max_carry_s``, 10 s by default): an utterance that runs on past the cap
  is transcribed with the clip that reaches it, so a transcript is never held back longer than that;
- a clip that does not start where the held audio ends (a gap in the stream) first transcribes the
  held audio alone; ``flush()`` at the end of a stream returns what is still held.

A clip that ends in a pause transcribes everything at once, so the latency of a sentence is the time
to the first pause (a clip or more), never a cut word. Files (``live=False``) are transcribed clip by
clip with no carry-over, as their clips are cut by the caller. Carry-over needs the VAD's spans: a
clip given ``segments=None`` is transcribed whole.

Measured (benchmarks/bench_asr.py, 4 s windows, 1 s pauses): a sentence's transcript arrives
1.1-2.6 s after it ends, window wait included; tests cut one sentence by 2 s and by 1.2 s windows
and get it once, in one clip, with the words of the uncut stream.

``DialogueMemory`` keeps the last few transcribed turns of the stream (``stage.memory``, filled by
``transcribe_clip`` and ``flush``): ``stage.history`` is the dialogue *before* the clip last
transcribed, what the empathize task of that clip reads as its history. A caller that takes a clip's
words from elsewhere (a given subtitle) adds them with ``stage.memory.add(text)``. A clip whose
decoding fails gives ``Transcript.empty(reason)`` (``error`` set, logged) and the stream goes on.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Sequence

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.speech import features
from emox_edge.speech.options import SpeechOptions
from emox_edge.speech.spans import SPAN_PAD_S
from emox_edge.speech.transcriber import Transcriber
from emox_edge.speech.transcript import Transcript

log = logging.getLogger(__name__)

MAX_CARRY_S = 10.0
TOUCH_S = 0.1
CONTIGUOUS_S = 0.05


class DialogueMemory:
    """The last ``max_turns`` things said in a stream, oldest first.

    ``turns()`` gives them as ``"user: ..."`` lines, the dialogue history the empathize task reads.
    """

    def __init__(self, max_turns: int = 4) -> None:
        if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 0:
            raise BadInputError(f"DialogueMemory max_turns={max_turns!r} is not allowed: an integer >= 0")
        self.max_turns = max_turns
        self._turns: collections.deque[str] = collections.deque(maxlen=max_turns or None)

    def add(self, text: str) -> None:
        """Remember one turn (blank text is ignored)."""
        text = " ".join(str(text).split())
        if text and self.max_turns:
            self._turns.append(text)

    def turns(self) -> list[str]:
        return [f"user: {text}" for text in self._turns]

    def clear(self) -> None:
        self._turns.clear()

    def __len__(self) -> int:
        return len(self._turns)


class SpeechStage:
    """Transcribes the clips of one stream with a ``Transcriber``; owns carry-over and dialogue memory."""

    def __init__(self, transcriber: Transcriber, options: SpeechOptions | None = None, *,
                 max_carry_s: float = MAX_CARRY_S, touch_s: float = TOUCH_S) -> None:
        """
        Raises:
            InputTypeError: ``transcriber`` is not a Transcriber.
            BadInputError: the options ask for a language the model does not know, or ``max_carry_s``
                / ``touch_s`` is negative.
        """
        if not isinstance(transcriber, Transcriber):
            raise InputTypeError(f"transcriber must be a Transcriber, got {type(transcriber).__name__}")
        self.options = options or SpeechOptions()
        transcriber.check_options(self.options)
        for name, value in (("max_carry_s", max_carry_s), ("touch_s", touch_s)):
            if not value >= 0:
                raise BadInputError(f"SpeechStage {name}={value!r} is not allowed: a number of seconds >= 0")
        self.transcriber = transcriber
        self.max_carry_s = float(max_carry_s)
        self.touch_s = float(touch_s)
        self.memory = DialogueMemory(self.options.history_turns)
        self.history: list[str] = []
        self._held = np.zeros(0, np.float32)
        self._held_start = 0.0  # stream time of the first held sample

    @classmethod
    def from_bundle(cls, bundle: Any, options: SpeechOptions | None = None, *, n_threads: int = 1,
                    device: Any = "cpu") -> "SpeechStage | None":
        """The stage for ``bundle``'s speech model; None when the bundle has none or ``options.enabled`` is off.

        Raises:
            BundleError: the bundle's speech section names a missing or corrupt file.
        """
        options = options or SpeechOptions()
        if not options.enabled:
            return None
        transcriber = Transcriber.from_bundle(bundle, n_threads=n_threads, device=device)
        return None if transcriber is None else cls(transcriber, options)

    @property
    def held_seconds(self) -> float:
        """Seconds of audio held back for the next clip."""
        return len(self._held) / features.SAMPLE_RATE

    def transcribe_clip(self, audio: np.ndarray, sample_rate: int, segments: Sequence[tuple[float, float]] | None, *,
                        live: bool, clip_start: float, clip_end: float) -> Transcript:
        """Transcribe one clip's voiced spans (live: with carry-over across window borders).

        Args:
            audio: the clip's mono float samples.
            sample_rate: their rate (resampled to 16 kHz with an anti-alias filter when different).
            segments: voiced spans in seconds from the clip's start (the VAD's); None: all of it,
                and no carry-over out of this clip (nothing tells where speech stops).
            live: a fixed-window live stream (carry-over on) or clips of a file (off).
            clip_start, clip_end: the clip's place in the stream, in seconds.

        Returns:
            The transcript, segment times in stream seconds. A decoding failure gives
            ``Transcript.empty(reason)`` (logged), never an exception, so the stream goes on.

        Raises:
            InputTypeError / BadInputError: ``audio`` is not a 1-D numpy array, the rate is not
                positive, or ``clip_end < clip_start`` (the caller's bug, not the clip's).
        """
        if not isinstance(audio, np.ndarray):
            raise InputTypeError(f"audio must be a numpy array of float samples, got {type(audio).__name__}")
        if audio.ndim != 1:
            raise BadInputError(f"audio must be mono (1-D), got shape {audio.shape}")
        if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
            raise BadInputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if clip_end < clip_start:
            raise BadInputError(f"clip_end {clip_end} is before clip_start {clip_start}")
        audio = features.resample(audio, int(sample_rate))
        duration = len(audio) / features.SAMPLE_RATE
        spans = [(0.0, duration)] if segments is None else sorted((float(s), float(e)) for s, e in segments)
        before = Transcript.empty()
        if len(self._held) and (not live or abs(clip_start - self._held_end) > CONTIGUOUS_S):
            before = self._transcribe_held()
        if not live:
            return self._remember(_merge(before, self._run(audio, spans, offset=clip_start)))
        held = self.held_seconds
        start = clip_start - held
        audio = np.concatenate([self._held, audio]) if held else audio
        spans = ([(0.0, held)] if held else []) + [(s + held, e + held) for s, e in spans]
        total = held + duration
        self._held = np.zeros(0, np.float32)
        if segments is not None and spans and spans[-1][1] >= total - self.touch_s:
            tail = _tail_start(spans)
            if total - tail <= self.max_carry_s:
                cut = int(round(tail * features.SAMPLE_RATE))
                self._held, self._held_start = audio[cut:].copy(), start + tail
                audio, spans = audio[:cut], [sp for sp in spans if sp[1] <= tail]
                log.debug("carrying %.2f s of speech over into the next clip", self.held_seconds)
            else:
                log.debug("speech runs on for %.1f s (> %.1f s): transcribing it now", total - tail, self.max_carry_s)
        return self._remember(_merge(before, self._run(audio, spans, offset=start)))

    def flush(self) -> Transcript:
        """Transcribe and return the audio still held back (an empty transcript when none)."""
        return self._remember(self._transcribe_held())

    def reset(self) -> None:
        """Forget the stream: held audio and dialogue memory."""
        self._held = np.zeros(0, np.float32)
        self.memory.clear()
        self.history = []

    def close(self) -> None:
        self.transcriber.close()

    def __enter__(self) -> "SpeechStage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _held_end(self) -> float:
        return self._held_start + self.held_seconds

    def _transcribe_held(self) -> Transcript:
        if not len(self._held):
            return Transcript.empty()
        audio, start = self._held, self._held_start
        self._held = np.zeros(0, np.float32)
        return self._run(audio, [(0.0, len(audio) / features.SAMPLE_RATE)], offset=start)

    def _run(self, audio: np.ndarray, spans: list[tuple[float, float]], *, offset: float) -> Transcript:
        if not spans:
            return Transcript.empty()
        try:
            transcript = self.transcriber.transcribe(audio, segments=spans, options=self.options)
        except (RuntimeError, ValueError, MemoryError) as exc:
            if isinstance(exc, BadInputError):
                raise
            log.warning("speech recognition failed for the clip at %.2f s: %s", offset, exc)
            return Transcript.empty(f"speech recognition failed: {exc}")
        return transcript.shifted(offset)

    def _remember(self, transcript: Transcript) -> Transcript:
        self.history = self.memory.turns()
        self.memory.add(transcript.text)
        return transcript


def _tail_start(spans: list[tuple[float, float]]) -> float:
    """Where the held audio starts: the last voiced span less the transcriber's lead-in pad, not
    reaching back into the span before it."""
    start = spans[-1][0]
    for s, e in reversed(spans[:-1]):
        if start - e > CONTIGUOUS_S:
            return max(e, start - SPAN_PAD_S)
        start = s
    return max(0.0, start - SPAN_PAD_S)


def _merge(first: Transcript, second: Transcript) -> Transcript:
    if not first.text and first.error is None:
        return second
    if not second.text and second.error is None:
        return first
    main = first if sum(s.end - s.start for s in first.segments) >= sum(s.end - s.start for s in second.segments) else second
    timings = {k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0) for k in {*first.timings, *second.timings}}
    error = "; ".join(e for e in (first.error, second.error) if e) or None
    return Transcript(" ".join(t for t in (first.text, second.text) if t), main.language, main.language_probability,
                      main.task, first.segments + second.segments, error, timings)
