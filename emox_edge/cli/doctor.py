"""``emox-edge doctor``: what this machine offers emox-edge, one line per check."""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import json
import platform
import sys
from dataclasses import asdict, dataclass

from emox_edge._version import __version__
from emox_edge.devices import default_threads, physical_cores

# (import name, distribution, required by `emox-edge run`)
_PACKAGES = (
    ("numpy", "numpy", True),
    ("onnxruntime", "onnxruntime", True),
    ("llama_cpp", "llama-cpp-python", True),
    ("cv2", "opencv-python", True),
    ("av", "av", True),
    ("gguf", "gguf", True),
    ("sounddevice", "sounddevice", False),
    ("torch", "torch", False),
    ("transformers", "transformers", False),
)
_CONVERT_ONLY = {"torch", "transformers"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = False


def check_packages() -> list[Check]:
    checks = []
    for module, dist, required in _PACKAGES:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # an import can fail with OSError (missing PortAudio) as well
            hint = " (emox-edge[convert] only)" if dist in _CONVERT_ONLY else ""
            checks.append(Check(dist, False, f"missing{hint} ({type(exc).__name__}: {exc})", required))
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = str(getattr(mod, "__version__", "installed"))
        checks.append(Check(dist, True, version, required))
    return checks


def check_backends() -> list[Check]:
    checks = []
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        checks.append(Check("onnxruntime providers", True, ", ".join(providers)))
        for provider, hint in (
            ("CUDAExecutionProvider", "install onnxruntime-gpu instead of onnxruntime"),
            ("CoreMLExecutionProvider", "macOS wheels of onnxruntime only"),
        ):
            if provider not in providers:
                checks.append(Check(provider, False, f"not available ({hint})"))
    except Exception as exc:
        checks.append(Check("onnxruntime providers", False, str(exc), True))
    try:
        import llama_cpp

        offload = bool(llama_cpp.llama_supports_gpu_offload())
        detail = "yes" if offload else "no (CPU build; rebuild with CMAKE_ARGS=-DGGML_CUDA=on or on macOS for Metal)"
        checks.append(Check("llama.cpp GPU offload", offload, detail))
    except Exception as exc:
        checks.append(Check("llama.cpp GPU offload", False, str(exc)))
    return checks


def check_cameras(max_index: int = 4) -> list[Check]:
    nodes = sorted(glob.glob("/dev/video*"))
    if platform.system() == "Linux":
        if not nodes:
            return [Check("cameras", False, "none found (no /dev/video*); use --source FILE or the demo clip")]
        return [Check("cameras", True, ", ".join(nodes))]
    try:
        import cv2
    except ImportError as exc:
        return [Check("cameras", False, f"opencv missing: {exc}")]
    found = []
    for index in range(max_index):
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            found.append(str(index))
        cap.release()
    return [Check("cameras", bool(found), ", ".join(found) if found else "none found")]


def check_audio() -> list[Check]:
    try:
        import sounddevice as sd
    except Exception as exc:
        return [Check("microphones", False, f"sounddevice unavailable ({exc}); install PortAudio (apt-get install libportaudio2)")]
    try:
        inputs = [d["name"] for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
    except Exception as exc:
        return [Check("microphones", False, f"PortAudio error: {exc}")]
    return [Check("microphones", bool(inputs), ", ".join(inputs) if inputs else "no input device found")]


def run_checks() -> list[Check]:
    system = Check(
        "system",
        True,
        f"emox-edge {__version__}, Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{physical_cores()} physical cores, {default_threads()} thread(s) by default now",
    )
    return [system, *check_packages(), *check_backends(), *check_cameras(), *check_audio()]


def register(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="show versions, backends, cameras and microphones found")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok     " if c.ok else ("MISSING" if c.required else "absent ")
            print(f"{mark} {c.name.ljust(width)}  {c.detail}")
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        print(f"emox-edge: required components missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
