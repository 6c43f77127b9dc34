"""The models the benchmarks measure, built once and cached: sources, converted files, the bundle.

Two sizes, built by the same code through the project's own converters (``emox-edge convert llm``,
``convert encoders``, ``convert bundle``), each in a child process so its peak memory is its own:

- ``quick``: tiny random models (``converters/testing``): seconds, for the smoke test.
- ``full``: true Nano-EmoX sizes. Encoders (CLIP ViT-L/14 vision tower, HuBERT-Large, FaceXFormer
  Swin-B, adapters) have random weights; the language core has REAL weights: the pinned
  Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (``converters.lite.sources``), read back into a float32
  Hugging Face model by transformers (the fp32 reference; its weights are the dequantized Q4_K_M
  values) which ``convert llm`` turns into F16 / Q8_0 / Q4_K_M GGUFs.

Layout under ``root`` (default ``$EMOX_EDGE_HOME/bench/<size>``)::

    sources/qwen-hf/  sources/clip/  sources/hubert/  sources/facexformer/model.pt  sources/checkpoint.pth
    llm/  encoders/  bundle/        (converter outputs; llm/llm-report.json holds the parity table)
    built.json                      (what was built, with the converters' wall time and peak RSS)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks._common import heavy_lock, run_child

log = logging.getLogger(__name__)

SIZES = ("quick", "full")
QUANTS = ("f16", "q8_0", "q4_k_m")
_STAMP = "built.json"
_BUILD_VERSION = 1
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Artifacts:
    """Paths of one built size."""

    size: str
    root: Path

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def qwen_hf(self) -> Path:
        return self.sources / "qwen-hf"

    @property
    def clip(self) -> Path:
        return self.sources / "clip"

    @property
    def hubert(self) -> Path:
        return self.sources / "hubert"

    @property
    def facexformer(self) -> Path:
        return self.sources / "facexformer" / "model.pt"

    @property
    def checkpoint(self) -> Path:
        return self.sources / "checkpoint.pth"

    @property
    def llm_dir(self) -> Path:
        return self.root / "llm"

    @property
    def encoders_dir(self) -> Path:
        return self.root / "encoders"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def gguf(self, quant: str) -> Path:
        """The converter's GGUF of ``quant`` (``llm/llm-<quant>.gguf``)."""
        if quant not in QUANTS:
            raise ValueError(f"quant must be one of {QUANTS}, got {quant!r}")
        found = sorted(self.llm_dir.glob(f"*{quant}*.gguf"))
        if not found:
            raise FileNotFoundError(f"no {quant} GGUF in {self.llm_dir} (run the benchmark build step)")
        return found[0]

    def stamp(self) -> dict[str, Any]:
        path = self.root / _STAMP
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def default_root(size: str) -> Path:
    from converters.lite.sources import home

    return home() / "bench" / size


def artifacts(size: str, root: str | os.PathLike | None = None) -> Artifacts:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return Artifacts(size, Path(root) if root else default_root(size))


# ------------------------------------------------------------------------------------------- build


def build(art: Artifacts, *, log_dir: Path, force: bool = False,
          progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Build (or reuse) every artefact of ``art``; return the stamp (per-step wall time and peak RSS).

    Each step runs in a child process (``python -m benchmarks._build STEP``); full-size steps hold the
    heavy lock. A step whose outputs exist is skipped unless ``force``.
    """
    stamp = art.stamp()
    if stamp.get("version") != _BUILD_VERSION or force:
        stamp = {"version": _BUILD_VERSION, "size": art.size, "steps": {}}
    heavy = art.size == "full"
    steps = [
        ("sources", lambda: art.qwen_hf.joinpath("config.json").is_file() and art.checkpoint.is_file()),
        ("llm", lambda: (art.llm_dir / "llm-report.json").is_file()),
        ("encoders", lambda: any(art.encoders_dir.glob("*.onnx")) if art.encoders_dir.is_dir() else False),
        ("bundle", lambda: (art.bundle / "bundle.json").is_file()),
    ]
    for name, done in steps:
        if done() and not force and name in stamp["steps"]:
            continue
        progress(f"build {art.size}: {name}")
        argv = [sys.executable, "-m", "benchmarks._build", name, "--size", art.size, "--root", str(art.root)]
        with heavy_lock(enabled=heavy) as lock:
            child = run_child(argv, cwd=REPO, log_path=log_dir / f"build-{art.size}-{name}.log",
                              env=_child_env(lock_held=heavy))
        if child["returncode"] != 0:
            raise RuntimeError(f"benchmark build step {name!r} ({art.size}) failed (exit {child['returncode']}); "
                               f"log {log_dir / f'build-{art.size}-{name}.log'}:\n{child['tail']}")
        hwm = art.root / f".build-{name}.hwm"
        peak = float(hwm.read_text(encoding="utf-8")) if hwm.is_file() else child["peak_rss_mib"]
        stamp["steps"][name] = {"wall_s": round(child["wall_s"], 1), "peak_rss_mib": round(peak),
                                "lock_wait_s": round(lock.waited_s, 1)}
        art.root.mkdir(parents=True, exist_ok=True)
        from emox_edge._io import write_json_atomic

        write_json_atomic(art.root / _STAMP, stamp)
    return stamp


def _child_env(*, lock_held: bool = False) -> dict[str, str]:
    from benchmarks._common import HEAVY_LOCK_HELD_ENV

    env = dict(os.environ)
    if lock_held:
        env[HEAVY_LOCK_HELD_ENV] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def emox_edge_cli(*args: str) -> list[str]:
    """argv running ``emox-edge ARGS`` with this interpreter."""
    return [sys.executable, "-m", "emox_edge.cli.main", *args]


def reset_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path
