"""Run a float model's graph steps aggregate-first on ONNX Runtime's CPU.

The export writes a block's graph step as the reference computes it: a 1x1 convolution to K*C
channels, ``Reshape -> Transpose -> Reshape`` to (N, C, T, K*V), a MatMul with the (K*V, V)
adjacency, then the BatchNorm. On the CPU ONNX Runtime runs the convolutions in its blocked
channel layout and converts to and from it around the MatMul, and the Transpose copies the
convolution's whole output: on a 2-core CPU the Transpose, the conversions and the BatchNorms took
a quarter of a window's time (docs/benchmarks/ort-ops-cpu2-2026-11-26.md).

Since the joint mixing and the channel mixing commute, the same function can run mixing first:
``x @ A'`` with A' the (V, K*V) adjacency of all partitions side by side (no transpose: it mixes
the last axis), then one convolution with a (1, K) kernel dilated by V, which sums partition k's
copy of each joint with weights W_k, with the BatchNorm's scale folded in; the bias that the
convolution added before the mixing reaches each joint through the adjacency's column sums, so it
becomes a per-(channel, joint) ``Add`` with the BatchNorm's shift. The exported ONNX stays as it
is (TensorRT and the INT8 quantizer read it); the ONNX Runtime runner rewrites its copy in memory.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stgcn_rt.onnx.graph import attribute, batchnorm_affine, chain_above, matmul_steps, set_nodes

#: the Transpose between the graph convolution and the joint mixing: (N, K, C, T, V) -> (N, C, T, K, V)
_GRAPH_STEP_PERM = [0, 2, 3, 1, 4]


class _GraphStep:
    """One matched graph step: the nodes it replaces and its parameters, float64."""

    def __init__(self, conv: onnx.NodeProto, replaced: list[onnx.NodeProto], last: onnx.NodeProto,
                 adjacency: np.ndarray, weight: np.ndarray, bias: np.ndarray, scale: np.ndarray,
                 shift: np.ndarray) -> None:
        self.conv, self.replaced, self.last = conv, replaced, last
        partitions = weight.shape[0] // len(scale)
        joints = adjacency.shape[1]
        self.adjacency = adjacency.reshape(partitions, joints, joints)  # [k, v, w]
        self.weight = weight[:, :, 0, 0].reshape(partitions, len(scale), -1)  # [k, c_out, c_in]
        self.bias = bias.reshape(partitions, len(scale))  # [k, c_out]
        self.scale, self.shift = scale, shift

    def nodes_and_tensors(self) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        partitions, joints, _ = self.adjacency.shape
        channels = len(self.scale)
        side_by_side = self.adjacency.transpose(1, 0, 2).reshape(joints, partitions * joints)  # [v, k*V + w]
        kernel = self.weight.transpose(1, 2, 0)[:, :, None, :] * self.scale[:, None, None, None]  # (C, C_in, 1, K)
        joint_bias = (self.scale[:, None] * np.einsum("kvw,kc->cw", self.adjacency, self.bias)
                      + self.shift[:, None]).reshape(channels, 1, joints)
        base = self.conv.name or self.conv.output[0]
        names = {part: f"{base}_aggregate_first_{part}" for part in ("adjacency", "kernel", "bias", "mixed", "summed")}
        tensors = [numpy_helper.from_array(value.astype(np.float32), names[part])
                   for part, value in (("adjacency", side_by_side), ("kernel", kernel), ("bias", joint_bias))]
        nodes = [
            helper.make_node("MatMul", [self.conv.input[0], names["adjacency"]], [names["mixed"]], name=names["mixed"]),
            helper.make_node("Conv", [names["mixed"], names["kernel"]], [names["summed"]], name=names["summed"],
                             kernel_shape=[1, partitions], dilations=[1, joints]),
            helper.make_node("Add", [names["summed"], names["bias"]], [self.last.output[0]], name=names["bias"]),
        ]
        return nodes, tensors


def _match(matmul: onnx.NodeProto, writers: dict[str, onnx.NodeProto], readers: dict[str, list[onnx.NodeProto]],
           arrays: dict[str, np.ndarray]) -> _GraphStep | None:
    """The graph step ending in ``matmul``, or None where the exported pattern does not hold or its
    constants are not fp32 (``arrays``: the initializers, the fp32 ones as float64)."""
    adjacency = arrays.get(matmul.input[1])
    if (adjacency is None or adjacency.dtype != np.float64 or adjacency.ndim != 2
            or adjacency.shape[0] % adjacency.shape[1]):
        return None
    chain = chain_above(matmul, ("Reshape", "Transpose", "Reshape", "Conv"), writers, readers)
    if chain is None:
        return None
    merge, transpose, split, conv = chain
    if (list(attribute(transpose, "perm", [])) != _GRAPH_STEP_PERM or len(conv.input) != 3
            or not all(i in arrays for i in (*conv.input[1:], split.input[1], merge.input[1]))):
        return None
    weight, bias = arrays[conv.input[1]], arrays[conv.input[2]]
    if weight.dtype != np.float64 or bias.dtype != np.float64:
        return None
    joints = adjacency.shape[1]
    partitions = adjacency.shape[0] // joints
    if (weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[0] % partitions
            or attribute(conv, "group", 1) != 1):
        return None
    channels = weight.shape[0] // partitions
    if list(arrays[split.input[1]][1:]) != [partitions, channels, arrays[split.input[1]][3], joints] \
            or arrays[merge.input[1]][-1] != partitions * joints:
        return None
    scale, shift, last = np.ones(channels), np.zeros(channels), matmul
    after = readers.get(matmul.output[0], [])
    if len(after) == 1 and after[0].op_type == "BatchNormalization" and all(i in arrays for i in after[0].input[1:5]):
        last = after[0]
        scale, shift = batchnorm_affine(last, [arrays[i] for i in last.input[1:5]])
    return _GraphStep(conv, [*chain, matmul] + ([last] if last is not matmul else []), last,
                      adjacency, weight, bias, scale, shift)


def aggregate_graph_steps_first(model: onnx.ModelProto) -> int:
    """Rewrite ``model``'s graph steps in place as the module docstring describes; returns how many.
    Only fp32 steps are rewritten: a quantized model's weights are not float constants, and an fp16
    model's are left as exported (its new tensors would need fp16 and the fold's rounding)."""
    graph = model.graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    arrays = {name: value.astype(np.float64) if value.dtype == np.float32 else value for name, value in arrays.items()}
    steps = matmul_steps(graph, arrays, _match)
    if not steps:
        return 0
    removed = {id(node) for step in steps for node in step.replaced}
    inserted = {id(step.last): step.nodes_and_tensors() for step in steps}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if id(node) in inserted:
            new_nodes, tensors = inserted[id(node)]
            nodes.extend(new_nodes)
            graph.initializer.extend(tensors)
        elif id(node) not in removed:
            nodes.append(node)
    set_nodes(graph, nodes)
    return len(steps)
