"""Prepare the shipped CenterFace graph for the runtime (bundle build time only)."""

from __future__ import annotations

import os
from pathlib import Path

from emox_edge._io import atomic_path
from emox_edge.errors import BundleError
from emox_edge.faces.centerface import INPUT_NAME


def prepare_centerface(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a copy of the shipped CenterFace graph with dynamic input dims to ``dst`` (atomically)."""
    import onnx
    from onnx.tools import update_model_dims

    model = onnx.load(str(src))
    initializers = {init.name for init in model.graph.initializer}
    used = {name for node in model.graph.node for name in node.input}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    if [i.name for i in graph_inputs] != [INPUT_NAME] or len(model.graph.output) != 4:
        raise BundleError(f"{src}: not the CenterFace graph expected (input {INPUT_NAME!r}, 4 outputs)")
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs)
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
    channels = (1, 2, 2, 10)
    model = update_model_dims.update_inputs_outputs_dims(
        model,
        {INPUT_NAME: ["batch", 3, "height", "width"]},
        {out.name: ["batch", c, "grid_h", "grid_w"] for out, c in zip(model.graph.output, channels)},
    )
    onnx.checker.check_model(model)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return Path(dst)
