"""converters/llm/convert.py: the merged GGUF is right, the gate works, and misuse writes nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converters.checkpoint import CheckpointError, UntrustedCheckpointError  # noqa: E402
from converters.llm.convert import LLMConvertOptions, ParityGateError, convert_llm  # noqa: E402
from converters.llm.lora import LoraError, lora_key  # noqa: E402
from converters.llm.parity import Thresholds  # noqa: E402
from emox_edge._io import sha256_file  # noqa: E402
from emox_edge.llm import LanguageCore  # noqa: E402

THREADS = 1
TEXT = "###Human: The subtitle of this video is: <Subtitle>I am fine, really.</Subtitle> ###Assistant: "


def _independent_merge(base_dir, ckpt_path):
    """The merged model computed here, independently of converters/llm/lora.py."""
    from transformers import Qwen2ForCausalLM

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    scale = ckpt["config"]["model"]["lora_alpha"] / ckpt["config"]["model"]["lora_r"]
    model = Qwen2ForCausalLM.from_pretrained(str(base_dir), torch_dtype=torch.float32)
    params = dict(model.named_parameters())
    merged = 0
    with torch.no_grad():
        for key, a in ckpt["model"].items():
            if key.endswith(".lora_A.default.weight"):
                b = ckpt["model"][key.replace(".lora_A.", ".lora_B.")]
                target = key.removeprefix("llama_model.base_model.model.").replace(".lora_A.default.weight", ".weight")
                params[target].copy_(params[target] + scale * torch.matmul(b.float(), a.float()))
                merged += 1
    return model.eval(), merged


def _torch_logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def _gguf_logits(path, ids):
    with LanguageCore.from_file(path, n_ctx=256, n_threads=THREADS) as core:
        return np.stack([core.next_token_logits([ids[: k + 1]]) for k in range(len(ids))])


def test_merged_gguf_matches_an_independent_merge(converted, tiny_base, tiny_ckpt):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    assert converted.passed and [t.qtype for t in converted.types] == ["f16", "q8_0"]
    ids = AutoTokenizer.from_pretrained(str(tiny_base)).encode(TEXT)
    merged, n_merged = _independent_merge(tiny_base, tiny_ckpt)
    assert n_merged == 2 * 7  # 2 layers x 7 modules
    base = Qwen2ForCausalLM.from_pretrained(str(tiny_base), torch_dtype=torch.float32).eval()
    want = _torch_logits(merged, ids)[1:]
    unmerged = _torch_logits(base, ids)[1:]
    lora_effect = np.abs(want - unmerged).max()
    assert lora_effect > 0.5, "the synthetic LoRA must change the model visibly"
    assert (want.argmax(-1) == unmerged.argmax(-1)).mean() < 0.8
    for name, tol in (("llm-f16.gguf", 0.03), ("llm-q8_0.gguf", 0.2)):
        got = _gguf_logits(converted.out / name, ids)[1:]
        err = np.abs(got - want).max()
        assert err < tol, f"{name}: max |dlogit| vs the independent merge {err}"
        assert np.abs(got - unmerged).max() > 10 * err
    assert (_gguf_logits(converted.out / "llm-f16.gguf", ids)[1:].argmax(-1) == want.argmax(-1)).mean() > 0.97


def test_out_holds_exactly_the_promised_files(converted):
    names = sorted(p.name for p in converted.out.iterdir())
    assert names == ["llm-f16.gguf", "llm-q8_0.gguf", "llm-report.json", "llm-report.md"]
    report = json.loads(converted.report_json.read_text())
    assert [t["type"] for t in report["types"]] == ["f16", "q8_0"] and all(t["passed"] for t in report["types"])
    assert report["checkpoint"]["lora_pairs"] == 14 and report["checkpoint"]["ignored_tensors"] > 0
    for t in report["types"]:
        assert t["size_bytes"] == (converted.out / t["file"]).stat().st_size
        assert t["metrics"]["n_positions"] > 100 and t["tokenizer_probes_matched"] > 10


def test_safetensors_checkpoint_with_flags_gives_the_same_gguf(converted, ckpt_with, tmp_path):
    ckpt = ckpt_with("lora.safetensors", save_config=False)  # same seed as the session checkpoint
    with pytest.raises(ValueError, match="--lora-r and --lora-alpha"):
        convert_llm(LLMConvertOptions(base=converted.report["base"]["path"], out=tmp_path / "no", checkpoint=ckpt))
    assert not (tmp_path / "no").exists()
    result = convert_llm(LLMConvertOptions(base=converted.report["base"]["path"], out=tmp_path / "out",
                                           checkpoint=ckpt, quant=("f16",), lora_r=16, lora_alpha=32,
                                           n_threads=THREADS, progress=False))
    assert result.report["checkpoint"]["lora_settings_from"] == "flags"
    assert sha256_file(result.out / "llm-f16.gguf") == sha256_file(converted.out / "llm-f16.gguf")


def test_parity_gate_drops_the_failing_type(tiny_base, tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "llm-q4_k_m.gguf").write_bytes(b"stale file from an earlier run")
    (out / "llm-q8_0.gguf").write_bytes(b"stale, and not requested this time")
    (out / "notes.txt").write_text("not ours: kept")
    options = LLMConvertOptions(base=tiny_base, out=out, checkpoint=tiny_ckpt, quant=("f16", "q4_k_m"), force=True,
                                thresholds={"q4_k_m": Thresholds(min_top1=1.01)}, n_threads=THREADS, progress=False)
    with pytest.raises(ParityGateError, match="q4_k_m: top-1 agreement") as info:
        convert_llm(options)
    result = info.value.result
    assert result.failed == ("q4_k_m",)
    assert sorted(p.name for p in out.iterdir()) == ["llm-f16.gguf", "llm-report.json", "llm-report.md", "notes.txt"]
    report = json.loads((out / "llm-report.json").read_text())
    q4 = report["types"][1]
    assert q4["passed"] is False and q4["file"] is None and q4["thresholds"] == {"min_top1": 1.01}
    assert "FAIL" in (out / "llm-report.md").read_text()


# ----------------------------------------------------------------------------- misuse: nothing written
def _refused(tmp_path, exc, match, **kwargs):
    out = tmp_path / "out"
    with pytest.raises(exc, match=match):
        convert_llm(LLMConvertOptions(out=out, progress=False, **kwargs))
    assert not out.exists(), "a refused conversion must not create --out"


def test_missing_lora_key(tiny_base, ckpt_with, tmp_path):
    key = lora_key(0, "self_attn.v_proj", "A")
    _refused(tmp_path, LoraError, f"missing LoRA keys.*{key}", base=tiny_base, checkpoint=ckpt_with(drop=(key,)))


def test_extra_llm_key(tiny_base, ckpt_with, tmp_path):
    key = "llama_model.base_model.model.model.norm.weight"
    _refused(tmp_path, LoraError, f"unexpected keys.*{key}", base=tiny_base,
             checkpoint=ckpt_with(extra={key: torch.ones(64)}))


def test_wrong_shape(tiny_base, ckpt_with, tmp_path):
    key = lora_key(1, "mlp.gate_proj", "B")
    _refused(tmp_path, LoraError, f"misshaped.*{key}", base=tiny_base,
             checkpoint=ckpt_with(extra={key: torch.ones(5, 16)}))


def test_checkpoint_without_lora(tiny_base, tmp_path):
    path = tmp_path / "adapters_only.pth"
    torch.save({"model": {"video_query_tokens": torch.zeros(1, 2, 3)}}, path)
    _refused(tmp_path, LoraError, "holds no 'llama_model.' tensors.*without --checkpoint", base=tiny_base,
             checkpoint=path)


def test_base_that_is_not_qwen2(tiny_base, tiny_ckpt, tmp_path):
    fake = tmp_path / "llama"
    shutil.copytree(tiny_base, fake)
    cfg = json.loads((fake / "config.json").read_text())
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (fake / "config.json").write_text(json.dumps(cfg))
    _refused(tmp_path, ValueError, "model_type 'llama'.*expected a Qwen2", base=fake, checkpoint=tiny_ckpt)
    _refused(tmp_path, FileNotFoundError, "base model directory not found.*missing_dir", base=tmp_path / "missing_dir",
             checkpoint=tiny_ckpt)
    (tmp_path / "no_config").mkdir()
    _refused(tmp_path, FileNotFoundError, "no_config/config.json", base=tmp_path / "no_config")
    no_tok = tmp_path / "no_tok"
    shutil.copytree(tiny_base, no_tok)
    (no_tok / "tokenizer.json").unlink()
    _refused(tmp_path, FileNotFoundError, "tokenizer.json", base=no_tok)


def test_corrupt_and_missing_checkpoint(tiny_base, tiny_ckpt, tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(tiny_ckpt.read_bytes()[:1000])
    _refused(tmp_path, CheckpointError, "cannot read checkpoint .*broken.pth", base=tiny_base, checkpoint=bad)
    _refused(tmp_path, FileNotFoundError, "gone.pth", base=tiny_base, checkpoint=tmp_path / "gone.pth")


def test_pickled_checkpoint_needs_trust(tiny_base, ckpt_with, tmp_path):
    import argparse

    path = ckpt_with("pickled.pth")
    payload = torch.load(path, weights_only=True)
    payload["args"] = argparse.Namespace(lora_r=16)
    torch.save(payload, path)
    _refused(tmp_path, UntrustedCheckpointError, "--trust-checkpoint", base=tiny_base, checkpoint=path)


def test_bad_options(tiny_base, tiny_ckpt, tmp_path):
    _refused(tmp_path, ValueError, "unknown GGUF type.*q3_k.*valid: f32, f16", base=tiny_base, quant=("q3_k",))
    _refused(tmp_path, ValueError, "no GGUF type", base=tiny_base, quant=())
    _refused(tmp_path, ValueError, "thresholds given for q4_k_m", base=tiny_base, quant=("f16",),
             thresholds={"q4_k_m": Thresholds(min_top1=0.5)})
    _refused(tmp_path, ValueError, "need --checkpoint", base=tiny_base, lora_r=16, lora_alpha=32)
    _refused(tmp_path, ValueError, "contradicts", base=tiny_base, checkpoint=tiny_ckpt, lora_r=8)


def test_non_empty_out_needs_force(tiny_base, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="--force"):
        convert_llm(LLMConvertOptions(base=tiny_base, out=out))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(NotADirectoryError, match="is a file"):
        convert_llm(LLMConvertOptions(base=tiny_base, out=out / "keep.txt", force=True))
