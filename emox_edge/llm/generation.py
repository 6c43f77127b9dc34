"""Generation records: the result dataclass, the stream object and the string-stop filter."""

from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass
from typing import Generator, Iterable, Iterator

STOP_REASONS = ("eos", "stop", "length", "grammar")


@dataclass(frozen=True)
class GenerationResult:
    """What one ``generate`` call produced, with its timings.

    Attributes:
        text: the generated text (end-of-generation token and any stop string removed).
        token_ids: the sampled tokens that were kept (the end-of-generation token is not included;
            the tokens that spelled a stop string are).
        stop_reason: "eos" (an end-of-generation token), "stop" (a stop string), "length"
            (``max_new_tokens`` or the context was exhausted) or "grammar" (the grammar was
            complete and only an end-of-generation token was left).
        n_prompt: prompt positions (tokens + embedding rows).
        n_generated: ``len(token_ids)``.
        n_reused: prompt positions taken from the KV cache of the previous call (not recomputed).
        prefill_ms: time to evaluate the prompt (its non-reused part).
        decode_ms: time from the end of the prefill to the end of generation.
        decode_tokens_per_s: ``n_generated`` per second of ``decode_ms`` (0 when nothing was made).
        first_token_ms: time from the call to the first sampled token (prefill included).
    """

    text: str
    token_ids: tuple[int, ...]
    stop_reason: str
    n_prompt: int
    n_generated: int
    n_reused: int
    prefill_ms: float
    decode_ms: float
    decode_tokens_per_s: float
    first_token_ms: float

    def to_dict(self) -> dict:
        out = asdict(self)
        out["token_ids"] = list(self.token_ids)
        return out


class Stream:
    """Text pieces of a generation as they are produced; ``result`` holds the ``GenerationResult``.

    Iterate to receive the pieces (they join to ``result.text``). ``result`` is available once the
    iteration is over; reading it earlier runs the generation to its end first. ``close()`` stops
    early (then ``result`` raises ``RuntimeError``). Starting another call on the same
    ``LanguageCore`` closes an unfinished stream.
    """

    def __init__(self, gen: Generator[str, None, GenerationResult]) -> None:
        self._gen = gen
        self._result: GenerationResult | None = None
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._result is not None or self._closed:
            raise StopIteration
        try:
            return next(self._gen)
        except StopIteration as stop:
            self._result = stop.value
            raise StopIteration from None

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> GenerationResult:
        if self._result is None:
            if self._closed:
                raise RuntimeError("the stream was closed before the generation finished; no result")
            for _ in self:
                pass
        return self._result

    def close(self) -> None:
        if self._result is None and not self._closed:
            self._closed = True
            self._gen.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TextAssembler:
    """Turns token bytes into text pieces, removing stop strings and holding back partial matches.

    ``push(bytes)`` returns the text that is safe to emit and whether a stop string was found;
    ``finish()`` returns what was held back when generation ended for another reason.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.text = ""

    def _holdback(self) -> int:
        """Length of the longest suffix of the pending text that starts some stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:k]):
                    best = k
                    break
        return best

    def _emit(self, n: int) -> str:
        piece, self._pending = self._pending[:n], self._pending[n:]
        self.text += piece
        return piece

    def push(self, data: bytes) -> tuple[str, bool]:
        self._pending += self._decoder.decode(data)
        if self.stops:
            hits = [i for i in (self._pending.find(s) for s in self.stops) if i >= 0]
            if hits:
                piece = self._emit(min(hits))
                self._pending = ""
                return piece, True
        return self._emit(len(self._pending) - self._holdback()), False

    def finish(self) -> str:
        self._pending += self._decoder.decode(b"", final=True)
        return self._emit(len(self._pending))
