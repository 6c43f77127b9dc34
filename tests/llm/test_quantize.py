"""quantize_gguf through llama.cpp's llama_model_quantize."""

from __future__ import annotations

import numpy as np
import pytest

from converters.llm.quantize import QTYPES, quantize_gguf
from emox_edge.llm import LanguageCore
from emox_edge.llm.gguf_file import GGUFFile

# llama_ftype values llama.cpp records in general.file_type
FILE_TYPE = {"f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
# ggml types: F16 1, Q4_0 2, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14
MIN_CORR = {"f16": 0.99999, "q8_0": 0.999, "q6_k": 0.99, "q5_k_m": 0.98, "q4_0": 0.9, "q4_k_m": 0.9}
MATRIX_TYPES = {"f16": {1}, "q4_0": {2}, "q8_0": {8}, "q4_k_m": {12, 14}, "q5_k_m": {13, 14}, "q6_k": {14}}


@pytest.mark.parametrize("qtype", QTYPES)
def test_each_type_loads_and_stays_close(tiny_k_f16, tmp_path, qtype):
    out = quantize_gguf(tiny_k_f16, tmp_path / f"m-{qtype}.gguf", qtype)
    assert out == tmp_path / f"m-{qtype}.gguf" and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind
    info = GGUFFile(out)
    assert int(info.fields["general.file_type"]) == FILE_TYPE[qtype]
    matrix = {t.ggml_type for n, t in info.tensors.items() if n.endswith("attn_q.weight")}
    assert matrix <= MATRIX_TYPES[qtype], (qtype, matrix)
    info.close()
    if qtype != "f16":
        assert out.stat().st_size < tiny_k_f16.stat().st_size
    prompt = "###Human: How does the character feel? ###Assistant: "
    with LanguageCore.from_file(out, n_ctx=256) as q, LanguageCore.from_file(tiny_k_f16, n_ctx=256) as ref:
        got, want = q.next_token_logits(prompt), ref.next_token_logits(prompt)
    # measured correlations with the F16 logits (random weights, hidden 256): f16 1.0 (identical),
    # q8_0 0.9997, q6_k 0.9975, q5_k_m 0.993, q4_0 0.974, q4_k_m 0.973
    assert np.corrcoef(got, want)[0, 1] > MIN_CORR[qtype]
    if qtype == "f16":
        np.testing.assert_array_equal(got, want)


def test_qtype_is_case_insensitive(tiny_f16, tmp_path):
    assert quantize_gguf(tiny_f16, tmp_path / "a.gguf", "Q8_0").is_file()


def test_quantize_errors(tiny_f16, tmp_path):
    with pytest.raises(ValueError, match="q8_0, q4_k_m"):
        quantize_gguf(tiny_f16, tmp_path / "x.gguf", "q3_k_s")
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "x.gguf", "q8_0")
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="not a GGUF"):
        quantize_gguf(junk, tmp_path / "x.gguf", "q8_0")
    with pytest.raises(ValueError, match="differ"):
        quantize_gguf(tiny_f16, tiny_f16, "q8_0")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_f16.read_bytes()[:40_000])
    with pytest.raises(ValueError, match="cut.gguf: could not load tensor"):  # checked before llama.cpp sees it
        quantize_gguf(cut, tmp_path / "x.gguf", "q8_0")
    assert not (tmp_path / "x.gguf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf", "junk.gguf"]
