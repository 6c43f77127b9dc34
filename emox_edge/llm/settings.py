"""Generation settings: the checks shared by ``LanguageCore.generate`` and ``run_batch``."""

from __future__ import annotations

import numpy as np

from emox_edge.errors import BadInputError, InputTypeError


class Settings:
    """Generation settings as attributes (the arguments of ``LanguageCore.generate``)."""

    def __init__(self, **kwargs) -> None:
        self.__dict__.update(kwargs)


def check_generation(core, r) -> tuple[tuple[str, ...], dict[int, float]]:
    """Check the generation settings of ``r`` (attributes as ``generate``'s arguments); returns the
    stop strings and the logit bias, normalised. Raises TypeError / ValueError naming the setting."""
    max_new_tokens = r.max_new_tokens
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise BadInputError(f"max_new_tokens must be an integer >= 0; got {max_new_tokens!r}")
    if not r.temperature >= 0.0:
        raise BadInputError(f"temperature must be >= 0; got {r.temperature!r}")
    if not 0.0 < r.top_p <= 1.0:
        raise BadInputError(f"top_p must be in (0, 1]; got {r.top_p!r}")
    if not isinstance(r.top_k, (int, np.integer)) or r.top_k < 0:
        raise BadInputError(f"top_k must be an integer >= 0; got {r.top_k!r}")
    if not r.repeat_penalty > 0.0:
        raise BadInputError(f"repeat_penalty must be > 0; got {r.repeat_penalty!r}")
    if r.grammar is not None and not isinstance(r.grammar, str):
        raise InputTypeError(f"grammar must be a GBNF string; got {type(r.grammar).__name__}")
    stops = _stop_strings(r.stop)
    bias = {int(t): float(v) for t, v in (r.logit_bias or {}).items()}
    if bias:
        core._check_ids(list(bias))
    return stops, bias


def _stop_strings(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise InputTypeError(f"stop must be a str or a list of str; got {stop!r}")
    return tuple(s for s in stop if s)
