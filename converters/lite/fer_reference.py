"""A numpy forward pass of a Keras mini-Xception, written independently of the ONNX mapping.

It works in NHWC like Keras, straight from the layer configs and weights that ``keras_h5`` reads,
so that ``fer_onnx.check_fer_parity`` compares two separate implementations.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from converters.lite.keras_h5 import KerasLayer


def _pad_same(x: np.ndarray, kernel, strides, value: float) -> np.ndarray:
    pads = []
    for size, k, s in zip(x.shape[1:3], kernel, strides):
        out = int(np.ceil(size / s))
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kernel, strides, padding: str, pad_value: float = 0.0) -> np.ndarray:
    if padding == "same":
        x = _pad_same(x, kernel, strides, pad_value)
    win = sliding_window_view(x, tuple(kernel), axis=(1, 2))  # N, H', W', C, kh, kw
    return win[:, :: strides[0], :: strides[1]]


def _act(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "linear":
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"activation {kind!r} not in the reference")


def forward(layers: list[KerasLayer], x: np.ndarray) -> np.ndarray:
    """Run the model on NHWC float32 input ``x``; returns the last layer's output."""
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        cfg = layer.config
        if layer.kind == "InputLayer":
            values[layer.name] = x.astype(np.float64)
            continue
        a = values[layer.inputs[0]]
        if layer.kind == "Conv2D":
            win = _windows(a, cfg["kernel_size"], cfg["strides"], cfg["padding"])
            y = np.einsum("nhwcij,ijco->nhwo", win, layer.weights["kernel"].astype(np.float64))
            if cfg.get("use_bias"):
                y = y + layer.weights["bias"]
            y = _act(y, cfg.get("activation", "linear"))
        elif layer.kind == "SeparableConv2D":
            win = _windows(a, cfg["kernel_size"], cfg["strides"], cfg["padding"])
            dw = layer.weights["depthwise_kernel"].astype(np.float64)  # kh, kw, c, mult
            y = np.einsum("nhwcij,ijcm->nhwcm", win, dw).reshape(*win.shape[:3], -1)
            y = np.einsum("nhwc,co->nhwo", y, layer.weights["pointwise_kernel"][0, 0].astype(np.float64))
            if cfg.get("use_bias"):
                y = y + layer.weights["bias"]
            y = _act(y, cfg.get("activation", "linear"))
        elif layer.kind == "BatchNormalization":
            w = layer.weights
            y = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w.get("gamma", 1.0) + w.get("beta", 0.0)
        elif layer.kind == "Activation":
            y = _act(a, cfg["activation"])
        elif layer.kind == "MaxPooling2D":
            win = _windows(a, cfg["pool_size"], cfg["strides"] or cfg["pool_size"], cfg["padding"], -np.inf)
            y = win.max(axis=(4, 5))
        elif layer.kind == "Add":
            y = sum(values[name] for name in layer.inputs)
        elif layer.kind == "GlobalAveragePooling2D":
            y = a.mean(axis=(1, 2))
        else:
            raise ValueError(f"layer {layer.name}: {layer.kind} not in the reference")
        values[layer.name] = y
    return values[layers[-1].name].astype(np.float32)
