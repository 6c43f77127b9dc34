"""The PyTorch reference pipeline: what a user would run instead of emox-edge.

Encoders: the converters' reference modules (spec-faithful: the full Hugging Face CLIP and HuBERT
forwards with ``output_hidden_states``, the FaceXFormer encoder, the adapters) in float32.
Language core: transformers ``Qwen2ForCausalLM`` in float32 fed through ``inputs_embeds`` exactly as
Nano-EmoX does (spec §7.4: text spans embedded by ``embed_tokens``, encoder rows spliced in place),
with a greedy KV-cached loop that stops on the manifest's end-of-generation ids and stop strings.

What is shared with emox-edge, deliberately, so both sides answer the same question: the clip
preprocessing (``emox_edge.preprocess``: numpy, no model numerics) and the prompt text and answer
parsing (``emox_edge.tasks.TaskBook``: strings only). Everything numeric is PyTorch's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from converters._torch import require_torch

torch = require_torch()
log = logging.getLogger(__name__)

EMBED_NAMES = ("audio_embeds", "frame_embeds", "face_embeds", "fusion_embeds")


class TorchEncoders:
    """Visual, audio and facial encoders plus the adapters, float32, eval mode."""

    def __init__(self, art) -> None:
        from converters.encoders.build import build_adapters
        from converters.encoders.facexformer import FaceXFormerEncoder
        from converters.encoders.towers import AudioReference, VisualReference, load_clip_vision, load_hubert

        self.visual = VisualReference(load_clip_vision(art.clip)).eval()
        self.audio = AudioReference(load_hubert(art.hubert)).eval()
        self.facial = FaceXFormerEncoder.from_file(art.facexformer).eval()
        state = torch.load(art.checkpoint, weights_only=True)["model"]
        self.adapters, _ = build_adapters(state, source=str(art.checkpoint))

    @torch.inference_mode()
    def stage(self, name: str, inputs) -> Any:
        """Run one stage on ``ModelInputs`` (``visual``/``audio``/``facial``) or feature dicts (``adapters``)."""
        if name == "visual":
            return [t.numpy() for t in self.visual(torch.from_numpy(inputs.pixel_values))]
        if name == "audio":
            return [t.numpy() for t in self.audio(torch.from_numpy(inputs.waveforms))]
        if name == "facial":
            return self.facial(torch.from_numpy(inputs.face_frames)).numpy()
        if name == "adapters":
            args = [torch.from_numpy(np.ascontiguousarray(inputs[k], dtype=np.float32))
                    for k in ("visual_main", "visual_multi", "audio_main", "audio_multi", "face_features")]
            return dict(zip(EMBED_NAMES, (t.numpy() for t in self.adapters(*args))))
        raise ValueError(f"unknown stage {name!r}; stages: visual, audio, facial, adapters")

    def run(self, inputs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
        """All stages: (placeholder embeddings, encoder features, ms per stage)."""
        timings: dict[str, float] = {}
        feats: dict[str, np.ndarray] = {}
        for name in ("visual", "audio", "facial"):
            t0 = time.perf_counter()
            out = self.stage(name, inputs)
            timings[name] = (time.perf_counter() - t0) * 1e3
            if name == "facial":
                feats["face_features"] = out
            else:
                feats[f"{name}_main"], feats[f"{name}_multi"] = out
        t0 = time.perf_counter()
        embeds = self.stage("adapters", feats)
        timings["adapters"] = (time.perf_counter() - t0) * 1e3
        return {k: v.reshape(v.shape[-2], v.shape[-1]) for k, v in embeds.items()}, feats, timings


@dataclass
class Generated:
    text: str
    token_ids: list[int]
    stop_reason: str
    n_prompt: int
    prefill_ms: float
    decode_ms: float
    first_token_ms: float
    first_logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_generated(self) -> int:
        return len(self.token_ids)

    @property
    def decode_tokens_per_s(self) -> float:
        steps = max(self.n_generated - 1, 0)
        return steps / (self.decode_ms / 1e3) if self.decode_ms > 0 and steps else 0.0


class TorchLanguageCore:
    """transformers Qwen2 (float32 unless ``dtype`` says otherwise) driven through ``inputs_embeds``."""

    def __init__(self, hf_dir, *, generation: Mapping[str, Any] | None = None, dtype: str = "float32") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        self.model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype),
                                                          attn_implementation="sdpa").eval()
        self.embed = self.model.get_input_embeddings()
        generation = dict(generation or {})
        eos = set(generation.get("eos_token_ids") or [])
        eos |= {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        self.eos_ids = {int(i) for i in eos if i is not None and int(i) < self.embed.num_embeddings}
        self.stop_strings = tuple(generation.get("stop_strings") or ("###",))

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def inputs_embeds(self, segments: Sequence[str | np.ndarray]) -> "torch.Tensor":
        """``[1, L, width]``: text spans through ``embed_tokens``, encoder rows as they are (spec §7.4)."""
        parts = []
        for seg in segments:
            if isinstance(seg, str):
                ids = self.tokenize(seg)
                if ids:
                    parts.append(self.embed(torch.tensor(ids)).float())
            else:
                parts.append(torch.from_numpy(np.asarray(seg, np.float32)))
        dtype = self.embed.weight.dtype
        return torch.cat(parts, dim=0).unsqueeze(0).to(dtype)

    @torch.inference_mode()
    def generate(self, segments: Sequence[str | np.ndarray], *, max_new_tokens: int, ban_eog: bool = False,
                 keep_first_logits: bool = False) -> Generated:
        """Greedy decoding; ``ban_eog`` forces exactly ``max_new_tokens`` (for fixed-length timing)."""
        t0 = time.perf_counter()
        embeds = self.inputs_embeds(segments)
        out = self.model(inputs_embeds=embeds, use_cache=True)
        logits = out.logits[0, -1].float()
        first_logits = logits.numpy().copy() if keep_first_logits else None
        past = out.past_key_values
        t_prefill = time.perf_counter()
        tokens: list[int] = []
        reason, t_first = "length", None
        for _ in range(max_new_tokens):
            if ban_eog and self.eos_ids:
                logits[list(self.eos_ids)] = float("-inf")
            token = int(torch.argmax(logits))
            if t_first is None:
                t_first = time.perf_counter()
            if token in self.eos_ids:
                reason = "eos"
                break
            tokens.append(token)
            if not ban_eog and self.stop_strings:
                text = self.tokenizer.decode(tokens, skip_special_tokens=False)
                if any(s in text for s in self.stop_strings):
                    reason = "stop"
                    break
            if len(tokens) >= max_new_tokens:
                break
            out = self.model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
            logits, past = out.logits[0, -1].float(), out.past_key_values
        t_end = time.perf_counter()
        text = self.tokenizer.decode(tokens, skip_special_tokens=False)
        if reason == "stop":
            cut = min(text.find(s) for s in self.stop_strings if s in text)
            text = text[:cut]
        return Generated(text=text, token_ids=tokens, stop_reason=reason, n_prompt=int(embeds.shape[1]),
                         prefill_ms=(t_prefill - t0) * 1e3, decode_ms=(t_end - (t_first or t_end)) * 1e3,
                         first_token_ms=((t_first or t_end) - t0) * 1e3, first_logits=first_logits)


class ReferencePipeline:
    """Preprocess -> PyTorch encoders -> transformers language core, for one bundle's prompts."""

    def __init__(self, art, bundle_manifest: Mapping[str, Any], *, threads: int, llm_dtype: str = "float32") -> None:
        from emox_edge.preprocess import PreprocessConfig
        from emox_edge.tasks.book import TaskBook

        torch.set_num_threads(threads)
        self.book = TaskBook.from_manifest(bundle_manifest)
        self.config = PreprocessConfig.from_manifest(bundle_manifest.get("preprocess"))
        self.encoders = TorchEncoders(art)
        self.core = TorchLanguageCore(art.qwen_hf, generation=bundle_manifest.get("generation"), dtype=llm_dtype)

    def encode(self, clip) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        from emox_edge.preprocess import preprocess_clip

        t0 = time.perf_counter()
        inputs = preprocess_clip(clip, self.config)
        pre_ms = (time.perf_counter() - t0) * 1e3
        embeds, _, timings = self.encoders.run(inputs)
        return embeds, {"preprocess": pre_ms, **timings}

    def answer(self, clip, task: str, embeds: Mapping[str, np.ndarray], *, max_new_tokens: int,
               ban_eog: bool = False) -> tuple[Any, Generated]:
        """(TaskResult parsed by the same TaskBook as emox-edge, raw generation)."""
        from emox_edge.tasks.requests import TaskRequest

        question = self.book.question(TaskRequest.parse(task), subtitle=clip.subtitle)
        segments = self.book.segments(question, subtitle=clip.subtitle, history=(), embeddings=embeds)
        gen = self.core.generate(segments, max_new_tokens=max_new_tokens, ban_eog=ban_eog)
        timings = {"prefill": gen.prefill_ms, "decode": gen.decode_ms, "first_token": gen.first_token_ms}
        return self.book.parse(question, gen.text, timings=timings), gen
