"""Resolve ``device="auto"|"cpu"|"cuda"|"metal"`` against what ONNX Runtime and llama.cpp offer."""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "metal")
_ORT_PROVIDER = {"cuda": "CUDAExecutionProvider", "metal": "CoreMLExecutionProvider"}
_warned: set[str] = set()
_threads_cache: list = []  # [monotonic time, threads] of the last default_threads()


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


def busy_cpus(window_s: float = 0.2) -> float | None:
    """CPUs kept busy by *other* programs over the next ``window_s`` seconds (Linux; else None)."""
    def sample() -> tuple[float, float]:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = [float(v) for v in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        own = os.times()
        return sum(fields) - idle, (own.user + own.system) * os.sysconf("SC_CLK_TCK")

    try:
        start, (busy0, own0) = time.monotonic(), sample()
        time.sleep(window_s)
        busy1, own1 = sample()
        ticks = (time.monotonic() - start) * os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, (busy1 - busy0 - (own1 - own0)) / ticks)


def default_threads() -> int:
    """Threads for llama.cpp and ONNX Runtime when none are given.

    Physical cores (hyper-threads share the units the matrix kernels saturate), no more than the
    CPUs this process may run on, minus the cores other programs keep busy right now: llama.cpp's
    workers spin-wait for each other, and one thread more than the free cores made decoding 3-15x
    slower on a 2-core machine, while one thread fewer costs at most that thread's share.
    """
    now = time.monotonic()
    if _threads_cache and now - _threads_cache[0] < 30.0:  # encoders and language core load together
        return _threads_cache[1]
    cores = physical_cores()
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    busy = busy_cpus() if cores > 1 else None
    threads = max(1, cores - int(round(busy))) if busy is not None else cores
    if threads < cores:
        warn_once(f"other programs keep {busy:.1f} of {cores} cores busy: using {threads} thread(s) "
                   f"instead of {cores} (set n_threads / --n-threads to override)")
    _threads_cache[:] = [now, threads]
    return threads


def ort_available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def llama_supports_gpu_offload() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def warn_once(message: str) -> None:
    """Log ``message`` at WARNING the first time it is seen in this process."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def resolve_device(device: str = "auto") -> ResolvedDevice:
    """Resolve a device request against what ONNX Runtime and llama.cpp offer.

    One rule for every bundle kind: ONNX Runtime gets the GPU provider when it has it; llama.cpp
    offloads all its layers whenever its build has a GPU backend, unless "cpu" was asked for. Every
    fallback ("auto" included) is logged once at WARNING with what was asked and what is used.

    Raises:
        BadInputError (a ValueError): ``device`` is not one of ``DEVICES``.
    """
    if device not in DEVICES:
        from emox_edge.errors import BadInputError

        raise BadInputError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return ResolvedDevice(device, "cpu", ("CPUExecutionProvider",), False)
    providers = ort_available_providers()
    offload = llama_supports_gpu_offload()
    name = device if device != "auto" else ("metal" if platform.system() == "Darwin" else "cuda")
    provider = _ORT_PROVIDER[name]
    if provider in providers:
        if not offload:
            warn_once(f"device {device!r}: ONNX Runtime runs on {name}, but this llama.cpp build has no GPU "
                      f"backend: the language core runs on the CPU"
                      + (' (reinstall llama-cpp-python with CMAKE_ARGS="-DGGML_CUDA=on")' if name == "cuda" else ""))
        return ResolvedDevice(device, name, (provider, "CPUExecutionProvider"), offload)
    hint = " (install onnxruntime-gpu for CUDA)" if name == "cuda" else ""
    if offload:
        warn_once(f"device {device!r}: ONNX Runtime offers no {name} provider ({', '.join(providers)}): encoders are "
                  f"falling back to CPU{hint}; the language core is offloaded to llama.cpp's GPU backend")
    else:
        warn_once(f"device {device!r}: no {name} in ONNX Runtime ({', '.join(providers)}) nor in llama.cpp: "
                  f"falling back to CPU{hint}")
    return ResolvedDevice(device, "cpu", ("CPUExecutionProvider",), offload)
