"""An INT8 model's graph steps written channels-last, for ONNX Runtime's CPU.

ONNX Runtime runs integer convolutions channels-last (NHWC). The export's graph step, between two
convolutions, is NCHW: a permute that brings the K partitions next to the joints, then ``x @ A``
over (partition, joint). So every step costs the export's uint8 Transpose plus the layout changes
around each convolution: about a fifth of the INT8 model's time on the 2-core CPU.

Here each step is rewritten on the quantized (QDQ) model: a Transpose to (N, T, V, K*C), a Reshape
to (N, T, V*K, C), the joint mixing as ``A'' @ x`` with the adjacency on the left (A''[w, v*K + k] =
A[k*V + v, w], requantized per tensor as uint8), and a Transpose back to (N, C, T, W). Both
Transposes meet the ones ONNX Runtime inserts around its NHWC convolutions and cancel, so the
runner turns ONNX Runtime's NHWC transformer back on for a model rewritten this way. The file on
disk never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stgcn_rt.onnx.graph import attribute, chain_above, matmul_steps, set_nodes


@dataclass
class _Step:
    start: str  # the dequantized graph-convolution output, (N, K*C, T, V)
    chain: list[onnx.NodeProto]  # the MatMul and, upstream, DQ, Q, Reshape, Transpose, Reshape: replaced
    adjacency_dq: onnx.NodeProto
    adjacency_shared: bool  # its dequantization also feeds another node: kept
    activation_q: onnx.NodeProto  # its scale and zero point quantize the rearranged input
    out_q: onnx.NodeProto
    out_dq: onnx.NodeProto
    frames: int
    channels: int
    adjacency: np.ndarray  # (K*V, W) float

    def rewrite(self, index: int) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto], list[onnx.TensorProto]]:
        """Rewire the output's quantization to the new mixing, and return the nodes that go before it
        (in place of the MatMul chain), the node after the output's dequantization, and the
        initializers."""
        kv, joints = self.adjacency.shape
        partitions = kv // joints
        left = self.adjacency.reshape(partitions, joints, joints).transpose(2, 1, 0).reshape(joints, kv)
        scale = np.float32(max(np.abs(left).max(), np.finfo(np.float32).tiny) / 127)
        quantized = (np.clip(np.round(left / scale), -127, 127) + 128).astype(np.uint8)
        name = f"channels_last_step_{index}"
        tensors = [numpy_helper.from_array(quantized, name + "_adjacency"),
                   numpy_helper.from_array(np.array(scale, np.float32), name + "_adjacency_scale"),
                   numpy_helper.from_array(np.array(128, np.uint8), name + "_adjacency_zero_point"),
                   numpy_helper.from_array(np.array([0, self.frames, kv, self.channels], np.int64), name + "_shape")]
        q_scale, q_zero = self.activation_q.input[1], self.activation_q.input[2]
        before = [
            helper.make_node("Transpose", [self.start], [name + "_ntvc"], perm=[0, 2, 3, 1], name=name + "_to_ntvc"),
            helper.make_node("Reshape", [name + "_ntvc", name + "_shape"], [name + "_rows"], name=name + "_rows"),
            helper.make_node("QuantizeLinear", [name + "_rows", q_scale, q_zero], [name + "_rows_q"], name=name + "_q"),
            helper.make_node("DequantizeLinear", [name + "_rows_q", q_scale, q_zero], [name + "_rows_dq"],
                             name=name + "_dq"),
            helper.make_node("DequantizeLinear", [name + "_adjacency", name + "_adjacency_scale",
                                                  name + "_adjacency_zero_point"], [name + "_adjacency_dq"],
                             name=name + "_adjacency_dq"),
            helper.make_node("MatMul", [name + "_adjacency_dq", name + "_rows_dq"], [name + "_mixed"],
                             name=name + "_mix"),
        ]
        after = [helper.make_node("Transpose", [name + "_ntwc"], [self.out_dq.output[0]], perm=[0, 3, 1, 2],
                                  name=name + "_to_nchw")]
        self.out_q.input[0] = name + "_mixed"
        self.out_dq.output[0] = name + "_ntwc"
        return before, after, tensors


def _single_reader(name: str, readers: dict[str, list[onnx.NodeProto]]) -> onnx.NodeProto | None:
    found = readers.get(name, [])
    return found[0] if len(found) == 1 else None


def _match(matmul: onnx.NodeProto, writers: dict[str, onnx.NodeProto], readers: dict[str, list[onnx.NodeProto]],
           arrays: dict[str, np.ndarray]) -> _Step | None:
    """The export's quantized graph step ending in ``matmul``, or None where anything differs."""
    above = chain_above(matmul, ("DequantizeLinear", "QuantizeLinear", "Reshape", "Transpose", "Reshape"), writers,
                        readers)
    if above is None:
        return None
    _, q_x, reshape_rows, transpose, reshape_split = above
    adjacency_dq = writers.get(matmul.input[1])
    out_q = _single_reader(matmul.output[0], readers)
    out_dq = _single_reader(out_q.output[0], readers) if out_q is not None else None
    if (adjacency_dq is None or adjacency_dq.op_type != "DequantizeLinear" or out_q is None
            or out_q.op_type != "QuantizeLinear" or out_dq is None or out_dq.op_type != "DequantizeLinear"
            or list(attribute(transpose, "perm", [])) != [0, 2, 3, 1, 4]):
        return None
    weights, scale, zero = (arrays.get(name) for name in adjacency_dq.input[:3])
    shape = arrays.get(reshape_rows.input[1])
    if weights is None or scale is None or zero is None or shape is None or shape.size != 4 or weights.ndim != 2:
        return None
    axis = attribute(adjacency_dq, "axis", 1)
    if scale.size > 1 and axis not in (1, -1):
        return None
    adjacency = (weights.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)
    kv, joints = adjacency.shape
    _, channels, frames, last = (int(v) for v in shape)
    if last != kv or kv % joints or frames <= 0:
        return None
    shared = len(readers.get(adjacency_dq.output[0], [])) > 1
    return _Step(reshape_split.input[0], [matmul, *above], adjacency_dq, shared, q_x, out_q, out_dq, frames, channels,
                 adjacency)


def graph_steps_channels_last(model: onnx.ModelProto) -> int:
    """Rewrite ``model``'s quantized graph steps in place as the module docstring describes; returns
    how many. Float models have no QuantizeLinear in their steps and are left alone."""
    graph = model.graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    steps = matmul_steps(graph, arrays, _match)
    if not steps:
        return 0
    removed = {id(node) for step in steps for node in step.chain}
    removed |= {id(step.adjacency_dq) for step in steps if not step.adjacency_shared}
    before, after = {}, {}
    for index, step in enumerate(steps):
        before[id(step.out_q)], after[id(step.out_dq)], tensors = step.rewrite(index)
        graph.initializer.extend(tensors)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if id(node) in removed:
            continue
        nodes.extend(before.get(id(node), []))
        nodes.append(node)
        nodes.extend(after.get(id(node), []))
    set_nodes(graph, nodes)
    return len(steps)
