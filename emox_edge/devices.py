"""Resolve ``device="auto"|"cpu"|"cuda"|"metal"`` against what ONNX Runtime and llama.cpp offer."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "metal")
_ORT_PROVIDER = {"cuda": "CUDAExecutionProvider", "metal": "CoreMLExecutionProvider"}
_warned: set[str] = set()


@dataclass(frozen=True)
class ResolvedDevice:
    """What a device request resolved to: ONNX Runtime providers and llama.cpp GPU offload."""

    requested: str
    name: str
    ort_providers: tuple[str, ...]
    llama_gpu_offload: bool


def physical_cores() -> int:
    """Physical core count (falls back to the logical count when it cannot be read)."""
    try:
        cores = set()
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            phys = core = None
            for line in handle:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip() and core is not None:
                    cores.add((phys, core))
                    phys = core = None
            if core is not None:
                cores.add((phys, core))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def ort_available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def llama_supports_gpu_offload() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def resolve_device(device: str = "auto") -> ResolvedDevice:
    """Resolve a device request; every fallback to CPU is logged once.

    Raises:
        ValueError: ``device`` is not one of ``DEVICES``.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return ResolvedDevice(device, "cpu", ("CPUExecutionProvider",), False)
    providers = ort_available_providers()
    offload = llama_supports_gpu_offload()
    wanted = [device] if device != "auto" else (["metal"] if platform.system() == "Darwin" else ["cuda"])
    for name in wanted:
        provider = _ORT_PROVIDER[name]
        if provider in providers:
            return ResolvedDevice(device, name, (provider, "CPUExecutionProvider"), offload)
        if device != "auto":
            _warn_once(
                f"device {name!r} requested but ONNX Runtime offers only {providers}; falling back to CPU"
                + (" (install onnxruntime-gpu for CUDA)" if name == "cuda" else "")
            )
    if device == "auto" and offload:
        # llama.cpp was built with a GPU backend even though ONNX Runtime has no GPU provider.
        return ResolvedDevice(device, "cpu", ("CPUExecutionProvider",), True)
    return ResolvedDevice(device, "cpu", ("CPUExecutionProvider",), False)
