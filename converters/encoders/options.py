"""Options of ``convert encoders`` (torch-free): ``emox-edge convert encoders`` derives its flags from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from converters._options import check_required, paths_as_path
from emox_edge.errors import BadInputError

_REQUIRED_DIR = {"required": True, "metavar": "DIR"}
_REQUIRED_FILE = {"required": True, "metavar": "FILE"}


@dataclass(frozen=True)
class EncoderConvertOptions:
    """What ``convert_encoders`` does; the flags of ``emox-edge convert encoders`` are these fields.

    Attributes:
        checkpoint: the Nano-EmoX training checkpoint (.pth).
        clip: the openai/clip-vit-large-patch14 directory, in Hugging Face layout.
        hubert: the TencentGameMate/chinese-hubert-large directory, in Hugging Face layout.
        facexformer: the FaceXFormer model.pt, whose weights sit under the key state_dict_backbone.
        out: the output directory. It must be empty unless force (--force) is set.
        int8: also write dynamic-int8 graphs.
        force: overwrite the encoder outputs in a non-empty output directory.
        trust_checkpoint: allow checkpoints that need full unpickling, which can run code. Use it only
            for files you trust.
        fp32_cosine: the lowest cosine similarity to PyTorch an fp32 graph may have.
        int8_cosine: the lowest cosine similarity to PyTorch an int8 graph may have.
        per_channel: give int8 weights one scale per output channel.
    """

    checkpoint: Path | None = field(default=None, metadata=_REQUIRED_FILE)
    clip: Path | None = field(default=None, metadata=_REQUIRED_DIR)
    hubert: Path | None = field(default=None, metadata=_REQUIRED_DIR)
    facexformer: Path | None = field(default=None, metadata=_REQUIRED_FILE)
    out: Path | None = field(default=None, metadata=_REQUIRED_DIR)
    int8: bool = True
    force: bool = False
    trust_checkpoint: bool = False
    fp32_cosine: float = field(default=0.9999, metadata={"metavar": "X"})
    int8_cosine: float = field(default=0.99, metadata={"metavar": "X"})
    per_channel: bool = False

    def __post_init__(self) -> None:
        check_required(self, "convert encoders")
        paths_as_path(self, "checkpoint", "clip", "hubert", "facexformer", "out")
        for label, value in (("fp32 cosine threshold", self.fp32_cosine), ("int8 cosine threshold", self.int8_cosine)):
            if not -1.0 <= value <= 1.0:
                raise BadInputError(f"{label} must be in [-1, 1], got {value}")
