"""Read a Keras 2 ``.hdf5`` model (layer graph + weights) with h5py alone, no TensorFlow."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras functional model: its class, config, input layer names and weights."""

    name: str
    kind: str
    config: dict[str, Any]
    inputs: tuple[str, ...]
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # short name ("kernel", "gamma") -> array


def read_keras_h5(path: str | os.PathLike) -> list[KerasLayer]:
    """Layers of a Keras functional ``Model`` saved by ``model.save()``, in graph order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file has no Keras ``model_config`` or is not a functional Model.
    """
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Keras model file not found: {path}")
    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
        if raw is None:
            raise ValueError(f"{path}: no 'model_config' attribute; expected a Keras model saved with model.save()")
        config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        if config.get("class_name") not in ("Model", "Functional"):
            raise ValueError(f"{path}: Keras class {config.get('class_name')!r}; expected a functional Model")
        group = handle["model_weights"] if "model_weights" in handle else handle
        layers = []
        for spec in config["config"]["layers"]:
            name = spec["name"]
            inputs = tuple(node[0] for nodes in spec.get("inbound_nodes", []) for node in nodes)
            weights: dict[str, np.ndarray] = {}
            if name in group:
                layer_group = group[name]
                for wname in layer_group.attrs.get("weight_names", []):
                    wname = wname.decode("utf-8") if isinstance(wname, bytes) else wname
                    short = wname.rsplit("/", 1)[-1].split(":")[0]
                    weights[short] = np.asarray(layer_group[wname], dtype=np.float32)
            layers.append(KerasLayer(name, spec["class_name"], spec["config"], inputs, weights))
    return layers


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'same' padding along one axis: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2
