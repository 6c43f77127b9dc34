"""Two int8 alternatives to the shipped dynamic int8, built to be measured against it (issue 14, item 1).

- ``static``: activations calibrated (MinMax over real rows), QUInt8 activations, QInt8 weights per
  output channel, QOperator format (``QLinearMatMul`` / ``QGemm``), on MatMul and Gemm only.
  Activation x activation MatMuls are excluded as in the shipped int8, and LayerNorm, Softmax, GELU
  and convolutions stay float32.
- ``fused``: ONNX Runtime's transformer optimizer (attention, LayerNorm / SkipLayerNorm, GELU and bias
  fusions) on the fp32 graph, then the shipped dynamic int8, with ``Attention`` added to the
  quantized operators (``QAttention``) so the fused projections are not left in float.

The benchmark's ``stages`` section builds both from a bundle's fp32 graphs and runs them beside the
shipped int8 on the same clip (``benchmarks/bench_int8_levers.py``); the parity gate (cosine >= 0.99
against PyTorch) decides per graph. The converter ships dynamic int8 because neither paid on the
hosts measured (numbers in docs/encoders-converter.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from converters.encoders.export import QUANT_OPS, _quiet_root_logger, activation_matmuls
from emox_edge._io import atomic_path

# ORT's optimizer model type per graph: CLIP ViT (quick GELU), HuBERT (a BERT-style encoder after its
# convolutional front), FaceXFormer (a Swin-B backbone)
MODEL_TYPES = {"visual": "clip", "audio": "bert", "facial": "swin"}
FUSED_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "LayerNormalization", "BiasGelu",
             "FastGelu", "Gelu", "QuickGelu", "BiasSplitGelu", "BiasAdd")


def quantize_int8_static(src: str | os.PathLike, dst: str | os.PathLike,
                         rows: Iterable[Mapping[str, np.ndarray]], *, per_channel: bool = True) -> dict:
    """Write a calibrated static-int8 copy of ``src`` at ``dst`` (atomically); ``rows`` are its feeds.

    Raises:
        ValueError: ``rows`` is empty (nothing to calibrate on).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    feeds = [{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in row.items()} for row in rows]
    if not feeds:
        raise ValueError(f"{src}: no calibration rows")
    src, dst = Path(src), Path(dst)
    excluded = activation_matmuls(onnx.load(str(src), load_external_data=False))

    class _Rows(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix=".quant-static-", dir=dst.parent) as work, _quiet_root_logger():
        staged = Path(work) / "static.onnx"
        quantize_static(str(src), str(staged), _Rows(), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=list(QUANT_OPS), per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                        # MinMax keeps each row's reduced min/max only, not its tensors. (ORT 1.32's
                        # CalibMaxIntermediateOutputs drops the rows it flushes: not used.)
                        extra_options={"MatMulConstBOnly": True})
        with atomic_path(dst) as tmp:
            shutil.move(str(staged), tmp)
    return {"method": "static", "format": "QOperator", "weights": "QInt8", "activations": "QUInt8",
            "per_channel": per_channel, "calibration": "MinMax", "calibration_rows": len(feeds),
            "operators": list(QUANT_OPS), "excluded_activation_matmuls": len(excluded),
            "ops": _op_counts(dst, ("QLinearMatMul", "QGemm", "MatMulInteger", "DynamicQuantizeLinear"))}


def fuse_and_quantize(src: str | os.PathLike, dst: str | os.PathLike, *, model_type: str) -> dict:
    """Write ORT's transformer fusions of ``src``, dynamically quantized, at ``dst`` (atomically).

    The quantization has the shipped int8's settings (QInt8 weights per tensor, QUInt8 activations,
    activation x activation MatMuls excluded) through ORT's ``quantize_dynamic``, which, unlike
    optimum's ``ORTQuantizer``, takes the ``DefaultTensorType`` that fused com.microsoft ops need
    (shape inference gives their outputs no type)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    src, dst = Path(src), Path(dst)
    ops = (*QUANT_OPS, "Attention")
    with tempfile.TemporaryDirectory(prefix=".fuse-", dir=dst.parent) as work, _quiet_root_logger():
        fused, staged = Path(work) / "fused.onnx", Path(work) / "fused.int8.onnx"
        # num_heads / hidden_size 0: the optimizer reads them from the attention's reshapes
        model = optimize_model(str(src), model_type=model_type, num_heads=0, hidden_size=0, opt_level=0,
                               use_gpu=False, only_onnxruntime=False)
        model.save_model_to_file(str(fused))
        del model
        counts = _op_counts(fused, FUSED_OPS)
        excluded = activation_matmuls(onnx.load(str(fused), load_external_data=False))
        quantize_dynamic(str(fused), str(staged), op_types_to_quantize=list(ops), per_channel=False,
                         weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
        with atomic_path(dst) as tmp:
            shutil.move(str(staged), tmp)
    return {"method": "fused + dynamic", "model_type": model_type, "weights": "QInt8", "activations": "QUInt8",
            "per_channel": False, "operators": list(ops), "excluded_activation_matmuls": len(excluded),
            "fused_ops": counts, "tool": "onnxruntime.transformers optimize_model + quantize_dynamic"}


def _op_counts(path: Path, ops: Iterable[str]) -> dict[str, int]:
    import onnx

    counts = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return {op: counts[op] for op in ops if counts[op]}

