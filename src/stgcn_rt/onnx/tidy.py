"""Make the graphs of different torch exporters alike, so that what reads an export (the ONNX
Runtime runner's rewrites, the quantizer, TensorRT) sees one form.

torch 2.0's exporter (JetPack 5's torch) leaves each shape as a ``Constant`` node and passes
parameters through ``Identity`` nodes, where newer ones store initializers; both are folded here.
"""

from __future__ import annotations

from typing import Any


def fold_constants_and_identities(model: Any) -> None:  # onnx.ModelProto
    """Turn ``Constant`` nodes holding a tensor into initializers and bypass ``Identity`` nodes
    (except where one produces a graph output), in place."""
    from onnx import numpy_helper

    graph = model.graph
    outputs = {value.name for value in graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
            graph.initializer.append(tensor)
        elif node.op_type == "Identity" and node.output[0] not in outputs:
            renamed[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
