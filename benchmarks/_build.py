"""One build step of the benchmark models, run as a child process by ``benchmarks._artifacts.build``.

    python -m benchmarks._build {sources,llm,encoders,bundle} --size {quick,full} --root DIR

The converter steps call the real ``emox-edge convert ...`` command in-process, exactly as a user would.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from benchmarks._artifacts import QUANTS, Artifacts, reset_dir

log = logging.getLogger("benchmarks.build")

SEEDS = {"clip": 11, "hubert": 12, "facexformer": 13, "adapters": 14}
TINY_WIDTH = 64  # the tiny language core's width = the tiny adapters' output width


def step_sources(art: Artifacts) -> None:
    from benchmarks import _sources as src
    from emox_edge._io import atomic_path

    art.sources.mkdir(parents=True, exist_ok=True)
    if not (art.qwen_hf / "config.json").is_file():
        start = time.perf_counter()
        if art.size == "full":
            src.qwen_from_gguf(src.real_qwen_gguf(), art.qwen_hf)
        else:
            from converters.testing.tiny_qwen import build_tiny_qwen2

            build_tiny_qwen2(art.qwen_hf, seed=0, hidden_size=TINY_WIDTH)
        log.info("language model source ready in %.1f s: %s", time.perf_counter() - start, art.qwen_hf)
    if art.checkpoint.is_file():
        return
    config = json.loads((art.qwen_hf / "config.json").read_text(encoding="utf-8"))
    target = src.token_embedding_rms(art.qwen_hf)
    if art.size == "full":
        src.save_clip_vision(reset_dir(art.clip), src.FULL, seed=SEEDS["clip"])
        src.save_hubert(reset_dir(art.hubert), src.FULL, seed=SEEDS["hubert"])
        art.facexformer.parent.mkdir(parents=True, exist_ok=True)
        src.save_facexformer(art.facexformer, src.FULL, seed=SEEDS["facexformer"])
        state = src.checkpoint_state(src.full_checkpoint_sizes(int(config["hidden_size"])), target,
                                     seed=SEEDS["adapters"])
        ckpt = {"model": state, "config": {"note": "random adapters for emox-edge benchmarks"}}
    else:
        from converters.testing.tiny_encoders import TinySizes, build_tiny_encoders

        files = build_tiny_encoders(art.sources, seed=SEEDS["adapters"], sizes=TinySizes(llm_width=TINY_WIDTH))
        ckpt = src.torch.load(files.checkpoint, weights_only=True)
        src.match_output_rms(ckpt["model"], target)
    ckpt["config"]["injected_rms"] = target
    with atomic_path(art.checkpoint) as tmp:
        src.torch.save(ckpt, tmp)
    log.info("checkpoint: %d tensors, injected-row RMS %.4f", len(ckpt["model"]), target)


def _cli(*args: str) -> None:
    from emox_edge.cli.main import main

    code = main(list(args))
    if code:
        raise SystemExit(f"emox-edge {' '.join(args)} exited with {code}")


def step_llm(art: Artifacts) -> None:
    reset_dir(art.llm_dir)
    _cli("convert", "llm", "--base", str(art.qwen_hf), "--out", str(art.llm_dir), "--quant", ",".join(QUANTS))


def step_encoders(art: Artifacts) -> None:
    reset_dir(art.encoders_dir)
    _cli("convert", "encoders", "--checkpoint", str(art.checkpoint), "--clip", str(art.clip), "--hubert",
         str(art.hubert), "--facexformer", str(art.facexformer), "--out", str(art.encoders_dir), "--int8")


def step_bundle(art: Artifacts) -> None:
    reset_dir(art.bundle)
    _cli("convert", "bundle", "--llm", str(art.llm_dir), "--encoders", str(art.encoders_dir), "--out", str(art.bundle))


STEPS = {"sources": step_sources, "llm": step_llm, "encoders": step_encoders, "bundle": step_bundle}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._build")
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--size", choices=("quick", "full"), required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    STEPS[args.step](Artifacts(args.size, Path(args.root)))
    from benchmarks._common import hwm_mib

    peak = hwm_mib()
    if peak is not None:  # this process's own peak (the parent's wait4 figure includes the parent)
        hwm = Path(args.root) / f".build-{args.step}.hwm"
        hwm.write_text(f"{peak:.1f}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
