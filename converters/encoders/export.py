"""ONNX export (TorchScript exporter, opset 17) and dynamic int8 quantization.

Export: ``torch.onnx.export(..., dynamo=False)``. torch 2.13 defaults to the dynamo exporter, which
needs ``onnxscript``; the TorchScript exporter covers every op here. Shapes are fixed except, where
the caller names it, a leading ``frames`` axis: the per-frame encoders (CLIP, HuBERT, FaceXFormer)
treat every frame or audio window alone, so the runtime can feed a clip's 8 in smaller chunks (less
activation memory at once) or one at a time as they are captured.

Quantization: dynamic QInt8 weights / QUInt8 activations on MatMul and Gemm only, through
optimum-onnx's ``ORTQuantizer`` with an ``AutoQuantizationConfig.avx512_vnni`` preset. LayerNorm,
Softmax, GELU, convolutions and everything else stay float32 (the Q-Former's LayerNorm eps is 1e-12).
MatMuls whose second input is not a weight (attention scores and context) are excluded by name:
``ORTQuantizer`` does not pass ORT's ``MatMulConstBOnly`` option, so without the exclusion it would
quantize activation x activation products too (less accurate, no faster here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from emox_edge._io import atomic_path

log = logging.getLogger(__name__)

OPSET = 17
FRAME_AXIS = "frames"  # the symbolic leading axis of the per-frame graphs
QUANT_OPS = ("MatMul", "Gemm")


def export_onnx(module, args: tuple, path: str | os.PathLike, *, input_names: Sequence[str],
                output_names: Sequence[str], output_shapes: Sequence[Sequence[int | str]] | None = None,
                frame_axis: bool = False) -> Path:
    """Trace ``module(*args)`` into an ONNX file written atomically at ``path``.

    ``output_shapes`` (the reference outputs' shapes) are stamped on the graph outputs: the tracer
    leaves some of them symbolic (e.g. after a ReduceMean), and the manifest records the shapes.
    ``frame_axis``: the leading axis of every input and output is the symbolic ``FRAME_AXIS``
    (stamped so on the outputs too); everything else stays fixed.
    """
    from converters._torch import require_torch

    torch = require_torch()
    path = Path(path)
    module.eval()
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on python-int shape arithmetic, deprecation of dynamo=False
        torch.onnx.export(
            module, args, str(tmp), input_names=list(input_names), output_names=list(output_names),
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
            dynamic_axes={n: {0: FRAME_AXIS} for n in [*input_names, *output_names]} if frame_axis else None,
        )
        if output_shapes is not None:
            if frame_axis:
                output_shapes = [[FRAME_AXIS, *shape[1:]] for shape in output_shapes]
            _stamp_output_shapes(tmp, output_shapes)
    return path


def _stamp_output_shapes(path: Path, shapes: Sequence[Sequence[int | str]]) -> None:
    import onnx

    model = onnx.load(str(path))
    for value, shape in zip(model.graph.output, shapes):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise RuntimeError(f"{path.name}: output {value.name} has rank {len(dims)}, reference rank {len(shape)}")
        for dim, size in zip(dims, shape):
            dim.Clear()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = int(size)
    onnx.save(model, str(path))


def activation_matmuls(model) -> list[str]:
    """Names of MatMul nodes whose B input is computed (not a weight or a constant derived from one)."""
    constants = {init.name for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}

    def is_constant(name: str, depth: int = 0) -> bool:
        if name in constants:
            return True
        node = producers.get(name)
        if node is None or depth > 4:
            return False
        if node.op_type == "Constant":
            return True
        if node.op_type in ("Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze"):
            return is_constant(node.input[0], depth + 1)
        return False

    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not is_constant(n.input[1])]


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, *, per_channel: bool = False) -> dict:
    """Write a dynamic-int8 copy of ``src`` at ``dst`` (atomically). Returns the settings used."""
    import onnx
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src), load_external_data=False)
    excluded = activation_matmuls(model)
    del model
    config = AutoQuantizationConfig.avx512_vnni(
        is_static=False, per_channel=per_channel, operators_to_quantize=list(QUANT_OPS), nodes_to_exclude=excluded)
    with tempfile.TemporaryDirectory(prefix=".quant-", dir=dst.parent) as work:
        staged = Path(work) / src.name
        if _same_device(src, Path(work)):
            os.link(src, staged)
        else:
            shutil.copy2(src, staged)
        # With no config, ORTQuantizer looks for a transformers config beside the file and warns; the
        # graphs are not transformers models, so give it a stand-in that it can "save" (a no-op).
        quantizer = ORTQuantizer(staged, config=_NoSaveConfig())
        with _quiet_root_logger():  # ORT's quantizer logs one INFO line per tensor on the root logger
            quantizer.quantize(quantization_config=config, save_dir=work, file_suffix="int8")
        produced = Path(work) / f"{src.stem}_int8.onnx"
        with atomic_path(dst) as tmp:
            shutil.move(str(produced), tmp)
    return {"method": "dynamic", "weights": "QInt8", "activations": "QUInt8", "per_channel": per_channel,
            "operators": list(QUANT_OPS), "excluded_activation_matmuls": len(excluded),
            "tool": "optimum-onnx ORTQuantizer (AutoQuantizationConfig.avx512_vnni)"}


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


class _NoSaveConfig:
    def save_pretrained(self, *_args, **_kwargs) -> None:
        return None


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False
