"""Read a Nano-EmoX training checkpoint (``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors``).

Shared by the language-core converter (LoRA) and the encoders converter (adapters, Q-Formers).
A ``.pth`` is opened with ``torch.load(weights_only=True)``: plain tensors and containers only. A
file that needs arbitrary unpickling (custom classes) is refused unless ``trust=True``
(``--trust-checkpoint``), because unpickling can run any code the file's author chose.

Accepted layouts (spec section 10):
- ``{"model": state_dict, "config": {...}, ...}`` as written by the training runner (``optimizer``,
  ``scaler`` and ``epoch`` entries are ignored);
- ``{"state_dict": state_dict, ...}``;
- a bare state dict ``{name: tensor}``;
- ``.safetensors``: the tensors; the config, when present, is a JSON string in the file's metadata
  under ``"config"`` (other metadata entries are returned as the config otherwise).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

from converters._torch import require_torch
from emox_edge.errors import BadInputError

log = logging.getLogger(__name__)

TRUST_FLAG = "--trust-checkpoint"
SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_STATE_KEYS = ("model", "state_dict")


class CheckpointError(BadInputError):
    """The checkpoint cannot be read or does not hold a state dict."""


class UntrustedCheckpointError(CheckpointError):
    """The checkpoint needs arbitrary unpickling and ``trust`` was not given."""


def load_checkpoint(path: str | os.PathLike, *, trust: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(state_dict, config)`` read from a training checkpoint.

    Args:
        path: a ``.pth``/``.pt``/``.bin``/``.ckpt`` file written by ``torch.save`` or a
            ``.safetensors`` file.
        trust: allow full unpickling (``torch.load(weights_only=False)``). Only for files from a
            source you trust.

    Returns:
        ``state_dict`` maps names to ``torch.Tensor``; ``config`` is the saved training config
        (a possibly nested dict; empty when the file has none).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        UntrustedCheckpointError: the file needs arbitrary unpickling and ``trust`` is False.
        CheckpointError: the file is corrupt or holds no state dict of tensors.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected a .pth or .safetensors file)")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory; expected a .pth or .safetensors file")
    if path.suffix.lower() == ".safetensors":
        state, config = _load_safetensors(path)
    else:
        state, config = _split(_load_torch(path, trust=trust), path)
    log.info("checkpoint %s: %d tensors%s", path.name, len(state), ", with config" if config else "")
    return state, config


def _load_torch(path: Path, *, trust: bool) -> Any:
    torch = require_torch()
    try:
        return _torch_load(torch, path, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _needs_trust(exc, path):
            raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc)}") from exc
        if not trust:
            raise UntrustedCheckpointError(
                f"checkpoint {path} holds pickled objects that are not plain tensors or containers "
                f"({_unpickler_detail(exc)}); loading it could run arbitrary code. Pass {TRUST_FLAG} "
                "(trust=True) only if you trust where the file comes from"
            ) from exc
        log.warning("loading %s with full unpickling (%s)", path, TRUST_FLAG)
        try:
            return _torch_load(torch, path, weights_only=False)
        except Exception as exc2:  # noqa: BLE001 - anything a foreign pickle raises is a bad file
            raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc2)}") from exc2
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
            raise
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_first_line(exc)} (expected a file written by torch.save)"
        ) from exc


def _torch_load(torch, path: Path, *, weights_only: bool) -> Any:
    # mmap keeps a multi-GB checkpoint (optimizer state included) out of RAM until a tensor is used;
    # it needs the zip format, so fall back for legacy files.
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def _needs_trust(exc: BaseException, path: Path) -> bool:
    """A well-formed pickle that the weights-only unpickler refused (not a corrupt file)."""
    text = str(exc)
    if "Unsupported global" in text:
        return True
    if "Weights only load failed" not in text:
        return False
    with open(path, "rb") as handle:
        head = handle.read(2)
    # torch's zip format, or a pickle stream (PROTO opcode + protocol 2..5); garbage is neither.
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _unpickler_detail(exc: BaseException) -> str:
    """The informative part of torch's weights-only refusal, e.g. 'Unsupported global: GLOBAL x.Y'."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            if not rest and i + 1 < len(lines):
                rest = lines[i + 1]
            return rest.split(" was not an allowed global")[0][:200] or "weights-only unpickler refused it"
    return "weights-only unpickler refused it"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _split(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    torch = require_torch()
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}; expected a dict "
            '({"model": state_dict, "config": ...} or a bare state dict)'
        )
    state: Any = obj
    config: Any = {}
    for key in _STATE_KEYS:
        if isinstance(obj.get(key), Mapping):
            state = obj[key]
            config = obj.get("config") or {}
            break
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} is not a state dict of tensors: entries {bad[:8]} are not tensors "
            '(expected {"model": state_dict, "config": ...} or a bare {name: tensor} dict)'
        )
    if not isinstance(config, Mapping):
        log.warning("checkpoint %s: config is a %s, not a dict; ignored", path.name, type(config).__name__)
        config = {}
    return dict(state), dict(config)


def _load_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    require_torch()
    try:
        from safetensors import safe_open
    except ImportError as exc:  # pragma: no cover - safetensors comes with the [convert] extra
        raise ImportError("reading .safetensors needs: pip install 'emox-edge[convert]'") from exc
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - SafetensorError and friends: a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc)} (expected a safetensors file)") from exc
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    meta.pop("format", None)
    config: dict[str, Any] = {}
    if "config" in meta:
        try:
            parsed = json.loads(meta["config"])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {path}: metadata 'config' is not JSON: {exc}") from exc
        config = parsed if isinstance(parsed, dict) else {}
    else:
        for key, value in meta.items():
            try:
                config[key] = json.loads(value)
            except json.JSONDecodeError:
                config[key] = value
    return state, config


def find_config_values(config: Mapping[str, Any], key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a nested config (dicts and lists), in order."""
    found: list[Any] = []
    stack: list[Any] = [config]
    while stack:
        node = stack.pop(0)
        if isinstance(node, Mapping):
            for k, v in node.items():
                if k == key:
                    found.append(v)
                if isinstance(v, (Mapping, list, tuple)):
                    stack.append(v)
        elif isinstance(node, (list, tuple)):
            stack.extend(v for v in node if isinstance(v, (Mapping, list, tuple)))
    return found
