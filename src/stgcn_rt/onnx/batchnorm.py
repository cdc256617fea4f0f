"""Fold the BatchNorm that follows each graph step into the graph convolution, for 8-bit execution.

In the export a block's graph convolution is ``Conv (K*C channels) -> Reshape -> Transpose ->
Reshape -> MatMul (joint mixing) -> BatchNormalization -> Relu``. ONNX Runtime has no integer
BatchNorm, so an INT8 model runs that BatchNorm in float between a dequantize and a quantize, about
a third of each block's time outside the convolutions on a 2-core CPU. The joint mixing does not mix
channels, so the BatchNorm's per-channel scale can move into the convolution's weights and bias (the
same factor for the channel in every partition); its shift stays as an ``Add`` of a (C, 1, 1)
constant, which ONNX Runtime runs as an integer QLinearAdd with the Relu folded into its output.
The rewritten float model computes the same function (to float rounding).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stgcn_rt.onnx.graph import batchnorm_affine, consumers, producers, set_nodes

#: nodes allowed between the graph convolution and the joint-mixing MatMul
_LAYOUT_OPS = ("Reshape", "Transpose")


def _graph_convolution(name: str, writers: dict[str, onnx.NodeProto],
                       readers: dict[str, list[onnx.NodeProto]]) -> onnx.NodeProto | None:
    """The Conv whose output reaches the MatMul input ``name`` through layout operations only, each
    tensor on the way read by nothing else; None where the pattern does not hold."""
    node = writers.get(name)
    while node is not None and node.op_type in _LAYOUT_OPS:
        if len(readers.get(node.output[0], [])) != 1:
            return None
        node = writers.get(node.input[0])
    if node is None or node.op_type != "Conv" or len(readers.get(node.output[0], [])) != 1 or len(node.input) < 3:
        return None
    return node


def fold_graph_batchnorms(model: onnx.ModelProto) -> list[str]:
    """Rewrite ``model`` in place; returns the names of the ``Add`` nodes that carry the shifts."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    writers = producers(graph)
    readers = consumers(graph)
    replaced: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        if node.op_type != "BatchNormalization" or len(node.output) != 1:
            continue
        matmul = writers.get(node.input[0])
        if matmul is None or matmul.op_type != "MatMul" or len(readers.get(matmul.output[0], [])) != 1:
            continue
        conv = _graph_convolution(matmul.input[0], writers, readers)
        if conv is None or not all(name in initializers for name in (*node.input[1:5], *conv.input[1:3])):
            continue
        scale, shift = batchnorm_affine(node, [numpy_helper.to_array(initializers[name]).astype(np.float64)
                                               for name in node.input[1:5]])
        weight = numpy_helper.to_array(initializers[conv.input[1]])
        bias = numpy_helper.to_array(initializers[conv.input[2]])
        if weight.shape[0] % len(scale):
            continue
        factor = np.tile(scale, weight.shape[0] // len(scale))  # output channel k*C + c gets scale[c]
        names = [f"{conv.name}_bn_folded_weight", f"{conv.name}_bn_folded_bias", f"{node.name}_shift"]
        graph.initializer.extend([
            numpy_helper.from_array((weight * factor.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype),
                                    names[0]),
            numpy_helper.from_array((bias * factor).astype(bias.dtype), names[1]),
            numpy_helper.from_array(shift.reshape(-1, 1, 1).astype(np.float32), names[2])])
        conv.input[1], conv.input[2] = names[0], names[1]  # new tensors: a shared weight stays as it was
        replaced[node.output[0]] = helper.make_node("Add", [node.input[0], names[2]], list(node.output),
                                               name=f"{node.name}_shift")
    set_nodes(graph, [replaced.get(node.output[0], node) if node.output else node for node in graph.node])
    return [node.name for node in replaced.values()]
