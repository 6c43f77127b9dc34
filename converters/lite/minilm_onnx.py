"""all-MiniLM-L6-v2 (Apache-2.0) as an ONNX sentence encoder, built from its safetensors without torch.

``read_safetensors`` reads the raw format (8-byte header length, JSON header, little-endian data),
``build_minilm_onnx`` writes the BERT encoder with ``onnx.helper`` (word + position embeddings and
LayerNorm, 6 post-LN layers of 12-head self-attention and an erf-GELU feed-forward) followed by what
sentence-transformers adds to the checkpoint: mean pooling over the attention mask and L2
normalisation. ``check_minilm_parity`` compares the graph with ``reference_forward`` (a separate
numpy implementation) and raises ``ParityError`` when they disagree; tests/lite/test_intent_model.py
also compares it with sentence-transformers' own torch model when torch is installed.

Graph inputs: ``input_ids`` and ``attention_mask``, int64 [batch, tokens] (``[CLS] ... [SEP]``, pad 0);
output ``embedding`` float32 [batch, 384], unit length. Token types are all 0 (single sentences), so
token-type row 0 is folded into the position table.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from emox_edge._io import atomic_path
from emox_edge.errors import BundleError, ParityError
from emox_edge.lite.intent_model import batch_ids

log = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64, "I32": np.int32}
PARITY_MIN_COSINE = 0.9999
PARITY_SENTENCES = (
    "Thank you so much for your help.",
    "Hello there, nice to meet you.",
    "I can't believe they cancelled the show again, this is ridiculous!",
    "Could you please pass me the salt?",
    "Stop! Don't touch that.",
    "ok",
)


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as numpy arrays (float32/float16/int64/int32).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BundleError: the header or a tensor's byte range is invalid (truncated or not safetensors).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors file not found: {path}")
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not a safetensors file (bad header: {exc})") from exc
    base, out = 8 + n, {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec.get("dtype"))
        if dtype is None:
            raise BundleError(f"{path}: tensor {name} has dtype {spec.get('dtype')!r}; supported: F32, F16, I64, I32")
        start, end = spec["data_offsets"]
        shape = tuple(spec["shape"])
        if base + end > len(data) or end - start != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise BundleError(f"{path}: tensor {name} {shape} has bytes {start}..{end} outside the file or of the "
                              f"wrong size (truncated?)")
        item = np.dtype(dtype).newbyteorder("<")
        out[name] = np.frombuffer(data, dtype=item, count=(end - start) // item.itemsize,
                                  offset=base + start).reshape(shape)
    return out


@dataclass(frozen=True)
class BertShape:
    """The dimensions of a BERT encoder read from its ``config.json``."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    eps: float
    max_positions: int

    @classmethod
    def from_config(cls, path: str | os.PathLike) -> "BertShape":
        """Raises: FileNotFoundError; BundleError when it is not a BERT config with absolute positions and GELU."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"BERT config not found: {path}")
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
            shape = cls(int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["num_attention_heads"]),
                        int(cfg["intermediate_size"]), float(cfg.get("layer_norm_eps", 1e-12)),
                        int(cfg["max_position_embeddings"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}: not a BERT config.json ({exc!r})") from exc
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act", "gelu") != "gelu" \
                or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise BundleError(f"{path}: expected model_type 'bert', hidden_act 'gelu', absolute positions; got "
                              f"{cfg.get('model_type')!r}, {cfg.get('hidden_act')!r}, {cfg.get('position_embedding_type')!r}")
        return shape


def _layer_names(i: int) -> dict[str, str]:
    p = f"encoder.layer.{i}."
    return {"q": p + "attention.self.query", "k": p + "attention.self.key", "v": p + "attention.self.value",
            "o": p + "attention.output.dense", "ln1": p + "attention.output.LayerNorm",
            "up": p + "intermediate.dense", "down": p + "output.dense", "ln2": p + "output.LayerNorm"}


def _strip_prefix(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both ``embeddings.*`` and ``bert.embeddings.*`` checkpoints."""
    return {k[5:] if k.startswith("bert.") else k: v for k, v in weights.items()}


