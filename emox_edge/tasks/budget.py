"""Fitting user text into a prompt budget: keep the most recent words of an over-long subtitle.

``trim_text_to_tokens`` keeps the *end* of a text (the words said last, nearest to the moment being
analysed) within a token budget. It finds the cut by a galloping search from the end followed by
bisection over character positions, so a 120 kB subtitle costs O(log n) tokenizations, each of a
suffix not much longer than what is kept, instead of one tokenization per dropped word.
"""

from __future__ import annotations

from typing import Callable

from emox_edge.errors import BadInputError, InputTypeError


def trim_text_to_tokens(text: str, count_tokens: Callable[[str], int], budget: int) -> str:
    """The longest suffix of ``text`` that ``count_tokens`` counts as at most ``budget`` tokens.

    The cut is moved forward to the next whitespace when it falls inside a word (text without
    whitespace, e.g. Chinese, is cut between characters); leading whitespace is stripped. Every
    returned text has been counted and fits; token counts of suffixes are assumed to grow (almost)
    monotonically with their length, as they do for BPE tokenizers.

    Args:
        text: the text to fit (a subtitle, a transcript).
        count_tokens: the tokenizer's count of a string (e.g. ``lambda s: len(core.tokenize(s))``).
        budget: the most tokens the result may take; 0 gives "".

    Returns:
        ``text`` itself when it fits, else its longest fitting suffix ("" when nothing fits).

    Raises:
        InputTypeError: ``text`` is not a str or ``budget`` not an int.
        BadInputError: ``budget`` is negative.
    """
    if not isinstance(text, str):
        raise InputTypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise InputTypeError(f"budget must be an int number of tokens, got {budget!r}")
    if budget < 0:
        raise BadInputError(f"budget must be >= 0 tokens, got {budget}")
    n = len(text)
    if n == 0 or budget == 0:
        return ""

    def fits(length: int) -> bool:
        return count_tokens(text[n - length:]) <= budget

    # Gallop from the end: the suffix that fits is usually far shorter than the text.
    good, bad = 0, None
    length = min(n, max(16, 4 * budget))
    while bad is None:
        if fits(length):
            good = length
            if length == n:
                return text
            length = min(n, 2 * length)
        else:
            bad = length
    while bad - good > 1:  # bisect: ``good`` fits, ``bad`` does not
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    if good == 0:
        return ""
    start = n - good
    if start > 0 and not text[start - 1].isspace() and not text[start].isspace():
        space = next((i for i in range(start, n) if text[i].isspace()), n)
        if space < n:  # start at the next whole word (shorter, so it still fits)
            snapped = text[space:].lstrip()
            if snapped and count_tokens(snapped) <= budget:
                return snapped
    return text[start:].lstrip()
