"""The facial-expression model of the lite bundle: fer's mini-Xception (MIT) rebuilt as ONNX.

``build_fer_onnx`` maps the Keras layers read by ``keras_h5`` to ONNX nodes (NHWC weights become
NCHW; 'same' padding becomes explicit pads computed the TensorFlow way), ``quantize_fer`` makes the
int8 graph with ONNX Runtime's dynamic quantization, and ``check_fer_parity`` compares both against
``fer_reference.forward`` (a separate numpy implementation) and refuses a graph that disagrees.

Model input: ``image`` float32 [batch, 1, 64, 64], grey in [-1, 1]; output ``probs`` [batch, 7].
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emox_edge._io import atomic_path
from emox_edge.errors import ParityError
from emox_edge.lite.expression import FER_CLASSES, INPUT_NAME
from converters.lite.keras_h5 import KerasLayer, read_keras_h5, same_padding

log = logging.getLogger(__name__)

OUTPUT_NAME = "probs"
OPSET = 17


def build_fer_onnx(h5_path: str | os.PathLike):
    """Return an ``onnx.ModelProto`` equivalent to the Keras mini-Xception in ``h5_path``.

    Raises:
        ValueError: a layer type or setting this converter does not map (the message names it).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = read_keras_h5(h5_path)
    nodes, inits = [], []
    shapes: dict[str, tuple[int, int, int]] = {}  # layer -> (channels, h, w)
    tensor: dict[str, str] = {}

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def conv(layer: KerasLayer, src: str, c_in: int, h: int, w: int, weight: np.ndarray, group: int,
             kernel, strides, padding, bias: np.ndarray | None, out_name: str, suffix: str = ""):
        kh, kw = kernel
        sh, sw = strides
        if padding == "same":
            oh, top, bottom = same_padding(h, kh, sh)
            ow, left, right = same_padding(w, kw, sw)
        elif padding == "valid":
            oh, ow, top, bottom, left, right = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0, 0, 0
        else:
            raise ValueError(f"layer {layer.name}: padding {padding!r} not supported (same, valid)")
        inputs = [src, const(f"{layer.name}{suffix}.weight", weight)]
        if bias is not None:
            inputs.append(const(f"{layer.name}{suffix}.bias", bias))
        nodes.append(helper.make_node("Conv", inputs, [out_name], name=f"{layer.name}{suffix}", group=group,
                                      kernel_shape=[kh, kw], strides=[sh, sw], pads=[top, left, bottom, right]))
        return oh, ow

    for layer in layers:
        cfg = layer.config
        if layer.kind == "InputLayer":
            _, h, w, c = cfg["batch_input_shape"]
            if c != 1:
                raise ValueError(f"input layer {layer.name}: {c} channels, expected 1 (grey)")
            tensor[layer.name] = INPUT_NAME
            shapes[layer.name] = (c, h, w)
            continue
        src = tensor[layer.inputs[0]]
        c, h, w = shapes[layer.inputs[0]]
        out = layer.name
        if layer.kind == "Conv2D":
            kernel = layer.weights["kernel"]  # kh, kw, in, out
            weight = kernel.transpose(3, 2, 0, 1)
            bias = layer.weights.get("bias") if cfg.get("use_bias") else None
            raw = f"{out}.pre" if cfg.get("activation", "linear") != "linear" else out
            oh, ow = conv(layer, src, c, h, w, weight, 1, cfg["kernel_size"], cfg["strides"], cfg["padding"], bias, raw)
            _activation(nodes, helper, layer, raw, out)
            shapes[out] = (kernel.shape[3], oh, ow)
        elif layer.kind == "SeparableConv2D":
            dw = layer.weights["depthwise_kernel"]  # kh, kw, in, mult
            pw = layer.weights["pointwise_kernel"]  # 1, 1, in*mult, out
            kh, kw, cin, mult = dw.shape
            dw_weight = dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            oh, ow = conv(layer, src, c, h, w, dw_weight, cin, cfg["kernel_size"], cfg["strides"], cfg["padding"], None,
                          f"{out}.depthwise", ".depthwise")
            bias = layer.weights.get("bias") if cfg.get("use_bias") else None
            raw = f"{out}.pre" if cfg.get("activation", "linear") != "linear" else out
            conv(layer, f"{out}.depthwise", cin * mult, oh, ow, pw.transpose(3, 2, 0, 1), 1, (1, 1), (1, 1), "valid", bias,
                 raw, ".pointwise")
            _activation(nodes, helper, layer, raw, out)
            shapes[out] = (pw.shape[3], oh, ow)
        elif layer.kind == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3):
                raise ValueError(f"layer {layer.name}: BatchNormalization axis {cfg['axis']} not supported (-1)")
            wts = layer.weights
            gamma = wts.get("gamma", np.ones(c, np.float32))
            beta = wts.get("beta", np.zeros(c, np.float32))
            nodes.append(helper.make_node(
                "BatchNormalization",
                [src, const(f"{out}.gamma", gamma), const(f"{out}.beta", beta),
                 const(f"{out}.mean", wts["moving_mean"]), const(f"{out}.var", wts["moving_variance"])],
                [out], name=out, epsilon=float(cfg.get("epsilon", 1e-3))))
            shapes[out] = (c, h, w)
        elif layer.kind == "Activation":
            _activation(nodes, helper, layer, src, out, required=True)
            shapes[out] = shapes[layer.inputs[0]] if cfg["activation"] != "softmax" else (c, h, w)
        elif layer.kind == "MaxPooling2D":
            (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"] or cfg["pool_size"]
            if cfg["padding"] == "same":
                oh, top, bottom = same_padding(h, kh, sh)
                ow, left, right = same_padding(w, kw, sw)
            else:
                oh, ow, top, bottom, left, right = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0, 0, 0
            nodes.append(helper.make_node("MaxPool", [src], [out], name=out, kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[top, left, bottom, right]))
            shapes[out] = (c, oh, ow)
        elif layer.kind == "Add":
            nodes.append(helper.make_node("Add", [tensor[n] for n in layer.inputs], [out], name=out))
            shapes[out] = (c, h, w)
        elif layer.kind == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [src], [f"{out}.4d"], name=f"{out}.pool"))
            nodes.append(helper.make_node("Flatten", [f"{out}.4d"], [out], name=out, axis=1))
            shapes[out] = (c, 1, 1)
        else:
            raise ValueError(f"layer {layer.name}: Keras {layer.kind} is not mapped to ONNX by this converter")
        tensor[layer.name] = out
    last = layers[-1].name
    nodes.append(helper.make_node("Identity", [tensor[last]], [OUTPUT_NAME], name="output"))
    c_in, h_in, w_in = shapes[layers[0].name]
    graph = helper.make_graph(
        nodes, "fer_mini_xception",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", c_in, h_in, w_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", shapes[last][0]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emox-edge")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _activation(nodes, helper, layer: KerasLayer, src: str, out: str, *, required: bool = False) -> None:
    kind = layer.config.get("activation", "linear")
    if kind == "linear":
        if required:
            nodes.append(helper.make_node("Identity", [src], [out], name=out))
        return
    ops = {"relu": ("Relu", {}), "softmax": ("Softmax", {"axis": -1}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {})}
    if kind not in ops:
        raise ValueError(f"layer {layer.name}: activation {kind!r} not supported ({', '.join(['linear', *ops])})")
    op, attrs = ops[kind]
    nodes.append(helper.make_node(op, [src], [out], name=f"{out}.{kind}", **attrs))


def save_fer_onnx(h5_path: str | os.PathLike, dst: str | os.PathLike) -> Path:
    import onnx

    model = build_fer_onnx(h5_path)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return Path(dst)


def quantize_fer(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Int8 graph: ONNX Runtime's pre-processing (folds BatchNorm into Conv), then dynamic QInt8.

    Measured on scikit-image's 100 LFW faces (docs/lite-bundle.md): folding first raises top-1
    agreement with fp32 from 94% to 96%; static QDQ/QOperator calibration did no better and needs
    calibration faces at build time. On a 2-core x86 CPU the int8 graph (ConvInteger) is ~20x
    slower than fp32 for this 64x64 network, so bundles run fp32 by default (``runtime_precision``).
    """
    import logging as _logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quiet = _logging.getLogger()
    level = quiet.level
    with tempfile.TemporaryDirectory(prefix="emox-fer-") as work, atomic_path(dst) as tmp:
        pre = Path(work) / "folded.onnx"
        quiet.setLevel(max(level, _logging.ERROR))  # ORT's quantizer warns on the root logger
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(str(pre), str(tmp), weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)
    return Path(dst)


@dataclass(frozen=True)
class FerParity:
    """How the ONNX graphs compare with the numpy reference on the same faces."""

    n_inputs: int
    fp32_max_abs: float
    fp32_top1_agreement: float
    int8_max_abs: float
    int8_top1_agreement: float

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def check_fer_parity(h5_path, fp32_path, int8_path, faces64: np.ndarray, *, fp32_tol: float = 1e-4,
                     int8_min_agreement: float = 0.9) -> FerParity:
    """Run the numpy reference and both ONNX graphs on ``faces64`` [N, 64, 64] in [-1, 1].

    Raises:
        ParityError: fp32 differs by more than ``fp32_tol`` or disagrees on any top-1 class, or the
            int8 graph agrees on fewer than ``int8_min_agreement`` of the top-1 classes.
    """
    from emox_edge.onnx_session import create_session
    from converters.lite.fer_reference import forward

    faces64 = np.asarray(faces64, np.float32)
    reference = forward(read_keras_h5(h5_path), faces64[..., None])
    batch = faces64[:, None]
    fp32 = create_session(fp32_path).run(None, {INPUT_NAME: batch})[0]
    int8 = create_session(int8_path).run(None, {INPUT_NAME: batch})[0]
    ref_top = reference.argmax(1)
    parity = FerParity(
        n_inputs=len(faces64),
        fp32_max_abs=float(np.abs(fp32 - reference).max()),
        fp32_top1_agreement=float((fp32.argmax(1) == ref_top).mean()),
        int8_max_abs=float(np.abs(int8 - reference).max()),
        int8_top1_agreement=float((int8.argmax(1) == ref_top).mean()),
    )
    log.info("FER parity: %s", parity)
    if parity.fp32_max_abs > fp32_tol or parity.fp32_top1_agreement < 1.0:
        raise ParityError(f"FER fp32 ONNX differs from the numpy reference: {parity}")
    if parity.int8_top1_agreement < int8_min_agreement:
        raise ParityError(f"FER int8 ONNX top-1 agrees on {parity.int8_top1_agreement:.1%} "
                          f"< {int8_min_agreement:.0%} of faces: {parity}")
    return parity
