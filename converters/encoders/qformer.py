"""The BLIP-2 style Q-Former as Nano-EmoX prunes it (spec section 4), written from the spec.

Only the query path exists: no word/position embeddings, no text FFN, no pooler. Key names under the
module (``bert.embeddings.LayerNorm``, ``bert.encoder.layer.{i}.attention.self.query`` ...) are the
checkpoint's names below ``video_Qformer.`` / ``audio_Qformer.``.

Per layer: self-attention over the queries -> add & LN -> cross-attention (queries attend to the
encoder vectors; all-ones mask, so no mask) -> add & LN -> FFN (GELU, exact erf) -> add & LN.
BERT LayerNorm eps is 1e-12. The head size is BERT's 64 (bert-base: 768 = 12 x 64), so the head
count is ``hidden / 64``: the checkpoint stores no head count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from converters._torch import require_torch
from emox_edge.errors import BadInputError

torch = require_torch()
nn = torch.nn

HEAD_DIM = 64
BERT_LN_EPS = 1e-12


def heads_for(width: int, what: str) -> int:
    if width % HEAD_DIM:
        raise BadInputError(f"{what}: width {width} is not a multiple of the head size {HEAD_DIM}")
    return width // HEAD_DIM


@dataclass(frozen=True)
class QFormerConfig:
    hidden: int = 768
    layers: int = 2
    intermediate: int = 3072
    encoder_width: int = 1024
    max_positions: int = 512

    @classmethod
    def from_state_dict(cls, state: Mapping[str, "torch.Tensor"], prefix: str) -> "QFormerConfig":
        """Sizes from the checkpoint tensors under ``prefix`` (e.g. ``video_Qformer.``)."""
        ln = state.get(f"{prefix}bert.embeddings.LayerNorm.weight")
        if ln is None:
            raise BadInputError(f"checkpoint has no {prefix}bert.embeddings.LayerNorm.weight: no Q-Former under {prefix!r}")
        pattern = re.compile(re.escape(prefix) + r"bert\.encoder\.layer\.(\d+)\.")
        layers = {int(m.group(1)) for k in state if (m := pattern.match(k))}
        if not layers or sorted(layers) != list(range(len(layers))):
            raise BadInputError(f"{prefix}bert.encoder.layer.* must be numbered 0..n-1; found {sorted(layers)}")
        first = f"{prefix}bert.encoder.layer.0."
        inter = state.get(first + "intermediate_query.dense.weight")
        key = state.get(first + "crossattention.self.key.weight")
        if inter is None or key is None:
            raise BadInputError(f"checkpoint lacks {first}intermediate_query.dense.weight or {first}crossattention.self.key.weight")
        pos = state.get(f"{prefix}bert.embeddings.position_ids")
        return cls(hidden=int(ln.shape[0]), layers=len(layers), intermediate=int(inter.shape[0]),
                   encoder_width=int(key.shape[1]), max_positions=int(pos.shape[-1]) if pos is not None else 512)


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, kv_width: int):
        super().__init__()
        self.heads = heads_for(hidden, "Q-Former")
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width, hidden)
        self.value = nn.Linear(kv_width, hidden)

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, HEAD_DIM).transpose(1, 2)

    def forward(self, hidden, context):
        q, k, v = self._split(self.query(hidden)), self._split(self.key(context)), self._split(self.value(context))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (HEAD_DIM**0.5)
        out = torch.matmul(scores.softmax(dim=-1), v)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, self.heads * HEAD_DIM)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=BERT_LN_EPS)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, kv_width: int):
        super().__init__()
        self.self = BertSelfAttention(hidden, kv_width)
        self.output = BertSelfOutput(hidden)

    def forward(self, hidden, context):
        return self.output(self.self(hidden, context), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=BERT_LN_EPS)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class QFormerLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.attention = BertAttention(cfg.hidden, cfg.hidden)
        self.crossattention = BertAttention(cfg.hidden, cfg.encoder_width)
        self.intermediate_query = BertIntermediate(cfg.hidden, cfg.intermediate)
        self.output_query = BertOutput(cfg.hidden, cfg.intermediate)

    def forward(self, queries, encoder_states):
        x = self.attention(queries, queries)
        x = self.crossattention(x, encoder_states)
        return self.output_query(self.intermediate_query(x), x)


class QFormerEmbeddings(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=BERT_LN_EPS)
        # Kept only so checkpoints (which carry this buffer) load strictly; never used.
        self.register_buffer("position_ids", torch.arange(cfg.max_positions).expand(1, -1).clone())


class QFormerEncoder(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.layer = nn.ModuleList(QFormerLayer(cfg) for _ in range(cfg.layers))


class QFormerBert(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.embeddings = QFormerEmbeddings(cfg)
        self.encoder = QFormerEncoder(cfg)

    def forward(self, query_embeds, encoder_states):
        x = self.embeddings.LayerNorm(query_embeds)
        for layer in self.encoder.layer:
            x = layer(x, encoder_states)
        return x


class QFormer(nn.Module):
    """``Qformer.bert(query_embeds, encoder_hidden_states)`` -> last_hidden_state ``[b, n_query, hidden]``."""

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.bert = QFormerBert(cfg)

    def forward(self, query_embeds, encoder_states):
        return self.bert(query_embeds, encoder_states)