def build_minilm_onnx(weights: Mapping[str, np.ndarray], shape: BertShape):
    """Return the ``onnx.ModelProto`` of the sentence encoder (see the module docstring).

    Raises:
        BundleError: a tensor the encoder needs is missing or has the wrong shape.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _strip_prefix(weights)
    h, nh = shape.hidden, shape.heads
    hd = h // nh
    nodes, inits = [], []

    def tensor(name: str, expect: tuple[int, ...]) -> np.ndarray:
        if name not in w:
            raise BundleError(f"MiniLM weights: missing tensor {name}")
        if tuple(w[name].shape) != expect:
            raise BundleError(f"MiniLM weights: {name} has shape {tuple(w[name].shape)}, expected {expect}")
        return np.asarray(w[name], np.float32)

    def const(name: str, array: np.ndarray, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(op: str, ins: Sequence[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, list(ins), [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str, n_in: int, n_out: int, out: str) -> str:
        weight = const(prefix + ".weight_t", tensor(prefix + ".weight", (n_out, n_in)).T)
        bias = const(prefix + ".bias", tensor(prefix + ".bias", (n_out,)))
        return node("Add", [node("MatMul", [x, weight], out + "_mm"), bias], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale = const(prefix + ".weight", tensor(prefix + ".weight", (h,)))
        bias = const(prefix + ".bias", tensor(prefix + ".bias", (h,)))
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=shape.eps)

    # embeddings: word + (position + token type 0), LayerNorm
    vocab = w.get("embeddings.word_embeddings.weight")
    if vocab is None:
        raise BundleError("MiniLM weights: missing tensor embeddings.word_embeddings.weight")
    word = const("word_embeddings", tensor("embeddings.word_embeddings.weight", (vocab.shape[0], h)))
    pos_table = tensor("embeddings.position_embeddings.weight", (shape.max_positions, h)) \
        + tensor("embeddings.token_type_embeddings.weight", (2, h))[0]
    pos = const("position_embeddings", pos_table)
    zero, one = const("i0", np.array([0]), np.int64), const("i1", np.array([1]), np.int64)
    seq = node("Slice", [node("Shape", ["input_ids"], "ids_shape"), one, const("i2", np.array([2]), np.int64)], "seq_len")
    positions = node("Slice", [pos, zero, seq, zero], "positions")
    x = node("Add", [node("Gather", [word, "input_ids"], "tokens", axis=0), positions], "embedded")
    x = layer_norm(x, "embeddings.LayerNorm", "emb_ln")

    # additive attention mask [batch, 1, 1, tokens]
    maskf = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inverted = node("Sub", [const("f1", np.array(1.0)), maskf], "mask_inv")
    bias4 = node("Unsqueeze", [node("Mul", [inverted, const("neg", np.array(-1e9))], "mask_neg"),
                               const("ax12", np.array([1, 2]), np.int64)], "mask_bias")
    heads_shape = const("heads_shape", np.array([0, 0, nh, hd]), np.int64)
    merge_shape = const("merge_shape", np.array([0, 0, h]), np.int64)
    scale = const("attn_scale", np.array(1.0 / np.sqrt(hd)))
    sqrt2, half = const("sqrt2", np.array(np.sqrt(2.0))), const("half", np.array(0.5))
    for i in range(shape.layers):
        n, t = _layer_names(i), f"l{i}_"
        q = node("Transpose", [node("Reshape", [linear(x, n["q"], h, h, t + "q"), heads_shape], t + "q4")],
                 t + "qh", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, n["k"], h, h, t + "k"), heads_shape], t + "k4")],
                 t + "kh", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, n["v"], h, h, t + "v"), heads_shape], t + "v4")],
                 t + "vh", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], t + "qk"), scale], t + "qk_s"), bias4], t + "scores")
        ctx = node("MatMul", [node("Softmax", [scores], t + "probs", axis=-1), v], t + "ctx")
        ctx = node("Reshape", [node("Transpose", [ctx], t + "ctx_t", perm=[0, 2, 1, 3]), merge_shape], t + "ctx_m")
        attn = linear(ctx, n["o"], h, h, t + "attn")
        x = layer_norm(node("Add", [attn, x], t + "res1"), n["ln1"], t + "ln1")
        up = linear(x, n["up"], h, shape.intermediate, t + "up")
        erf = node("Erf", [node("Div", [up, sqrt2], t + "up_s")], t + "erf")
        gelu = node("Mul", [node("Mul", [up, half], t + "up_h"), node("Add", [erf, const(t + "f1", np.array(1.0))],
                                                                         t + "erf1")], t + "gelu")
        down = linear(gelu, n["down"], shape.intermediate, h, t + "down")
        x = layer_norm(node("Add", [down, x], t + "res2"), n["ln2"], t + "ln2")

    # mean pooling over the mask, then L2 normalisation
    mask3 = node("Unsqueeze", [maskf, const("ax2", np.array([2]), np.int64)], "mask3")
    summed = node("ReduceSum", [node("Mul", [x, mask3], "masked"), one], "summed", keepdims=0)
    count = node("Max", [node("ReduceSum", [mask3, one], "count", keepdims=0), const("eps9", np.array(1e-9))], "count_c")
    mean = node("Div", [summed, count], "mean")
    norm = node("Sqrt", [node("ReduceSum", [node("Mul", [mean, mean], "sq"), one], "sumsq", keepdims=1)], "norm")
    node("Div", [mean, node("Max", [norm, const("eps12", np.array(1e-12))], "norm_c")], OUTPUT_NAME)

    graph = helper.make_graph(
        nodes, "all_minilm_l6_v2_mean_pooled",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in INPUTS],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", h])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emox-edge")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_forward(weights: Mapping[str, np.ndarray], shape: BertShape, ids: np.ndarray,
                      mask: np.ndarray) -> np.ndarray:
    """The same encoder written directly in numpy (float64): the parity reference of the ONNX graph."""
    from math import erf

    w = {k: np.asarray(v, np.float64) for k, v in _strip_prefix(weights).items() if k != "embeddings.position_ids"}
    h, nh = shape.hidden, shape.heads
    hd = h // nh
    b, s = ids.shape
    verf = np.vectorize(erf)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + shape.eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * -1e9
    for i in range(shape.layers):
        n = _layer_names(i)
        q, k, v = (lin(x, n[c]).reshape(b, s, nh, hd).transpose(0, 2, 1, 3) for c in "qkv")
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        x = ln(lin(ctx, n["o"]) + x, n["ln1"])
        up = lin(x, n["up"])
        x = ln(lin(0.5 * up * (1.0 + verf(up / np.sqrt(2.0))), n["down"]) + x, n["ln2"])
    m = mask[:, :, None].astype(np.float64)
    mean = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class MiniLMParity:
    """Agreement of the ONNX encoder with ``reference_forward`` on ``PARITY_SENTENCES``."""

    min_cosine: float
    max_abs_diff: float
    sentences: int

    def to_dict(self) -> dict[str, float | int]:
        return {"min_cosine": round(self.min_cosine, 7), "max_abs_diff": float(f"{self.max_abs_diff:.3g}"),
                "sentences": self.sentences}


def check_minilm_parity(model_path: str | os.PathLike, weights: Mapping[str, np.ndarray], shape: BertShape,
                        vocab_path: str | os.PathLike, *, min_cosine: float = PARITY_MIN_COSINE) -> MiniLMParity:
    """Run the ONNX graph and the numpy reference on ``PARITY_SENTENCES`` (one padded batch).

    Raises:
        ParityError: the lowest cosine similarity is under ``min_cosine``.
    """
    from emox_edge.lite.wordpiece import WordPieceTokenizer
    from emox_edge.onnx_session import create_session

    tokenizer = WordPieceTokenizer.from_file(vocab_path)
    ids, mask = batch_ids([tokenizer.encode(s) for s in PARITY_SENTENCES])
    got = create_session(model_path, n_threads=2).run([OUTPUT_NAME], {"input_ids": ids, "attention_mask": mask})[0]
    want = reference_forward(weights, shape, ids, mask)
    cos = (got.astype(np.float64) * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    parity = MiniLMParity(float(cos.min()), float(np.abs(got - want).max()), len(PARITY_SENTENCES))
    log.info("MiniLM ONNX vs numpy reference: %s", parity.to_dict())
    if parity.min_cosine < min_cosine:
        raise ParityError(f"{model_path}: sentence embeddings differ from the numpy reference (min cosine "
                          f"{parity.min_cosine:.6f} < {min_cosine}); refusing to write this graph")
    return parity


def save_minilm_onnx(weights_path: str | os.PathLike, config_path: str | os.PathLike, vocab_path: str | os.PathLike,
                     out: str | os.PathLike) -> MiniLMParity:
    """Build the encoder from the pinned files, check its parity, and write it atomically to ``out``.

    Raises:
        FileNotFoundError: an input file is missing.
        BundleError: an input file is corrupt or not the expected model.
        ParityError: the graph does not match the numpy reference.
    """
    import onnx

    weights = read_safetensors(weights_path)
    shape = BertShape.from_config(config_path)
    model = build_minilm_onnx(weights, shape)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
        parity = check_minilm_parity(tmp, weights, shape, vocab_path)
    return parity
