"""``repack``: llama.cpp's CPU weight repacking is a load-time choice; both ways compute the same model."""

from __future__ import annotations

import numpy as np

from emox_edge.llm import LanguageCore


def _logits(path, repack: bool) -> np.ndarray:
    with LanguageCore.from_file(path, n_ctx=256, n_batch=64, n_threads=1, flash_attn="off", repack=repack) as core:
        return core.next_token_logits("The quick brown fox jumps over the lazy dog")


def test_repacked_and_plain_weights_give_the_same_next_token(tiny_k_q4km):
    plain, repacked = _logits(tiny_k_q4km, False), _logits(tiny_k_q4km, True)
    assert plain.shape == repacked.shape
    assert int(np.argmax(plain)) == int(np.argmax(repacked))
    # the kernels differ (interleaved tiles vs rows), so the rounding may too, but not the model
    scale = float(np.abs(plain).max())
    assert float(np.abs(plain - repacked).max()) <= 0.05 * scale


def test_repack_is_off_by_default():
    import inspect

    assert inspect.signature(LanguageCore.from_file).parameters["repack"].default is False
    from emox_edge.options import AnalyzerOptions

    assert AnalyzerOptions().repack is False
